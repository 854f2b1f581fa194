import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import { type LogEvent, likelyCauses, type RequestEvent, toLogEvent } from 'hangproof/diagnosis';

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

const T0 = 1_795_000_000_000;
/** Parses one line as `hangproof report` reads it; fails the test when the report ignores it. */
function parsed(line: Record<string, unknown>): LogEvent {
  const event = toLogEvent({ level: 40, ...line });
  assert.ok(event !== undefined, `the report ignores ${JSON.stringify(line)}`);
  return event;
}
const requests = (events: LogEvent[]): RequestEvent[] => events.filter((e) => e.type === 'request');

/** A failed request's line, with the db span that failed. */
function failedRequest(id: string, i: number, fingerprint: string, error: string): Record<string, unknown> {
  return {
    time: T0 + i * 100,
    msg: 'request failed',
    request_id: id,
    method: 'GET',
    route: '/api/bots/overview',
    path: '/api/bots/overview',
    status: 504,
    duration_ms: 1000,
    deadline_ms: 1000,
    error_code: 'REQUEST_TIMEOUT',
    spans: [{ name: 'SELECT bots', start_ms: 1, dur_ms: 990, kind: 'db', fingerprint, error }],
  };
}

const JOIN_SQL = 'SELECT b.id, o.name FROM owners o JOIN bots b ON b.owner_id = o.id WHERE o.id = $1';
const psqlBlocker = {
  pid: 4100,
  applicationName: 'psql',
  state: 'idle in transaction',
  xactAgeMs: 48_000,
  query: 'LOCK TABLE bots IN ACCESS EXCLUSIVE MODE',
};

describe('lock waits', () => {
  test('are keyed by the relation Postgres reported, not the first table of the statement', () => {
    const lines: LogEvent[] = [];
    for (let i = 0; i < 6; i++) {
      const requestId = `r-${i}`;
      const common = { requestId, route: '/api/bots/overview', sql: JOIN_SQL };
      lines.push(
        parsed({
          time: T0 + i * 100,
          ...common,
          msg: 'postgres statement failed',
          code: 'DEPENDENCY_TIMEOUT',
          phase: 'lock',
          cause: { sqlState: '55P03' },
        }),
        parsed({
          time: T0 + i * 100 + 5,
          ...common,
          event: 'pg.lock_wait',
          msg: 'postgres lock wait on bots',
          outcome: 'lock_timeout',
          relation: 'bots',
          lockType: 'relation',
          mode: 'AccessShareLock',
          blockers: [{ ...psqlBlocker, xactAgeMs: 48_000 + i * 100 }],
        }),
      );
    }
    const causes = likelyCauses([], lines);
    assert.equal(causes[0]?.kind, 'pg.lock_wait', JSON.stringify(causes));
    assert.equal(causes[0]?.subject, 'bots');
    assert.equal(causes[0]?.requests, 6);
    assert.equal(causes[0]?.title, 'lock wait on bots, held by pid 4100 (psql, idle in transaction 49 s)');
    assert.match(causes[0]?.detail ?? '', /pid 4100 \(psql, idle in transaction 49 s\): LOCK TABLE bots/);
    assert.ok(!causes.some((c) => c.subject === 'owners'), 'the first table of the join is not blamed');
  });

  test('a wait captured too late to name its relation goes with the same statement’s named waits', () => {
    const failed = (requestId: string, i: number): LogEvent =>
      parsed({
        time: T0 + i,
        requestId,
        msg: 'postgres statement failed',
        code: 'DEPENDENCY_TIMEOUT',
        phase: 'lock',
        sql: JOIN_SQL,
      });
    const wait = (requestId: string, i: number, relation: string | null): LogEvent =>
      parsed({
        time: T0 + i,
        requestId,
        event: 'pg.lock_wait',
        msg: 'postgres lock wait',
        outcome: 'lock_timeout',
        sql: JOIN_SQL,
        relation,
        blockers: relation === null ? [] : [psqlBlocker],
      });
    const causes = likelyCauses(
      [],
      [failed('r-1', 1), wait('r-1', 2, 'bots'), failed('r-2', 3), wait('r-2', 4, null), failed('r-3', 5)],
    );
    const locks = causes.filter((c) => c.kind === 'pg.lock_wait');
    assert.deepEqual(
      locks.map((c) => [c.subject, c.requests]),
      [['bots', 3]],
    );
  });

  test('a lock timeout without a lock-wait line falls back to the statement’s table', () => {
    const causes = likelyCauses(
      [],
      [
        parsed({
          time: T0,
          requestId: 'r-1',
          msg: 'postgres statement failed',
          code: 'DEPENDENCY_TIMEOUT',
          phase: 'lock',
          sql: 'SELECT count(*) FROM items',
        }),
      ],
    );
    assert.equal(causes[0]?.kind, 'pg.lock_wait');
    assert.equal(causes[0]?.subject, 'items');
    assert.equal(causes[0]?.title, 'lock wait on items');
  });

  test('a blocking request is named by its route and step', () => {
    const causes = likelyCauses(
      [],
      [
        parsed({
          time: T0,
          event: 'pg.lock_wait',
          msg: 'postgres lock wait on bots',
          outcome: 'waiting',
          requestId: 'r-9',
          relation: 'bots',
          blockers: [
            { pid: 77, applicationName: 'hangproof /admin/reindex 1f', route: '/admin/reindex', step: 'rebuild' },
          ],
        }),
      ],
    );
    assert.equal(causes[0]?.title, 'lock wait on bots, held by pid 77 (/admin/reindex in step rebuild, unknown state)');
  });
});

