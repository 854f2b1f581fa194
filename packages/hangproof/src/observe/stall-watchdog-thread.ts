/**
 * The stall watchdog's thread, started by stall-watchdog.ts with `new Worker(<this file>)`.
 *
 * The main thread stores the time of each beat in shared memory. The watchdog reads it when the
 * last beat it saw would be `thresholdMs` old; when none has come since, the main loop is blocked.
 * To name the blocking code, the watchdog uses
 * `inspector.Session#connectToMainThread()`: inspector messages reach a busy main thread through
 * V8's interrupt mechanism (that is how a debugger pauses a runaway loop), so `Debugger.pause`
 * stops the main thread at its next JavaScript statement and `Debugger.paused` carries the call
 * frames. While paused, one expression runs on the main thread to list the requests in flight,
 * then the thread is resumed at once. No network port is opened.
 *
 * Limits: code blocked inside one native call (a sync crypto or fs call) is only interrupted when
 * it returns to JavaScript; if the loop has resumed by then, the stack is discarded rather than
 * reported against the wrong code.
 *
 * This module has effects when loaded (it is a thread's entry point); nothing imports it.
 */
import { writeSync } from 'node:fs';
import type { Session } from 'node:inspector';
import { parentPort, workerData } from 'node:worker_threads';
import type { InFlightRequest, StallFrame } from './stall-watchdog.js';
import { beatAgeMs, clockOriginMs, type WatchdogData, type WatchdogMessage } from './stall-watchdog-protocol.js';

/** The inspector's call frame, as far as the watchdog reads it. */
interface CallFrame {
  readonly callFrameId: string;
  readonly functionName: string;
  readonly url: string;
  readonly location: { readonly scriptId: string; readonly lineNumber: number; readonly columnNumber: number };
}

interface Capture {
  readonly frames: StallFrame[] | undefined;
  readonly inFlight: InFlightRequest[] | undefined;
  readonly pausedAfterMs: number | undefined;
  readonly note: string | undefined;
}

interface Stall {
  /** The last beat before the stall. */
  readonly startedAt: number;
  readonly startedAtEpoch: number;
  readonly captured: Promise<Capture>;
  longLogged: boolean;
}

const data = workerData as WatchdogData;
const port = parentPort;
if (port === null) throw new Error('stall-watchdog-thread runs only as a worker thread');
const send = (m: WatchdogMessage): void => port.postMessage(m);
const lastBeat = new Int32Array(data.buffer);
// The main thread's performance.now(), read from this thread: the same monotonic clock, another origin.
const mainClockOffsetMs = clockOriginMs() - data.mainClockOriginMs;
const mainNow = (): number => performance.now() + mainClockOffsetMs;
const messageOf = (err: unknown): string => (err instanceof Error ? err.message : String(err));

// A session to the main thread is connected only while a capture runs: a process that exits with
// a session connected prints "Waiting for the debugger to disconnect..." and waits for it.
// Loaded synchronously (on a Node built without the inspector it throws, and the watchdog runs on
// without stacks). A top-level await would make this module evaluate asynchronously, and a worker
// terminated during that can abort the whole process on a V8 check in async module evaluation
// (seen once in this project's test runs): a service that stops right after it started
// terminates this thread while it may still be loading.
let SessionClass: (new () => Session) | undefined;
if (data.captureStacks) {
  try {
    const inspector = process.getBuiltinModule('node:inspector');
    const probe = new inspector.Session();
    probe.connectToMainThread();
    probe.disconnect();
    SessionClass = inspector.Session;
  } catch (err) {
    send({ kind: 'warning', message: `stack capture unavailable: ${messageOf(err)}` });
  }
}

// Debugger.enable reports every loaded script; call frames name scripts only by id.
const scriptUrls = new Map<string, string>();

function post<T>(session: Session, method: string, params: object = {}): Promise<T> {
  return new Promise((resolve, reject) => {
    // The untyped overload: the methods used here are few and their results are read field by field.
    (session.post as (m: string, p: object, cb: (err: Error | null, result: T) => void) => void)(
      method,
      params,
      (err, result) => (err ? reject(err) : resolve(result)),
    );
  });
}

function withTimeout<T>(promise: Promise<T>, ms: number): Promise<T> {
  let timer: NodeJS.Timeout | undefined;
  return Promise.race([
    promise,
    new Promise<never>((_, reject) => {
      timer = setTimeout(() => reject(new Error('timed out')), ms);
    }),
  ]).finally(() => clearTimeout(timer));
}

// Call frames of Node's own modules carry no url; their script's does.
const urlOf = (frame: CallFrame): string => frame.url || scriptUrls.get(frame.location.scriptId) || '';

/**
 * The expression must run in a frame of application code: a frame inside Node's own modules (the
 * loop may be paused in the lazy getter of performance, say) runs without the ordinary globals, so
 * evaluating there throws a ReferenceError. Frames are tried application code first, at most 4,
 * within 2 s in all (the main thread stays paused meanwhile).
 */
async function readInFlight(
  session: Session,
  callFrames: readonly CallFrame[],
): Promise<InFlightRequest[] | undefined> {
  const until = performance.now() + 2000;
  const isInternal = (f: CallFrame): boolean => urlOf(f).startsWith('node:');
  const ordered = [...callFrames.filter((f) => !isInternal(f)), ...callFrames.filter(isInternal)].slice(0, 4);
  for (const frame of ordered) {
    try {
      const r = await withTimeout(
        post<{ result?: { value?: unknown } }>(session, 'Debugger.evaluateOnCallFrame', {
          callFrameId: frame.callFrameId,
          expression: data.snapshotExpression,
          returnByValue: true,
          silent: true,
        }),
        Math.max(1, until - performance.now()),
      );
      if (typeof r.result?.value === 'string') return JSON.parse(r.result.value) as InFlightRequest[];
    } catch {
      // Try the next frame.
    }
  }
  return undefined;
}

