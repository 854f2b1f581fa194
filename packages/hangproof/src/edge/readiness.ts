import { HangproofError } from '../errors.js';

/** A readiness check: resolves when ready, throws (or rejects) when not. Must honour `signal`. */
export type ReadinessCheck = (signal: AbortSignal) => unknown;

export interface ReadinessCheckOptions {
  /** Time the check may take before it counts as failed, in ms. @default 1000 */
  readonly timeoutMs?: number;
  /** A failing critical check makes the service not ready; others are only reported. @default true */
  readonly critical?: boolean;
}

export interface CheckResult {
  readonly ok: boolean;
  readonly critical: boolean;
  readonly durationMs: number;
  /** hangproof error code or a short reason when not ok. */
  readonly error?: string;
}

export interface ReadinessReport {
  readonly ready: boolean;
  readonly shuttingDown: boolean;
  readonly checkedAt: string;
  readonly checks: Readonly<Record<string, CheckResult>>;
}

interface Registered {
  readonly check: ReadinessCheck;
  readonly timeoutMs: number;
  readonly critical: boolean;
}

/**
 * Readiness checks with short timeouts, run together and cached for `cacheMs` so that a storm of
 * probes costs one evaluation (single-flight). Once shutdown starts the answer is "not ready"
 * without running anything.
 */
export class Readiness {
  readonly #checks = new Map<string, Registered>();
  readonly #cacheMs: number;
  #cached: { report: ReadinessReport; at: number } | undefined;
  #running: Promise<ReadinessReport> | undefined;
  #shuttingDown = false;

  constructor(cacheMs: number) {
    this.#cacheMs = cacheMs;
  }

  add(name: string, check: ReadinessCheck, options: ReadinessCheckOptions = {}): void {
    const timeoutMs = options.timeoutMs ?? 1000;
    if (!(timeoutMs > 0))
      throw new RangeError(`readiness check '${name}' timeoutMs must be > 0, received ${timeoutMs}`);
    if (this.#checks.has(name)) throw new TypeError(`readiness check '${name}' is already registered`);
    this.#checks.set(name, { check, timeoutMs, critical: options.critical ?? true });
    this.#cached = undefined;
  }

  markShuttingDown(): void {
    this.#shuttingDown = true;
    this.#cached = undefined;
  }

  get shuttingDown(): boolean {
    return this.#shuttingDown;
  }

  evaluate(): Promise<ReadinessReport> {
    if (this.#shuttingDown) {
      return Promise.resolve({ ready: false, shuttingDown: true, checkedAt: new Date().toISOString(), checks: {} });
    }
    const now = performance.now();
    if (this.#cached !== undefined && now - this.#cached.at < this.#cacheMs)
      return Promise.resolve(this.#cached.report);
    this.#running ??= this.#run().finally(() => {
      this.#running = undefined;
    });
    return this.#running;
  }

  async #run(): Promise<ReadinessReport> {
    const entries = [...this.#checks];
    const results = await Promise.all(entries.map(([, r]) => runCheck(r)));
    const checks: Record<string, CheckResult> = {};
    entries.forEach(([name], i) => {
      checks[name] = results[i] as CheckResult;
    });
    const report = {
      ready: !this.#shuttingDown && results.every((r) => r.ok || !r.critical),
      shuttingDown: this.#shuttingDown,
      checkedAt: new Date().toISOString(),
      checks,
    };
    this.#cached = { report, at: performance.now() };
    return report;
  }
}

async function runCheck(r: Registered): Promise<CheckResult> {
  const started = performance.now();
  const signal = AbortSignal.timeout(r.timeoutMs);
  const timedOut = new Promise<never>((_, reject) =>
    signal.addEventListener('abort', () => reject(new HangproofError('DEPENDENCY_TIMEOUT')), { once: true }),
  );
  try {
    await Promise.race([Promise.resolve().then(() => r.check(signal)), timedOut]);
    return { ok: true, critical: r.critical, durationMs: round(performance.now() - started) };
  } catch (err) {
    const code = typeof (err as { code?: unknown }).code === 'string' ? (err as { code: string }).code : 'FAILED';
    return { ok: false, critical: r.critical, durationMs: round(performance.now() - started), error: code };
  }
}

const round = (ms: number): number => Math.round(ms * 10) / 10;
