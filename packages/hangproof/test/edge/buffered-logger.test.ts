import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { mkdtemp, readFile, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, test } from 'node:test';
import { setTimeout as sleep } from 'node:timers/promises';
import { bufferedLogger } from 'hangproof/fastify';
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
  await sleep(50);
  assert.equal((await lines(file)).length, 0, 'small lines wait in the buffer');
  await waitUntil('the periodic flush to write the lines', async () => (await lines(file)).length === 3, 5_000);
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
