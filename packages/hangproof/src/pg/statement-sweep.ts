/** A statement that must end by `boundAt` (performance.now() time) even if its server never answers. */
export interface BoundedStatement {
  readonly boundAt: number;
  /** Called once, from the sweep, when `boundAt` has passed and the statement is still running. */
  expire(): void;
}

/**
 * One periodic sweep over the statements running on a pool, instead of a timer per statement (as
 * Node's HTTP server checks request timeouts with one `connectionsCheckingInterval`). It bounds
 * the rare server that never answers at all; the common ends (an answer, a server-side
 * statement_timeout, the request's deadline) come first and cost two Set operations. The price is
 * precision: a bound fires up to `periodMs` late, which is small next to the grace it sits behind.
 * The interval runs only while statements run, and is unref'd.
 */
export class StatementSweep {
  readonly #running = new Set<BoundedStatement>();
  readonly #periodMs: number;
  #timer: NodeJS.Timeout | undefined;

  constructor(periodMs: number) {
    this.#periodMs = periodMs;
  }

  add(statement: BoundedStatement): void {
    this.#running.add(statement);
    if (this.#timer === undefined) {
      this.#timer = setInterval(() => this.#tick(), this.#periodMs);
      this.#timer.unref();
    }
  }

  delete(statement: BoundedStatement): void {
    this.#running.delete(statement);
  }

  #tick(): void {
    if (this.#running.size === 0) {
      clearInterval(this.#timer);
      this.#timer = undefined;
      return;
    }
    const now = performance.now();
    for (const s of this.#running) {
      if (now < s.boundAt) continue;
      this.#running.delete(s);
      s.expire();
    }
  }
}
