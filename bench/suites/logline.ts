import { RequestContext, RequestLifecycle } from 'hangproof';
import { bufferedLogger } from 'hangproof/fastify';
import { type Logger, pino } from 'pino';
import { environmentLine } from '../lib/report.ts';
import { median, spread } from '../lib/rounds.ts';
import type { SuiteSettings } from '../run.ts';

/** Rounds when BENCH_ROUNDS is not set: an odd count, so the median is one real round. */
const DEFAULT_ROUNDS = 5;
/** Requests logged per scenario and round. */
const REQUESTS = 200_000;
/** Requests logged between two turns of the event loop, so the destination's writes complete. */
const BATCH = 50;
/** Distinct request contexts the lines are written from (ids and paths differ, as in a service). */
const CONTEXTS = 64;

type Destination = 'pino' | 'buffered';

function loggerFor(destination: Destination): Logger {
  return destination === 'buffered'
    ? bufferedLogger({ dest: '/dev/null' })
    : pino({ level: 'info' }, pino.destination({ dest: '/dev/null', sync: false }));
}

/** Ended contexts shaped like the db route's requests: one query, a status, a duration. */
function endedContexts(): RequestContext[] {
  return Array.from({ length: CONTEXTS }, (_, i) => {
    const ctx = new RequestContext({
      requestId: `0193a3b4-c5d6-8e7f-a${String(i).padStart(3, '0')}-0123456789ab`,
      budgetMs: 10_000,
      name: '/bots/:userId',
      method: 'GET',
      path: `/bots/${i}`,
    });
    ctx.end();
    ctx.statusCode = 200;
    ctx.durationMs = 2.345 + i / 100;
    ctx.dbCount = 1;
    ctx.dbMs = 1.234;
    ctx.acquireMs = 0.05;
    return ctx;
  });
}

/** Writes one request's worth of logging `REQUESTS` times; ns per request. */
async function timeRequests(logOne: (i: number) => void): Promise<number> {
  const turn = (): Promise<void> => new Promise((resolve) => setImmediate(resolve));
  const started = process.hrtime.bigint();
  for (let i = 0; i < REQUESTS; i += BATCH) {
    for (let j = i; j < i + BATCH; j++) logOne(j);
    await turn();
  }
  return Number(process.hrtime.bigint() - started) / REQUESTS;
}

/** hangproof's one line per request, as the lifecycle writes it at the request's end. */
function hangproofLine(destination: Destination): (i: number) => void {
  const lifecycle = new RequestLifecycle({
    deadlineMs: 10_000,
    slowWarnMs: 1_000,
    slowErrorMs: 5_000,
    logger: loggerFor(destination),
    quietProbes: true,
  });
  const contexts = endedContexts();
  return (i) => lifecycle.log.write(contexts[i % CONTEXTS] as RequestContext, false);
}

/**
 * Fastify's own request logging: a child logger per request bound to its id, then its
 * "incoming request" and "request completed" lines, with the fields Fastify's default `req` and
 * `res` serializers write (Fastify 5).
 */
function fastifyLines(destination: Destination): (i: number) => void {
  const logger = loggerFor(destination);
  return (i) => {
    const log = logger.child({ reqId: `req-${i.toString(36)}` });
    log.info(
      {
        req: {
          method: 'GET',
          url: `/bots/${i % CONTEXTS}`,
          version: undefined,
          host: '127.0.0.1:3000',
          remoteAddress: '127.0.0.1',
          remotePort: 50_000 + (i % 1000),
        },
      },
      'incoming request',
    );
    log.info({ res: { statusCode: 200 }, responseTime: 2.345 }, 'request completed');
  };
}

/**
 * Log-line suite: what a request's logging costs on its own, in one process, with no server and
 * no network: hangproof's one line against Fastify's own request logging, each through pino's
 * destination and through bufferedLogger. Interleaved over BENCH_ROUNDS rounds (default 5),
 * medians reported. It isolates what the edge suite measures inside a whole request, where the
 * VM's noise is larger than the difference.
 */
export async function loglineSuite(_s: SuiteSettings): Promise<{ markdown: string; raw: unknown }> {
  const rounds = Math.max(1, Number(process.env.BENCH_ROUNDS ?? DEFAULT_ROUNDS));
  const scenarios = {
    'hangproof-buffered': hangproofLine('buffered'),
    'fastify-buffered': fastifyLines('buffered'),
    'hangproof-pino': hangproofLine('pino'),
    'fastify-pino': fastifyLines('pino'),
  };
  const ns = new Map<string, number[]>(Object.keys(scenarios).map((k) => [k, []]));
  // One unmeasured pass each, so every scenario is optimized before the first measured round.
  for (const logOne of Object.values(scenarios)) await timeRequests(logOne);
  for (let r = 1; r <= rounds; r++) {
    for (const [name, logOne] of Object.entries(scenarios)) {
      process.stderr.write(`logline: round ${r}/${rounds}: ${name}...\n`);
      ns.get(name)?.push(await timeRequests(logOne));
    }
  }
  const row = (destination: Destination, label: string): string => {
    const hp = ns.get(`hangproof-${destination}`) ?? [];
    const fy = ns.get(`fastify-${destination}`) ?? [];
    const perRequest = (xs: readonly number[]): string => `${(median(xs) / 1000).toFixed(2)} (${spread(xs)})`;
    return `| ${label} | ${perRequest(hp)} | ${perRequest(fy)} | ${(median(hp) / median(fy)).toFixed(2)} |`;
  };
  const markdown = [
    `Measured ${environmentLine()}; ${REQUESTS} requests' logging per scenario and round, ${BATCH} between two turns of the event loop; ${rounds} interleaved round(s), medians shown with their spread.`,
    '',
    "| destination (to /dev/null) | hangproof's line (µs per request) | Fastify's request logging (µs per request) | ratio |",
    '|---|---|---|---|',
    row('buffered', '`bufferedLogger`'),
    row('pino', '`pino.destination`'),
  ].join('\n');
  return { markdown, raw: Object.fromEntries(ns) };
}
