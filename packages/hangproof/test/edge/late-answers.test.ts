/**
 * After the edge answered for a request (the deadline's 504), the handler runs on and answers
 * too: from a timer, where nothing catches a throw. Each node adapter must drop that late answer
 * without ending the process or the keep-alive connection; and a framework's own HTTP exception
 * keeps its status.
 */
import assert from 'node:assert/strict';
import { createServer, type Server, type ServerResponse } from 'node:http';
import { type AddressInfo, connect } from 'node:net';
import { describe, test } from 'node:test';
import { serve } from '@hono/node-server';
import express from 'express';
import express4 from 'express4';
import { hangproofExpress } from 'hangproof/express';
import { hangproofHono } from 'hangproof/hono';
import { withHangproof } from 'hangproof/http';
import { Hono } from 'hono';
import { HTTPException } from 'hono/http-exception';
import { pino } from 'pino';
import { type Latch, latch, waitUntil } from '../support/latch.ts';
import { assertTookLessThan, measuringLoopStall } from '../support/loop-stall.ts';

const DEADLINE_MS = 300;
const LATE_MS = DEADLINE_MS + 150;
const quiet = { deadlineMs: DEADLINE_MS, logger: pino({ level: 'silent' }) };

interface Running {
  readonly url: string;
  close(): Promise<void>;
}

async function listen(server: Server): Promise<Running> {
  await new Promise<void>((resolve) => (server.listening ? resolve() : server.listen(0, '127.0.0.1', resolve)));
  return {
    url: `http://127.0.0.1:${(server.address() as AddressInfo).port}`,
    close: () =>
      new Promise<void>((resolve) => {
        server.closeAllConnections();
        server.close(() => resolve());
      }),
  };
}

/** Each adapter with a /late route that answers from a timer after the deadline, then opens `wrote`. */
const adapters: readonly { name: string; start(wrote: Latch): Promise<Running> }[] = [
  ...(
    [
      ['express 5', express],
      ['express 4', express4],
    ] as const
  ).map(([name, factory]) => ({
    name,
    async start(wrote: Latch): Promise<Running> {
      const hp = hangproofExpress(quiet);
      const app = factory();
      app.use(hp.middleware);
      app.get('/late', (_req: unknown, res: { json(v: unknown): void }) => {
        setTimeout(() => {
          res.json({ late: true });
          wrote.open();
        }, LATE_MS);
      });
      app.get('/late-error', (_req: unknown, _res: unknown, next: (e: unknown) => void) => {
        setTimeout(() => {
          next(new Error('late failure'));
          wrote.open();
        }, LATE_MS);
      });
      app.get('/ok', (_req: unknown, res: { json(v: unknown): void }) => res.json({ ok: true }));
      app.use(hp.errorHandler);
      return listen(createServer(app));
    },
  })),
  {
    name: 'node:http',
    async start(wrote: Latch): Promise<Running> {
      const listener = withHangproof((req, res: ServerResponse) => {
        if (req.url === '/ok') return void res.end('{"ok":true}');
        setTimeout(() => {
          res.setHeader('content-type', 'application/json');
          res.writeHead(200);
          res.write('{"late":');
          res.end('true}');
          wrote.open();
        }, LATE_MS);
      }, quiet);
      return listen(createServer(listener));
    },
  },
  {
    name: 'hono',
    async start(wrote: Latch): Promise<Running> {
      const hp = hangproofHono(quiet);
      const app = new Hono();
      app.use('*', hp.middleware);
      app.get('/late', async (c) => {
        await new Promise((resolve) => setTimeout(resolve, LATE_MS));
        setImmediate(() => wrote.open());
        return c.json({ late: true });
      });
      app.get('/ok', (c) => c.json({ ok: true }));
      app.onError(hp.onError());
      return listen(serve({ fetch: app.fetch, port: 0, hostname: '127.0.0.1' }) as Server);
    },
  },
];

for (const adapter of adapters) {
  describe(`${adapter.name}: a late answer after the 504`, () => {
    for (const path of adapter.name.startsWith('express') ? ['/late', '/late-error'] : ['/late']) {
      test(`${path}: the client has its 504 at the deadline; the late answer is dropped and the service serves on`, async () => {
        const wrote = latch();
        const service = await adapter.start(wrote);
        try {
          // The timed request goes on an open connection to a warm service: what is measured is
          // the deadline, not the connection's setup or the framework's first request.
          const warm = await fetch(`${service.url}/ok`);
          await warm.arrayBuffer();
          assert.equal(warm.status, 200);
          const took = await measuringLoopStall(() => fetch(`${service.url}${path}`));
          const res = took.value;
          assert.equal(res.status, 504);
          assert.equal(((await res.json()) as { error: { code: string } }).error.code, 'REQUEST_TIMEOUT');
          assertTookLessThan(took, DEADLINE_MS + 250, 'the 504 came by the deadline');
          await wrote.opened;
          // Still alive, on the same keep-alive connection pool: the late answer broke nothing.
          const next = await fetch(`${service.url}/ok`);
          assert.equal(next.status, 200);
        } finally {
          await service.close();
        }
      });
    }
  });
}

describe("a framework's own HTTP exception keeps its status", () => {
  test("Hono's HTTPException(401) is 401 UNAUTHORIZED, not a 500", async () => {
    const hp = hangproofHono(quiet);
    const app = new Hono();
    app.use('*', hp.middleware);
    app.get('/private', () => {
      throw new HTTPException(401, { message: 'sign in first' });
    });
    app.onError(hp.onError());
    const service = await listen(serve({ fetch: app.fetch, port: 0, hostname: '127.0.0.1' }) as Server);
    try {
      const res = await fetch(`${service.url}/private`);
      assert.equal(res.status, 401);
      assert.equal(((await res.json()) as { error: { code: string } }).error.code, 'UNAUTHORIZED');
    } finally {
      await service.close();
    }
  });

  test("an HTTP client's error for an upstream's 404 is not the caller's 404", async () => {
    const listener = withHangproof(() => {
      throw Object.assign(new Error('Request failed with status code 404'), { status: 404 });
    }, quiet);
    const service = await listen(createServer(listener));
    try {
      const res = await fetch(`${service.url}/quote`);
      assert.equal(res.status, 500);
      assert.equal(((await res.json()) as { error: { code: string } }).error.code, 'INTERNAL');
    } finally {
      await service.close();
    }
  });
});

describe('a client that leaves before a probe is answered', () => {
  test("Hono's middleware settles when the client leaves before /readyz answers", async () => {
    const hp = hangproofHono(quiet);
    const checkRunning = latch();
    const checkMayEnd = latch();
    hp.edge.addReadinessCheck('slow', async () => {
      checkRunning.open();
      await checkMayEnd.opened;
    });
    let settled = false;
    const app = new Hono();
    app.use('*', (c, next) =>
      hp.middleware(c, next).finally(() => {
        settled = true;
      }),
    );
    const service = await listen(serve({ fetch: app.fetch, port: 0, hostname: '127.0.0.1' }) as Server);
    try {
      const { port } = new URL(service.url);
      const socket = connect(Number(port), '127.0.0.1');
      socket.on('error', () => {});
      socket.write('GET /readyz HTTP/1.1\r\nHost: localhost\r\n\r\n');
      await checkRunning.opened;
      socket.destroy();
      // It used to wait for a 'finish' that never comes: the request's promise never settled.
      await waitUntil("the middleware's promise to settle", () => settled, 5_000);
    } finally {
      checkMayEnd.open();
      await service.close();
    }
  });
});
