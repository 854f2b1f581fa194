import { currentContext } from './context-storage.js';

export interface SpanOptions {
  /** What the span measures. @default 'step' */
  readonly kind?: string;
  /** Extra facts kept with the span (row count, fingerprint...). */
  readonly attrs?: Readonly<Record<string, unknown>>;
}

/**
 * Times `fn` as a named step of the current request: it shows in Server-Timing and in the log
 * line, and while it runs it is the "step in flight" a timeout names. Without a current request
 * it just runs `fn`.
 */
export async function step<T>(name: string, fn: () => T | Promise<T>, options: SpanOptions = {}): Promise<T> {
  const ctx = currentContext();
  if (ctx === undefined) return fn();
  const start = performance.now();
  const endStep = ctx.beginStep(name);
  let ok = false;
  try {
    const result = await fn();
    ok = true;
    return result;
  } finally {
    endStep(ok);
    ctx.addSpan({
      name,
      kind: options.kind ?? 'step',
      startMs: start - ctx.startedAt,
      durationMs: performance.now() - start,
      attrs: ok ? options.attrs : { ...options.attrs, failed: true },
    });
  }
}

/** Records a span measured elsewhere, e.g. by a driver callback. `startedAt` is performance.now(). */
export function recordSpan(name: string, startedAt: number, durationMs: number, options: SpanOptions = {}): void {
  const ctx = currentContext();
  if (ctx === undefined) return;
  ctx.addSpan({
    name,
    kind: options.kind ?? 'step',
    startMs: startedAt - ctx.startedAt,
    durationMs,
    attrs: options.attrs,
  });
  ctx.lastCompletedStep = name;
}

/** Adds fields to the current request's log line, e.g. `annotate({ bot_count: 50 })`. */
export function annotate(fields: Readonly<Record<string, unknown>>): void {
  currentContext()?.annotate(fields);
}

/** Records who the caller is; shows as `user_id` in the log line. */
export function setUserId(userId: string): void {
  const ctx = currentContext();
  if (ctx !== undefined) ctx.userId = userId;
}
