import type { DeskContext } from '../desk-context.js';
import { blockEventLoop, type FaultRoute } from '../faults.js';

/**
 * Applies the demonstration faults switched on for `route`: a `pg_sleep` on the route's database
 * path (bounded like any query by the guard's statement timeout and the request's deadline) and a
 * synchronous CPU loop. Both off by default.
 */
export async function applyRouteFaults(desk: DeskContext, route: FaultRoute): Promise<void> {
  const blockMs = desk.faults.cpuFor(route);
  if (blockMs !== undefined) blockEventLoop(blockMs);
  const sleepMs = desk.faults.slowQueryFor(route);
  if (sleepMs !== undefined) await desk.db.query('SELECT pg_sleep($1::float8 / 1000)', [sleepMs]);
}
