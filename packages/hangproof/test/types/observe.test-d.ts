/** Type tests of `hangproof/observe` (compiled by `npm run typecheck`, never run). */
import Fastify from 'fastify';
import { hangproof } from 'hangproof/fastify';
import { type ObserveOptions, observe, overloadGuard, type StatusDocument } from 'hangproof/observe';

export async function observeSurface(): Promise<void> {
  const app = Fastify();
  await app.register(hangproof, { deadlineMs: 2_000 });
  const options = { maxInFlight: 64, metricsPath: '/metrics' } satisfies ObserveOptions;
  await app.register(observe, options);
  const guard = overloadGuard({ maxInFlight: 32 });
  void guard;
  const doc = {} as StatusDocument;
  void doc;
  // @ts-expect-error tracing is 'auto' or false
  const bad: ObserveOptions = { tracing: 'always' };
  void bad;
}

// @ts-expect-error the bounded ring is internal
export type NoRing = typeof import('hangproof/observe').BoundedRing;
// @ts-expect-error histograms are built by observe, not by users
export type NoNewHistogram = typeof import('hangproof/observe').newHistogram;
