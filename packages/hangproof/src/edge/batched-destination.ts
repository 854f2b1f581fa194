import { type ByteSink, markByteSink } from '../core/line-bytes.js';

/** What BatchedDestination needs of pino's destination (sonic-boom in its 'buffer' content mode). */
interface Sink {
  write(data: Buffer): boolean;
  flush(cb?: (err?: Error) => void): void;
  flushSync(): void;
  end(): void;
  /** sonic-boom tells each completed write call, with the bytes it wrote. */
  on(event: 'write', listener: (bytes: number) => void): unknown;
}

/** A batch handed to the sink, and the count of bytes handed over once it is written. */
interface HandedBatch {
  readonly buffer: Buffer;
  readonly writtenAt: number;
}

/** Written batch buffers kept for the next batches; more are left to the garbage collector. */
const SPARE_BUFFERS = 4;
/** Batches waiting to be written that are tracked for reuse; a sink that stopped writing holds the rest itself. */
const MAX_TRACKED_BATCHES = 64;

/**
 * Gathers log lines as bytes in one buffer and hands the buffer to pino's destination (sonic-boom)
 * when it is full or every `flushIntervalMs`. Lines from pino arrive as strings and are encoded
 * into the buffer; a request's own line is written into it in place (`reserve`/`commit`, see
 * RequestLog), so it leaves no string behind at all. Why not sonic-boom's own `minLength`
 * buffering: it appends each line to its pending string and measures that whole string with
 * Buffer.byteLength on every write, which flattens it: about half the buffer allocated per line.
 * sonic-boom still does the writing (partial writes, EAGAIN, flushSync at exit).
 *
 * A batch's buffer is used again once sonic-boom has written it (its 'write' events count the
 * bytes, in the order they were handed over). A new buffer per batch was measured to cost several
 * µs per request on a busy route: each one is memory no cache holds yet, allocated outside V8's
 * heap, so the lines of a whole batch are written into cold memory. (On Node 22.7 and later
 * sonic-boom copies each batch before its write; the lines are still written into warm memory.)
 */
export class BatchedDestination implements ByteSink {
  readonly #sink: Sink;
  readonly #bufferBytes: number;
  #buf: Buffer;
  #offset = 0;
  readonly #timer: NodeJS.Timeout;
  /** Bytes handed to the sink so far, and bytes it reported written. */
  #handedBytes = 0;
  #writtenBytes = 0;
  readonly #handed: HandedBatch[] = [];
  readonly #spare: Buffer[] = [];

  constructor(sink: Sink, bufferBytes: number, flushIntervalMs: number) {
    this.#sink = sink;
    this.#bufferBytes = Math.max(1, bufferBytes);
    this.#buf = Buffer.allocUnsafe(this.#bufferBytes);
    this.#timer = setInterval(() => this.#handOver(), flushIntervalMs);
    this.#timer.unref();
    sink.on('write', (bytes) => this.#written(bytes));
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
      this.#give(Buffer.from(line), undefined);
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
    const full = this.#buf;
    const batch = full.subarray(0, this.#offset);
    this.#buf = this.#spare.pop() ?? Buffer.allocUnsafe(this.#bufferBytes);
    this.#offset = 0;
    this.#give(batch, full);
  }

  /** Hands `data` to the sink; `reusable` is the buffer to take back once `data` is written. */
  #give(data: Buffer, reusable: Buffer | undefined): void {
    this.#handedBytes += data.length;
    if (reusable !== undefined && this.#handed.length < MAX_TRACKED_BATCHES) {
      this.#handed.push({ buffer: reusable, writtenAt: this.#handedBytes });
    }
    this.#sink.write(data);
  }

  /** sonic-boom wrote `bytes` more: the batches now wholly written are free for reuse. */
  #written(bytes: number): void {
    this.#writtenBytes += bytes;
    const handed = this.#handed;
    while (handed.length > 0 && (handed[0] as HandedBatch).writtenAt <= this.#writtenBytes) {
      const { buffer } = handed.shift() as HandedBatch;
      if (this.#spare.length < SPARE_BUFFERS) this.#spare.push(buffer);
    }
  }
}
