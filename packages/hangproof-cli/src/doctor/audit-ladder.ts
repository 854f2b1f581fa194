/**
 * The timeout-ladder audit: turns the collected layers into rows, outermost first, and findings.
 * Rule (docs/cli.md): every inner timeout fires before the one outside it, nothing waits forever,
 * the proxy (not the server) closes idle connections, retries and breaker delays fit the caller's
 * deadline, and the pools of all instances fit the database. Each rule is its own function under
 * ladder/; this module runs them in a fixed order and marks each row with its worst finding.
 */
import type { Finding } from './findings.js';
import { type AuditInput, buildLadderRows, type LadderLayer, type LadderRows } from './ladder/ladder-rows.js';
import { type CapacityRow, capacityRows, poolExceedsMaxConnections } from './ladder/pool-capacity.js';
import { chainedBreakers } from './ladder/rule-chained-breakers.js';
import { dependencyBudgets } from './ladder/rule-dependencies.js';
import { keepaliveBelowProxyIdle } from './ladder/rule-keepalive.js';
import { ladderInverted } from './ladder/rule-ladder-inverted.js';
import { timeoutExcessive } from './ladder/rule-timeout-excessive.js';
import { timeoutInfinite } from './ladder/rule-timeout-infinite.js';

export { worstCaseMs } from './ladder/layer-math.js';
export { EXCESSIVE_REQUEST_MS } from './ladder/rule-timeout-excessive.js';
export type { AuditInput, CapacityRow, LadderLayer };

export interface AuditResult {
  readonly ok: boolean;
  readonly ladder: readonly LadderLayer[];
  readonly capacity: readonly CapacityRow[];
  readonly findings: readonly Finding[];
}

/** The rules, in the order their findings are listed. */
const RULES: readonly ((rows: LadderRows, input: AuditInput) => Finding[])[] = [
  ladderInverted,
  timeoutInfinite,
  timeoutExcessive,
  keepaliveBelowProxyIdle,
  dependencyBudgets,
  chainedBreakers,
  (_rows, input) => poolExceedsMaxConnections(input),
];

export function auditLadder(input: AuditInput): AuditResult {
  const rows = buildLadderRows(input);
  const findings = RULES.flatMap((rule) => rule(rows, input));
  markVerdicts(rows.all, findings);
  const ordered = rows.all
    .map((r, i) => ({ r, i }))
    .sort((a, b) => a.r.tier - b.r.tier || a.i - b.i)
    .map((x) => x.r);
  return { ok: findings.length === 0, ladder: ordered, capacity: capacityRows(input), findings };
}

/** Verdict per row: the most severe finding naming it as its inner (last) layer. */
function markVerdicts(ladder: readonly LadderLayer[], findings: readonly Finding[]): void {
  const rank = { error: 0, warning: 1 } as const;
  for (const f of [...findings].sort((a, b) => rank[a.severity] - rank[b.severity]).reverse()) {
    for (const id of f.layers.slice(-1)) {
      const row = ladder.find((r) => r.id === id);
      if (row) row.verdict = f.id;
    }
  }
}
