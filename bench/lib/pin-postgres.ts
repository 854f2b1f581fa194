import { execFileSync } from 'node:child_process';
import { readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { hasTaskset, LOAD_CORE } from './server-process.ts';

/**
 * Keeps Postgres off the server's core: the postmaster and its children are moved to the load
 * generator's core, and backends forked later inherit that. The server process then has its core
 * to itself and its CPU per request is not disturbed by the database.
 */
export async function pinPostgres(dataDir: string): Promise<boolean> {
  if (!hasTaskset) return false;
  const pid = (await readFile(join(dataDir, 'postmaster.pid'), 'utf8')).split('\n')[0]?.trim();
  if (pid === undefined || pid === '') return false;
  const children = execFileSync('ps', ['-o', 'pid=', '--ppid', pid], { encoding: 'utf8' })
    .split('\n')
    .map((l) => l.trim())
    .filter((l) => l !== '');
  for (const p of [pid, ...children]) execFileSync('taskset', ['-a', '-p', '-c', LOAD_CORE, p], { stdio: 'ignore' });
  return true;
}
