import type { RequestContext } from './request-context.js';

/** Kinds whose spans are also summed into one total entry (`db`, `external`). */
const TOTALLED_KINDS = ['db', 'external'] as const;

const TOKEN_UNSAFE = /[^A-Za-z0-9!#$%&'*+.^_`|~-]/g;

/**
 * The `Server-Timing` header value for a request: every span as `name;dur=12.3`, a `db` and
 * `external` total when such spans exist, and `total` for the time so far.
 */
export function formatServerTiming(ctx: RequestContext): string {
  const parts: string[] = [];
  const totals = new Map<string, number>();
  for (const span of ctx.spans) {
    parts.push(`${span.name.replace(TOKEN_UNSAFE, '_')};dur=${span.durationMs.toFixed(1)}`);
    if ((TOTALLED_KINDS as readonly string[]).includes(span.kind) && span.name !== span.kind) {
      totals.set(span.kind, (totals.get(span.kind) ?? 0) + span.durationMs);
    }
  }
  for (const [kind, total] of totals) parts.push(`${kind};dur=${total.toFixed(1)}`);
  parts.push(`total;dur=${ctx.elapsedMs().toFixed(1)}`);
  return parts.join(', ');
}
