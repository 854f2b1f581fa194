/**
 * Source of the watchdog thread, run with `new Worker(source, { eval: true })` so it needs no file
 * of its own next to the compiled output (and no TypeScript loader in the thread).
 *
 * The main thread increments a shared counter every `beatMs`. The watchdog polls it; when it has
 * not moved for `thresholdMs` the main loop is blocked. To name the blocking code, the watchdog
 * uses `inspector.Session#connectToMainThread()`: inspector messages reach a busy main thread
 * through V8's interrupt mechanism (that is how a debugger pauses a runaway loop), so
 * `Debugger.pause` stops the main thread at its next JavaScript statement and `Debugger.paused`
 * carries the call frames. While paused, one expression runs on the main thread to list the
 * requests in flight, then the thread is resumed at once. No network port is opened.
 *
 * Limits: code blocked inside one native call (a sync crypto or fs call) is only interrupted when
 * it returns to JavaScript; if the loop has resumed by then, the stack is discarded rather than
 * reported against the wrong code.
 */
export const WATCHDOG_SOURCE = String.raw`
'use strict';
const { workerData, parentPort } = require('node:worker_threads');
const { writeSync } = require('node:fs');
const beats = new Int32Array(workerData.buffer);
const { thresholdMs, pollMs, captureStacks, snapshotExpression, longStallLogMs } = workerData;
// A session to the main thread is connected only while a capture runs: a process that exits with
// a session connected prints "Waiting for the debugger to disconnect..." and waits for it.
let inspector;
let session;
if (captureStacks) {
  try {
    inspector = require('node:inspector');
    const probe = new inspector.Session();
    probe.connectToMainThread();
    probe.disconnect();
  } catch (err) {
    inspector = undefined;
    parentPort.postMessage({ kind: 'warning', message: 'stack capture unavailable: ' + (err && err.message) });
  }
}

// Debugger.enable reports every loaded script; call frames name scripts only by id.
const scriptUrls = new Map();

function openSession() {
  session = new inspector.Session();
  session.connectToMainThread();
  session.on('Debugger.scriptParsed', (m) => scriptUrls.set(m.params.scriptId, m.params.url));
}

function post(method, params) {
  return new Promise((resolve, reject) => {
    session.post(method, params || {}, (err, result) => (err ? reject(err) : resolve(result)));
  });
}

function withTimeout(promise, ms) {
  let timer;
  return Promise.race([
    promise,
    new Promise((_, reject) => { timer = setTimeout(() => reject(new Error('timed out')), ms); }),
  ]).finally(() => clearTimeout(timer));
}

// Call frames of Node's own modules carry no url; their script's does.
const urlOf = (frame) => frame.url || scriptUrls.get(frame.location.scriptId) || '';

// The expression must run in a frame of application code: a frame inside Node's own modules (the
// loop may be paused in the lazy getter of performance, say) runs without the ordinary globals, so
// evaluating there throws a ReferenceError. Frames are tried application code first, at most 4,
// within 2 s in all (the main thread stays paused meanwhile).
async function readInFlight(callFrames) {
  const until = performance.now() + 2000;
  const isInternal = (f) => urlOf(f).startsWith('node:');
  const ordered = callFrames.filter((f) => !isInternal(f)).concat(callFrames.filter(isInternal)).slice(0, 4);
  for (const frame of ordered) {
    try {
      const r = await withTimeout(post('Debugger.evaluateOnCallFrame', {
        callFrameId: frame.callFrameId,
        expression: snapshotExpression,
        returnByValue: true,
        silent: true,
      }), Math.max(1, until - performance.now()));
      if (r && r.result && typeof r.result.value === 'string') return JSON.parse(r.result.value);
    } catch {}
  }
  return undefined;
}

// One capture at a time: overlapping enable/pause/disable sequences would undo each other.
let capturing = false;

async function capture(beatAtDetection, stallStartedAt) {
  if (capturing) return { frames: undefined, inFlight: undefined, pausedAfterMs: undefined, note: 'a previous capture was still running' };
  capturing = true;
  try {
    openSession();
  } catch (err) {
    capturing = false;
    return { frames: undefined, inFlight: undefined, pausedAfterMs: undefined, note: 'stack capture failed: ' + (err && err.message) };
  }
  const paused = new Promise((resolve) => session.once('Debugger.paused', (m) => resolve(m.params)));
  let resumed = false;
  try {
    await withTimeout(post('Debugger.enable'), 2000);
    await withTimeout(post('Debugger.pause'), 2000);
    const params = await withTimeout(paused, 2000);
    const pausedAfterMs = Math.round(performance.now() - stallStartedAt);
    if (Atomics.load(beats, 0) !== beatAtDetection) {
      await post('Debugger.resume');
      resumed = true;
      return { frames: undefined, inFlight: undefined, pausedAfterMs, note: 'the loop resumed before it could be paused' };
    }
    const frames = params.callFrames.slice(0, 40).map((f) => ({
      functionName: f.functionName || '(anonymous)',
      url: urlOf(f),
      line: f.location.lineNumber + 1,
      column: f.location.columnNumber + 1,
    }));
    const inFlight = await readInFlight(params.callFrames);
    await post('Debugger.resume');
    resumed = true;
    return { frames, inFlight, pausedAfterMs, note: undefined };
  } catch (err) {
    return { frames: undefined, inFlight: undefined, note: 'stack capture failed: ' + (err && err.message) };
  } finally {
    if (!resumed) post('Debugger.resume').catch(() => {});
    const current = session;
    post('Debugger.disable').catch(() => {}).finally(() => {
      try { current.disconnect(); } catch {}
      scriptUrls.clear();
      capturing = false;
    });
  }
}

let last = Atomics.load(beats, 0);
let lastChangeAt = performance.now();
let stall; // { startedAt, startedAtEpoch, captured: Promise, longLogged }

setInterval(() => {
  const now = performance.now();
  const beat = Atomics.load(beats, 0);
  if (beat !== last) {
    last = beat;
    if (stall !== undefined) {
      const s = stall;
      stall = undefined;
      const durationMs = now - s.startedAt;
      s.captured.then((c) => parentPort.postMessage({
        kind: 'stall',
        startedAtEpochMs: s.startedAtEpoch,
        durationMs,
        frames: c.frames,
        inFlight: c.inFlight,
        pausedAfterMs: c.pausedAfterMs,
        note: c.note,
      }));
    }
    lastChangeAt = now;
    return;
  }
  const blockedMs = now - lastChangeAt;
  if (stall === undefined && blockedMs > thresholdMs) {
    stall = {
      startedAt: lastChangeAt,
      startedAtEpoch: Date.now() - blockedMs,
      captured: inspector === undefined
        ? Promise.resolve({ frames: undefined, inFlight: undefined, note: captureStacks ? 'inspector unavailable' : 'stack capture disabled' })
        : capture(beat, lastChangeAt),
      longLogged: false,
    };
  }
  if (stall !== undefined && !stall.longLogged && blockedMs > longStallLogMs) {
    // The main thread cannot log while it is blocked; write straight to stderr so a loop that never
    // ends is still visible.
    const s = stall;
    s.longLogged = true;
    s.captured.then((c) => {
      const line = JSON.stringify({
        level: 50, time: Date.now(), event: 'event_loop_blocked', blockedMs: Math.round(performance.now() - s.startedAt),
        stack: c.frames, inFlight: c.inFlight, msg: 'event loop blocked and not recovering',
      });
      try { writeSync(2, line + '\n'); } catch {}
    });
  }
}, pollMs);
`;
