import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { startEmbeddedPostgres } from 'hangproof/testing';
import { pinPostgres } from './pin-postgres.ts';
import { LOAD_CORE } from './server-process.ts';

/**
 * Runs `fn` against a throwaway embedded Postgres (fsync off) pinned to the load generator's core,
 * then stops it and deletes its folder. `suite` prefixes the progress line.
 */
export async function withBenchPostgres<T>(suite: string, fn: (url: string) => Promise<T>): Promise<T> {
  const dataDir = await mkdtemp(join(tmpdir(), 'hangproof-bench-pg-'));
  const server = await startEmbeddedPostgres({ dataDir, settings: { fsync: 'off', max_connections: 100 } });
  try {
    const pinned = await pinPostgres(dataDir);
    process.stderr.write(`${suite}: Postgres pinned to core ${pinned ? LOAD_CORE : 'none'}\n`);
    return await fn(server.url);
  } finally {
    await server.stop();
    await rm(dataDir, { recursive: true, force: true });
  }
}
