import assert from 'node:assert/strict';
import { randomUUID } from 'node:crypto';
import { after, before, describe, test } from 'node:test';
import pg from 'pg';
import { ADMIN_TOKEN, startTestDesk, type TestDesk } from './test-desk.js';

let t: TestDesk;
before(async () => {
  t = await startTestDesk();
});
after(async () => {
  await t?.close();
});

interface Bot {
  id: string;
  user_id: string;
  stage: string;
  name: string;
  updated_at: string;
}

const json = async <T>(res: Response): Promise<T> => (await res.json()) as T;
const errorCode = async (res: Response): Promise<string> => (await json<{ error: { code: string } }>(res)).error.code;

describe('GET /api/bots', () => {
  test('pages through the caller’s bots with a keyset cursor, newest change first, without overlap', async () => {
    const seen: Bot[] = [];
    let cursor: string | null = null;
    for (let i = 0; i < 10; i++) {
      const res = await t.api(`/api/bots?limit=7${cursor === null ? '' : `&cursor=${cursor}`}`);
      assert.equal(res.status, 200);
      const page = await json<{ items: Bot[]; nextCursor: string | null }>(res);
      seen.push(...page.items);
      cursor = page.nextCursor;
      if (cursor === null) break;
    }
    assert.equal(seen.length, 20, 'the small seed gives the demo user 20 bots');
    assert.equal(new Set(seen.map((b) => b.id)).size, 20, 'no bot appears twice');
    assert.ok(seen.every((b) => b.user_id === '1'));
    const times = seen.map((b) => Date.parse(b.updated_at));
    assert.deepEqual(
      times,
      [...times].sort((a, b) => b - a),
    );
  });

  test('filters by stage', async () => {
    const res = await t.api('/api/bots?stage=live');
    const page = await json<{ items: Bot[] }>(res);
    assert.ok(page.items.length > 0);
    assert.ok(page.items.every((b) => b.stage === 'live'));
  });

  test('the admin token may list another user’s bots; a trader may not', async () => {
    const denied = await t.api('/api/bots?user_id=2');
    assert.equal(denied.status, 403);
    assert.equal(await errorCode(denied), 'FORBIDDEN');
    const allowed = await t.api('/api/bots?user_id=2', { headers: { 'x-admin-token': ADMIN_TOKEN } });
    assert.equal(allowed.status, 200);
    assert.ok((await json<{ items: Bot[] }>(allowed)).items.every((b) => b.user_id === '2'));
  });

  test('a malformed cursor, an unknown stage or an oversized limit is a 400 in the error shape', async () => {
    for (const q of [
      'cursor=not-a-cursor!',
      'cursor=eyJ2IjoxfQ',
      'stage=moon',
      'limit=100000',
      'limit=0',
      'sort=name',
    ]) {
      const res = await t.api(`/api/bots?${q}`);
      assert.equal(res.status, 400, q);
      const body = await json<{ error: { code: string; requestId: string } }>(res);
      assert.equal(body.error.code, 'BAD_REQUEST', q);
      assert.equal(typeof body.error.requestId, 'string');
    }
  });

  test('a missing or wrong bearer token is a 401 UNAUTHORIZED', async () => {
    const missing = await fetch(`${t.url}/api/bots`);
    assert.equal(missing.status, 401);
    assert.equal(await errorCode(missing), 'UNAUTHORIZED');
    const wrong = await t.api('/api/bots', { headers: { authorization: 'Bearer not-the-right-token-at-all' } });
    assert.equal(wrong.status, 401);
    assert.equal(await errorCode(wrong), 'UNAUTHORIZED');
  });
});

