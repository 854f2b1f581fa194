import { logEvidence } from '../core/index.js';
import { LOG_MESSAGES } from '../log-events.js';
import type { PgLogger } from './logger.js';

/**
 * Who holds a pool connection right now, as shown in leak logs and acquire-timeout errors. The
 * pooled connection's guard is its holder record, refilled at each checkout (no object per acquire).
 */
export interface Holder {
  readonly requestId: string | undefined;
  readonly route: string | undefined;
  /** The request's step in flight when the connection was taken. */
  readonly step: string | undefined;
  /** The request itself, for the step it is in now (lock evidence names a blocker's step). */
  readonly ctx?: { readonly stepInFlight: string | undefined } | undefined;
  /** performance.now() at acquire. */
  readonly since: number;
  readonly stack: string | undefined;
  /** Backend process id, to find the session in pg_stat_activity. */
  readonly pid: number | undefined;
  leakLogged: boolean;
}

/** What a log line shows of one holder. */
export interface HolderView {
  readonly requestId: string | undefined;
  readonly route: string | undefined;
  readonly step: string | undefined;
  readonly heldMs: number;
  readonly pid: number | undefined;
}

/**
 * HikariCP-style holder tracking: each checked-out connection is recorded with the request, route
 * and step that took it and since when. A sweep (one unref'd interval for the whole pool, not a
 * timer per acquire) logs a connection held longer than `leakDetectionMs` once, with its holder
 * and, when enabled, the stack of the acquire; its release later logs that it came back.
 */
export class HolderRegistry {
  readonly #holders = new Set<Holder>();
  readonly #logger: PgLogger;
  readonly #leakMs: number;
  readonly #pool: string;
  #timer: NodeJS.Timeout | undefined;
  leaksDetected = 0;

  constructor(pool: string, leakMs: number, logger: PgLogger) {
    this.#pool = pool;
    this.#leakMs = leakMs;
    this.#logger = logger;
    if (leakMs > 0) {
      this.#timer = setInterval(() => this.sweep(), Math.min(1_000, Math.max(50, leakMs / 2)));
      this.#timer.unref();
    }
  }

  /** Tracks `holder` (filled in for this checkout) until `remove`. */
  add(holder: Holder): void {
    holder.leakLogged = false;
    this.#holders.add(holder);
  }

  remove(holder: Holder): void {
    this.#holders.delete(holder);
    if (holder.leakLogged) {
      this.#logger.info(
        { pool: this.#pool, holder: view(holder, performance.now()) },
        'postgres connection returned after a leak warning',
      );
    }
  }

  list(): HolderView[] {
    const now = performance.now();
    return [...this.#holders].map((h) => view(h, now)).sort((a, b) => b.heldMs - a.heldMs);
  }

  get size(): number {
    return this.#holders.size;
  }

  sweep(): void {
    const now = performance.now();
    for (const h of this.#holders) {
      if (h.leakLogged || now - h.since < this.#leakMs) continue;
      h.leakLogged = true;
      this.leaksDetected++;
      logEvidence(
        this.#logger,
        'warn',
        { pool: this.#pool, holder: view(h, now), leakDetectionMs: this.#leakMs, acquireStack: h.stack },
        LOG_MESSAGES.connectionLeak,
      );
    }
  }

  close(): void {
    if (this.#timer !== undefined) clearInterval(this.#timer);
    this.#timer = undefined;
  }
}

function view(h: Holder, now: number): HolderView {
  // The step it is in now says more than the one it was in when it took the connection.
  return {
    requestId: h.requestId,
    route: h.route,
    step: h.ctx?.stepInFlight ?? h.step,
    heldMs: Math.round(now - h.since),
    pid: h.pid,
  };
}