describe('an unreachable Postgres', () => {
  const FP = 'SELECT * FROM bots WHERE id = $1';
  /** A black-holed server: queries on open connections get no answer, new ones no handshake. */
  function outage(): LogEvent[] {
    const lines: LogEvent[] = [];
    for (let i = 0; i < 4; i++) {
      lines.push(
        parsed({
          time: T0 + i * 100,
          msg: 'postgres statement failed',
          event: 'pg.unavailable',
          reason: 'no_answer',
          hostname: '127.0.0.1',
          port: 6543,
          host: '127.0.0.1',
          code: 'DEPENDENCY_TIMEOUT',
          phase: 'query',
          requestId: `q-${i}`,
          route: '/api/bots/overview',
          sql: FP,
        }),
        parsed(failedRequest(`q-${i}`, i, FP, 'DEPENDENCY_TIMEOUT')),
      );
    }
    lines.push(
      parsed({
        time: T0 + 500,
        msg: 'opening a postgres connection timed out',
        event: 'pg.unavailable',
        reason: 'connect_timeout',
        hostname: '127.0.0.1',
        port: 6543,
        phase: 'connect',
      }),
    );
    // The symptoms: the other requests queued for a pool whose connections all hang.
    for (let i = 0; i < 8; i++) {
      lines.push(
        parsed({
          time: T0 + 600 + i * 10,
          msg: 'postgres pool acquire timed out',
          pool: 'main',
          phase: 'acquire',
          requestId: `a-${i}`,
          route: '/api/bots/overview',
          waitedMs: 300,
          holders: [{ requestId: 'q-0', route: '/api/bots/overview', heldMs: 900 }],
        }),
        parsed(failedRequest(`a-${i}`, 6 + i, FP, 'DEPENDENCY_TIMEOUT')),
      );
    }
    return lines;
  }

  test('ranks above the slow queries and the pool exhaustion it causes, named by host:port', () => {
    const events = outage();
    const causes = likelyCauses(requests(events), events);
    assert.equal(causes[0]?.kind, 'pg.unavailable', JSON.stringify(causes));
    assert.equal(causes[0]?.subject, '127.0.0.1:6543');
    assert.equal(causes[0]?.title, 'postgres at 127.0.0.1:6543 unreachable (connect_timeout, no_answer)');
    assert.equal(causes[0]?.requests, 12, 'the requests that timed out on the db meanwhile are explained');
    assert.ok(!causes.some((c) => c.kind === 'pg.pool_exhausted'), JSON.stringify(causes));
    assert.ok(!causes.some((c) => c.kind === 'pg.slow_query'), JSON.stringify(causes));
  });

  test('one unreachable line does not claim the other timed-out requests', () => {
    const events = outage().filter((e) => e.type !== 'pg-unavailable' || e.requestId === 'q-0');
    const causes = likelyCauses(requests(events), events);
    const unavailable = causes.find((c) => c.kind === 'pg.unavailable');
    assert.equal(unavailable?.requests, 1);
    assert.ok(causes.some((c) => c.kind === 'pg.pool_exhausted'));
  });

  test('older lines without the event still count, by their message', () => {
    const e = parsed({
      time: T0,
      msg: 'opening a postgres connection timed out',
      host: 'db.internal',
      phase: 'connect',
    });
    assert.deepEqual(
      { type: e.type, host: e.type === 'pg-unavailable' ? e.host : undefined },
      { type: 'pg-unavailable', host: 'db.internal' },
    );
  });
});

