/**
 * A CommonJS service can `require()` every subpath: hangproof ships ES modules only, and Node
 * loads them from `require` without a flag since 20.19 (the `engines` floor). Run against the
 * built package as a consumer would load it (no source condition).
 */
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { mkdtemp, rm, symlink, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { test } from 'node:test';
import { fileURLToPath } from 'node:url';
import { promisify } from 'node:util';

const SUBPATHS = [
  'hangproof',
  'hangproof/fastify',
  'hangproof/http',
  'hangproof/express',
  'hangproof/hono',
  'hangproof/pg',
  'hangproof/deps',
  'hangproof/observe',
  'hangproof/diagnosis',
  'hangproof/testing',
];
const nodeModules = fileURLToPath(new URL('../../../../node_modules', import.meta.url));

test('every subpath loads with require() from a CommonJS module', async (t) => {
  const dir = await mkdtemp(join(tmpdir(), 'hangproof-cjs-'));
  t.after(() => rm(dir, { recursive: true, force: true }));
  await writeFile(join(dir, 'package.json'), JSON.stringify({ type: 'commonjs' }));
  await symlink(nodeModules, join(dir, 'node_modules'), 'dir');
  await writeFile(
    join(dir, 'consumer.cjs'),
    `const out = {};
     for (const m of ${JSON.stringify(SUBPATHS)}) out[m] = Object.keys(require(m)).length;
     process.stdout.write(JSON.stringify(out));`,
  );
  const { stdout } = await promisify(execFile)(process.execPath, ['--no-warnings', 'consumer.cjs'], {
    cwd: dir,
    timeout: 30_000,
  });
  const counts = JSON.parse(stdout) as Record<string, number>;
  for (const m of SUBPATHS) assert.ok((counts[m] ?? 0) > 0, `${m} exports something to require()`);
});
