// Benchmark server for the edge suite. BENCH_SCENARIO picks what wraps the same /hello route:
// bare Fastify, Fastify's own request logging, the hangproof plugin (silent, with its log line, or
// refusing every request), and each other adapter against its bare framework (express-*,
// hono-*, http-*); `http-refusal` is node:http alone sending the bytes of a refusal. Log lines go
// to /dev/null: through pino's own destination, or, for the `-buffered` pair (Fastify's logging
// and hangproof's line), through hangproof's bufferedLogger.
import { createServer } from 'node:http';
import Fastify from 'fastify';
import { bufferedLogger, hangproof, serverOptions } from 'hangproof/fastify';
import { pino } from 'pino';
import { serveBenchProtocol } from './protocol.mjs';

const scenario = process.env.BENCH_SCENARIO ?? 'bare';
const devNull = () => pino.destination({ dest: '/dev/null', sync: false });
const HELLO = { hello: 'world' };
const [framework, variant] =
  scenario.includes('-') && !scenario.startsWith('hangproof') && !scenario.startsWith('fastify-logging')
    ? scenario.split('-')
    : ['fastify', scenario];

/** Starts a node:http server for `listener` and returns its /hello URL. */
async function listen(listener) {
  const server = createServer(listener);
  await new Promise((resolve) => server.listen(0, '127.0.0.1', resolve));
  return `http://127.0.0.1:${server.address().port}/hello`;
}

let url;
if (framework === 'express') {
  const { default: express } = await import('express');
  const app = express();
  if (variant === 'hangproof') {
    const { hangproofExpress } = await import('hangproof/express');
    const hp = hangproofExpress({ logger: pino({ level: 'info' }, devNull()), deadlineMs: 10_000 });
    app.use(hp.middleware);
  }
  app.get('/hello', (_req, res) => res.json(HELLO));
  url = await listen(app);
} else if (framework === 'hono') {
  const { Hono } = await import('hono');
  const { getRequestListener } = await import('@hono/node-server');
  const app = new Hono();
  if (variant === 'hangproof') {
    const { hangproofHono } = await import('hangproof/hono');
    const hp = hangproofHono({ logger: pino({ level: 'info' }, devNull()), deadlineMs: 10_000 });
    app.use('*', hp.middleware);
  }
  app.get('/hello', (c) => c.json(HELLO));
  url = await listen(getRequestListener(app.fetch));
} else if (framework === 'http') {
  const hello = (_req, res) => {
    res.setHeader('content-type', 'application/json');
    res.end(JSON.stringify(HELLO));
  };
  if (variant === 'hangproof') {
    const { withHangproof } = await import('hangproof/http');
    url = await listen(
      withHangproof(hello, { logger: pino({ level: 'info' }, devNull()), deadlineMs: 10_000, route: () => '/hello' }),
    );
  } else if (variant === 'refusal') {
    // node:http alone answering every request with the bytes of hangproof's refusal (status,
    // headers, error body with a fresh 36-character id, observe's default Retry-After): what Node
    // itself costs to send that answer, with no decision, no front door and no framework. The
    // floor of a refusal's cost, so its own work is the least it can be: the body is built once
    // around the id, and every id has the same length, so every header but the id is fixed too.
    const { HangproofError, errorBody } = await import('hangproof');
    const overloaded = new HangproofError('OVERLOADED', { retryAfterSec: 2, details: { reason: 'concurrency' } });
    const idPrefix = '00000000-0000-8000-8000-';
    const sampleId = `${idPrefix}${'0'.repeat(12)}`;
    const sample = JSON.stringify(errorBody(overloaded, sampleId));
    const [before, after] = sample.split(sampleId);
    const contentLength = String(Buffer.byteLength(sample));
    let next = 0;
    url = await listen((_req, res) => {
      const requestId = idPrefix + (++next).toString(16).padStart(12, '0');
      res.writeHead(503, [
        'x-request-id',
        requestId,
        'content-type',
        'application/json; charset=utf-8',
        'content-length',
        contentLength,
        'retry-after',
        '2',
      ]);
      res.end(before + requestId + after);
    });
  } else {
    url = await listen(hello);
  }
} else {
  let app;
  if (variant === 'bare') app = Fastify();
  else if (variant === 'fastify-logging') app = Fastify({ loggerInstance: pino({ level: 'info' }, devNull()) });
  else if (variant === 'fastify-logging-buffered')
    app = Fastify({ loggerInstance: bufferedLogger({ dest: '/dev/null' }) });
  else {
    app = Fastify(serverOptions());
    const logger =
      variant === 'hangproof-silent'
        ? pino({ level: 'silent' })
        : variant === 'hangproof-buffered'
          ? bufferedLogger({ dest: '/dev/null' })
          : pino({ level: 'info' }, devNull());
    // The refusing scenario measures what one refusal costs: unpaced, every request is refused at once.
    const pacing = variant === 'hangproof-refusing' ? { refusalPauseMs: 0 } : {};
    await app.register(hangproof, { logger, deadlineMs: 10_000, ...pacing });
    if (variant === 'hangproof-refusing') {
      // Every request is refused 503 OVERLOADED: observe's limit of one slot is taken here for
      // good, and nothing may queue. What a refusal costs is then all the server does.
      const { observe } = await import('hangproof/observe');
      await app.register(observe, { maxInFlight: 1, maxQueued: 0, logger: pino({ level: 'info' }, devNull()) });
    }
  }
  app.get('/hello', async () => HELLO);
  if (variant === 'hangproof-refusing') {
    await app.ready();
    app.hangproof.lifecycle.admit('/hello');
  }
  url = `${await app.listen({ port: 0, host: '127.0.0.1' })}/hello`;
}
serveBenchProtocol(url);
