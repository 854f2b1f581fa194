import type pg from 'pg';
import { logEvidence } from '../core/index.js';
import { optionalGroup } from '../core/option-checks.js';
import { isHangproofError } from '../errors.js';
import { LOG_EVENTS } from '../log-events.js';
import { isSingleStatement } from './limited-query.js';
import type { PgLogger } from './logger.js';
import { errorSummary } from './redact-params.js';
import { SideConnection, type SideConnectionTarget } from './side-connection.js';

/** Plans of slow statements. Options of `createDatabase`'s `planEvidence`; defaults in PLAN_EVIDENCE_DEFAULTS. */
export interface PlanEvidenceOptions {
  /** One fingerprint's plan is captured at most once per this many ms. @default 300_000 */
  readonly perFingerprintMs?: number;
  /** Shortest time between two captures of any fingerprint, in ms. @default 1_000 */
  readonly minIntervalMs?: number;
  /** Bound of one capture (connect + EXPLAIN), in ms; also its statement_timeout. @default 1_000 */
  readonly timeoutMs?: number;
  /** Plans kept for `stats().plans.recent` and /status. @default 10 */
  readonly keep?: number;
}

/** Every default of PlanEvidenceOptions (docs/reference/pg.md repeats them). */
export const PLAN_EVIDENCE_DEFAULTS = Object.freeze({
  perFingerprintMs: 300_000,
  minIntervalMs: 1_000,
  timeoutMs: 1_000,
  keep: 10,
} satisfies Required<PlanEvidenceOptions>);

/** Validates `planEvidence`; throws TypeError/RangeError naming the value. */
export function resolvePlanEvidenceOptions(
  input: PlanEvidenceOptions | false | undefined,
): Required<PlanEvidenceOptions> | false {
  return optionalGroup<Required<PlanEvidenceOptions>>('planEvidence', input, PLAN_EVIDENCE_DEFAULTS, {
    perFingerprintMs: 0,
    minIntervalMs: 0,
    timeoutMs: 10,
    keep: 1,
  });
}

/** The plan node that dominates a statement's estimated cost. */
export interface DominantNode {
  /** `Seq Scan`, `Index Scan`, `Hash Join`, `Sort`... */
  readonly nodeType: string;
  /** The table it reads, schema-qualified, when it reads one. */
  readonly relation: string | null;
  /** Rows the planner expects it to produce. */
  readonly planRows: number;
  /** Its own share (0..1) of the plan's total cost, children excluded. */
  readonly costShare: number;
  /** Its own estimated cost, in the planner's units, children excluded. */
  readonly ownCost: number;
  /** Its filter or index condition, parameters as `$n` (a generic plan has no values). */
  readonly condition: string | null;
}

/** What one capture found for one fingerprint. */
export interface SlowPlan {
  /** ISO time of the capture. */
  readonly at: string;
  readonly fingerprint: string;
  /** Duration of the statement run that triggered the capture, in ms. */
  readonly durationMs: number;
  /** `generic` (EXPLAIN GENERIC_PLAN, Postgres 16+) or `bound` (EXPLAIN with the run's values). */
  readonly planKind: 'generic' | 'bound';
  readonly totalCost: number;
  readonly dominant: DominantNode;
  /** An index that would serve the dominant node's access path, when it is a filtered Seq Scan. */
  readonly suggestion: string | null;
}

/** Counters and recent plans, in `stats().plans`. */
export interface PlanStats {
  readonly captured: number;
  readonly failed: number;
  /** Slow runs for which no plan was captured (rate limit, capture in flight, not one statement). */
  readonly skipped: number;
  /** Connections opened for captures: one serves every capture of an incident (see SIDE_IDLE_MS). */
  readonly connectionsOpened: number;
  readonly recent: readonly SlowPlan[];
}

export interface PlanEvidenceInit extends SideConnectionTarget {
  readonly pool: string;
  readonly logger: PgLogger;
  readonly options: Required<PlanEvidenceOptions>;
}

/** Stable `event` of the log line. */
export const SLOW_PLAN_EVENT = LOG_EVENTS.pgSlowPlan;

