import { spawn } from 'node:child_process';
import { createRequire } from 'node:module';
import { fileURLToPath } from 'node:url';
import { LOAD_CORE, pinned } from './server-process.ts';

export interface LoadOptions {
  readonly url: string;
  /** How long the run lasts; with `requests`, only the bound of how long it may take. */
  readonly durationSec: number;
  /**
   * End after this many responses instead of after `durationSec`: each connection stops once its
   * share is answered, so the run ends with no request in flight. A run cut at its duration
   * leaves requests whose client went away, which the server then cancels (hangproof also closes
   * their Postgres connections), and that aftermath would fall into the next run.
   */
  readonly requests?: number;
  /** Closed loop with this many connections, or open loop at `rate` requests per second. */
  readonly connections: number;
  readonly rate?: number;
  readonly headers?: Readonly<Record<string, string>>;
}

export interface LoadResult {
  readonly requests: number;
  readonly rps: number;
  readonly p50: number;
  readonly p90: number;
  readonly p97_5: number;
  readonly p99: number;
  readonly max: number;
  readonly non2xx: number;
  readonly errors: number;
}

const autocannonBin = createRequire(import.meta.url).resolve('autocannon/autocannon.js');

/** Runs autocannon in its own process on the load core and parses its JSON result. */
export async function runLoad(o: LoadOptions): Promise<LoadResult> {
  const args = [autocannonBin, '-j', '-c', String(o.connections)];
  if (o.requests === undefined) args.push('-d', String(o.durationSec));
  else args.push('-a', String(Math.max(o.connections, Math.round(o.requests))));
  if (o.rate !== undefined) args.push('-R', String(o.rate));
  for (const [k, v] of Object.entries(o.headers ?? {})) args.push('-H', `${k}=${v}`);
  args.push(o.url);
  const out = await pinnedStdout(args, (o.durationSec + 30) * 1000, (code) => code === 0, 'autocannon');
  const r = JSON.parse(out.trim().split('\n').at(-1) as string);
  return {
    requests: r.requests.total,
    rps: r.requests.average,
    p50: r.latency.p50,
    p90: r.latency.p90,
    p97_5: r.latency.p97_5,
    p99: r.latency.p99,
    max: r.latency.max,
    non2xx: r.non2xx,
    errors: r.errors + r.timeouts,
  };
}

/**
 * Runs `node <args>` on the load core and resolves with its standard output once it exits with a
 * code `accept` takes; kills it after `timeoutMs`.
 */
export function pinnedStdout(
  args: readonly string[],
  timeoutMs: number,
  accept: (code: number | null) => boolean,
  name: string,
  options: { readonly cwd?: string; readonly stderr?: 'inherit' | 'ignore' } = {},
): Promise<string> {
  const [cmd, cmdArgs] = pinned(LOAD_CORE, process.execPath, [...args]);
  return new Promise<string>((resolve, reject) => {
    const child = spawn(cmd, cmdArgs, { cwd: options.cwd, stdio: ['ignore', 'pipe', options.stderr ?? 'ignore'] });
    let data = '';
    child.stdout.on('data', (c) => {
      data += c;
    });
    const timer = setTimeout(() => child.kill('SIGKILL'), timeoutMs);
    child.on('exit', (code) => {
      clearTimeout(timer);
      if (accept(code)) resolve(data);
      else reject(new Error(`${name} exited with ${code}`));
    });
  });
}

const ROOT = fileURLToPath(new URL('../../', import.meta.url));
/** The CLI from the repository's source, as `npm run` scripts run it. */
const HANGPROOF_CLI = ['--conditions=source', '--import', 'tsx', 'packages/hangproof-cli/src/main.ts'];

/**
 * Runs `hangproof load <args> --json` (its open-loop generator) on the load core and returns its
 * JSON summary. Exit 1 only says that errors occurred (503s, say); the summary counts them.
 */
export async function hangproofLoad<T>(args: readonly string[], timeoutMs: number): Promise<T> {
  const out = await pinnedStdout(
    [...HANGPROOF_CLI, 'load', ...args, '--json'],
    timeoutMs,
    (code) => code === 0 || code === 1,
    'hangproof load',
    { cwd: ROOT, stderr: 'inherit' },
  );
  return JSON.parse(out) as T;
}
