import type pg from 'pg';
import { currentContext } from '../core/index.js';
import type { Holder, HolderRegistry } from './holder-registry.js';

/**
 * `dangerouslyRawPool` as the caller gets it: the pool itself, except that a client checked out
 * with `connect()` is recorded as a holder (request, route, step, since) until its `release()`.
 * Nothing else of the guard applies to it, but the classic leak, a `release()` missing on an
 * error branch, then shows in the leak log and in acquire-timeout lines under the route that
 * took the connection, instead of as a pool that shrank for no visible reason.
 */
export function trackRawCheckouts(pool: pg.Pool, holders: HolderRegistry, captureStacks: boolean): pg.Pool {
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
        if (callback === undefined) return target.connect().then(track);
        return target.connect((err, client, done) =>
          callback(err, client === undefined ? undefined : track(client), done),
        );
      };
    },
  });
}
