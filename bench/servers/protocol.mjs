// Server side of the benchmark protocol (plain JS so servers run without a TypeScript loader,
// against the built library, exactly as a user's service would).

import { createHash } from 'node:crypto';

const noop = () => {};

/**
 * What one `process.nextTick` costs in this process now, in ns: the least over 20 batches of 200.
 * A request runs about ten ticks, and the same Node build has been measured at 30-40 ns per tick in
 * one process and 300-550 ns in another (docs/benchmarks.md, db): a run reports which it had. The
 * ticks queued here run after the answer is sent, outside any measured span.
 */
function nextTickNanos() {
  let least = Number.POSITIVE_INFINITY;
  for (let batch = 0; batch < 20; batch++) {
    const started = process.hrtime.bigint();
    for (let i = 0; i < 200; i++) process.nextTick(noop);
    least = Math.min(least, Number(process.hrtime.bigint() - started) / 200);
  }
  return least;
}

/** What one core-speed batch hashes: about 0.15 ms of SHA-256 on the machines measured so far. */
const CORE_SPEED_BLOCK = Buffer.alloc(256 * 1024, 7);

/**
 * How fast this process's core runs now: ns to hash a fixed block, the least over 20 batches.
 * On a shared VM a core can run 20 to 40% slower for tens of seconds at a time (another tenant on
 * the same physical core), and CPU time per request grows with it; the suites read this before
 * and after each measurement and measure again the runs made on a slowed core (bench/lib/rounds.ts).
 * Native code (OpenSSL), so the reading does not depend on how V8 compiled it in this process: a
 * JavaScript loop read 36% slower in every Node 22 and 24 server than in most Node 20 ones.
 * Taken with no request in flight, outside any measured span.
 */
export function coreSpeedNanos() {
  let least = Number.POSITIVE_INFINITY;
  for (let batch = 0; batch < 20; batch++) {
    const started = process.hrtime.bigint();
    createHash('sha256').update(CORE_SPEED_BLOCK).digest();
    least = Math.min(least, Number(process.hrtime.bigint() - started));
  }
  return least;
}

/** Call once the server listens: reports readiness and answers CPU measurement requests. */
export function serveBenchProtocol(url) {
  let start = process.cpuUsage();
  process.on('message', (m) => {
    if (m.cmd === 'cpu-start') {
      start = process.cpuUsage();
      process.send?.({ type: 'cpu-started' });
    } else if (m.cmd === 'cpu-stop') {
      const d = process.cpuUsage(start);
      process.send?.({ type: 'cpu', cpuMicros: d.user + d.system });
    } else if (m.cmd === 'next-tick') {
      process.send?.({ type: 'next-tick', nanos: nextTickNanos() });
    } else if (m.cmd === 'core-speed') {
      process.send?.({ type: 'core-speed', nanos: coreSpeedNanos() });
    }
  });
  process.send?.({ type: 'ready', url });
}
