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

/**
 * Writes `s` as a JSON string (quoted, escaped as JSON.stringify would); returns the offset after it.
 * One pass: printable ASCII without `"` and `\` is copied as it is checked; any other character
 * hands the whole string to JSON.stringify, written over what was copied.
 */
export function putJsonString(buf: Buffer, off: number, s: string): number {
  const n = s.length;
  buf[off] = 0x22;
  for (let i = 0; i < n; i++) {
    const c = s.charCodeAt(i);
    if (c < 0x20 || c > 0x7e || c === 0x22 || c === 0x5c) return off + buf.write(JSON.stringify(s), off);
    buf[off + 1 + i] = c;
  }
  buf[off + 1 + n] = 0x22;
  return off + n + 2;
}

/** Writes any string as its UTF-8 bytes (pieces that may hold non-ASCII, like a child logger's bindings). */
export function putUtf8(buf: Buffer, off: number, s: string): number {
  return s.length === 0 ? off : off + buf.write(s, off);
}

/** Writes a number as JSON does: a non-negative safe integer digit by digit, anything else as JSON text. */
export function putInt(buf: Buffer, off: number, n: number): number {
  if (!(n >= 0 && Number.isSafeInteger(n))) return putAscii(buf, off, JSON.stringify(n));
  if (n < 10) {
    buf[off] = 0x30 + n;
    return off + 1;
  }
  // Integer arithmetic while the value fits in 31 bits; an epoch in ms (13 digits) is written as
  // its high part and its low eight digits, each of which does.
  if (n >= 0x7fffffff) {
    const high = Math.floor(n / 1e8);
    return putPadded(buf, putInt(buf, off, high), n - high * 1e8, 8);
  }
  return putPadded(buf, off, n, digitsOf(n));
}

/** Decimal digits of a positive integer below 2^31. */
function digitsOf(n: number): number {
  let digits = 1;
  for (let x = n; x >= 10; x = (x / 10) | 0) digits++;
  return digits;
}

/** Writes `n` (below 2^31) as exactly `width` digits, zero-padded on the left. */
function putPadded(buf: Buffer, off: number, n: number, width: number): number {
  let x = n;
  for (let i = off + width - 1; i >= off; i--) {
    const next = (x / 10) | 0;
    buf[i] = 0x30 + x - next * 10;
    x = next;
  }
  return off + width;
}

/** Writes bytes prepared once (a JSON key, a route, the line's end) at `off`. */
export function putBytes(buf: Buffer, off: number, bytes: Uint8Array): number {
  const n = bytes.length;
  // A loop, not `buf.set`: these pieces are a few dozen bytes, below what a native copy's call costs.
  for (let i = 0; i < n; i++) buf[off + i] = bytes[i] as number;
  return off + n;
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
