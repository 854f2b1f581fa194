/**
 * A steady load of the pages a trader opens on the desk (overview, metrics, bot list, a bot's
 * detail, provider health), a few requests at a time to 127.0.0.1, until stopped. Bounded
 * everywhere: each request by its own timeout, the loop by `maxRunMs` even if `stop()` is never
 * called, and only counters are kept (no response is buffered past its status).
 */
export interface PageLoadOptions {
  /** The desk's base URL. */
  readonly url: string;
  /** The demo user's bearer token. */
  readonly token: string;
  /** Paths requested in turn. */
  readonly pages: readonly string[];
  /** Requests in flight at once. @default 3 */
  readonly concurrency?: number;
  /** Pause of each worker between two of its requests, in ms: a user's pace, not a flood. @default 20 */
  readonly gapMs?: number;
  /** Bound of one request, in ms. @default 5_000 */
  readonly requestTimeoutMs?: number;
  /** The loop ends by itself after this long, in ms. @default 300_000 */
  readonly maxRunMs?: number;
}

export class PageLoad {
  readonly #o: Required<PageLoadOptions>;
  /** Answers by status; 0 counts requests that got no answer (timeout, reset). */
  readonly statuses = new Map<number, number>();
  #running = false;
  #next = 0;
  #workers: Promise<void>[] = [];

  constructor(options: PageLoadOptions) {
    this.#o = { concurrency: 3, gapMs: 20, requestTimeoutMs: 5_000, maxRunMs: 300_000, ...options };
  }

  /** Answers so far: the count with `status`, or all of them. */
  count(status?: number): number {
    if (status !== undefined) return this.statuses.get(status) ?? 0;
    let n = 0;
    for (const c of this.statuses.values()) n += c;
    return n;
  }

  start(): void {
    if (this.#running) return;
    this.#running = true;
    const until = performance.now() + this.#o.maxRunMs;
    this.#workers = Array.from({ length: this.#o.concurrency }, () => this.#worker(until));
  }

  /** Stops the loop and waits for the requests in flight (each bounded by its own timeout). */
  async stop(): Promise<void> {
    this.#running = false;
    await Promise.all(this.#workers);
  }

  async #worker(until: number): Promise<void> {
    while (this.#running && performance.now() < until) {
      const path = this.#o.pages[this.#next++ % this.#o.pages.length] as string;
      const status = await fetch(`${this.#o.url}${path}`, {
        headers: { authorization: `Bearer ${this.#o.token}` },
        signal: AbortSignal.timeout(this.#o.requestTimeoutMs),
      })
        .then(async (r) => {
          await r.arrayBuffer();
          return r.status;
        })
        .catch(() => 0);
      this.statuses.set(status, (this.statuses.get(status) ?? 0) + 1);
      await new Promise((r) => setTimeout(r, this.#o.gapMs));
    }
  }
}
