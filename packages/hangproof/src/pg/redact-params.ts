import type { ParamRedactor } from './database-options.js';
import { sqlState } from './pg-errors.js';

/**
 * The default rule for bind parameters in logs: each value becomes its type and size
 * (`string(12)`, `number`, `bytes(16)`, `null`), which is what a slow-query investigation needs
 * (was the array 3 items or 30 000?) without ever writing a value, since any parameter can be a
 * password, a token or personal data.
 */
export const redactParams: ParamRedactor = (params) => params.map(describeValue);

export function describeValue(value: unknown): unknown {
  if (value === null || value === undefined) return null;
  if (typeof value === 'string') return `string(${value.length})`;
  if (typeof value === 'number' || typeof value === 'bigint' || typeof value === 'boolean') return typeof value;
  if (value instanceof Date) return 'date';
  if (Buffer.isBuffer(value)) return `bytes(${value.length})`;
  if (Array.isArray(value)) return `array(${value.length})`;
  return 'object';
}

/**
 * Removes every bound value from a text the server produced (error messages such as
 * `invalid input syntax for type integer: "s3cret"` or a constraint's `Key (email)=(...)` detail
 * quote the input). Applied to every server text the guard logs, whatever `redactParams` says.
 */
export function scrubValues(text: string, params: readonly unknown[] | undefined): string {
  if (params === undefined || params.length === 0) return text;
  let out = text;
  for (const p of params) {
    const values =
      typeof p === 'string' ? [p] : typeof p === 'object' && p !== null ? [JSON.stringify(p)] : [String(p)];
    for (const v of values) {
      // Very short values (`1`, `t`) would shred the message while protecting nothing.
      if (v.length >= 3) out = out.split(v).join('[redacted]');
    }
  }
  return out;
}

/** What logs show of an error: its code and message, with bound values scrubbed. Never the object. */
export function errorSummary(err: unknown, params?: readonly unknown[]): Record<string, unknown> | undefined {
  if (typeof err !== 'object' || err === null) return err === undefined ? undefined : { message: String(err) };
  const e = err as { code?: unknown; message?: unknown; cause?: unknown };
  const message = typeof e.message === 'string' ? e.message : undefined;
  const scrub = (text: string): string =>
    params === undefined ? text : params.reduce<string>((t, p) => scrubParam(t, p), text);
  return {
    code: e.code,
    sqlState: sqlState(err),
    message: message === undefined ? undefined : scrub(message),
    cause:
      e.cause instanceof Error
        ? { message: scrub(e.cause.message), code: (e.cause as { code?: unknown }).code }
        : undefined,
  };
}

function scrubParam(text: string, p: unknown): string {
  const v = typeof p === 'string' ? p : typeof p === 'object' && p !== null ? JSON.stringify(p) : String(p);
  return v.length >= 3 ? text.split(v).join('[redacted]') : text;
}