describe('a Postgres restart', () => {
  const FP = 'SELECT id FROM users WHERE token_hash = $1';
  /** Sessions ended by the server, the statements in flight dropped, then refused connects. */
  function restart(): LogEvent[] {
    const lines: LogEvent[] = [];
    for (let i = 0; i < 2; i++)
      lines.push(
        parsed({
          time: T0 + i,
          msg: 'idle postgres connection failed',
          pool: 'desk',
          host: '127.0.0.1:6543',
          err: { message: 'terminating connection due to administrator command', sqlState: '57P01' },
        }),
      );
    for (let i = 0; i < 6; i++) {
      // A statement in flight when its connection went: slow only because it never came back.
      lines.push(
        parsed({
          time: T0 + 10 + i,
          msg: 'slow postgres query',
          requestId: `s-${i}`,
          route: '/api/bots/overview',
          sql: FP,
          durationMs: 900,
          errorCode: 'DEPENDENCY_UNAVAILABLE',
        }),
        parsed(failedRequest(`s-${i}`, i, FP, 'DEPENDENCY_UNAVAILABLE')),
      );
    }
    lines.push(
      parsed({
        time: T0 + 50,
        msg: 'postgres connection refused or dropped',
        event: 'pg.unavailable',
        reason: 'refused',
        hostname: '127.0.0.1',
        port: 6543,
        phase: 'connect',
      }),
    );
    return lines;
  }

  test('reads as Postgres going away on its host:port, not as the queries it dropped', () => {
    const events = restart();
    const causes = likelyCauses(requests(events), events);
    assert.equal(causes[0]?.kind, 'pg.unavailable', JSON.stringify(causes));
    assert.equal(causes[0]?.subject, '127.0.0.1:6543');
    assert.equal(causes[0]?.title, 'postgres at 127.0.0.1:6543 unreachable (admin_shutdown, refused)');
    assert.equal(causes[0]?.requests, 6, 'the refused requests go with the outage');
    assert.ok(!causes.some((c) => c.kind === 'pg.slow_query'), JSON.stringify(causes));
  });
});

