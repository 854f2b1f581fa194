import { randomBytes } from 'node:crypto';

/** Longest request id taken from a caller. */
export const MAX_REQUEST_ID_LENGTH = 128;
/** 1-128 characters of `[A-Za-z0-9._:-]`: safe to echo in headers and logs. */
const VALID_REQUEST_ID = new RegExp(`^[A-Za-z0-9._:-]{1,${MAX_REQUEST_ID_LENGTH}}$`);

export function isValidRequestId(value: unknown): value is string {
  return typeof value === 'string' && VALID_REQUEST_ID.test(value);
}

/**
 * New request ids are UUIDs of version 8 (RFC 9562's custom layout): 74 random bits drawn once per
 * process, then a 48-bit counter. They stay unique across instances and restarts (the random part
 * differs) and sort by arrival within one process. Why not `crypto.randomUUID()` per request: it
 * builds its string from 16 hex pieces, about 0.5 KB of garbage on every request; this is one
 * short concatenation. A counter wraps after 2^48 requests, far beyond any process's life.
 */
const PROCESS_PART = (() => {
  const hex = randomBytes(10).toString('hex');
  // xxxxxxxx-xxxx-8xxx-Vxxx- : version nibble 8, variant bits 10 in V.
  const variant = ((Number.parseInt(hex[15] as string, 16) & 0x3) | 0x8).toString(16);
  return `${hex.slice(0, 8)}-${hex.slice(8, 12)}-8${hex.slice(12, 15)}-${variant}${hex.slice(16, 19)}-`;
})();
const COUNTER_DIGITS = 12;
const ZEROS = '0'.repeat(COUNTER_DIGITS);
let counter = 0;

/** A new, unique request id (see PROCESS_PART). */
export function newRequestId(): string {
  counter = counter >= 0xffff_ffff_ffff ? 1 : counter + 1;
  const digits = counter.toString(16);
  return PROCESS_PART + ZEROS.slice(digits.length) + digits;
}

/** The caller's `X-Request-ID` when it is valid, otherwise a new id. */
export function resolveRequestId(incoming: string | string[] | undefined): string {
  return isValidRequestId(incoming) ? incoming : newRequestId();
}
