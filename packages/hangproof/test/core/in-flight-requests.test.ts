import assert from 'node:assert/strict';
import { test } from 'node:test';
import { InFlightRequests } from '../../src/core/in-flight-requests.js';
import { RequestContext } from '../../src/core/request-context.js';

const contexts = (n: number): RequestContext[] =>
  Array.from({ length: n }, (_, i) => new RequestContext({ requestId: `r${i}`, budgetMs: 60_000 }));
const ids = (list: Iterable<RequestContext>): string[] => [...list].map((c) => c.requestId);

test('requests leave the in-flight list from anywhere in it, and it counts what is left', (t) => {
  const [a, b, c, d] = contexts(4) as [RequestContext, RequestContext, RequestContext, RequestContext];
  t.after(() => {
    for (const ctx of [a, b, c, d]) ctx.end();
  });
  const list = new InFlightRequests();
  for (const ctx of [a, b, c, d]) list.add(ctx);
  list.add(b);
  assert.equal(list.size, 4, 'adding a context twice keeps it once');
  assert.deepEqual(ids(list), ['r3', 'r2', 'r1', 'r0'], 'newest first');
  list.delete(c);
  list.delete(d);
  list.delete(a);
  list.delete(a);
  assert.equal(list.size, 1, 'deleting a context twice counts once');
  assert.deepEqual(ids(list), ['r1']);
  assert.equal(list.has(b), true);
  assert.equal(list.has(a), false);
});

test('a context is in one list at a time: another list leaves it alone', (t) => {
  const [a] = contexts(1) as [RequestContext];
  t.after(() => a.end());
  const one = new InFlightRequests();
  const other = new InFlightRequests();
  one.add(a);
  other.add(a);
  other.delete(a);
  assert.deepEqual([one.size, other.size], [1, 0]);
  assert.equal(one.has(a), true);
});

test('walking the list sees every request in flight when it began, even as they end meanwhile', (t) => {
  const all = contexts(5);
  t.after(() => {
    for (const ctx of all) ctx.end();
  });
  const list = new InFlightRequests();
  for (const ctx of all) list.add(ctx);
  const seen: string[] = [];
  // Shutdown aborts each request, and an aborted request ends and leaves the list at once.
  for (const ctx of list) {
    seen.push(ctx.requestId);
    list.delete(ctx);
    if (ctx.requestId === 'r3') list.delete(all[1] as RequestContext);
  }
  assert.deepEqual(seen, ['r4', 'r3', 'r2', 'r1', 'r0']);
  assert.equal(list.size, 0);
  assert.deepEqual(ids(list), []);
});
