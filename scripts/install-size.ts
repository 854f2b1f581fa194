/**
 * `npm run install-size`: what a service really gets from `npm install hangproof`. Packs the
 * library (and the CLI) as npm would publish them, installs each tarball into an empty temporary
 * folder with the registry, and prints the installed size and the number of packages. Nothing of
 * this repository's node_modules is reused, so the numbers are those of a fresh install.
 */
import { execFile } from 'node:child_process';
import { mkdtemp, readdir, rm, stat, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';

const run = promisify(execFile);
const root = new URL('..', import.meta.url).pathname;
/** Every npm call is bounded: a registry that stops answering fails the script, it does not hang it. */
const NPM_TIMEOUT_MS = 300_000;

async function npm(args: readonly string[], cwd: string): Promise<string> {
  const { stdout } = await run('npm', [...args], { cwd, timeout: NPM_TIMEOUT_MS, maxBuffer: 64 * 1024 * 1024 });
  return stdout;
}

/** Bytes on disk of every file under `dir` (symlinks counted as links, not followed). */
async function sizeOf(dir: string): Promise<number> {
  let total = 0;
  for (const e of await readdir(dir, { withFileTypes: true })) {
    const full = join(dir, e.name);
    if (e.isDirectory()) total += await sizeOf(full);
    else if (e.isFile()) total += (await stat(full)).size;
  }
  return total;
}

/** Installed packages: every folder with a package.json under node_modules, nested ones included. */
async function countPackages(nodeModules: string): Promise<number> {
  let n = 0;
  for (const e of await readdir(nodeModules, { withFileTypes: true }).catch(() => [])) {
    if (!e.isDirectory() || e.name.startsWith('.')) continue;
    const dirs = e.name.startsWith('@')
      ? (await readdir(join(nodeModules, e.name), { withFileTypes: true }))
          .filter((s) => s.isDirectory())
          .map((s) => join(nodeModules, e.name, s.name))
      : [join(nodeModules, e.name)];
    for (const d of dirs) {
      n++;
      n += await countPackages(join(d, 'node_modules'));
    }
  }
  return n;
}

const mb = (bytes: number): string => `${(bytes / 1e6).toFixed(1)} MB`;

const work = await mkdtemp(join(tmpdir(), 'hangproof-install-size-'));
try {
  const tarballs: string[] = [];
  for (const workspace of ['packages/hangproof', 'packages/hangproof-cli']) {
    const [packed] = JSON.parse(await npm(['pack', '--json', '--pack-destination', work], join(root, workspace))) as {
      filename: string;
      size: number;
      entryCount: number;
    }[];
    if (packed === undefined) throw new Error(`npm pack printed nothing for ${workspace}`);
    console.log(`packed ${packed.filename}: ${mb(packed.size)} compressed, ${packed.entryCount} files`);
    tarballs.push(join(work, packed.filename));
  }
  const installs: [string, string[]][] = [
    ['hangproof (the library)', [tarballs[0] as string]],
    ['hangproof + hangproof-cli', tarballs],
  ];
  for (const [label, files] of installs) {
    const dir = await mkdtemp(join(work, 'app-'));
    await writeFile(join(dir, 'package.json'), '{ "private": true }\n');
    await npm(['install', '--no-fund', '--no-audit', '--no-package-lock', ...files], dir);
    const nm = join(dir, 'node_modules');
    console.log(`${label}: ${mb(await sizeOf(nm))} installed, ${await countPackages(nm)} packages`);
  }
} finally {
  await rm(work, { recursive: true, force: true });
}
