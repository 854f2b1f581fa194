import { pathToFileURL } from 'node:url';
import { Worker } from 'node:worker_threads';
import type { RequestContext } from '../core/index.js';
import { toOriginalFrames } from './original-frames.js';
import {
  clockOriginMs,
  toBeat,
  type WatchdogData,
  type WatchdogMessage,
  type WatchdogStallMessage,
} from './stall-watchdog-protocol.js';

/** One frame of the code that blocked the loop. `line` and `column` are 1-based. */
export interface StallFrame {
  readonly functionName: string;
  readonly url: string;
  readonly line: number;
  readonly column: number;
}

/** A request (or job) that was in flight during a stall. */
export interface InFlightRequest {
  readonly requestId: string;
  readonly name: string;
  readonly kind: string;
  readonly elapsedMs: number;
  readonly stepInFlight: string | undefined;
  readonly stepsInFlight: readonly string[];
  readonly lastCompletedStep: string | undefined;
}

/** What the watchdog learnt about one stall of the event loop. */
export interface StallReport {
  readonly at: string;
  readonly durationMs: number;
  /** Innermost frame first; undefined when it could not be captured (see `stackNote`). */
  readonly stack: readonly StallFrame[] | undefined;
  readonly stackNote: string | undefined;
  /**
   * ms from the last heartbeat before the stall to the moment the stack was taken. Enabling the
   * debugger takes tens of ms (hundreds on a starved CPU); when this is close to `durationMs` the
   * stack may show the code that ran just after the blocking call, still inside the same stall.
   */
  readonly stackAfterMs: number | undefined;
  readonly inFlight: readonly InFlightRequest[];
  /**
   * True when `inFlight` was taken while the loop was blocked (from the paused main thread); false
   * when it was rebuilt after the stall from the requests still in flight and the last 256 ended.
   */
  readonly inFlightDuringStall: boolean;
}

export interface StallWatchdogOptions {
  readonly thresholdMs: number;
  readonly captureStacks: boolean;
}

/** A request that has ended, as observe remembers it: primitives, never the context. */
export interface EndedRequest {
  readonly requestId: string;
  readonly name: string;
  readonly kind: 'request' | 'job';
  /** performance.now() at its start. */
  readonly startedAt: number;
  readonly durationMs: number;
  readonly stepInFlight: string | undefined;
  readonly lastCompletedStep: string | undefined;
}

/** Where the watchdog finds the requests of one app. */
export interface ContextSource {
  /** The requests in flight now. */
  inFlight(): Iterable<RequestContext>;
  /** Requests that ended at or after `perfNow` (performance.now() time). */
  endedSince(perfNow: number): Iterable<EndedRequest>;
}
type StallListener = (report: StallReport) => void;

const MAX_IN_FLIGHT_LISTED = 50;
/** Rough time from the loop resuming to the watchdog's message being handled, in ms. */
const MESSAGE_LATENCY_MS = 5;
/** A stall longer than this is also written straight to stderr by the watchdog thread. */
const LONG_STALL_LOG_MS = 10_000;
const kSnapshot = Symbol.for('hangproof.observe.stall-snapshot');
const SNAPSHOT_EXPRESSION = "globalThis[Symbol.for('hangproof.observe.stall-snapshot')]()";

const sources = new Set<ContextSource>();
const listeners = new Set<StallListener>();
interface Running {
  readonly worker: Worker;
  /** The shared beat (see stall-watchdog-protocol.ts). */
  readonly lastBeat: Int32Array;
  /** Beats while nothing else shows the loop running. */
  readonly beatTimer: NodeJS.Timeout;
  /** How long `loopRan` lets pass between two pushes of the beat timer, in ms. */
  readonly pushEveryMs: number;
  /** performance.now() when `loopRan` last pushed the beat timer back. */
  pushedAt: number;
  /** Shortest request a reported stall can have held up, in ms (see mayBeHeldUpByStall). */
  readonly heldUpFromMs: number;
}
let running: Running | undefined;

/**
 * Tells the watchdog the main loop ran at `perfNow` (a performance.now() the caller has read),
 * as observe does at every request's end: a beat that costs no wake-up. While such beats come
 * the beat timer is pushed back (`refresh`) and never fires, so a busy service pays no timer for
 * them; an idle one beats on the timer.
 */
export function loopRan(perfNow: number): void {
  const r = running;
  if (r === undefined) return;
  Atomics.store(r.lastBeat, 0, toBeat(perfNow));
  if (perfNow - r.pushedAt >= r.pushEveryMs) {
    r.pushedAt = perfNow;
    r.beatTimer.refresh();
  }
}

