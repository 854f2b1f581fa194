import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';
import { WebSocket } from 'ws';
import { ADMIN_TOKEN, DEMO_TOKEN, eventually, startTestDesk, type TestDesk } from './test-desk.js';

let t: TestDesk;
before(async () => {
  t = await startTestDesk({ stream: { tickMs: 200, pingMs: 1_000 } });
});
after(async () => {
  await t?.close();
});

/** Sets a fault on the switchboard of the desk at `url`. */
const adminAt = (url: string, body: unknown): Promise<Response> =>
  fetch(`${url}/admin/faults`, {
    method: 'PUT',
    headers: { 'content-type': 'application/json', 'x-admin-token': ADMIN_TOKEN },
    body: JSON.stringify(body),
    signal: AbortSignal.timeout(10_000),
  });
const admin = (body: unknown): Promise<Response> => adminAt(t.url, body);

const errorCode = async (res: Response): Promise<string> =>
  ((await res.json()) as { error: { code: string } }).error.code;

async function timed(fn: () => Promise<Response>): Promise<{ res: Response; ms: number }> {
  const started = performance.now();
  const res = await fn();
  return { res, ms: performance.now() - started };
}

describe('a hanging provider', () => {
  test('leaves the overview fast and shows as down on /api/providers/health', async () => {
    const set = await admin({ kind: 'provider', provider: 'market-data', mode: 'hang', durationSec: 60 });
    assert.equal(set.status, 200);
    try {
      const down = await eventually(async () => {
        const res = await t.api('/api/providers/health');
        const body = (await res.json()) as { providers: { name: string; status: string }[] };
        return body.providers.find((p) => p.name === 'market-data')?.status === 'down';
      }, 10_000);
      assert.ok(down, 'market-data reported down within 10 s');

      for (let i = 0; i < 5; i++) {
        const { res, ms } = await timed(() => t.api('/api/bots/overview'));
        assert.equal(res.status, 200);
        assert.ok(ms < 500, `overview answered in ${ms.toFixed(0)} ms`);
      }
      const { res: health, ms: healthMs } = await timed(() => t.api('/api/providers/health'));
      assert.equal(health.status, 200);
      assert.ok(healthMs < 250, `providers health answered from cache in ${healthMs.toFixed(0)} ms`);

      // The bot page needs a quote: it answers within the quote's wait bound, with a warning.
      const { res: detail, ms: detailMs } = await timed(() => t.api('/api/bots/3'));
      assert.equal(detail.status, 200);
      assert.ok(detailMs < 1_000, `detail answered in ${detailMs.toFixed(0)} ms`);
      const body = (await detail.json()) as { warnings: { code: string; dependency: string }[] };
      assert.ok(body.warnings.some((w) => w.dependency === 'market-data'));
    } finally {
      await admin({ kind: 'clear' });
    }
  });
});

