import { budgetUntil, currentContext, raceAbort, runWithBudget } from '../core/index.js';
import { numberWhere } from '../core/option-checks.js';
import { type HangproofCode, type HangproofError, isHangproofError } from '../errors.js';
import { LOG_MESSAGES } from '../log-events.js';
import { dependencyTimeout, dependencyUnavailable } from './failure.js';
import type { DepsLogger } from './logger.js';

/** Where snapshots survive restarts and are shared between instances (see pg-snapshot-store.ts). */
export interface SnapshotStore {
  /** The saved value of `key`, or undefined. Must honour `signal`. */
  load(key: string, signal: AbortSignal): Promise<{ readonly value: unknown; readonly refreshedAt: Date } | undefined>;
  /** Saves the value of `key` refreshed at `refreshedAt`. Must honour `signal`. */
  save(key: string, value: unknown, refreshedAt: Date, signal: AbortSignal): Promise<void>;
}

/** How one snapshot read behaves. Defaults live in SNAPSHOT_READ_DEFAULTS. */
export interface SnapshotReadOptions {
  /** A value younger than this is served as is, in ms. Required. */
  readonly freshMs: number;
  /**
   * A value older than `freshMs` but younger than this is served at once while one background
   * refresh runs; an older one makes the read wait (boundedly) for the refresh. Required.
   */
  readonly maxStaleMs: number;
  /** Name in error details and warnings. @default the failing dependency's name, else 'snapshot' */
  readonly dependency?: string;
  /** Longest a read waits for a load when it has nothing fresh enough to serve, in ms (and never past the request budget minus reserve). @default 1_000 */
  readonly waitMs?: number;
  /** Time one background load may take, in ms; it runs under its own deadline, not the request's. @default 10_000 */
  readonly loadTimeoutMs?: number;
  /** Kept back from the request's remaining budget, in ms. @default 100 */
  readonly reserveMs?: number;
}

export const SNAPSHOT_READ_DEFAULTS = Object.freeze({
  waitMs: 1_000,
  loadTimeoutMs: 10_000,
  reserveMs: 100,
});

/** Options of the snapshot cache itself. */
export interface SnapshotCacheOptions {
  /** Keys kept in memory; the least recently used is evicted beyond this. @default 1_000 */
  readonly maxEntries?: number;
  /** Optional persistence, so every instance and a restarted process start warm. */
  readonly store?: SnapshotStore;
  /** Time a store load or save may take, in ms. @default 1_000 */
  readonly storeTimeoutMs?: number;
}

export const SNAPSHOT_CACHE_DEFAULTS = Object.freeze({ maxEntries: 1_000, storeTimeoutMs: 1_000 });

/** Why a value that is not fresh was served. Client-safe: a code, a name and an age. */
export interface SnapshotWarning {
  readonly code: HangproofCode;
  readonly dependency: string;
  /** Age of the value served, in ms. */
  readonly ageMs: number;
}

export interface SnapshotResult<T> {
  readonly value: T;
  /** When the value was loaded. */
  readonly refreshedAt: Date;
  readonly ageMs: number;
  /** Older than `freshMs`. */
  readonly stale: boolean;
  /** Non-empty when the latest load failed or was too slow, so a last good value is served. */
  readonly warnings: readonly SnapshotWarning[];
}

interface Entry {
  value: unknown;
  hasValue: boolean;
  refreshedAt: number;
  /** The load running for this key, if any: the single flight every reader joins. */
  loading: Promise<void> | undefined;
  /** The latest load's failure, cleared by the next success. */
  lastError: HangproofError | undefined;
  /** The one store read for this key (once per process), joined by every cold reader. */
  warming: Promise<void> | undefined;
}

/**
 * Snapshot-first reads for expensive data: a fresh value if there is one; else a stale one while
 * one background refresh runs; else the last good value with a warning when the load fails or is
 * slow; an error with the dependency's code only when there is no value at all.
 *
 * Loads are single-flight per key (however many readers arrive, one load runs) and run detached
 * from the reader's request under their own deadline, so one reader's timeout neither cancels the
 * load the others wait for nor lets it run forever.
 */
export class SnapshotCache {
  readonly #entries = new Map<string, Entry>();
  readonly #maxEntries: number;
  readonly #store: SnapshotStore | undefined;
  readonly #storeTimeoutMs: number;
  readonly #logger: DepsLogger;
  #loads = 0;
  #loadFailures = 0;

  constructor(options: SnapshotCacheOptions, logger: DepsLogger) {
    const o = { ...SNAPSHOT_CACHE_DEFAULTS, ...options };
    if (!(Number.isSafeInteger(o.maxEntries) && o.maxEntries >= 1)) {
      throw new RangeError(`snapshots.maxEntries must be an integer >= 1, received ${o.maxEntries}`);
    }
    if (!(o.storeTimeoutMs > 0))
      throw new RangeError(`snapshots.storeTimeoutMs must be > 0, received ${o.storeTimeoutMs}`);
    this.#maxEntries = o.maxEntries;
    this.#store = options.store;
    this.#storeTimeoutMs = o.storeTimeoutMs;
    this.#logger = logger;
  }

