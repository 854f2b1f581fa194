// Benchmark server for the edge suite. BENCH_SCENARIO picks what wraps the same /hello route:
// bare Fastify, Fastify's own request logging, the hangproof plugin (silent, with its log line, or
// refusing every request), and each other adapter against its bare framework (express-*,
// hono-*, http-*); `http-refusal` is node:http alone sending the bytes of a refusal, and
// `net-refusal` a bare TCP server writing those bytes for each request it sees. Log lines go
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

/**
 * The bytes of a refusal as hangproof sends them, with a fresh 36-character id per call (every id
 * has the same length, so only the id changes): its headers, body, and the body's length.
 */
async function refusalAnswer() {
  const { HangproofError, errorBody } = await import('hangproof');
  const overloaded = new HangproofError('OVERLOADED', { retryAfterSec: 2, details: { reason: 'concurrency' } });
  const idPrefix = '00000000-0000-8000-8000-';
  const sampleId = `${idPrefix}${'0'.repeat(12)}`;
  const sample = JSON.stringify(errorBody(overloaded, sampleId));
  const [before, after] = sample.split(sampleId);
  let next = 0;
  return {
    contentLength: String(Buffer.byteLength(sample)),
    nextId: () => idPrefix + (++next).toString(16).padStart(12, '0'),
    body: (requestId) => before + requestId + after,
  };
}

let url;
if (framework === 'net') {
  // The floor under the floor: no HTTP parser, no request or response objects, no framework. A
  // TCP server that finds each request's end ("\r\n\r\n"; the load sends GETs without a body)
  // and writes the whole answer node:http would send for a refusal, status line to body, as one
  // string. What this machine's loopback socket and Node's event loop cost a request at least.
  const { createServer: createTcpServer } = await import('node:net');
  const answer = await refusalAnswer();
  const head = `HTTP/1.1 503 Service Unavailable\r\nx-request-id: `;
  const rest = `\r\ncontent-type: application/json; charset=utf-8\r\ncontent-length: ${answer.contentLength}\r\nretry-after: 2\r\nDate: ${new Date().toUTCString()}\r\nConnection: keep-alive\r\nKeep-Alive: timeout=5\r\n\r\n`;
  const server = createTcpServer((socket) => {
    // The last 3 characters of what came before: a request's end split over two reads is still found.
    let carry = '';
    socket.on('data', (chunk) => {
      const text = carry + chunk.toString('latin1');
      for (let at = text.indexOf('\r\n\r\n'); at !== -1; at = text.indexOf('\r\n\r\n', at + 4)) {
        const requestId = answer.nextId();
        socket.write(head + requestId + rest + answer.body(requestId));
      }
      carry = text.slice(-3);
    });
    socket.on('error', () => {});
  });
  await new Promise((resolve) => server.listen(0, '127.0.0.1', resolve));
  url = `http://127.0.0.1:${server.address().port}/hello`;
} else if (framework === 'express') {
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
    // headers, error body with a fresh id, observe's default Retry-After): what Node itself costs
    // to send that answer, with no decision, no front door and no framework. The floor of a
    // refusal's cost, so its own work is the least it can be: the body is built once around the
    // id, and every header but the id is fixed.
    const answer = await refusalAnswer();
    url = await listen((_req, res) => {
      const requestId = answer.nextId();
      res.writeHead(503, [
        'x-request-id',
        requestId,
        'content-type',
        'application/json; charset=utf-8',
        'content-length',
        answer.contentLength,
        'retry-after',
        '2',
      ]);
      res.end(answer.body(requestId));
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