/**
 * True when a request that lasted `durationMs` may have been held up by a stall the watchdog
 * reports, so a report rebuilt after the stall (see inFlightAt) must be able to list it. Such a
 * request lasted at least the stall. The thread reports a loop whose last beat is a threshold old,
 * and that beat may be a beat period (a quarter threshold, 10 ms at least) older than the block's
 * start: every reported block lasted half the threshold or more. A quarter threshold leaves room.
 */
export function mayBeHeldUpByStall(durationMs: number): boolean {
  return running !== undefined && durationMs >= running.heldUpFromMs;
}

/** The requests in flight now, longest-running first, at most 50. */
export function inFlightSnapshot(): InFlightRequest[] {
  return describe(function* () {
    for (const source of sources) yield* source.inFlight();
  });
}

/**
 * The requests in flight during a stall from `startedAtPerf` to `endedAtPerf` (performance.now()
 * times): those in flight now or ended since it began, that had started before it ended. Nothing
 * can start while the loop is blocked, so this also keeps the request that started just before
 * blocking it. Used when the paused thread could not be asked.
 */
function inFlightAt(startedAtPerf: number, endedAtPerf: number): InFlightRequest[] {
  const out = describe(function* () {
    for (const source of sources) for (const ctx of source.inFlight()) if (ctx.startedAt <= endedAtPerf) yield ctx;
  });
  const listed = new Set(out.map((r) => r.requestId));
  for (const source of sources) {
    for (const e of source.endedSince(startedAtPerf)) {
      if (e.startedAt > endedAtPerf || listed.has(e.requestId)) continue;
      listed.add(e.requestId);
      out.push({
        requestId: e.requestId,
        name: e.name,
        kind: e.kind,
        elapsedMs: Math.round(e.durationMs),
        stepInFlight: e.stepInFlight,
        stepsInFlight: e.stepInFlight === undefined ? [] : [e.stepInFlight],
        lastCompletedStep: e.lastCompletedStep,
      });
    }
  }
  return out.sort((a, b) => b.elapsedMs - a.elapsedMs).slice(0, MAX_IN_FLIGHT_LISTED);
}

function describe(contexts: () => Iterable<RequestContext>): InFlightRequest[] {
  const out: InFlightRequest[] = [];
  for (const ctx of contexts()) {
    out.push({
      requestId: ctx.requestId,
      name: ctx.name,
      kind: ctx.kind,
      elapsedMs: Math.round(ctx.elapsedMs()),
      stepInFlight: ctx.stepInFlight,
      stepsInFlight: [...ctx.stepsInFlight],
      lastCompletedStep: ctx.lastCompletedStep,
    });
  }
  return out.sort((a, b) => b.elapsedMs - a.elapsedMs).slice(0, MAX_IN_FLIGHT_LISTED);
}

const cwdPrefix = `${pathToFileURL(process.cwd()).href}/`;

function shorten(url: string): string {
  return url.startsWith(cwdPrefix) ? url.slice(cwdPrefix.length) : url;
}

/**
 * Starts the watchdog thread from its own module. Compiled, that is the .js beside this file, run
 * with none of the main process's flags. Run from source (tests: `--conditions=source --import
 * tsx`) this file is .ts and so is the thread's: a one-line bootstrap loads it through tsx, which
 * the main thread already uses (a worker does not inherit the parent's loader). It starts a little
 * slower there, never in a built service.
 */
function startThread(workerData: WatchdogData): Worker {
  const ownUrl = import.meta.url;
  if (!ownUrl.endsWith('.ts')) {
    return new Worker(new URL('./stall-watchdog-thread.js', ownUrl), { execArgv: [], workerData });
  }
  const thread = new URL('./stall-watchdog-thread.ts', ownUrl).href;
  const tsx = import.meta.resolve('tsx/esm/api');
  const boot = `import(${JSON.stringify(tsx)}).then((tsx) => tsx.tsImport(${JSON.stringify(thread)}, ${JSON.stringify(thread)}))`;
  return new Worker(boot, { eval: true, execArgv: [], workerData });
}

let ready: { promise: Promise<void>; resolve: () => void } | undefined;

/**
 * Resolves once the running watchdog thread polls (stalls from then on are seen); at once when no
 * watchdog runs. Tests wait on it instead of guessing how long a thread takes to start.
 */
export function stallWatchdogReady(): Promise<void> {
  return ready?.promise ?? Promise.resolve();
}

