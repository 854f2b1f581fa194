import assert from 'node:assert/strict';
import { mkdtemp, readFile, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, test } from 'node:test';
import { RequestContext } from 'hangproof';
import { bufferedLogger } from 'hangproof/fastify';
import { pino } from 'pino';
import { RequestLog } from '../../src/core/request-log.ts';
import { waitUntil } from '../support/latch.ts';

const dir = await mkdtemp(join(tmpdir(), 'hp-bytes-'));
after(() => rm(dir, { recursive: true, force: true }));

interface Shape {
  readonly path: string;
  readonly requestId: string;
  readonly durationMs: number;
  readonly dbCount?: number;
  readonly dbMs?: number;
  readonly acquireMs?: number;
  readonly externalCount?: number;
  readonly externalMs?: number;
  readonly userId?: string;
  readonly route?: string;
}

function endedContext(s: Shape): RequestContext {
  const ctx = new RequestContext({
    requestId: s.requestId,
    budgetMs: 2_500,
    name: s.route ?? '/bots/:id',
    method: 'GET',
    path: s.path,
  });
  ctx.end();
  ctx.statusCode = 200;
  ctx.durationMs = s.durationMs;
  ctx.dbCount = s.dbCount ?? 0;
  ctx.dbMs = s.dbMs ?? 0;
  ctx.acquireMs = s.acquireMs ?? 0;
  ctx.externalCount = s.externalCount ?? 0;
  ctx.externalMs = s.externalMs ?? 0;
  ctx.userId = s.userId;
  return ctx;
}

const SHAPES: readonly Shape[] = [
  { path: '/bots/1', requestId: 'r-1', durationMs: 3.04 },
  { path: '/bots/ü"\\x', requestId: 'r-2', durationMs: 12.35, dbCount: 3, dbMs: 7.95, acquireMs: 0.04 },
  { path: '/a', requestId: 'r-3', durationMs: 0, externalCount: 2, externalMs: 1234.56, userId: 'u "1" ✓' },
  { path: '/tab\there', requestId: 'r-4', durationMs: 99999.99, route: '/zürich/:id' },
  { path: `/${'long'.repeat(300)}`, requestId: 'r-5', durationMs: 1.5 },
];

/** Lines as the string path writes them: pino's internals, concatenated and handed to a plain stream. */
function stringLines(bindings: Record<string, unknown>): string[] {
  const lines: string[] = [];
  const logger = pino({ level: 'info' }, { write: (line: string) => lines.push(line) }).child(bindings);
  const log = new RequestLog(logger, { slowWarnMs: 1e9, slowErrorMs: 1e9 });
  for (const s of SHAPES) log.write(endedContext(s), false);
  return lines;
}

/** Lines handed to the destination as strings, counted, so a test knows which path was taken. */
let stringWrites = 0;

async function byteLines(bindings: Record<string, unknown>, bufferBytes: number): Promise<string[]> {
  const file = join(dir, `bytes-${bufferBytes}-${Object.keys(bindings).length}.log`);
  const logger = bufferedLogger({ dest: file, bufferBytes, flushIntervalMs: 60_000 });
  const destination = (logger as unknown as Record<symbol, { write(line: string): boolean }>)[pino.symbols.streamSym];
  const write = destination?.write.bind(destination);
  if (destination !== undefined && write !== undefined)
    destination.write = (line: string) => {
      stringWrites++;
      return write(line);
    };
  const log = new RequestLog(logger.child(bindings), { slowWarnMs: 1e9, slowErrorMs: 1e9 });
  for (const s of SHAPES) log.write(endedContext(s), false);
  logger.flush();
  const read = async (): Promise<string[]> =>
    (await readFile(file, 'utf8').catch(() => '')).split(/(?<=\n)/).filter((l) => l !== '');
  await waitUntil('every line to reach the file', async () => (await read()).length >= SHAPES.length, 5_000);
  return read();
}

const withoutTime = (line: string): string => line.replace(/"time":\d+/, '"time":0');

for (const bufferBytes of [16_384, 256]) {
  test(`a request line written as bytes (batch of ${bufferBytes} B) is the string line, byte for byte`, async () => {
    stringWrites = 0;
    for (const bindings of [{}, { service: 'desk ü', n: 1 }]) {
      const expected = stringLines(bindings).map(withoutTime);
      const written = (await byteLines(bindings, bufferBytes)).map(withoutTime);
      assert.deepEqual(written, expected);
      for (const line of written) JSON.parse(line);
    }
    // A 16 KB batch takes every line in place; a 256 B one is too small for any, which go as strings.
    assert.equal(stringWrites, bufferBytes > 1024 ? 0 : 2 * SHAPES.length);
  });
}

test('a byte line carries the fields of the docs, with durations in tenths', async () => {
  const [, second] = await byteLines({}, 16_384);
  const line = JSON.parse(second as string) as Record<string, unknown>;
  assert.equal(line.path, '/bots/ü"\\x');
  assert.equal(line.duration_ms, 12.4);
  assert.equal(line.db_count, 3);
  assert.equal(line.db_ms, 8);
  assert.equal(line.acquire_ms, 0);
  assert.equal(line.deadline_ms, 2500);
  assert.ok(Math.abs((line.time as number) - Date.now()) < 60_000);
});
