import { logEvidence, raceAbort } from '../core/index.js';
import { isHangproofError } from '../errors.js';
import { LOG_MESSAGES } from '../log-events.js';
import { AttemptScope } from './attempt-scope.js';
import { dependencyTimeout, HttpStatusFailure } from './failure.js';
import type { DepsLogger } from './logger.js';

export type HealthState = 'up' | 'down' | 'unknown';

/** The cached result of the latest probe; this is all readiness and status pages ever read. */
export interface HealthSnapshot {
  /** `unknown` until the first probe has finished. */
  readonly state: HealthState;
  /** ISO time the latest probe finished, or null before the first. */
  readonly lastProbeAt: string | null;
  /** ISO time of the latest successful probe, or null. */
  readonly lastUpAt: string | null;
  /** hangproof code of the latest failed probe (DEPENDENCY_TIMEOUT / DEPENDENCY_UNAVAILABLE), or null when up. */
  readonly lastErrorCode: string | null;
  /** Short machine reason of the latest failure (`status_503`, `ECONNREFUSED`, `timeout`), never a message. */
  readonly lastError: string | null;
  readonly lastDurationMs: number | null;
  readonly consecutiveFailures: number;
}

export interface HealthMonitorOptions {
  readonly intervalMs: number;
  readonly timeoutMs: number;
  readonly logger: DepsLogger;
}

/**
 * Probes one dependency in the background and caches the answer. Probes never overlap (the next
 * is scheduled when one ends), each is bounded by `timeoutMs` even if the probe ignores its
 * signal, and the timers are unref'd so probing never keeps a process alive.
 */
export class HealthMonitor {
  readonly #name: string;
  readonly #probe: (signal: AbortSignal) => Promise<unknown>;
  readonly #options: HealthMonitorOptions;
  #snapshot: HealthSnapshot = {
    state: 'unknown',
    lastProbeAt: null,
    lastUpAt: null,
    lastErrorCode: null,
    lastError: null,
    lastDurationMs: null,
    consecutiveFailures: 0,
  };
  #timer: NodeJS.Timeout | undefined;
  #running: Promise<HealthSnapshot> | undefined;
  #stopped = true;

  constructor(name: string, probe: (signal: AbortSignal) => Promise<unknown>, options: HealthMonitorOptions) {
    this.#name = name;
    this.#probe = probe;
    this.#options = options;
  }

  get snapshot(): HealthSnapshot {
    return this.#snapshot;
  }

  /** Starts probing: the first probe right away, then one every `intervalMs`. */
  start(): void {
    if (!this.#stopped) return;
    this.#stopped = false;
    this.#schedule(0);
  }

  /** Stops probing; the cache keeps its last answer. A probe in flight finishes on its own bound. */
  stop(): void {
    this.#stopped = true;
    if (this.#timer !== undefined) clearTimeout(this.#timer);
    this.#timer = undefined;
  }

  /** Runs one probe now (or joins the one running) and resolves with the new snapshot. */
  probeNow(): Promise<HealthSnapshot> {
    this.#running ??= this.#run().finally(() => {
      this.#running = undefined;
    });
    return this.#running;
  }

  #schedule(delayMs: number): void {
    if (this.#stopped) return;
    this.#timer = setTimeout(() => {
      this.#timer = undefined;
      void this.probeNow().then(() => this.#schedule(this.#options.intervalMs));
    }, delayMs);
    this.#timer.unref();
  }

  async #run(): Promise<HealthSnapshot> {
    const started = performance.now();
    const scope = new AttemptScope(this.#options.timeoutMs, undefined, () => dependencyTimeout(this.#name));
    let error: string | null = null;
    let errorCode: string | null = null;
    try {
      await raceAbort(
        Promise.resolve().then(() => this.#probe(scope.signal)),
        scope.signal,
      );
    } catch (err) {
      if (scope.timedOut) {
        errorCode = 'DEPENDENCY_TIMEOUT';
        error = 'timeout';
      } else {
        errorCode = isHangproofError(err) && err.code.startsWith('DEPENDENCY_') ? err.code : 'DEPENDENCY_UNAVAILABLE';
        error = shortReason(err);
      }
    } finally {
      scope.dispose();
    }
    const now = new Date().toISOString();
    const previous = this.#snapshot;
    const up = errorCode === null;
    this.#snapshot = {
      state: up ? 'up' : 'down',
      lastProbeAt: now,
      lastUpAt: up ? now : previous.lastUpAt,
      lastErrorCode: errorCode,
      lastError: error,
      lastDurationMs: Math.round((performance.now() - started) * 10) / 10,
      consecutiveFailures: up ? 0 : previous.consecutiveFailures + 1,
    };
    if (previous.state !== this.#snapshot.state) {
      const fields = { dependency: this.#name, from: previous.state, to: this.#snapshot.state, errorCode, error };
      if (up) logEvidence(this.#options.logger, 'info', fields, LOG_MESSAGES.dependencyUp);
      else logEvidence(this.#options.logger, 'warn', fields, LOG_MESSAGES.dependencyDown);
    }
    return this.#snapshot;
  }
}

function shortReason(err: unknown): string {
  if (err instanceof HttpStatusFailure) return `status_${err.statusCode}`;
  if (isHangproofError(err)) {
    const reason = err.details.reason;
    return typeof reason === 'string' ? reason : err.code;
  }
  const code = (err as { code?: unknown } | null)?.code;
  return typeof code === 'string' ? code : 'error';
}
