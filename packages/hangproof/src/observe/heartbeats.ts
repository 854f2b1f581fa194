/** What a background job reports after each run. */
export interface HeartbeatReport {
  /** Whether the run succeeded. */
  readonly ok: boolean;
  /** How long the run took, in ms. */
  readonly durationMs?: number;
  /** A short, client-safe note (rows processed, the error code...). Truncated to 200 characters. */
  readonly detail?: string;
  /**
   * How often the job is meant to run, in ms. When the last beat is older than twice this, the job
   * shows as `stale` on /status. @default undefined (never stale)
   */
  readonly expectedEveryMs?: number;
}

/** A job's last beat as /status shows it. */
export interface HeartbeatStatus {
  readonly job: string;
  readonly status: 'ok' | 'failing' | 'stale';
  readonly ok: boolean;
  readonly lastBeatAt: string;
  readonly ageMs: number;
  readonly durationMs: number | undefined;
  readonly detail: string | undefined;
  readonly expectedEveryMs: number | undefined;
  readonly runs: number;
  readonly failures: number;
  /** Epoch ms of the last successful run, if any. */
  readonly lastSuccessAtMs: number | undefined;
}

interface Entry {
  lastAtMs: number;
  ok: boolean;
  durationMs: number | undefined;
  detail: string | undefined;
  expectedEveryMs: number | undefined;
  runs: number;
  failures: number;
  lastSuccessAtMs: number | undefined;
}

/** Jobs tracked; further names are ignored so a bug that makes names up cannot grow memory. */
export const MAX_HEARTBEAT_JOBS = 200;

/**
 * Background job heartbeats: each job calls `report` after a run; /status lists each job's last
 * beat, its age and whether it failed or went quiet.
 */
export class Heartbeats {
  readonly #jobs = new Map<string, Entry>();

  report(jobName: string, report: HeartbeatReport): void {
    if (typeof jobName !== 'string' || jobName.length === 0) throw new TypeError('jobName must be a non-empty string');
    let e = this.#jobs.get(jobName);
    if (e === undefined) {
      if (this.#jobs.size >= MAX_HEARTBEAT_JOBS) return;
      e = {
        lastAtMs: 0,
        ok: true,
        durationMs: undefined,
        detail: undefined,
        expectedEveryMs: undefined,
        runs: 0,
        failures: 0,
        lastSuccessAtMs: undefined,
      };
      this.#jobs.set(jobName, e);
    }
    const now = Date.now();
    e.lastAtMs = now;
    e.ok = report.ok === true;
    e.durationMs = report.durationMs;
    e.detail = report.detail === undefined ? undefined : String(report.detail).slice(0, 200);
    if (report.expectedEveryMs !== undefined) e.expectedEveryMs = report.expectedEveryMs;
    e.runs++;
    if (e.ok) e.lastSuccessAtMs = now;
    else e.failures++;
  }

  list(nowMs: number = Date.now()): HeartbeatStatus[] {
    const out: HeartbeatStatus[] = [];
    for (const [job, e] of this.#jobs) {
      const ageMs = nowMs - e.lastAtMs;
      const stale = e.expectedEveryMs !== undefined && ageMs > 2 * e.expectedEveryMs;
      out.push({
        job,
        status: stale ? 'stale' : e.ok ? 'ok' : 'failing',
        ok: e.ok,
        lastBeatAt: new Date(e.lastAtMs).toISOString(),
        ageMs,
        durationMs: e.durationMs,
        detail: e.detail,
        expectedEveryMs: e.expectedEveryMs,
        runs: e.runs,
        failures: e.failures,
        lastSuccessAtMs: e.lastSuccessAtMs,
      });
    }
    return out.sort((a, b) => a.job.localeCompare(b.job));
  }

  /** Forgets every job (tests, or a service that re-registers its jobs). */
  clear(): void {
    this.#jobs.clear();
  }
}

/** The process-wide heartbeats: `heartbeats.report('sync-prices', { ok: true, durationMs })`. */
export const heartbeats: Heartbeats = new Heartbeats();
