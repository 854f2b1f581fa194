import assert from 'node:assert/strict';
import { test } from 'node:test';
import { pairedSettings } from '../lib/paired-rounds.ts';
import { renderEdgePairs } from '../suites/edge-pairs.ts';

const run = { environment: 'Node v20, 2 cores', rounds: 3, processPairs: 1, connections: 25 };

test('the edge pairs table gives each pair its median difference, ratio and rounds at or under zero', () => {
  const md = renderEdgePairs(
    [
      { name: 'logging', baseline: [40, 42, 41], candidate: [38, 43, 39] },
      { name: 'refusal', baseline: [20, 22, 21], candidate: [23, 25, 24] },
    ],
    run,
  );
  assert.match(
    md,
    /\| hangproof beside fastify-logging \| 41\.0 \| 39\.0 \| -2\.0 \(-2\.0 to \+1\.0\) \| 0\.95 \(0\.95 to 1\.02\) \| 2 of 3 \|/,
  );
  assert.match(
    md,
    /\| hangproof-refusing beside http-refusal \| 21\.0 \| 24\.0 \| \+3\.0 \(\+3\.0 to \+3\.0\) \| 1\.14 /,
  );
  assert.match(md, /0 of 3 \|/);
  assert.match(md, /through pino's destination \(target ≤ 0\): \*\*-2\.0 µs\*\*, 0\.95× within a round/);
});

test('rounds and process pairs come from the environment, checked; each server gets half the connections', () => {
  assert.deepEqual(pairedSettings(50, {}), { rounds: 9, processPairs: 3, connections: 25 });
  assert.deepEqual(pairedSettings(1, { BENCH_ROUNDS: '2' }), { rounds: 2, processPairs: 2, connections: 1 });
  assert.throws(() => pairedSettings(50, { BENCH_ROUNDS: '2.5' }), /whole numbers/);
  assert.throws(() => pairedSettings(50, { BENCH_PAIRS_PROCESSES: 'many' }), /whole numbers/);
});