  /** Keys held, loads started and loads failed since start: for status pages. */
  stats(): { readonly keys: number; readonly loads: number; readonly loadFailures: number } {
    return { keys: this.#entries.size, loads: this.#loads, loadFailures: this.#loadFailures };
  }

  async get<T>(
    key: string,
    load: (signal: AbortSignal) => Promise<T>,
    options: SnapshotReadOptions,
  ): Promise<SnapshotResult<T>> {
    const o = resolveReadOptions(options);
    const ctx = currentContext();
    const started = performance.now();
    const waitBudgetMs = ctx === undefined ? o.waitMs : budgetUntil(ctx.deadlineAt, o.waitMs, o.reserveMs);
    const waitDeadline = started + waitBudgetMs;

    let entry = this.#touch(key);
    if (!entry.hasValue && this.#store !== undefined) {
      await this.#waitFor(this.#warmFromStore(key, entry), waitDeadline, ctx?.signal);
      entry = this.#touch(key);
    }

    if (entry.hasValue) {
      const ageMs = Date.now() - entry.refreshedAt;
      if (ageMs < o.freshMs) return this.#result(entry, o, []);
      if (ageMs < o.maxStaleMs) {
        this.#refresh(key, entry, load, o);
        return this.#result(entry, o, this.#warningsOf(entry, o));
      }
    }

    // Nothing fresh enough to serve at once: wait, boundedly, for the (single) load.
    const loading = this.#refresh(key, entry, load, o);
    const finished = await this.#waitFor(loading, waitDeadline, ctx?.signal);
    if (entry.hasValue) {
      const justLoaded = finished && entry.lastError === undefined;
      const warnings = justLoaded
        ? []
        : [
            {
              code: entry.lastError?.code ?? 'DEPENDENCY_TIMEOUT',
              dependency: this.#nameFor(entry, o),
              ageMs: Date.now() - entry.refreshedAt,
            },
          ];
      return this.#result(entry, o, warnings as SnapshotWarning[]);
    }
    if (ctx?.signal.aborted) throw ctx.signal.reason;
    if (finished && entry.lastError !== undefined) throw entry.lastError;
    throw dependencyTimeout(this.#nameFor(entry, o));
  }

  /** Waits for `work` until `deadline` (performance.now() based); false when the wait ran out. */
  async #waitFor(work: Promise<void>, deadline: number, signal: AbortSignal | undefined): Promise<boolean> {
    const waitMs = deadline - performance.now();
    if (waitMs <= 0) return false;
    let timer: NodeJS.Timeout | undefined;
    const timedOut = new Promise<false>((resolve) => {
      timer = setTimeout(() => resolve(false), waitMs);
    });
    try {
      return await raceAbort(Promise.race([work.then(() => true), timedOut]), signal);
    } finally {
      clearTimeout(timer);
    }
  }

  #refresh<T>(
    key: string,
    entry: Entry,
    load: (signal: AbortSignal) => Promise<T>,
    o: ResolvedReadOptions,
  ): Promise<void> {
    if (entry.loading !== undefined) return entry.loading;
    this.#loads++;
    const run = async (): Promise<void> => {
      try {
        // Its own job context and deadline: detached from whichever request happened to start it.
        const value = await runWithBudget(`snapshot:${key}`, o.loadTimeoutMs, (signal) => load(signal));
        entry.value = value;
        entry.hasValue = true;
        entry.refreshedAt = Date.now();
        entry.lastError = undefined;
        this.#reinsert(key, entry);
        void this.#saveToStore(key, value, entry.refreshedAt);
      } catch (err) {
        this.#loadFailures++;
        entry.lastError = toLoadError(err, o.dependency);
        this.#logger.warn(
          { key, dependency: this.#nameFor(entry, o), errorCode: entry.lastError.code },
          LOG_MESSAGES.snapshotLoadFailed,
        );
      } finally {
        entry.loading = undefined;
      }
    };
    entry.loading = run();
    return entry.loading;
  }

  #warmFromStore(key: string, entry: Entry): Promise<void> {
    const store = this.#store;
    if (store === undefined) return Promise.resolve();
    entry.warming ??= (async () => {
      const signal = AbortSignal.timeout(this.#storeTimeoutMs);
      try {
        const saved = await raceAbort(store.load(key, signal), signal);
        if (saved !== undefined && !entry.hasValue) {
          entry.value = saved.value;
          entry.hasValue = true;
          entry.refreshedAt = saved.refreshedAt.getTime();
        }
      } catch (err) {
        this.#logger.warn({ key, err: errorCodeOf(err) }, 'snapshot store load failed');
      }
    })();
    return entry.warming;
  }