/** Statements EXPLAIN accepts (DDL and utility statements have no plan). */
const EXPLAINABLE = /^\s*\(?\s*(?:SELECT|WITH|INSERT|UPDATE|DELETE|MERGE|VALUES|TABLE)\b/i;

/** Fingerprints remembered for the per-fingerprint limit. */
const MAX_TRACKED = 1_000;

interface PlanNode {
  'Node Type': string;
  'Relation Name'?: string;
  Schema?: string;
  'Total Cost': number;
  'Plan Rows': number;
  Filter?: string;
  'Index Cond'?: string;
  Plans?: PlanNode[];
}

/**
 * Captures, off the request path, the plan of a statement that ran slower than `slowQueryMs`:
 * at most one per fingerprint per `perFingerprintMs`, one at a time, one per `minIntervalMs`, on
 * a connection of its own (kept while captures follow each other, closed SIDE_IDLE_MS after the
 * last), each bounded by `timeoutMs`. `EXPLAIN` never runs the statement. On
 * Postgres 16+ it is `EXPLAIN (GENERIC_PLAN)` on the text alone; before, the run's values are
 * bound to it (they stay in memory for that call and are never logged). The plan's node with the
 * largest own cost names what to fix: a Seq Scan over one table, with the index that would serve
 * its filter.
 */
export class PlanEvidence {
  readonly #i: PlanEvidenceInit;
  readonly #o: Required<PlanEvidenceOptions>;
  readonly #lastByFingerprint = new Map<string, number>();
  readonly #recent: SlowPlan[] = [];
  readonly #side: SideConnection;
  /** server_version_num of each side connection (it decides how EXPLAIN is asked), read once on it. */
  readonly #serverVersion = new WeakMap<pg.Client, number>();
  #inFlight = false;
  #lastStartMs = Number.NEGATIVE_INFINITY;
  #closed = false;
  #captured = 0;
  #failed = 0;
  #skipped = 0;

  constructor(init: PlanEvidenceInit) {
    this.#i = init;
    this.#o = init.options;
    this.#side = new SideConnection(init, {
      purpose: 'plan-evidence',
      timeoutMs: this.#o.timeoutMs,
      // Planning takes a light lock on each table; behind a migration's lock it must give up fast.
      lockTimeoutMs: Math.max(1, Math.floor(this.#o.timeoutMs / 2)),
    });
  }

  stats(): PlanStats {
    return {
      captured: this.#captured,
      failed: this.#failed,
      skipped: this.#skipped,
      connectionsOpened: this.#side.opened,
      recent: [...this.#recent],
    };
  }

  /**
   * A statement ran slow (`execMs`, its acquire wait excluded): maybe capture its plan, in the
   * background. Never throws, never waits. A statement that failed waiting for a lock, a
   * connection or the network is not slow because of its plan, and is left alone.
   */
  onSlow(
    sql: string,
    fingerprint: string,
    params: readonly unknown[] | undefined,
    durationMs: number,
    error: unknown,
  ): void {
    if (this.#closed) return;
    if (error !== undefined && !(isHangproofError(error) && error.details.phase === 'query')) return;
    const now = performance.now();
    const last = this.#lastByFingerprint.get(fingerprint);
    if (last !== undefined && now - last < this.#o.perFingerprintMs) return;
    if (!EXPLAINABLE.test(sql)) return;
    if (this.#inFlight || now - this.#lastStartMs < this.#o.minIntervalMs || !isSingleStatement(sql)) {
      this.#skipped++;
      return;
    }
    this.#inFlight = true;
    this.#lastStartMs = now;
    if (this.#lastByFingerprint.size >= MAX_TRACKED) this.#lastByFingerprint.clear();
    this.#lastByFingerprint.set(fingerprint, now);
    void this.#capture(sql, fingerprint, params, durationMs).finally(() => {
      this.#inFlight = false;
    });
  }

  close(): void {
    this.#closed = true;
    this.#side.close();
  }

  async #capture(sql: string, fingerprint: string, params: readonly unknown[] | undefined, durationMs: number) {
    try {
      const { plan, kind } = await this.#side.run((client) => this.#explain(client, sql, params));
      const dominant = dominantNode(plan);
      const found: SlowPlan = {
        at: new Date().toISOString(),
        fingerprint,
        durationMs: Math.round(durationMs),
        planKind: kind,
        totalCost: plan['Total Cost'],
        dominant,
        suggestion: suggestIndex(dominant),
      };
      this.#captured++;
      this.#recent.unshift(found);
      this.#recent.splice(this.#o.keep);
      logEvidence(
        this.#i.logger,
        'warn',
        { event: SLOW_PLAN_EVENT, pool: this.#i.pool, ...found },
        `slow postgres statement: ${dominant.nodeType}${dominant.relation === null ? '' : ` on ${dominant.relation}`} dominates its plan${found.suggestion === null ? '' : `; consider ${found.suggestion}`}`,
      );
    } catch (err) {
      this.#failed++;
      this.#i.logger.debug(
        { pool: this.#i.pool, sql: fingerprint, err: errorSummary(err, params) },
        'capturing a plan failed',
      );
    }
  }

  async #explain(
    client: pg.Client,
    sql: string,
    params: readonly unknown[] | undefined,
  ): Promise<{ plan: PlanNode; kind: 'generic' | 'bound' }> {
    let version = this.#serverVersion.get(client);
    if (version === undefined) {
      const v = (await client.query<{ v: string }>("SELECT current_setting('server_version_num') AS v")).rows[0]?.v;
      version = Number(v);
      this.#serverVersion.set(client, version);
    }
    const text = sql.trim().replace(/;\s*$/, '');
    const generic = version >= 160_000;
    const result = generic
      ? await client.query(`EXPLAIN (GENERIC_PLAN, FORMAT JSON) ${text}`)
      : await client.query(`EXPLAIN (FORMAT JSON) ${text}`, (params ?? []) as unknown[]);
    const json = (result.rows[0] as Record<string, unknown> | undefined)?.['QUERY PLAN'];
    const plan = (Array.isArray(json) ? (json[0] as { Plan?: PlanNode } | undefined)?.Plan : undefined) as
      | PlanNode
      | undefined;
    if (plan === undefined) throw new Error('EXPLAIN gave no plan');
    return { plan, kind: generic ? 'generic' : 'bound' };
  }
}

/** The node whose own cost (its total minus its children's) is the largest. */
export function dominantNode(root: PlanNode): DominantNode {
  let best = root;
  let bestOwn = Number.NEGATIVE_INFINITY;
  const walk = (n: PlanNode): void => {
    const children = n.Plans ?? [];
    const own = n['Total Cost'] - children.reduce((sum, c) => sum + c['Total Cost'], 0);
    // A scan beats a join of equal own cost: the table is what a reader can act on.
    if (own > bestOwn || (own === bestOwn && n['Relation Name'] !== undefined)) {
      best = n;
      bestOwn = own;
    }
    for (const c of children) walk(c);
  };
  walk(root);
  const total = root['Total Cost'];
  return {
    nodeType: best['Node Type'],
    relation:
      best['Relation Name'] === undefined
        ? null
        : best.Schema === undefined
          ? best['Relation Name']
          : `${best.Schema}.${best['Relation Name']}`,
    planRows: best['Plan Rows'],
    costShare: total > 0 ? Math.round((Math.max(0, bestOwn) / total) * 100) / 100 : 1,
    ownCost: Math.round(Math.max(0, bestOwn) * 100) / 100,
    condition: best.Filter ?? best['Index Cond'] ?? null,
  };
}

/** A column compared in a filter: `(bot_id = $1)`, `((o.status)::text = 'x'::text)`, `(ts >= $2)`. */
const COMPARED = /\(*(?:[a-z_][a-z0-9_]*\.)?([a-z_][a-z0-9_]*)\)?(?:::[a-z ]+)?\s*(<>|!=|= ANY|<=|>=|=|<|>)/gi;

/**
 * Below this estimated cost a Seq Scan is not worth an index: Postgres reads such a table (a few
 * tens of thousands of narrow rows at most) in milliseconds, so a statement slower than
 * `slowQueryMs` was slow for another reason (a lock, a busy server, a function it calls), and
 * naming the scan would send its reader after a symptom. The 200,000-row table of the tests costs
 * about 3,600; a 500-row one about 9.
 */
export const MIN_SCAN_COST_FOR_INDEX = 1_000;

/**
 * `CREATE INDEX CONCURRENTLY ON <table> (<columns>)` for a Seq Scan whose filter compares plain
 * columns and whose table is large enough for an index to matter (MIN_SCAN_COST_FOR_INDEX), else
 * null: equality columns first, then range ones (the order a B-tree serves); `<>` is left out,
 * since no index serves it.
 */
export function suggestIndex(d: DominantNode): string | null {
  if (d.nodeType !== 'Seq Scan' || d.relation === null || d.condition === null) return null;
  if (d.ownCost < MIN_SCAN_COST_FOR_INDEX) return null;
  const equal: string[] = [];
  const range: string[] = [];
  for (const m of d.condition.matchAll(COMPARED)) {
    const [column, op] = [m[1] as string, m[2] as string];
    if (op === '<>' || op === '!=') continue;
    (op === '=' || op === '= ANY' ? equal : range).push(column);
  }
  const columns = [...new Set([...equal, ...range])].slice(0, 3);
  if (columns.length === 0) return null;
  return `CREATE INDEX CONCURRENTLY ON ${d.relation} (${columns.join(', ')})`;
}
