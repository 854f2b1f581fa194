/** Type tests of the edge subpaths (compiled by `npm run typecheck`, never run). */
import { createServer } from 'node:http';
import Fastify from 'fastify';
import { hangproofExpress } from 'hangproof/express';
import { bufferedLogger, type HangproofOptions, hangproof } from 'hangproof/fastify';
import { hangproofHono } from 'hangproof/hono';
import { withHangproof } from 'hangproof/http';

export async function edgeSurface(): Promise<void> {
  const app = Fastify();
  const options = { deadlineMs: 2_000, logger: bufferedLogger() } satisfies HangproofOptions;
  await app.register(hangproof, options);
  const ms: number = app.hangproof.options.deadlineMs;
  void ms;
  const listener = withHangproof((_req, res) => res.end('ok'), { deadlineMs: 1_000 });
  const server = createServer(listener);
  void server;
  void hangproofExpress({ deadlineMs: 1_000 });
  void hangproofHono({ deadlineMs: 1_000 });
  // @ts-expect-error deadlineMs is a number of ms
  const bad: HangproofOptions = { deadlineMs: '2s' };
  void bad;
}