test('a provider down behind snapshots is the cause even when every page still answered', () => {
  const events = [
    parsed({ time: T0, msg: 'dependency health is down', dependency: 'quotes', from: 'up', to: 'down' }),
    ...[1, 2, 3].map((i) =>
      parsed({
        time: T0 + i * 1000,
        msg: 'snapshot load failed',
        dependency: 'quotes',
        errorCode: 'DEPENDENCY_TIMEOUT',
      }),
    ),
    // One unrelated slow statement meanwhile.
    parsed({
      time: T0 + 500,
      msg: 'slow postgres query',
      requestId: 'r-1',
      route: '/x',
      sql: 'SELECT 1',
      durationMs: 70,
    }),
  ];
  const causes = likelyCauses(requests(events), events);
  assert.equal(causes[0]?.kind, 'dependency.down', JSON.stringify(causes));
  assert.equal(causes[0]?.subject, 'quotes');
  assert.match(causes[0]?.detail ?? '', /3 of 3 call\(s\) failed \(DEPENDENCY_TIMEOUT/);
});

test('with a baseline, a query slow about as often there is left out, and one slow far more often stays', () => {
  const slowLine = (i: number, sql: string): LogEvent =>
    parsed({ time: T0 + i, msg: 'slow postgres query', requestId: `r-${sql}-${i}`, route: '/x', sql, durationMs: 80 });
  const okRequest = (i: number): LogEvent =>
    parsed({ time: T0 + i, msg: 'request completed', request_id: `ok-${i}`, method: 'GET', route: '/x', status: 200 });
  // The baseline: 100 requests, each query slow twice (a cold cache, a busy machine).
  const baseline = [
    ...Array.from({ length: 100 }, (_, i) => okRequest(i)),
    ...[1, 2].flatMap((i) => [slowLine(i, 'SELECT usual'), slowLine(i, 'SELECT grown')]),
  ];
  // The incident: 100 requests, `usual` slow once as before, `grown` slow 30 times.
  const events = [
    ...Array.from({ length: 100 }, (_, i) => okRequest(i)),
    slowLine(1, 'SELECT usual'),
    ...Array.from({ length: 30 }, (_, i) => slowLine(i, 'SELECT grown')),
  ];
  const subjects = likelyCauses(requests(events), events, baseline).map((c) => c.subject);
  assert.deepEqual(subjects, ['SELECT grown']);
  const withoutBaseline = likelyCauses(requests(events), events).map((c) => c.subject);
  assert.ok(withoutBaseline.includes('SELECT usual'), 'without a baseline nothing is left out');
});

test('a slow query whose plan was captured is named by its dominant node and table', () => {
  const FP = 'SELECT * FROM bots WHERE owner_id = $1';
  const events: LogEvent[] = [];
  for (let i = 0; i < 5; i++)
    events.push(
      parsed({ time: T0 + i * 100, msg: 'slow postgres query', requestId: `s-${i}`, sql: FP, durationMs: 400 }),
    );
  events.push(
    parsed({
      time: T0 + 50,
      event: 'pg.slow_plan',
      msg: 'slow postgres statement: Seq Scan on bots dominates its plan',
      fingerprint: FP,
      planKind: 'generic',
      dominant: { nodeType: 'Seq Scan', relation: 'public.bots', planRows: 5000, costShare: 0.98, condition: null },
      suggestion: 'CREATE INDEX ON public.bots (owner_id)',
    }),
  );
  const causes = likelyCauses([], events);
  assert.equal(causes[0]?.kind, 'pg.slow_query');
  assert.equal(causes[0]?.subject, 'Seq Scan on public.bots');
  assert.match(causes[0]?.detail ?? '', /owner_id = \$1/, 'the fingerprint stays in the detail');
  assert.match(causes[0]?.detail ?? '', /consider CREATE INDEX ON public\.bots \(owner_id\)/);
});

test('a plan captured after the fix does not hide the plan of the incident', () => {
  // The index is dropped, the query slows down and its Seq Scan is captured; the index comes
  // back while a last slow run is under way, and that run's plan (taken after it) is an Index Scan.
  const FP = 'SELECT * FROM audits WHERE bot_id = $1 ORDER BY checked_at DESC LIMIT $2';
  const plan = (time: number, nodeType: string, suggestion: string | null) =>
    parsed({
      time,
      event: 'pg.slow_plan',
      msg: `slow postgres statement: ${nodeType} on audits dominates its plan`,
      fingerprint: FP,
      dominant: { nodeType, relation: 'public.audits', planRows: 20, costShare: 0.95, condition: null },
      suggestion,
    });
  const events = [
    ...Array.from({ length: 6 }, (_, i) =>
      parsed({ time: T0 + i * 100, msg: 'slow postgres query', requestId: `s-${i}`, sql: FP, durationMs: 300 }),
    ),
    plan(T0 + 50, 'Seq Scan', 'CREATE INDEX ON public.audits (bot_id)'),
    plan(T0 + 700, 'Index Scan', null),
    plan(T0 + 900, 'Index Scan', null),
  ];
  const causes = likelyCauses([], events);
  assert.equal(causes[0]?.subject, 'Seq Scan on public.audits');
  assert.match(causes[0]?.detail ?? '', /consider CREATE INDEX ON public\.audits \(bot_id\)/);
});

test('a plan that points at no fix leaves the query named by its fingerprint', () => {
  const FP = 'SELECT pg_sleep($1), count(*) FROM items';
  const events = [
    parsed({ time: T0, msg: 'slow postgres query', requestId: 's-1', sql: FP, durationMs: 400 }),
    parsed({
      time: T0 + 50,
      event: 'pg.slow_plan',
      msg: 'slow postgres statement: Seq Scan on items dominates its plan',
      fingerprint: FP,
      dominant: { nodeType: 'Seq Scan', relation: 'items', planRows: 50, costShare: 0.9, condition: null },
      suggestion: null,
    }),
  ];
  const causes = likelyCauses([], events);
  assert.equal(causes[0]?.subject, FP);
  assert.match(causes[0]?.detail ?? '', /its plan is dominated by Seq Scan on items/);
});