function onWorkerMessage(message: WatchdogMessage): void {
  if (message.kind === 'ready') ready?.resolve();
  if (message.kind !== 'stall') return;
  onStall(message);
}

function onStall(message: WatchdogStallMessage): void {
  // The message arrives right after the loop resumed: the stall ended a moment ago.
  const endedAtPerf = performance.now() - MESSAGE_LATENCY_MS;
  const startedAtPerf = endedAtPerf - message.durationMs;
  const report: StallReport = {
    at: new Date(message.startedAtEpochMs).toISOString(),
    durationMs: Math.round(message.durationMs),
    stack: undefined,
    stackNote: message.note,
    stackAfterMs: message.pausedAfterMs,
    inFlight: message.inFlight ?? inFlightAt(startedAtPerf, endedAtPerf),
    inFlightDuringStall: message.inFlight !== undefined,
  };
  const frames = message.frames;
  if (frames === undefined) {
    emit(report);
    return;
  }
  // Frames name the code V8 ran; source maps (read once per file) name the code as written.
  toOriginalFrames(frames).then(
    (original) => emit({ ...report, stack: original.map(shortened) }),
    () => emit({ ...report, stack: frames.map(shortened) }),
  );
}

const shortened = (f: StallFrame): StallFrame => ({ ...f, url: shorten(f.url) });

function emit(report: StallReport): void {
  for (const listener of listeners) listener(report);
}

/**
 * Watches the event loop from a worker thread (one per process, shared by every app that asks)
 * and calls `listener` after each stall longer than the threshold with the blocking stack and the
 * requests in flight. `contexts` lists this app's in-flight requests. The first caller's options
 * apply to the process. Returns a function that stops listening (the thread stops with the last).
 */
export function watchStalls(
  options: StallWatchdogOptions,
  contexts: ContextSource,
  listener: StallListener,
): () => void {
  sources.add(contexts);
  listeners.add(listener);
  if (running === undefined) start(options);
  return () => {
    sources.delete(contexts);
    listeners.delete(listener);
    if (listeners.size === 0) stop();
  };
}

function start(options: StallWatchdogOptions): void {
  (globalThis as Record<symbol, unknown>)[kSnapshot] = () => JSON.stringify(inFlightSnapshot());
  const buffer = new SharedArrayBuffer(4);
  const lastBeat = new Int32Array(buffer);
  // Each beat stores its time, so the thread knows when the loop last ran however seldom it looks.
  // The thread looks when the last beat it saw turns `thresholdMs` old, so a stall is caught at
  // the threshold. Every request's end is a beat (`loopRan`); with none, the timer beats 4 times
  // per threshold, so a stall's start is known within a quarter of it and the thread sleeps 0.75
  // to 1 threshold between looks. Every wake-up has a price on a virtual machine (about 0.1 ms of
  // CPU here), so neither side wakes more than that.
  const beatMs = Math.max(10, Math.floor(options.thresholdMs / 4));
  const beat = (): void => {
    Atomics.store(lastBeat, 0, toBeat(performance.now()));
  };
  beat();
  const beatTimer = setInterval(beat, beatMs);
  beatTimer.unref();
  const workerData: WatchdogData = {
    buffer,
    mainClockOriginMs: clockOriginMs(),
    thresholdMs: options.thresholdMs,
    stallPollMs: Math.max(5, Math.floor(options.thresholdMs / 8)),
    captureStacks: options.captureStacks,
    snapshotExpression: SNAPSHOT_EXPRESSION,
    longStallLogMs: Math.max(LONG_STALL_LOG_MS, options.thresholdMs * 10),
  };
  let resolveReady = (): void => {};
  const promise = new Promise<void>((resolve) => {
    resolveReady = resolve;
  });
  ready = { promise, resolve: resolveReady };
  const worker = startThread(workerData);
  worker.unref();
  worker.on('message', onWorkerMessage);
  worker.on('error', () => {
    // The watchdog is an aid: losing it must never take the service down.
    resolveReady();
  });
  running = {
    worker,
    lastBeat,
    beatTimer,
    pushEveryMs: beatMs / 2,
    pushedAt: performance.now(),
    heldUpFromMs: options.thresholdMs / 4,
  };
}

function stop(): void {
  if (running === undefined) return;
  clearInterval(running.beatTimer);
  void running.worker.terminate();
  running = undefined;
  ready?.resolve();
  ready = undefined;
  delete (globalThis as Record<symbol, unknown>)[kSnapshot];
}
