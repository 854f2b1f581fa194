import assert from 'node:assert/strict';
import { test } from 'node:test';
import { LOG_EVENTS, LOG_MESSAGES } from '../../src/log-events.ts';
import { RecentEvidence } from '../../src/observe/recent-evidence.ts';

test('a storm of acquire timeouts does not push the lock wait that explains it out of the likely causes', () => {
  const evidence = new RecentEvidence();
  const t0 = Date.now() - 30_000;
  evidence.onEvidence({
    msg: 'request waiting on a lock',
    time: t0,
    fields: {
      event: LOG_EVENTS.pgLockWait,
      outcome: 'waiting',
      requestId: 'req-1',
      route: 'GET /api/bots/:id',
      relation: 'bots',
      blockers: [{ pid: 4242, application_name: 'psql', state: 'idle in transaction' }],
    },
  });
  // The symptom, by the thousand: every request after it waits for a connection and gives up.
  for (let i = 0; i < 2_000; i++) {
    evidence.onEvidence({
      msg: LOG_MESSAGES.acquireTimeout,
      time: t0 + 10 + i,
      fields: { pool: 'main', requestId: `req-${i + 2}`, route: 'GET /api/bots/:id', waitedMs: 500, inUse: 10 },
    });
  }
  const kinds = evidence.likelyCauses(t0 + 5_000).map((c) => c.kind);
  assert.ok(kinds.includes('pg.lock_wait'), `causes: ${kinds.join(', ')}`);
  assert.ok(kinds.includes('pg.pool_exhausted'), `causes: ${kinds.join(', ')}`);
});
