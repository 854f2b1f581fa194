import type { Logger } from 'pino';
import { runWithBudget } from '../core/index.js';
import { isHangproofError } from '../errors.js';
import type { ExtraStatusSource } from './options.js';

/**
 * One entry of `warnings` in /status.json: something the snapshot could not include.
 * `reason`: `timeout` (no answer within `timeoutMs`), `error` (it threw or rejected; `error` is the
 * error's name, never its message), `not_an_object` (it returned something other than a plain
 * object), `key_collision` (`keys` are observe's own and were ignored), `not_serializable` (`keys`
 * could not be turned into JSON and were left out).
 */
export interface StatusWarning {
  readonly source: 'extraStatus';
  readonly reason: 'timeout' | 'error' | 'not_an_object' | 'key_collision' | 'not_serializable';
  readonly timeoutMs?: number;
  readonly error?: string;
  readonly keys?: readonly string[];
}

/** What one call of the extra status source adds to a snapshot. */
export interface ExtraStatusResult {
  readonly fields: Readonly<Record<string, unknown>>;
  readonly warnings: readonly StatusWarning[];
}

export interface ExtraStatusOptions {
  readonly source: ExtraStatusSource;
  readonly timeoutMs: number;
  readonly logger: Logger;
}

const isPlainObject = (v: unknown): v is Record<string, unknown> =>
  typeof v === 'object' && v !== null && !Array.isArray(v);

/**
 * Calls the service's `extraStatus` for a snapshot, bounded by `timeoutMs`. It runs under its own
 * budget (not the deadline of the status request that happened to trigger it, since the result is
 * shared by every reader of the cached snapshot), so queries and calls inside it are bounded too,
 * and it is cut at the budget even if it ignores its signal.
 *
 * Each kept field is copied through JSON: the snapshot is cached and must not change under its
 * readers, and a value that cannot be serialized (a cycle, a BigInt) must not turn /status.json
 * into a 500. A failure is logged when it starts (not on every poll of an open status page), a
 * colliding key once per key.
 */
export class ExtraStatus {
  readonly #o: ExtraStatusOptions;
  readonly #loggedCollisions = new Set<string>();
  #lastFailure: string | undefined;

  constructor(o: ExtraStatusOptions) {
    this.#o = o;
  }

  async collect(ownKeys: ReadonlySet<string>): Promise<ExtraStatusResult> {
    const { source, timeoutMs } = this.#o;
    let value: unknown;
    try {
      value = await runWithBudget('status:extraStatus', timeoutMs, async (signal) => source(signal));
    } catch (err) {
      const timedOut = isHangproofError(err) && err.code === 'REQUEST_TIMEOUT';
      const warning: StatusWarning = timedOut
        ? { source: 'extraStatus', reason: 'timeout', timeoutMs }
        : { source: 'extraStatus', reason: 'error', error: err instanceof Error ? err.name : typeof err };
      this.#failed(warning, timedOut ? undefined : err);
      return { fields: {}, warnings: [warning] };
    }
    if (!isPlainObject(value)) {
      const warning: StatusWarning = { source: 'extraStatus', reason: 'not_an_object' };
      this.#failed(warning, undefined);
      return { fields: {}, warnings: [warning] };
    }
    this.#lastFailure = undefined;

    const fields: Record<string, unknown> = {};
    const colliding: string[] = [];
    const unserializable: string[] = [];
    for (const [key, v] of Object.entries(value)) {
      if (ownKeys.has(key)) {
        colliding.push(key);
        continue;
      }
      try {
        const json = JSON.stringify(v);
        if (json !== undefined) fields[key] = JSON.parse(json);
      } catch {
        unserializable.push(key);
      }
    }
    const warnings: StatusWarning[] = [];
    if (colliding.length > 0) {
      warnings.push({ source: 'extraStatus', reason: 'key_collision', keys: colliding });
      const fresh = colliding.filter((k) => !this.#loggedCollisions.has(k));
      if (fresh.length > 0) {
        for (const k of fresh) this.#loggedCollisions.add(k);
        this.#o.logger.warn(
          { event: 'status_extra_key_collision', keys: fresh },
          'extraStatus returned keys that /status.json already uses; they are ignored',
        );
      }
    }
    if (unserializable.length > 0) {
      warnings.push({ source: 'extraStatus', reason: 'not_serializable', keys: unserializable });
    }
    return { fields, warnings };
  }

  #failed(warning: StatusWarning, err: unknown): void {
    if (this.#lastFailure === warning.reason) return;
    this.#lastFailure = warning.reason;
    this.#o.logger.warn(
      { event: 'status_extra_failed', reason: warning.reason, timeout_ms: warning.timeoutMs, err },
      `extraStatus left out of /status.json (${warning.reason})`,
    );
  }
}
