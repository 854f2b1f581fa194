// Probe client of the storm suite (plain JS: it starts fast, without a loader). Every EVERY_MS, a
// GET /healthz on a new connection to each target URL, for DURATION_MS after it reads "go" on
// stdin; each probe is bounded to PROBE_BOUND_MS. Prints "ready" at start and one JSON line at the
// end: per probe its target, send time relative to "go", connect and total times (ms), status,
// the client's port (for the server's trace) and the epoch times of send, connect and end.
import { request } from 'node:http';
import { createInterface } from 'node:readline';

const [durationArg = '10000', everyArg = '250', ...targets] = process.argv.slice(2);
const DURATION_MS = Number(durationArg);
const EVERY_MS = Number(everyArg);
const PROBE_BOUND_MS = 10_000;
for (const t of targets) {
  if (!t.startsWith('http://127.0.0.1:')) throw new RangeError(`probe target must be on 127.0.0.1, received ${t}`);
}
const epoch = () => performance.timeOrigin + performance.now();

function probe(target, goAt) {
  const sentAt = epoch();
  return new Promise((resolve) => {
    const result = {
      target,
      atMs: sentAt - goAt,
      sentAt,
      connectMs: -1,
      totalMs: -1,
      status: 0,
      port: 0,
      connectedAt: 0,
      endAt: 0,
    };
    const req = request(target, { agent: false, signal: AbortSignal.timeout(PROBE_BOUND_MS) }, (res) => {
      res.resume();
      res.on('end', () => {
        result.endAt = epoch();
        result.totalMs = result.endAt - sentAt;
        result.status = res.statusCode ?? 0;
        resolve(result);
      });
    });
    req.on('socket', (socket) => {
      socket.once('connect', () => {
        result.connectedAt = epoch();
        result.connectMs = result.connectedAt - sentAt;
        result.port = socket.localPort ?? 0;
      });
    });
    req.on('error', () => {
      result.status = -1;
      result.totalMs = epoch() - sentAt;
      resolve(result);
    });
    req.end();
  });
}

process.stdout.write('ready\n');
const lines = createInterface({ input: process.stdin });
for await (const line of lines) if (line === 'go') break;
const goAt = epoch();
const pending = [];
await new Promise((resolve) => {
  const tick = () => {
    for (const t of targets) pending.push(probe(t, goAt));
    if (epoch() - goAt + EVERY_MS > DURATION_MS) resolve();
    else setTimeout(tick, EVERY_MS);
  };
  tick();
});
process.stdout.write(`${JSON.stringify(await Promise.all(pending))}\n`);
process.exit(0);
