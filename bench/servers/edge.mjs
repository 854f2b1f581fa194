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
  const logger = scenario === 'hangproof' ? pino({ level: 'info' }, devNull()) : pino({ level: 'silent' });
  await app.register(hangproof, { logger, deadlineMs: 10_000 });
}
app.get('/hello', async () => ({ hello: 'world' }));
const url = await app.listen({ port: 0, host: '127.0.0.1' });
serveBenchProtocol(`${url}/hello`);
