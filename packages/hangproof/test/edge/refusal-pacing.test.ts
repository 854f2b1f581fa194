/**
 * Refusal pacing: a client that asks again on a connection just refused gets its next 503 after
 * the pause, a first refusal goes out at once, and draining answers every paused refusal at once.
 */
import assert from 'node:assert/strict';
import { once } from 'node:events';
import { Agent, createServer, request } from 'node:http';
import type { AddressInfo } from 'node:net';
import { test } from 'node:test';
import { type AdmissionControl, HangproofError } from 'hangproof';
import { withHangproof } from 'hangproof/http';
import { pino } from 'pino';
import { assertTookLessThan, measuringFields, type Took } from '../support/loop-stall.ts';

/** Long enough that an answer "at once" (under PAUSE_MS / 2) has room on a loaded machine. */
const PAUSE_MS = 600;
const OVERLOADED = new HangproofError('OVERLOADED', { retryAfterSec: 1 });

/** The service's own admission policy: refuse everything while `full`. */
function policy(): AdmissionControl & { full: boolean } {
  return {
    full: true,
    admit(): HangproofError | undefined {
      return this.full ? OVERLOADED : undefined;
    },
    peek(): HangproofError | undefined {
      return this.full ? OVERLOADED : undefined;
    },
    onAdmit() {},
    wait: async () => undefined,
    release() {},
  };
}

async function start(admission: AdmissionControl) {
  const listener = withHangproof((_req, res) => res.end('{"ok":true}'), {
    admission,
    refusalPauseMs: PAUSE_MS,
    logger: pino({ level: 'silent' }),
  });
  const server = createServer(listener);
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const port = (server.address() as AddressInfo).port;
  return { server, port, edge: listener.edge };
}

/** GET / on `agent`; resolves with the status, how long the answer took and the loop stall meanwhile, in ms. */
function get(port: number, agent: Agent): Promise<Took & { status: number; code: string }> {
  return measuringFields(
    () =>
      new Promise<{ status: number; code: string }>((resolve, reject) => {
        const req = request({ host: '127.0.0.1', port, path: '/', agent }, (res) => {
          let body = '';
          res.setEncoding('utf8');
          res.on('data', (c: string) => {
            body += c;
          });
          res.on('end', () => {
            const code = res.statusCode === 503 ? (JSON.parse(body) as { error: { code: string } }).error.code : '';
            resolve({ status: res.statusCode ?? 0, code });
          });
        });
        req.setTimeout(5_000, () => req.destroy(new Error('no answer within 5 s')));
        req.on('error', reject);
        req.end();
      }),
  );
}

test('a connection refused a moment ago gets its next refusal after the pause; a new connection at once', async () => {
  const { server, port } = await start(policy());
  const agent = new Agent({ keepAlive: true, maxSockets: 1 });
  const other = new Agent({ keepAlive: true, maxSockets: 1 });
  try {
    const first = await get(port, agent);
    assert.deepEqual([first.status, first.code], [503, 'OVERLOADED']);
    assertTookLessThan(first, PAUSE_MS / 2, 'the first refusal came at once');
    const again = await get(port, agent);
    assert.deepEqual([again.status, again.code], [503, 'OVERLOADED']);
    assert.ok(again.ms >= PAUSE_MS - 20, `the repeated refusal came after ${Math.round(again.ms)} ms, not the pause`);
    assertTookLessThan(again, PAUSE_MS + 250, 'the repeated refusal came after the pause, not later');
    const third = await get(port, agent);
    assert.ok(third.ms >= PAUSE_MS - 20, 'a client that keeps asking keeps being paced');
    const fresh = await get(port, other);
    assert.equal(fresh.status, 503);
    assertTookLessThan(fresh, PAUSE_MS / 2, "another connection's first refusal came at once");
  } finally {
    agent.destroy();
    other.destroy();
    server.closeAllConnections();
    await new Promise<void>((resolve) => server.close(() => resolve()));
  }
});

test('once admitted again, the connection is served at once', async () => {
  const admission = policy();
  const { server, port } = await start(admission);
  const agent = new Agent({ keepAlive: true, maxSockets: 1 });
  try {
    assert.equal((await get(port, agent)).status, 503);
    admission.full = false;
    const served = await get(port, agent);
    assert.equal(served.status, 200);
    assertTookLessThan(served, PAUSE_MS / 2, 'a served request came at once');
  } finally {
    agent.destroy();
    server.closeAllConnections();
    await new Promise<void>((resolve) => server.close(() => resolve()));
  }
});

test('draining answers the paused refusals at once', async () => {
  const { server, port, edge } = await start(policy());
  const agent = new Agent({ keepAlive: true, maxSockets: 1 });
  try {
    assert.equal((await get(port, agent)).status, 503);
    // The server's 'request' listeners run in order: once ours runs, hangproof's has paused it.
    const received = once(server, 'request');
    const paused = get(port, agent);
    await received;
    edge.beginShutdown();
    const answered = await paused;
    assert.equal(answered.status, 503);
    assertTookLessThan(answered, PAUSE_MS / 2, 'a paused refusal was answered at once by the drain');
  } finally {
    agent.destroy();
    server.closeAllConnections();
    await new Promise<void>((resolve) => server.close(() => resolve()));
  }
});
