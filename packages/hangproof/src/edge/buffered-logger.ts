import { openSync } from 'node:fs';
import { type Level, type Logger, pino } from 'pino';
import { BatchedDestination } from './batched-destination.js';

/** Options of bufferedLogger. Defaults live in BUFFERED_LOGGER_DEFAULTS. */
export interface BufferedLoggerOptions {
  /** Minimum level written. @default 'info' */
  readonly level?: Level;
  /** File descriptor or path the lines go to. @default 1 (stdout) */
  readonly dest?: number | string;
  /** Characters gathered before one write (a threshold: UTF-8 bytes are not counted). @default 65_536 */
  readonly bufferBytes?: number;
  /** Longest time a line may wait in the buffer, in ms. @default 1000 */
  readonly flushIntervalMs?: number;
}

export const BUFFERED_LOGGER_DEFAULTS = Object.freeze({
  level: 'info' as Level,
  dest: 1 as number | string,
  bufferBytes: 65_536,
  flushIntervalMs: 1000,
});

/**
 * A pino logger that writes its lines in batches: one write per `bufferBytes` (or per
 * `flushIntervalMs`) instead of one per line. On a busy route the one-line-per-request log then
 * costs a few microseconds instead of a write call each (measured in docs/benchmarks.md). The
 * trade-off is named here on purpose: lines wait up to `flushIntervalMs` before reaching the file,
 * and a process killed with SIGKILL loses what is still buffered; a normal exit flushes it.
 * The plugin's default logger writes every line at once instead.
 */
export function bufferedLogger(options: BufferedLoggerOptions = {}): Logger {
  const o = { ...BUFFERED_LOGGER_DEFAULTS, ...options };
  if (!(Number.isInteger(o.bufferBytes) && o.bufferBytes >= 0)) {
    throw new RangeError(`bufferBytes must be an integer >= 0, received ${o.bufferBytes}`);
  }
  if (!(o.flushIntervalMs > 0)) {
    throw new RangeError(`flushIntervalMs must be a positive number of ms, received ${o.flushIntervalMs}`);
  }
  // A path is opened here, synchronously, so the destination is ready at once and a flush at
  // exit always has a file to write to.
  const fd = typeof o.dest === 'string' ? openSync(o.dest, 'a') : o.dest;
  // sonic-boom writes each batch it is handed at once; the batching is BatchedDestination's, whose
  // batches are bytes.
  const sink = pino.destination({ dest: fd, minLength: 0, sync: false, contentMode: 'buffer' });
  // sonic-boom's typings know only its default (utf8) content mode; in 'buffer' mode write takes Buffers.
  const bytes = sink as unknown as ConstructorParameters<typeof BatchedDestination>[0];
  return pino({ level: o.level }, new BatchedDestination(bytes, o.bufferBytes, o.flushIntervalMs));
}
