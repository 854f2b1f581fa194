/** Test helpers: run the `hangproof` bin as a child process, and servers that misbehave. */
import { spawn } from 'node:child_process';
import { mkdtemp, rm } from 'node:fs/promises';
import { createServer, type Server, type Socket } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before } from 'node:test';
import { fileURLToPath } from 'node:url';
import { createTestDatabase, type TestDatabase } from 'hangproof/testing';
import pg from 'pg';

const repoRoot = fileURLToPath(new URL('../../../', import.meta.url));
const main = fileURLToPath(new URL('../src/main.ts', import.meta.url));

export interface CliRun {
  readonly code: number | null;
  readonly stdout: string;
  readonly stderr: string;
  readonly durationMs: number;
  /** stdout parsed as JSON (throws if it is not). */
  json(): any;
}

/**
 * Runs `hangproof <args>` the way a user does (node + tsx, source condition) and waits at most
 * `timeoutMs`; a run that outlives it is killed and reported with code null, so a hang fails the
 * test instead of stalling it.
 */
export function runCli(
  args: readonly string[],
  options: { env?: NodeJS.ProcessEnv; timeoutMs?: number; input?: string } = {},
): Promise<CliRun> {
  const started = performance.now();
  const child = spawn(process.execPath, ['--conditions=source', '--import', 'tsx', main, ...args], {
    cwd: repoRoot,
    env: { ...process.env, NO_COLOR: '1', ...options.env },
    stdio: ['pipe', 'pipe', 'pipe'],
  });
  let stdout = '';
  let stderr = '';
  child.stdout.on('data', (d) => {
    stdout += d;
  });
  child.stderr.on('data', (d) => {
    stderr += d;
  });
  child.stdin.end(options.input ?? '');
  return new Promise((resolve) => {
    const timer = setTimeout(() => child.kill('SIGKILL'), options.timeoutMs ?? 30_000);
    child.on('close', (code) => {
      clearTimeout(timer);
      resolve({
        code,
        stdout,
        stderr,
        durationMs: performance.now() - started,
        json: () => JSON.parse(stdout),
      });
    });
  });
}

/** A TCP server on 127.0.0.1 that accepts connections and never answers. */
export async function startSilentServer(): Promise<{ url: string; port: number; close(): Promise<void> }> {
  const sockets = new Set<Socket>();
  const server: Server = createServer((s) => {
    sockets.add(s);
    s.on('error', () => {});
    s.on('close', () => sockets.delete(s));
  });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  const port = (server.address() as { port: number }).port;
  return {
    url: `http://127.0.0.1:${port}`,
    port,
    close: () =>
      new Promise<void>((r) => {
        for (const s of sockets) s.destroy();
        server.close(() => r());
      }),
  };
}

/** A port on 127.0.0.1 with nothing listening (bound, then released). */
export async function closedPort(): Promise<number> {
  const server = createServer();
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  const port = (server.address() as { port: number }).port;
  await new Promise<void>((r) => server.close(() => r()));
  return port;
}

export const examples = (name: string): string => `examples/timeouts/${name}`;

export interface ItemsFixture {
  /** A fresh database with an `items` table of 50 rows (set in `before`). */
  database: TestDatabase;
  /** A temporary folder for the file's outputs (set in `before`). */
  dir: string;
}

/** Registers before/after hooks that give a test file an `items` database and a temp folder. */
export function itemsFixture(dirPrefix: string): ItemsFixture {
  const fx = {} as ItemsFixture;
  before(async () => {
    fx.database = await createTestDatabase();
    fx.dir = await mkdtemp(join(tmpdir(), dirPrefix));
    const c = new pg.Client({ connectionString: fx.database.url, connectionTimeoutMillis: 3000 });
    await c.connect();
    await c.query('CREATE TABLE items (id int PRIMARY KEY, name text NOT NULL)');
    await c.query("INSERT INTO items SELECT g, 'item ' || g FROM generate_series(1, 50) g");
    await c.end();
  });
  after(async () => {
    await rm(fx.dir, { recursive: true, force: true });
    await fx.database.drop();
  });
  return fx;
}

/** Runs `sql` on a connection of its own, bounded; the tests' way to change the schema under load. */
export async function runSql(url: string, sql: string): Promise<void> {
  const c = new pg.Client({ connectionString: url, connectionTimeoutMillis: 3000, statement_timeout: 30_000 });
  await c.connect();
  try {
    await c.query(sql);
  } finally {
    await c.end();
  }
}
