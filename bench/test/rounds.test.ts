import assert from 'node:assert/strict';
import { test } from 'node:test';
import type { LoadResult } from '../lib/load.ts';
import type { ScenarioFigures } from '../lib/measure.ts';
import { coreSpeedNote, interleavedRounds, triesFromEnv } from '../lib/rounds.ts';

const answered = { requests: 1000, rps: 1000 } as LoadResult;

/**
 * Figures of one run whose server core read `server` before and after, with its CPU per request;
 * the load core read `load` (quiet unless given).
 */
function run(
  scenario: string,
  cpu: number,
  server: readonly [number, number],
  load: readonly [number, number] = [500, 505],
): ScenarioFigures {
  return {
    scenario,
    cpuMicrosPerRequest: cpu,
    saturationCpuMicrosPerRequest: cpu,
    nextTickNanos: 40,
    coreNanos: [...server, ...load],
    attempts: 1,
    saturation: answered,
    fixedRate: answered,
  };
}

/** A measure callback that answers from a script of runs per scenario, recording each call. */
function scripted(script: Record<string, ScenarioFigures[]>) {
  const calls: string[] = [];
  const measure = async (scenario: string, round: number, attempt: number): Promise<ScenarioFigures> => {
    calls.push(`${scenario}#${round}.${attempt}`);
    const next = script[scenario]?.shift();
    if (next === undefined) throw new Error(`no scripted run left for ${scenario}`);
    return next;
  };
  return { calls, measure };
}

test('a round with a run made on a slowed core is measured again after the rounds, whole, and the faster try is kept', async () => {
  const { calls, measure } = scripted({
    bare: [run('bare', 200, [1000, 1005]), run('bare', 320, [1000, 1300]), run('bare', 205, [1002, 1004])],
    hangproof: [
      run('hangproof', 240, [1001, 1003]),
      run('hangproof', 245, [1004, 1001]),
      run('hangproof', 243, [1000, 1002]),
    ],
  });
  const rounds = await interleavedRounds(['bare', 'hangproof'], 2, measure);
  assert.deepEqual(calls, ['bare#1.1', 'hangproof#1.1', 'bare#2.1', 'hangproof#2.1', 'bare#2.2', 'hangproof#2.2']);
  assert.deepEqual(
    rounds.get('bare')?.map((r) => [r.cpuMicrosPerRequest, r.attempts]),
    [
      [200, 1],
      [205, 2],
    ],
  );
  assert.deepEqual(
    rounds.get('hangproof')?.map((r) => [r.cpuMicrosPerRequest, r.attempts]),
    [
      [240, 1],
      [243, 2],
    ],
    'the pair of round 2 comes from one try: hangproof measured again beside the new bare run',
  );
  assert.match(
    coreSpeedNote(rounds.values()),
    /1 of 2 rounds had a run .* measured again, whole; every run kept was made on cores within that bound/,
  );
});

test('a round whose core stays slow is tried twice more, then kept whole as the try with the fastest slowest core, and named', async () => {
  const { calls, measure } = scripted({
    bare: [run('bare', 200, [1000, 1000]), run('bare', 201, [1000, 1001]), run('bare', 202, [1001, 1000])],
    otel: [run('otel', 400, [1000, 1400]), run('otel', 350, [1250, 1250]), run('otel', 380, [1300, 1350])],
  });
  const rounds = await interleavedRounds(['bare', 'otel'], 1, measure);
  assert.deepEqual(calls, ['bare#1.1', 'otel#1.1', 'bare#1.2', 'otel#1.2', 'bare#1.3', 'otel#1.3']);
  const kept = rounds.get('otel')?.[0];
  assert.equal(kept?.cpuMicrosPerRequest, 350);
  assert.equal(kept?.attempts, 3);
  assert.equal(rounds.get('bare')?.[0]?.cpuMicrosPerRequest, 201, 'bare from the same try as the otel run kept');
  assert.match(
    coreSpeedNote(rounds.values()),
    /1 of 2 runs still were after their last try and are kept \(slowest kept: 1\.25 of the fastest\)/,
  );
});

test("a run made while the load generator's core ran slow is measured again too", async () => {
  const { calls, measure } = scripted({
    bare: [run('bare', 200, [1000, 1000]), run('bare', 201, [1000, 1001], [500, 640]), run('bare', 199, [1000, 1000])],
  });
  const rounds = await interleavedRounds(['bare'], 2, measure);
  assert.deepEqual(calls, ['bare#1.1', 'bare#2.1', 'bare#2.2']);
  assert.equal(rounds.get('bare')?.[1]?.cpuMicrosPerRequest, 199);
});

test('runs on a steady core are measured once each', async () => {
  const { calls, measure } = scripted({
    a: [run('a', 100, [1000, 1040]), run('a', 101, [1050, 1020])],
    b: [run('b', 110, [1030, 1010]), run('b', 111, [1000, 1060])],
  });
  await interleavedRounds(['a', 'b'], 2, measure);
  assert.equal(calls.length, 4);
});

test('with one try (BENCH_TRIES=1) a round made on a slowed core is kept as it is, and named', async () => {
  const { calls, measure } = scripted({
    bare: [run('bare', 200, [1000, 1000]), run('bare', 320, [1000, 1300])],
  });
  const rounds = await interleavedRounds(['bare'], 2, measure, 1);
  assert.deepEqual(calls, ['bare#1.1', 'bare#2.1']);
  assert.equal(rounds.get('bare')?.[1]?.cpuMicrosPerRequest, 320);
  assert.match(coreSpeedNote(rounds.values()), /1 of 2 runs still were after their last try and are kept/);
});

test('BENCH_TRIES is 3 when unset and must be a whole number of 1 or more', () => {
  assert.equal(triesFromEnv(undefined), 3);
  assert.equal(triesFromEnv('1'), 1);
  for (const bad of ['0', '-1', '1.5', 'two'])
    assert.throws(() => triesFromEnv(bad), /BENCH_TRIES must be a whole number of 1 or more, got/);
});
