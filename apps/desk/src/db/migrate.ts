import { setTimeout as sleep } from 'node:timers/promises';
import { fileURLToPath } from 'node:url';
import { runner } from 'node-pg-migrate';

/**
 * The versioned SQL files: `<yyyyMMddHHmmssSSS>_<name>.sql` (node-pg-migrate orders them by that UTC
 * timestamp), each with an `-- Up Migration` and a `-- Down Migration` part.
 */
export const MIGRATIONS_DIR = fileURLToPath(new URL('../../migrations', import.meta.url));

/** Bounds of the migration run: every statement and the connect are limited. */
const CONNECT_TIMEOUT_MS = 5_000;
const STATEMENT_TIMEOUT_MS = 60_000;
/** node-pg-migrate takes a try-lock; another instance migrating at the same time makes it fail at once. */
const LOCK_ATTEMPTS = 10;
const LOCK_RETRY_MS = 1_000;

/**
 * Brings the database to the latest schema with node-pg-migrate's programmatic runner: plain SQL
 * files, one transaction for all pending ones, and an advisory lock so two desks starting together
 * do not migrate twice (the second retries until the first is done, a bounded number of times).
 * Returns the names of the migrations it ran.
 */
export async function migrate(databaseUrl: string, log: (line: string) => void = () => {}): Promise<string[]> {
  for (let attempt = 1; ; attempt++) {
    try {
      const ran = await runner({
        databaseUrl: {
          connectionString: databaseUrl,
          connectionTimeoutMillis: CONNECT_TIMEOUT_MS,
          statement_timeout: STATEMENT_TIMEOUT_MS,
          lock_timeout: STATEMENT_TIMEOUT_MS,
        },
        dir: MIGRATIONS_DIR,
        direction: 'up',
        migrationsTable: 'desk_migrations',
        singleTransaction: true,
        checkOrder: true,
        log: () => {},
        logger: { debug: () => {}, info: () => {}, warn: log, error: log },
      });
      return ran.map((m) => m.name);
    } catch (err) {
      const locked = err instanceof Error && /another migration is already running/i.test(err.message);
      if (!locked || attempt >= LOCK_ATTEMPTS) throw err;
      await sleep(LOCK_RETRY_MS);
    }
  }
}
