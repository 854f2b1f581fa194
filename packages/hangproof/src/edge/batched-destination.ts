import { type ByteSink, markByteSink } from '../core/line-bytes.js';

/** What BatchedDestination needs of pino's destination (sonic-boom in its 'buffer' content mode). */
interface Sink {
  write(data: Buffer): boolean;
  flush(cb?: (err?: Error) => void): void;
  flushSync(): void;
  end(): void;
}

/**
 * Gathers log lines as bytes in one buffer and hands the buffer to pino's destination (sonic-boom)
 * when it is full or every `flushIntervalMs`. Lines from pino arrive as strings and are encoded
 * into the buffer; a request's own line is written into it in place (`reserve`/`commit`, see
 * RequestLog), so it leaves no string behind at all. Why not sonic-boom's own `minLength`
 * buffering: it appends each line to its pending string and measures that whole string with
 * Buffer.byteLength on every write, which flattens it: about half the buffer allocated per line.
 * sonic-boom still does the writing (partial writes, EAGAIN, flushSync at exit); it keeps each
 * handed-over buffer until written, so the next batch gets a new one.
 */
export class BatchedDestination implements ByteSink {
  readonly #sink: Sink;
  readonly #bufferBytes: number;
  #buf: Buffer;
  #offset = 0;
  readonly #timer: NodeJS.Timeout;

  constructor(sink: Sink, bufferBytes: number, flushIntervalMs: number) {
    this.#sink = sink;
    this.#bufferBytes = Math.max(1, bufferBytes);
    this.#buf = Buffer.allocUnsafe(this.#bufferBytes);
    this.#timer = setInterval(() => this.#handOver(), flushIntervalMs);
    this.#timer.unref();
    markByteSink(this);
    // A normal exit writes what is still gathered (sync), as pino does for its own destinations.
    process.once('exit', () => this.flushSync());
  }

  get offset(): number {
    return this.#offset;
  }

  reserve(bytes: number): Buffer | undefined {
    if (bytes > this.#bufferBytes) return undefined;
    if (this.#offset + bytes > this.#bufferBytes) this.#handOver();
    return this.#buf;
  }

  commit(end: number): void {
    this.#offset = end;
    if (end >= this.#bufferBytes) this.#handOver();
  }

  /** Takes one line (pino's destination protocol); it is written with its batch. */
  write(line: string): boolean {
    const bound = line.length * 3;
    const buf = this.reserve(bound);
    if (buf === undefined) {
      // Longer than a whole batch: handed over on its own, after what was gathered before it.
      this.#handOver();
      this.#sink.write(Buffer.from(line));
    } else {
      this.commit(this.#offset + buf.write(line, this.#offset));
    }
    return true;
  }

  /** Hands the gathered lines over and asks sonic-boom to write them now. */
  flush(cb?: (err?: Error) => void): void {
    this.#handOver();
    this.#sink.flush(cb);
  }

  /** Writes everything gathered before returning (for exit paths). */
  flushSync(): void {
    this.#handOver();
    try {
      this.#sink.flushSync();
    } catch {
      // EAGAIN on a full pipe at exit: what could not be written is lost, as with sonic-boom alone.
    }
  }

  end(): void {
    clearInterval(this.#timer);
    this.#handOver();
    this.#sink.end();
  }

  #handOver(): void {
    if (this.#offset === 0) return;
    const batch = this.#buf.subarray(0, this.#offset);
    this.#buf = Buffer.allocUnsafe(this.#bufferBytes);
    this.#offset = 0;
    this.#sink.write(batch);
  }
}
