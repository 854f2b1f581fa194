import { executionAsyncResource } from 'node:async_hooks';

/**
 * Keeps one of Node's tick objects (what `process.nextTick` queues) alive for the life of the
 * process, so that `process.nextTick` stays cheap.
 *
 * Why: a tick is an object literal with computed symbol keys. When a full garbage collection runs
 * while no tick is alive, V8 frees the object shapes (maps) those literals go through; the next
 * tick builds new ones, and V8's feedback for the literal sees one more shape. After a few such
 * collections the feedback turns megamorphic and stays so: every `process.nextTick` then defines
 * its properties through the runtime, 250 to 800 ns instead of 30 to 40 (measured on Node 20, 22
 * and 24; a request through node:http runs about ten ticks). Services that load many modules go
 * through enough full collections at start to get there. One live tick keeps the shapes alive,
 * so the feedback never sees a second one. It costs one object, taken when the library is loaded
 * (normally outside any request, so it holds no request's context); docs/benchmarks.md (db,
 * seventh pass) has the measurements.
 */
let anchor: object | undefined;

/** Takes a tick object to keep, once per copy of the library (a second copy's is harmless). */
export function anchorTickShape(): void {
  if (anchor !== undefined) return;
  anchor = {};
  // Inside its own callback, a tick is the execution's async resource.
  process.nextTick(() => {
    anchor = executionAsyncResource();
  });
}

/** The tick object kept, once the tick queued by `anchorTickShape` has run (for tests). */
export function anchoredTick(): object | undefined {
  return anchor;
}
