import assert from 'node:assert/strict';
import { test } from 'node:test';
import { DeferredRecords } from '../../src/observe/deferred-records.ts';
import { SeriesBook } from '../../src/observe/latency-series.ts';
import { RouteBook } from '../../src/observe/route-book.ts';
import { waitUntil } from '../support/latch.ts';

const BOUNDS_MS = Float64Array.from([5, 25, 100, 500, 2500]);

test('a read of the books folds the held records in first: no value is missed', () => {
  const deferred = new DeferredRecords();
  const fold = (): void => deferred.fold();
  const routes = new RouteBook(10, BOUNDS_MS, Date.now(), fold);
  const queries = new SeriesBook(10, BOUNDS_MS, (fp) => ({ query_id: fp }), Date.now(), fold);
  deferred.add(routes.get('GET', '/bots/:id'), 12, undefined);
  deferred.add(routes.get('GET', '/bots/:id'), 30, 'REQUEST_TIMEOUT');
  deferred.add(queries.get('select 1'), 3, undefined);
  // Held, not yet in the series: what the request path saves.
  assert.equal(routes.get('GET', '/bots/:id').count, 0);

  const [route] = [...routes.series()];
  assert.equal(route?.count, 2);
  assert.ok(Math.abs((route?.sumSec ?? 0) - 0.042) < 1e-9);
  assert.equal(route?.errorsTotal.get('REQUEST_TIMEOUT'), 1);
  assert.equal(route?.windows.summary('1m').count, 2);
  const [[fingerprint, query] = []] = [...queries.entries()];
  assert.equal(fingerprint, 'select 1');
  assert.equal(query?.count, 1);
});

test('a full batch folds on its own, and the timer folds what is left', async () => {
  const deferred = new DeferredRecords();
  const routes = new RouteBook(10, BOUNDS_MS, Date.now());
  const series = routes.get('GET', '/hello');
  for (let i = 0; i < 256; i++) deferred.add(series, 1, undefined);
  assert.equal(series.count, 256, 'the 256th record folds the batch');
  deferred.add(series, 1, undefined);
  assert.equal(series.count, 256);
  deferred.start();
  try {
    await waitUntil('the fold timer to record the held value', () => series.count === 257, 5_000);
  } finally {
    deferred.stop();
  }
  deferred.add(series, 1, undefined);
  deferred.stop();
  assert.equal(series.count, 258, 'stop folds what is held');
});
