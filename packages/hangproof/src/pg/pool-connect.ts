import type pg from 'pg';
import { type AbortWatch, firstOutcome } from '../core/abort-watch.js';

/** Rejection of connectWithin when its time ran out (the caller turns it into a phase timeout). */
export const BUDGET_SPENT = Symbol('budget spent');

/**
 * A connection from pg's pool (callback form: no promise of pg-pool's own), or a rejection with
 * BUDGET_SPENT after `ms`, or with the abort's reason, whichever comes first. An attempt its
 * caller left is not cancelled: it finishes in the background (bounded by connectTimeoutMs), its
 * connection goes back to the pool, and then `afterAbandoned` runs.
 */
export function connectWithin(
  pool: pg.Pool,
  ms: number,
  abort: AbortWatch | undefined,
  afterAbandoned: () => void,
): Promise<pg.PoolClient> {
  if (pool.idleCount > 0 && pool.waitingCount === 0) {
    // An idle connection is handed over on the next tick and cannot hang: no timer, no watcher.
    return new Promise<pg.PoolClient>((resolve, reject) => {
      pool.connect((err, client) => {
        if (err !== undefined && err !== null) reject(err);
        else if (client === undefined) reject(new Error('pg-pool gave no client'));
        else resolve(client);
      });
    });
  }
  return new Promise<pg.PoolClient>((resolve, reject) => {
    const claim = firstOutcome(ms, abort, () => reject(BUDGET_SPENT), reject);
    pool.connect((err, client, release) => {
      const failed = err !== undefined && err !== null;
      if (!claim()) {
        if (!failed && client !== undefined) release();
        afterAbandoned();
        return;
      }
      if (failed || client === undefined) reject(failed ? err : new Error('pg-pool gave no client'));
      else resolve(client);
    });
  });
}
