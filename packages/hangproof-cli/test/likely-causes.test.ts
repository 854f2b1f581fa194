import assert from 'node:assert/strict';
import { test } from 'node:test';
import { likelyCauses } from '../src/report/likely-causes.js';
import { type LogEvent, toLogEvent } from '../src/report/log-events.js';

/** An `event_loop_stall` line as observe logs it, parsed the way `hangproof report` reads it. */
function stallLine(i: number, stack: string[] | undefined): LogEvent {
  const line = {
    level: 40,
    time: 1_795_000_000_000 + i * 1000,
    event: 'event_loop_stall',
    stall_ms: 300,
    ...(stack === undefined ? {} : { stack }),
    in_flight: [{ requestId: `r-${i}`, name: '/api/bots/overview', stepInFlight: 'render' }],
    msg: 'event loop blocked for 300 ms',
  };
  const event = toLogEvent(line);
  assert.ok(event !== undefined);
  return event;
}

test('stalls whose stack was not captured rank below the stalls that name their blocker', () => {
  const named = ['blockEventLoop (file:///app/faults.ts:12:3)', 'handler (file:///app/routes.ts:40:9)'];
  // Under CPU pressure the watchdog missed the stack of a few more stalls than it caught.
  const events = [
    ...Array.from({ length: 5 }, (_, i) => stallLine(i, named)),
    ...Array.from({ length: 6 }, (_, i) => stallLine(10 + i, undefined)),
  ];
  const causes = likelyCauses([], events).filter((c) => c.kind === 'event_loop.blocked');
  assert.equal(causes.length, 2);
  assert.match(causes[0]?.title ?? '', /blockEventLoop/);
  assert.match(causes[1]?.title ?? '', /no stack captured/);
  assert.match(causes[1]?.detail ?? '', /possibly the same blocker/);
});

test('stalls without any captured stack still make a cause of their own', () => {
  const causes = likelyCauses([], [stallLine(1, undefined), stallLine(2, undefined)]);
  assert.equal(causes[0]?.kind, 'event_loop.blocked');
  assert.match(causes[0]?.title ?? '', /no stack captured/);
  assert.doesNotMatch(causes[0]?.detail ?? '', /possibly the same blocker/);
});