  async #saveToStore(key: string, value: unknown, refreshedAt: number): Promise<void> {
    const store = this.#store;
    if (store === undefined) return;
    const signal = AbortSignal.timeout(this.#storeTimeoutMs);
    try {
      await raceAbort(store.save(key, value, new Date(refreshedAt), signal), signal);
    } catch (err) {
      this.#logger.warn({ key, err: errorCodeOf(err) }, 'snapshot store save failed');
    }
  }

  #warningsOf(entry: Entry, o: ResolvedReadOptions): SnapshotWarning[] {
    if (entry.lastError === undefined) return [];
    return [{ code: entry.lastError.code, dependency: this.#nameFor(entry, o), ageMs: Date.now() - entry.refreshedAt }];
  }

  #nameFor(entry: Entry, o: ResolvedReadOptions): string {
    if (o.dependency !== undefined) return o.dependency;
    const named = entry.lastError?.details.dependency;
    return typeof named === 'string' ? named : 'snapshot';
  }

  #result<T>(entry: Entry, o: ResolvedReadOptions, warnings: SnapshotWarning[]): SnapshotResult<T> {
    const ageMs = Math.max(0, Date.now() - entry.refreshedAt);
    return {
      value: entry.value as T,
      refreshedAt: new Date(entry.refreshedAt),
      ageMs,
      stale: ageMs >= o.freshMs,
      warnings,
    };
  }

  /** The entry of `key`, created if missing, moved to most recently used. */
  #touch(key: string): Entry {
    let entry = this.#entries.get(key);
    if (entry === undefined) {
      entry = {
        value: undefined,
        hasValue: false,
        refreshedAt: 0,
        loading: undefined,
        lastError: undefined,
        warming: undefined,
      };
    } else {
      this.#entries.delete(key);
    }
    this.#entries.set(key, entry);
    this.#evict();
    return entry;
  }

  /** A load that finished after its key was evicted puts the value back. */
  #reinsert(key: string, entry: Entry): void {
    if (this.#entries.get(key) === entry) return;
    if (this.#entries.has(key)) return;
    this.#entries.set(key, entry);
    this.#evict();
  }

  #evict(): void {
    while (this.#entries.size > this.#maxEntries) {
      const oldest = this.#entries.keys().next();
      if (oldest.done === true) return;
      this.#entries.delete(oldest.value);
    }
  }
}

interface ResolvedReadOptions {
  readonly freshMs: number;
  readonly maxStaleMs: number;
  readonly dependency: string | undefined;
  readonly waitMs: number;
  readonly loadTimeoutMs: number;
  readonly reserveMs: number;
}

function resolveReadOptions(input: SnapshotReadOptions): ResolvedReadOptions {
  const o: Record<string, unknown> = {
    ...SNAPSHOT_READ_DEFAULTS,
    ...Object.fromEntries(Object.entries(input).filter(([, v]) => v !== undefined)),
  };
  const check = (name: string, v: unknown, min: number): void => {
    numberWhere(`snapshot ${name}`, v as number, (n) => Number.isFinite(n) && n >= min, `a number >= ${min}`);
  };
  check('freshMs', o.freshMs, 0);
  check('maxStaleMs', o.maxStaleMs, o.freshMs as number);
  check('waitMs', o.waitMs, 0);
  check('loadTimeoutMs', o.loadTimeoutMs, 1);
  check('reserveMs', o.reserveMs, 0);
  if (o.dependency !== undefined && typeof o.dependency !== 'string') {
    throw new TypeError(`snapshot dependency must be a string, received ${typeof o.dependency}`);
  }
  return o as unknown as ResolvedReadOptions;
}

/** A failed load as the error a reader gets when there is no value: always a DEPENDENCY_* code. */
function toLoadError(err: unknown, dependency: string | undefined): HangproofError {
  if (isHangproofError(err)) {
    if (err.code === 'DEPENDENCY_TIMEOUT' || err.code === 'DEPENDENCY_UNAVAILABLE') {
      if (dependency === undefined || err.details.dependency === dependency) return err;
      return err.code === 'DEPENDENCY_TIMEOUT'
        ? dependencyTimeout(dependency, err)
        : dependencyUnavailable(dependency, 'snapshot_load_failed', { cause: err });
    }
    // The load's own deadline (runWithBudget) expired.
    if (err.code === 'REQUEST_TIMEOUT') return dependencyTimeout(dependency ?? 'snapshot', err);
  }
  return dependencyUnavailable(dependency ?? 'snapshot', 'snapshot_load_failed', { cause: err });
}

function errorCodeOf(err: unknown): string {
  const code = (err as { code?: unknown } | null)?.code;
  return typeof code === 'string' ? code : err instanceof Error ? err.name : 'error';
}
