import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { mkdtemp, readFile, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, test } from 'node:test';
import { bufferedLogger } from 'hangproof/fastify';
import { pino } from 'pino';
import { waitUntil } from '../support/latch.ts';

const dir = await mkdtemp(join(tmpdir(), 'hp-log-'));
after(() => rm(dir, { recursive: true, force: true }));
const lines = async (file: string): Promise<string[]> =>
  (await readFile(file, 'utf8').catch(() => '')).split('\n').filter(Boolean);

test('lines are written in batches and reach the file within the flush interval', async () => {
  const file = join(dir, 'a.log');
  // An interval long enough that a loaded machine reads the file well before the first flush.
  const log = bufferedLogger({ dest: file, flushIntervalMs: 1_000 });
  for (let i = 0; i < 3; i++) log.info({ i }, 'small line');
  // The control: the same lines through pino's own asynchronous destination. Once they are in
  // their file, a logger that wrote each line at once would have written them too.
  const control = join(dir, 'a-control.log');
  const controlDestination = pino.destination({ dest: control, sync: false });
  const unbuffered = pino(controlDestination);
  for (let i = 0; i < 3; i++) unbuffered.info({ i }, 'small line');
  await waitUntil('the unbuffered lines to reach their file', async () => (await lines(control)).length === 3, 5_000);
  controlDestination.end();
  assert.equal((await lines(file)).length, 0, 'small lines wait in the buffer');
  await waitUntil('the periodic flush to write the lines', async () => (await lines(file)).length === 3, 5_000);
});

test('batch buffers taken back after their write leave every line whole and in order', async () => {
  const file = join(dir, 'reuse.log');
  // Small batches, so the same few buffers go round many times while earlier writes are pending.
  const log = bufferedLogger({ dest: file, bufferBytes: 1_024, flushIntervalMs: 20 });
  const count = 4_000;
  const pad = 'x'.repeat(64);
  for (let i = 0; i < count; i++) {
    log.info({ i, pad }, 'numbered line');
    // Lets the pending writes complete, so buffers come back and are filled again.
    if (i % 16 === 15) await new Promise((resolve) => setImmediate(resolve));
  }
  await waitUntil('every line to reach the file', async () => (await lines(file)).length >= count, 10_000);
  const written = (await lines(file)).map((line) => JSON.parse(line) as { i: number; pad: string });
  assert.equal(written.length, count);
  written.forEach((line, at) => {
    assert.equal(line.i, at, `line ${at} holds line ${line.i}`);
    assert.equal(line.pad, pad);
  });
});

test('a normal exit writes what is still buffered', () => {
  const file = join(dir, 'b.log');
  const script = `import { bufferedLogger } from 'hangproof/fastify';
    const log = bufferedLogger({ dest: ${JSON.stringify(file)}, flushIntervalMs: 60000 });
    log.info('last words'); process.exit(0);`;
  const r = spawnSync(
    process.execPath,
    ['--conditions=source', '--import', 'tsx', '--input-type=module', '-e', script],
    {
      timeout: 15_000,
    },
  );
  assert.equal(r.status, 0, String(r.stderr));
  return lines(file).then((l) => assert.equal(l.length, 1));
});

test('invalid options are refused with the value received', () => {
  assert.throws(() => bufferedLogger({ bufferBytes: -1 }), RangeError);
  assert.throws(() => bufferedLogger({ flushIntervalMs: 0 }), RangeError);
});