describe('the fault switchboard', () => {
  test('refuses callers without the admin token', async () => {
    const res = await fetch(`${t.url}/admin/faults`, { headers: { authorization: `Bearer ${DEMO_TOKEN}` } });
    assert.equal(res.status, 401);
    assert.equal(await errorCode(res), 'UNAUTHORIZED');
  });

  test('lists the faults, all off by default', async () => {
    const res = await fetch(`${t.url}/admin/faults`, { headers: { 'x-admin-token': ADMIN_TOKEN } });
    assert.equal(res.status, 200);
    const body = (await res.json()) as {
      slowQuery: unknown;
      cpu: unknown;
      heldLocks: unknown[];
      providers: Record<string, { mode: string }>;
    };
    assert.equal(body.slowQuery, null);
    assert.equal(body.cpu, null);
    assert.deepEqual(body.heldLocks, []);
    assert.equal(body.providers['market-data']?.mode, 'ok');
  });

  test('a slow query on the list is cut at the statement timeout, well inside the deadline', async () => {
    assert.equal((await admin({ kind: 'slowQuery', route: 'list', sleepMs: 20_000, durationSec: 30 })).status, 200);
    try {
      const { res, ms } = await timed(() => t.api('/api/bots'));
      assert.ok([503, 504].includes(res.status), `status ${res.status}`);
      assert.ok(['DEPENDENCY_TIMEOUT', 'REQUEST_TIMEOUT'].includes(await errorCode(res)));
      assert.ok(ms < 3_000 + 250, `answered in ${ms.toFixed(0)} ms`);
      assert.equal((await t.api('/api/bots/overview')).status, 200, 'other routes are not affected');
    } finally {
      await admin({ kind: 'clear' });
    }
    assert.equal((await t.api('/api/bots')).status, 200, 'clearing the fault restores the route');
  });

  test('a held row lock makes a stage change fail fast instead of queueing', async () => {
    assert.equal((await admin({ kind: 'heldLock', botId: '2', holdMs: 10_000 })).status, 200);
    try {
      const { res, ms } = await timed(() => t.api('/api/bots/2/stage', { method: 'PATCH', body: { stage: 'paused' } }));
      assert.ok([503, 504].includes(res.status), `status ${res.status}`);
      assert.ok(ms < 3_000, `answered in ${ms.toFixed(0)} ms, not after the 10 s hold`);
    } finally {
      await admin({ kind: 'clear' });
    }
    const res = await t.api('/api/bots/2/stage', { method: 'PATCH', body: { stage: 'paused' } });
    assert.equal(res.status, 200, 'the lock was released');
  });

  test('switches a fault off while the desk sheds every other request', async () => {
    // A desk of its own: its adaptive limit starts at 20 in flight, with no queue.
    const own = await startTestDesk();
    const put = (body: unknown): Promise<Response> => adminAt(own.url, body);
    try {
      // The demo user's token is cached after its first request: the flood spends no query on auth.
      assert.equal((await own.api('/api/bots/overview')).status, 200);
      assert.equal((await put({ kind: 'slowQuery', route: 'list', sleepMs: 20_000, durationSec: 30 })).status, 200);
      // Forty list requests hold the limit: each holds its slot for a second or more (its query cut
      // at the statement timeout, or its wait for a connection at the acquire bound).
      let shedSeen: () => void = () => {};
      const shed = new Promise<void>((resolve) => {
        shedSeen = resolve;
      });
      const flood = Array.from({ length: 40 }, async () => {
        const res = await own.api('/api/bots');
        const code = res.status === 200 ? 'OK' : await errorCode(res);
        if (code === 'OVERLOADED') shedSeen();
        return code;
      });
      // Until the first refusal, or the whole flood if none came (then the check below fails).
      await Promise.race([shed, Promise.all(flood)]);
      const [switchOff, other] = await Promise.all([put({ kind: 'clear' }), own.api('/api/bots/overview')]);
      assert.equal(other.status, 503, 'the limit was still full when the switch-off came');
      assert.equal(await errorCode(other), 'OVERLOADED');
      assert.equal(switchOff.status, 200, 'the switch-off is served, not shed');
      const codes = await Promise.all(flood);
      assert.ok(codes.includes('OVERLOADED'), codes.join(' '));
      assert.equal((await own.api('/api/bots')).status, 200, 'the list is fast again');
    } finally {
      await own.close();
    }
  });

  test('rejects out-of-range faults with 400', async () => {
    for (const body of [
      { kind: 'slowQuery', route: 'list', sleepMs: 10_000_000 },
      { kind: 'cpu', route: 'list', blockMs: 60_000 },
      { kind: 'heldLock', holdMs: 3_600_000 },
      { kind: 'provider', provider: 'market-data', mode: 'explode' },
      { kind: 'slowQuery', route: 'list', sleepMs: 100, durationSec: 100_000 },
    ]) {
      const res = await admin(body);
      assert.equal(res.status, 400, JSON.stringify(body));
      assert.equal(await errorCode(res), 'BAD_REQUEST');
    }
  });
});

describe('GET /api/stream', () => {
  test('sends a hello and then ticks of the user’s running bots', async () => {
    const ws = new WebSocket(`${t.url.replace('http', 'ws')}/api/stream?token=${DEMO_TOKEN}`);
    const messages: { type: string; bots?: unknown[] }[] = [];
    ws.on('message', (data) => messages.push(JSON.parse(String(data))));
    try {
      const got = await eventually(async () => messages.some((m) => m.type === 'tick'), 5_000, 50);
      assert.ok(got, 'a tick arrived');
      assert.equal(messages[0]?.type, 'hello');
      const tick = messages.find((m) => m.type === 'tick');
      assert.ok(Array.isArray(tick?.bots) && tick.bots.length > 0);
    } finally {
      ws.terminate();
    }
  });

  test('refuses an upgrade without a valid token with 401', async () => {
    const ws = new WebSocket(`${t.url.replace('http', 'ws')}/api/stream?token=wrong-token-wrong-token`);
    const status = await new Promise<number>((resolve) => {
      ws.on('unexpected-response', (_req, res) => resolve(res.statusCode ?? 0));
      ws.on('open', () => resolve(101));
      ws.on('error', () => resolve(-1));
    });
    ws.terminate();
    assert.equal(status, 401);
  });
});

describe('shutdown', () => {
  test('closing the desk closes open streams with 1001 going away', async () => {
    const ws = new WebSocket(`${t.url.replace('http', 'ws')}/api/stream?token=${DEMO_TOKEN}`);
    await new Promise((resolve, reject) => {
      ws.on('open', resolve);
      ws.on('error', reject);
    });
    const closed = new Promise<number>((resolve) => ws.on('close', (code) => resolve(code)));
    const started = performance.now();
    await t.desk.close();
    assert.equal(await closed, 1001);
    assert.ok(performance.now() - started < 5_000);
  });
});
