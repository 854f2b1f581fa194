// Server side of the benchmark protocol (plain JS so servers run without a TypeScript loader,
// against the built library, exactly as a user's service would).

const noop = () => {};

/** The least time `work` took over `batches` runs, in ns: what a run takes when nothing interrupts it. */
function leastNanos(batches, work) {
  let least = Number.POSITIVE_INFINITY;
  for (let batch = 0; batch < batches; batch++) {
    const started = process.hrtime.bigint();
    work();
    least = Math.min(least, Number(process.hrtime.bigint() - started));
  }
  return least;
}

/**
 * What one `process.nextTick` costs in this process now, in ns: the least over 20 batches of 200.
 * A request runs about ten ticks, and the same Node build has been measured at 30-40 ns per tick in
 * one process and 300-550 ns in another (docs/benchmarks.md, db): a run reports which it had. The
 * ticks queued here run after the answer is sent, outside any measured span.
 */
function nextTickNanos() {
  return (
    leastNanos(20, () => {
      for (let i = 0; i < 200; i++) process.nextTick(noop);
    }) / 200
  );
}

/**
 * What one core-speed batch parses: 200 rows shaped like the db route's answer (about 60 µs of
 * JSON.parse on the machines measured so far), the same text in every process.
 */
const CORE_SPEED_DOCUMENT = JSON.stringify(
  Array.from({ length: 200 }, (_, i) => ({
    id: i,
    name: `bot-${i}`,
    stage: ['paper', 'live', 'paused', 'retired'][i % 4],
    updated_at: new Date(1_700_000_000_000 + i * 1000).toISOString(),
    paused: i % 3 === 0,
  })),
);
/** Parses before the measured ones (see coreSpeedNanos). */
const CORE_SPEED_WARMUP = 200;

/**
 * How fast this process's core runs now: ns to parse a fixed JSON document, the least over 40
 * batches. On a shared VM a core can run 10 to 40% slower for tens of seconds at a time (another
 * tenant on the same physical core), and CPU time per request grows with it; the suites read this
 * before and after each measurement and measure again the runs made on a slowed core
 * (bench/lib/rounds.ts). V8's own C++ parser, so the reading does not depend on how V8 compiled
 * anything in this process (a JavaScript loop read 36% slower in every Node 22 and 24 server than
 * in most Node 20 ones), and it touches memory and allocates as a request does: in a slow spell
 * of 25 s it read 11 to 25% slower, a JavaScript loop 9 to 14% and a SHA-256 hash 3 to 8%.
 * Taken with no request in flight, outside any measured span.
 */
export function coreSpeedNanos() {
  // Unmeasured first: the first parses of a fresh process run about twice as long (its young
  // generation still small), and the load core is read from a fresh process each time.
  for (let i = 0; i < CORE_SPEED_WARMUP; i++) JSON.parse(CORE_SPEED_DOCUMENT);
  return leastNanos(40, () => JSON.parse(CORE_SPEED_DOCUMENT));
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
