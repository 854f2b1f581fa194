import type pg from 'pg';
import { currentContext } from '../core/index.js';
import type { Holder, HolderRegistry } from './holder-registry.js';

/** pg-pool's `done` when the checkout failed: there is no client to give back. */
const NO_CLIENT_TO_RELEASE = (): void => {};

/**
 * `dangerouslyRawPool` as the caller gets it: the pool itself, except that `connect()` waits at
 * most as long as a guarded checkout would (`connect`: the bounded checkout to use, see
 * ConnectionLeases.rawConnect), and a client it returns is recorded as a holder (request, route,
 * step, since) until its `release()`. Nothing else of the guard applies to the client, but the
 * classic leak, a `release()` missing on an error branch, then shows in the leak log and in
 * acquire-timeout lines under the route that took the connection, instead of as a pool that
 * shrank for no visible reason.
 */
export function trackRawCheckouts(
  pool: pg.Pool,
  connect: () => Promise<pg.PoolClient>,
  holders: HolderRegistry,
  captureStacks: boolean,
): pg.Pool {
  const track = (client: pg.PoolClient): pg.PoolClient => {
    const ctx = currentContext();
    const holder: Holder = {
      requestId: ctx?.requestId,
      route: ctx?.name,
      step: ctx?.stepInFlight,
      ctx,
      since: performance.now(),
      stack: captureStacks ? new Error('acquired here').stack : undefined,
      pid: (client as pg.PoolClient & { processID?: number }).processID,
      leakLogged: false,
    };
    holders.add(holder);
    const release = client.release;
    client.release = (err?: Error | boolean) => {
      client.release = release;
      holders.remove(holder);
      return release.call(client, err);
    };
    return client;
  };
  return new Proxy(pool, {
    get(target, key, receiver) {
      if (key !== 'connect') return Reflect.get(target, key, receiver);
      return (callback?: (err: Error | undefined, client: pg.PoolClient | undefined, done: unknown) => void) => {
        if (callback === undefined) return connect().then(track);
        connect().then(
          (client) => callback(undefined, track(client), client.release),
          (err: Error) => callback(err, undefined, NO_CLIENT_TO_RELEASE),
        );
      };
    },
  });
}
