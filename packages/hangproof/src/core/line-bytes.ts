/**
 * Writing a log line's pieces straight into a byte buffer. A request's line concatenated as a
 * string costs a string object per piece, a string per number and a flattening copy before the
 * write (about 1 KB of garbage on every request); written here it costs nothing on the heap.
 * Hand-written because what it does is narrow: ASCII pieces, JSON strings of short identifiers,
 * integers and tenths of a millisecond.
 */

/** A destination that takes lines as bytes written in place (see BatchedDestination). */
export interface ByteSink {
  /**
   * A buffer with at least `bytes` free from `offset`, or undefined when a line that long must go
   * through `write` instead.
   */
  reserve(bytes: number): Buffer | undefined;
  /** Where the next line starts in the reserved buffer. */
  readonly offset: number;
  /** Ends the line that was written into the reserved buffer up to `end`. */
  commit(end: number): void;
}

const kByteSink = Symbol.for('hangproof.byte-sink');

/** Marks `sink` as taking lines in place; `byteSinkOf` finds the mark. */
export function markByteSink(sink: ByteSink): void {
  (sink as ByteSink & { [kByteSink]?: true })[kByteSink] = true;
}

export function byteSinkOf(stream: unknown): ByteSink | undefined {
  return (stream as { [kByteSink]?: true } | null)?.[kByteSink] === true ? (stream as ByteSink) : undefined;
}

/** Writes `s`, which the caller knows to be ASCII, at `off`; returns the offset after it. */
export function putAscii(buf: Buffer, off: number, s: string): number {
  const n = s.length;
  for (let i = 0; i < n; i++) buf[off + i] = s.charCodeAt(i);
  return off + n;
}

/** Characters that may go between JSON quotes as they are: printable ASCII without `"` and `\`. */
const JSON_PLAIN = /^[\x20\x21\x23-\x5b\x5d-\x7e]*$/;

/** Writes `s` as a JSON string (quoted, escaped as JSON.stringify would); returns the offset after it. */
export function putJsonString(buf: Buffer, off: number, s: string): number {
  if (!JSON_PLAIN.test(s)) return off + buf.write(JSON.stringify(s), off);
  buf[off] = 0x22;
  const end = putAscii(buf, off + 1, s);
  buf[end] = 0x22;
  return end + 1;
}

/** Writes any string as its UTF-8 bytes (pieces that may hold non-ASCII, like a child logger's bindings). */
export function putUtf8(buf: Buffer, off: number, s: string): number {
  return s.length === 0 ? off : off + buf.write(s, off);
}

/** Writes a non-negative safe integer in decimal. */
export function putInt(buf: Buffer, off: number, n: number): number {
  if (n < 10) {
    buf[off] = 0x30 + n;
    return off + 1;
  }
  let digits = 1;
  for (let x = n; x >= 10; x = Math.floor(x / 10)) digits++;
  let x = n;
  for (let i = off + digits - 1; i >= off; i--) {
    buf[i] = 0x30 + (x % 10);
    x = Math.floor(x / 10);
  }
  return off + digits;
}

/**
 * Writes `ms` rounded to a tenth, as JSON writes `Math.round(ms * 10) / 10` (`12`, `12.3`,
 * `0.5`). A negative or non-finite value (never a duration) is written the way JSON would.
 */
export function putTenths(buf: Buffer, off: number, ms: number): number {
  const tenths = Math.round(ms * 10);
  if (!(tenths >= 0 && tenths <= Number.MAX_SAFE_INTEGER)) return putAscii(buf, off, JSON.stringify(tenths / 10));
  const whole = Math.floor(tenths / 10);
  const frac = tenths - whole * 10;
  const end = putInt(buf, off, whole);
  if (frac === 0) return end;
  buf[end] = 0x2e;
  buf[end + 1] = 0x30 + frac;
  return end + 2;
}

/** Upper bound of the bytes `putJsonString` writes for `s` (every char escaped as \uXXXX). */
export function jsonStringBound(s: string): number {
  return 2 + 6 * s.length;
}
