// Benchmark server for the edge suite. BENCH_SCENARIO picks what wraps the same /hello route.
import Fastify from 'fastify';
import { hangproof, serverOptions } from 'hangproof/fastify';
import { pino } from 'pino';
import { serveBenchProtocol } from './protocol.mjs';

const scenario = process.env.BENCH_SCENARIO ?? 'bare';
const devNull = () => pino.destination({ dest: '/dev/null', sync: false });

let app;
if (scenario === 'bare') app = Fastify();
else if (scenario === 'fastify-logging') app = Fastify({ loggerInstance: pino({ level: 'info' }, devNull()) });
else {
  app = Fastify(serverOptions());
  const logger = scenario === 'hangproof-silent' ? pino({ level: 'silent' }) : pino({ level: 'info' }, devNull());
  await app.register(hangproof, { logger, deadlineMs: 10_000 });
  if (scenario === 'hangproof-refusing') {
    // Every request is refused 503 OVERLOADED: observe's limit of one slot is taken here for
    // good, and nothing may queue. What a refusal costs is then all the server does.
    const { observe } = await import('hangproof/observe');
    await app.register(observe, { maxInFlight: 1, maxQueued: 0, logger: pino({ level: 'info' }, devNull()) });
  }
}
app.get('/hello', async () => ({ hello: 'world' }));
if (scenario === 'hangproof-refusing') {
  await app.ready();
  app.hangproof.lifecycle.admit('/hello');
}
const url = await app.listen({ port: 0, host: '127.0.0.1' });
serveBenchProtocol(`${url}/hello`);