describe('GET /api/bots/:id', () => {
  test('returns the bot with its primary runner, recent backtests and audits, and a quote', async () => {
    const first = (await json<{ items: Bot[] }>(await t.api('/api/bots?limit=1'))).items[0] as Bot;
    const res = await t.api(`/api/bots/${first.id}`);
    assert.equal(res.status, 200);
    const bot = await json<Record<string, unknown>>(res);
    assert.equal(bot.id, first.id);
    assert.ok(Array.isArray(bot.recent_backtests) && bot.recent_backtests.length > 0);
    assert.ok(Array.isArray(bot.recent_audits) && bot.recent_audits.length > 0);
    assert.equal(typeof bot.primary_instance, 'object');
    assert.ok(Array.isArray(bot.warnings));
  });

  test('another user’s bot and an unknown id are 404; a non-numeric id is 400', async () => {
    assert.equal((await t.api('/api/bots/25')).status, 404, 'bot 25 belongs to user 2');
    assert.equal(await errorCode(await t.api('/api/bots/999999')), 'NOT_FOUND');
    assert.equal((await t.api('/api/bots/abc')).status, 400);
  });
});

describe('summary pages', () => {
  test('the overview has counts in every stage, best performers and recent audits', async () => {
    const res = await t.api('/api/bots/overview');
    assert.equal(res.status, 200);
    const o = await json<{ countsByStage: Record<string, number>; bestPerformers: unknown[]; recentAudits: unknown[] }>(
      res,
    );
    for (const stage of ['draft', 'backtest', 'paper', 'live', 'paused', 'retired']) {
      assert.ok((o.countsByStage[stage] ?? 0) > 0, `the demo user owns a ${stage} bot`);
    }
    assert.equal(o.bestPerformers.length, 5);
    assert.ok(o.recentAudits.length > 0);
  });

  test('the metrics summary has the caller’s figures, global figures, strategies and a leaderboard', async () => {
    const res = await t.api('/api/metrics/summary');
    assert.equal(res.status, 200);
    const m = await json<{ mine: { performance: { bots: number } }; strategies: unknown[]; leaderboard: unknown[] }>(
      res,
    );
    assert.equal(m.mine.performance.bots, 20);
    assert.ok(m.strategies.length > 0);
    assert.equal(m.leaderboard.length, 10);
  });

  test('the autonomy status lists every loop, even before it ran', async () => {
    const res = await t.api('/api/autonomy/status');
    assert.equal(res.status, 200);
    const s = await json<{ loops: { loop: string; status: string }[] }>(res);
    assert.deepEqual(
      s.loops.map((l) => l.loop),
      ['metrics-aggregation', 'equity-curves', 'strategy-scoring', 'tournament-ranking', 'provider-health'],
    );
  });
});

