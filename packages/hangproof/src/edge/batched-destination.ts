/** What BatchedDestination needs of pino's destination (sonic-boom). */
interface Sink {
  write(data: string): boolean;
  flush(cb?: (err?: Error) => void): void;
  flushSync(): void;
  end(): void;
}

/**
 * Gathers log lines in an array and hands them to pino's destination (sonic-boom) one batch at a
 * time, joined once. Why not sonic-boom's own `minLength` buffering: it appends each line to its
 * pending string and measures that whole string with Buffer.byteLength on every write, which
 * flattens it: about half the buffer (2 KB of a 4 KB one) allocated per line, the largest single
 * allocation of a request on a busy route. Here a line costs an array slot; sonic-boom still does
 * the writing (partial writes, EAGAIN, flushSync at exit).
 */
export class BatchedDestination {
  readonly #sink: Sink;
  readonly #bufferBytes: number;
  #lines: string[] = [];
  #bytes = 0;
  readonly #timer: NodeJS.Timeout;

  constructor(sink: Sink, bufferBytes: number, flushIntervalMs: number) {
    this.#sink = sink;
    this.#bufferBytes = bufferBytes;
    this.#timer = setInterval(() => this.#handOver(), flushIntervalMs);
    this.#timer.unref();
    // A normal exit writes what is still gathered (sync), as pino does for its own destinations.
    process.once('exit', () => this.flushSync());
  }

  /** Takes one line (pino's destination protocol); it is written with its batch. */
  write(line: string): boolean {
    this.#lines.push(line);
    // String length, not bytes: a threshold, where counting UTF-8 bytes would cost more than it tells.
    this.#bytes += line.length;
    if (this.#bytes >= this.#bufferBytes) this.#handOver();
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
    if (this.#lines.length === 0) return;
    const batch = this.#lines.length === 1 ? (this.#lines[0] as string) : this.#lines.join('');
    this.#lines = [];
    this.#bytes = 0;
    this.#sink.write(batch);
  }
}
