import assert from 'node:assert/strict';
import { readFile } from 'node:fs/promises';
import { test } from 'node:test';
import {
  BREAKER_DEFAULTS,
  BULKHEAD_DEFAULTS,
  DEPENDENCY_DEFAULTS,
  HEALTH_DEFAULTS,
  HTTP_DEFAULTS,
  RETRY_DEFAULTS,
} from 'hangproof/deps';
import { EDGE_DEFAULTS, SERVER_DEFAULTS, SHUTDOWN_DEFAULTS } from 'hangproof/fastify';
import { OBSERVE_DEFAULTS } from 'hangproof/observe';
import { DATABASE_DEFAULTS, LOCK_EVIDENCE_DEFAULTS, PLAN_EVIDENCE_DEFAULTS } from 'hangproof/pg';

const doc = await readFile(new URL('../../../../docs/configuration.md', import.meta.url), 'utf8');
const rows = new Map(
  [...doc.matchAll(/^\| `([a-z]+(?:\.[A-Za-z]+)+)` \| `([^`]+)` \|/gm)].map((m) => [m[1] as string, m[2] as string]),
);

/** Which frozen defaults object each documented prefix must match. */
const SOURCES: Record<string, Readonly<Record<string, unknown>>> = {
  edge: EDGE_DEFAULTS,
  server: SERVER_DEFAULTS,
  shutdown: SHUTDOWN_DEFAULTS,
  pg: DATABASE_DEFAULTS,
  'pg.lockEvidence': LOCK_EVIDENCE_DEFAULTS,
  'pg.planEvidence': PLAN_EVIDENCE_DEFAULTS,
  deps: DEPENDENCY_DEFAULTS,
  'deps.retry': RETRY_DEFAULTS,
  'deps.breaker': BREAKER_DEFAULTS,
  'deps.bulkhead': BULKHEAD_DEFAULTS,
  'deps.health': HEALTH_DEFAULTS,
  'deps.http': HTTP_DEFAULTS,
  observe: OBSERVE_DEFAULTS,
};

test('every default documented in docs/configuration.md equals the value in the code', () => {
  assert.ok(rows.size > 40, `parsed ${rows.size} rows`);
  for (const [key, documented] of rows) {
    const dot = key.lastIndexOf('.');
    const source = SOURCES[key.slice(0, dot)];
    assert.ok(source, `no defaults object for ${key}`);
    assert.equal(String(source[key.slice(dot + 1)]), documented, key);
  }
});

test('every numeric time limit in the code is documented', () => {
  for (const [prefix, source] of Object.entries(SOURCES)) {
    for (const [name, value] of Object.entries(source)) {
      if (typeof value === 'number' && /Ms$/.test(name))
        assert.ok(rows.has(`${prefix}.${name}`), `${prefix}.${name} is documented`);
    }
  }
});
