import { createServer } from 'node:http';
import type { AddressInfo } from 'node:net';
import { createDependencies } from 'hangproof/deps';
import { Pool } from 'undici';
import { environmentLine } from '../lib/report.ts';
import type { SuiteSettings } from '../run.ts';

const median = (xs: readonly number[]): number => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)] ?? 0;

/**
 * Deps suite: the cost of a call through hangproof/deps (budget, breaker, bulkhead, retry
 * policy, span, error mapping) against the same GET with plain undici, interleaved call by call
 * in one process so machine noise hits both alike; and the latency of a call refused by an open
 * breaker.
 */
export async function depsSuite(s: SuiteSettings): Promise<{ markdown: string; raw: unknown }> {
  const server = createServer((req, res) => {
    if (req.url === '/fail') res.writeHead(503).end();
    else res.writeHead(200, { 'content-type': 'application/json' }).end('{"ok":true}');
  });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  const url = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
  const pool = new Pool(url, { connections: 10 });
  const deps = createDependencies();
  const market = deps.http('bench-market', { baseUrl: url, timeoutMs: 2_000 });
  const failing = deps.http('bench-failing', { baseUrl: url, timeoutMs: 2_000, retry: { maxAttempts: 1 } });
  try {
    const calls = Math.max(2_000, s.durationSec * 500);
    const raw = async (): Promise<void> => {
      const res = await pool.request({ path: '/ok', method: 'GET' });
      JSON.parse(await res.body.text());
    };
    const guarded = async (): Promise<void> => {
      (await market.get('/ok')).json();
    };
    for (let i = 0; i < 300; i++) {
      await raw();
      await guarded();
    }
    const rawMs: number[] = [];
    const guardedMs: number[] = [];
    for (let i = 0; i < calls; i++) {
      let t = performance.now();
      await raw();
      rawMs.push(performance.now() - t);
      t = performance.now();
      await guarded();
      guardedMs.push(performance.now() - t);
    }
    // Open the breaker, then time refusals.
    for (let i = 0; i < 200; i++) await failing.get('/fail').catch(() => {});
    const openMs: number[] = [];
    for (let i = 0; i < 2_000; i++) {
      const t = performance.now();
      await failing.get('/fail').catch(() => {});
      openMs.push(performance.now() - t);
    }
    const r = {
      calls,
      rawMedianMs: median(rawMs),
      guardedMedianMs: median(guardedMs),
      openBreakerMedianMs: median(openMs),
    };
    const markdown = [
      `Measured ${environmentLine()}; ${calls} interleaved calls each, in one process.`,
      '',
      '| call | median latency (ms) |',
      '|---|---|',
      `| plain undici GET | ${r.rawMedianMs.toFixed(3)} |`,
      `| through hangproof/deps | ${r.guardedMedianMs.toFixed(3)} |`,
      `| refused by an open breaker | ${r.openBreakerMedianMs.toFixed(4)} |`,
      '',
      `- Cost of the policies per call: **${((r.guardedMedianMs - r.rawMedianMs) * 1000).toFixed(0)} µs** (median difference).`,
    ].join('\n');
    return { markdown, raw: r };
  } finally {
    await deps.close();
    await pool.close();
    server.close();
  }
}