// One capture at a time: overlapping enable/pause/disable sequences would undo each other.
let capturing = false;

async function capture(Inspector: new () => Session, beatAtDetection: number): Promise<Capture> {
  const none = { frames: undefined, inFlight: undefined, pausedAfterMs: undefined };
  if (capturing) return { ...none, note: 'a previous capture was still running' };
  capturing = true;
  let session: Session;
  try {
    session = new Inspector();
    session.connectToMainThread();
    session.on('Debugger.scriptParsed', (m) => scriptUrls.set(m.params.scriptId, m.params.url));
  } catch (err) {
    capturing = false;
    return { ...none, note: `stack capture failed: ${messageOf(err)}` };
  }
  const paused = new Promise<{ callFrames: CallFrame[] }>((resolve) =>
    session.once('Debugger.paused', (m) => resolve(m.params as unknown as { callFrames: CallFrame[] })),
  );
  let resumed = false;
  try {
    await withTimeout(post(session, 'Debugger.enable'), 2000);
    await withTimeout(post(session, 'Debugger.pause'), 2000);
    const params = await withTimeout(paused, 2000);
    const pausedAfterMs = beatAgeMs(beatAtDetection, mainNow());
    if (Atomics.load(lastBeat, 0) !== beatAtDetection) {
      await post(session, 'Debugger.resume');
      resumed = true;
      return { ...none, pausedAfterMs, note: 'the loop resumed before it could be paused' };
    }
    const frames = params.callFrames.slice(0, 40).map((f) => ({
      functionName: f.functionName || '(anonymous)',
      url: urlOf(f),
      line: f.location.lineNumber + 1,
      column: f.location.columnNumber + 1,
    }));
    const inFlight = await readInFlight(session, params.callFrames);
    await post(session, 'Debugger.resume');
    resumed = true;
    return { frames, inFlight, pausedAfterMs, note: undefined };
  } catch (err) {
    return { ...none, note: `stack capture failed: ${messageOf(err)}` };
  } finally {
    if (!resumed) post(session, 'Debugger.resume').catch(() => {});
    post(session, 'Debugger.disable')
      .catch(() => {})
      .finally(() => {
        try {
          session.disconnect();
        } catch {
          // Already disconnected.
        }
        scriptUrls.clear();
        capturing = false;
      });
  }
}

function startCapture(beat: number): Promise<Capture> {
  if (SessionClass === undefined) {
    const note = data.captureStacks ? 'inspector unavailable' : 'stack capture disabled';
    return Promise.resolve({ frames: undefined, inFlight: undefined, pausedAfterMs: undefined, note });
  }
  return capture(SessionClass, beat);
}

let last = Atomics.load(lastBeat, 0);
let stall: Stall | undefined;

function poll(): void {
  const now = mainNow();
  const beat = Atomics.load(lastBeat, 0);
  if (beat !== last) {
    if (stall !== undefined) {
      const s = stall;
      stall = undefined;
      // From the last beat before the stall to the first after it: an upper bound of the stall.
      const durationMs = beatAgeMs(s.startedAt, beat);
      void s.captured.then((c) =>
        send({
          kind: 'stall',
          startedAtEpochMs: s.startedAtEpoch,
          durationMs,
          frames: c.frames,
          inFlight: c.inFlight,
          pausedAfterMs: c.pausedAfterMs,
          note: c.note,
        }),
      );
    }
    last = beat;
  }
  const blockedMs = beatAgeMs(beat, now);
  if (stall === undefined && blockedMs > data.thresholdMs) {
    stall = {
      startedAt: beat,
      startedAtEpoch: Date.now() - blockedMs,
      captured: startCapture(beat),
      longLogged: false,
    };
  }
  if (stall !== undefined && !stall.longLogged && blockedMs > data.longStallLogMs) {
    // The main thread cannot log while it is blocked; write straight to stderr so a loop that never
    // ends is still visible.
    const s = stall;
    s.longLogged = true;
    void s.captured.then((c) => {
      const line = JSON.stringify({
        level: 50,
        time: Date.now(),
        event: 'event_loop_blocked',
        blockedMs: beatAgeMs(s.startedAt, mainNow()),
        stack: c.frames,
        inFlight: c.inFlight,
        msg: 'event loop blocked and not recovering',
      });
      try {
        writeSync(2, `${line}\n`);
      } catch {
        // stderr closed: nothing left to tell.
      }
    });
  }
  setTimeout(poll, nextPollInMs(blockedMs));
}

/**
 * While no stall is seen, sleep until the beat read now would be `thresholdMs` old: a stall is
 * caught as soon as it passes the threshold, and with beats on time the thread wakes about once
 * per threshold less one beat, not on a fixed period. During a stall, read often so its end (the
 * next beat) is reported soon after the loop runs again.
 */
function nextPollInMs(blockedMs: number): number {
  if (stall !== undefined) return data.stallPollMs;
  return Math.max(1, Math.ceil(data.thresholdMs - blockedMs) + 1);
}

poll();
send({ kind: 'ready' });