describe('POST /api/bots', () => {
  const newBot = { name: 'test-bot', strategy: 'momentum', symbol: 'ES' };

  test('creates a bot once per Idempotency-Key: a retry returns the same bot with 200', async () => {
    const key = randomUUID();
    const created = await t.api('/api/bots', { method: 'POST', body: newBot, headers: { 'idempotency-key': key } });
    assert.equal(created.status, 201);
    const bot = await json<Bot>(created);
    assert.equal(bot.stage, 'draft');
    const again = await t.api('/api/bots', { method: 'POST', body: newBot, headers: { 'idempotency-key': key } });
    assert.equal(again.status, 200);
    assert.equal(again.headers.get('idempotent-replayed'), 'true');
    assert.equal((await json<Bot>(again)).id, bot.id);
  });

  test('20 concurrent retries with one Idempotency-Key make exactly one bot', async () => {
    const key = randomUUID();
    const responses = await Promise.all(
      Array.from({ length: 20 }, () =>
        t.api('/api/bots', {
          method: 'POST',
          body: { ...newBot, name: 'concurrent' },
          headers: { 'idempotency-key': key },
        }),
      ),
    );
    const statuses = responses.map((r) => r.status).sort();
    const ids = new Set(await Promise.all(responses.map(async (r) => (await json<Bot>(r)).id)));
    assert.equal(statuses.filter((s) => s === 201).length, 1, `statuses: ${statuses.join(',')}`);
    assert.equal(statuses.filter((s) => s === 200).length, 19, `statuses: ${statuses.join(',')}`);
    assert.equal(ids.size, 1);
    const client = new pg.Client({ connectionString: t.database.url });
    await client.connect();
    try {
      const { rows } = await client.query('SELECT count(*)::int AS n FROM bots WHERE idempotency_key = $1', [key]);
      assert.equal(rows[0].n, 1);
    } finally {
      await client.end();
    }
  });

  test('reusing a key with a different body is 409 CONFLICT', async () => {
    const key = randomUUID();
    await t.api('/api/bots', { method: 'POST', body: newBot, headers: { 'idempotency-key': key } });
    const res = await t.api('/api/bots', {
      method: 'POST',
      body: { ...newBot, name: 'other' },
      headers: { 'idempotency-key': key },
    });
    assert.equal(res.status, 409);
    assert.equal(await errorCode(res), 'CONFLICT');
  });

  test('a missing key, an invalid body or an unknown field is 400; an oversized body is 413', async () => {
    const noKey = await t.api('/api/bots', { method: 'POST', body: newBot });
    assert.equal(noKey.status, 400);
    assert.equal(await errorCode(noKey), 'BAD_REQUEST');
    for (const body of [{ ...newBot, strategy: 'martingale' }, { ...newBot, extra: 1 }, { name: 'x' }, '{not json']) {
      const res = await t.api('/api/bots', { method: 'POST', body, headers: { 'idempotency-key': randomUUID() } });
      assert.equal(res.status, 400, JSON.stringify(body));
      assert.equal(await errorCode(res), 'BAD_REQUEST');
    }
    const big = await t.api('/api/bots', {
      method: 'POST',
      body: { ...newBot, name: 'x'.repeat(100_000) },
      headers: { 'idempotency-key': randomUUID() },
    });
    assert.equal(big.status, 413);
    assert.equal(await errorCode(big), 'PAYLOAD_TOO_LARGE');
  });
});

describe('PATCH /api/bots/:id/stage', () => {
  test('moves a bot to another stage and keeps the overview counts in step', async () => {
    const draft = (await json<{ items: Bot[] }>(await t.api('/api/bots?stage=draft&limit=1'))).items[0] as Bot;
    const before = (await json<{ countsByStage: Record<string, number> }>(await t.api('/api/bots/overview')))
      .countsByStage;
    const res = await t.api(`/api/bots/${draft.id}/stage`, { method: 'PATCH', body: { stage: 'backtest' } });
    assert.equal(res.status, 200);
    assert.equal((await json<Bot>(res)).stage, 'backtest');
    const afterCounts = (await json<{ countsByStage: Record<string, number> }>(await t.api('/api/bots/overview')))
      .countsByStage;
    assert.equal(afterCounts.draft, (before.draft ?? 0) - 1);
    assert.equal(afterCounts.backtest, (before.backtest ?? 0) + 1);
  });

  test('an unknown stage is 400 and another user’s bot is 404', async () => {
    assert.equal((await t.api('/api/bots/1/stage', { method: 'PATCH', body: { stage: 'moon' } })).status, 400);
    assert.equal((await t.api('/api/bots/25/stage', { method: 'PATCH', body: { stage: 'live' } })).status, 404);
  });
});

describe('the dashboard', () => {
  test('is served at / with its script and a link to the status page, without a build step', async () => {
    const page = await fetch(`${t.url}/`);
    assert.equal(page.status, 200);
    assert.match(page.headers.get('content-type') ?? '', /text\/html/);
    const html = await page.text();
    assert.match(html, /href="\/status"/);
    assert.match(html, /src="\/app\.js"/);
    const script = await fetch(`${t.url}/app.js`);
    assert.equal(script.status, 200);
    assert.match(await script.text(), /AbortController/);
  });
});
