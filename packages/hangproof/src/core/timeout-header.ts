/** Largest deadline a caller may name in the timeout header; anything longer is ignored anyway. */
const MAX_HEADER_MS = 86_400_000;
const DIGITS = /^\d{1,9}$/;

/**
 * The deadline a caller asked for in ms, or undefined when the header is absent or not a plain
 * positive integer. Bad values are ignored rather than rejected: a deadline hint must never be
 * the reason a request fails.
 */
export function parseTimeoutHeader(value: string | string[] | undefined): number | undefined {
  if (typeof value !== 'string' || !DIGITS.test(value)) return undefined;
  const ms = Number(value);
  return ms > 0 && ms <= MAX_HEADER_MS ? ms : undefined;
}
