/**
 * BREAKER_DELAY_EXCEEDS_DEADLINE along a call path: the recovery delays of chained breakers add
 * up, so each may fit the deadline while the chain does not.
 */
import { formatMs } from '../../output/duration.js';
import { type Finding, finding } from '../findings.js';
import type { DependencyLayer } from '../timeout-layers.js';
import type { LadderRows } from './ladder-rows.js';
import { requestBoundOf } from './layer-math.js';

interface BreakerChain {
  readonly names: string[];
  readonly delays: number[];
  readonly totalMs: number;
}

function longestBreakerChain(
  d: DependencyLayer,
  byName: ReadonlyMap<string, DependencyLayer>,
  seen: Set<string>,
): BreakerChain {
  if (seen.has(d.name)) return { names: [], delays: [], totalMs: 0 };
  seen.add(d.name);
  const own = d.halfOpenAfterMs ?? 0;
  let best: BreakerChain = { names: [], delays: [], totalMs: 0 };
  for (const c of d.calls) {
    const callee = byName.get(c);
    if (!callee) continue;
    const sub = longestBreakerChain(callee, byName, new Set(seen));
    if (sub.totalMs > best.totalMs) best = sub;
  }
  return own > 0
    ? { names: [d.name, ...best.names], delays: [own, ...best.delays], totalMs: own + best.totalMs }
    : best;
}

export function chainedBreakers(r: LadderRows): Finding[] {
  const deps = r.dependencies.map((e) => e.dep);
  const byName = new Map(deps.map((d) => [d.name, d]));
  const calledByOthers = new Set(deps.flatMap((d) => d.calls));
  const requestBound = requestBoundOf(r);
  const out: Finding[] = [];
  // Chains start at a dependency nobody else calls.
  for (const d of deps) {
    if (calledByOthers.has(d.name) || d.calls.length === 0) continue;
    const path = longestBreakerChain(d, byName, new Set());
    const bound = d.callerDeadlineMs ?? requestBound?.valueMs ?? null;
    if (path.names.length > 1 && bound !== null && path.totalMs > bound) {
      out.push(
        finding(
          'BREAKER_DELAY_EXCEEDS_DEADLINE',
          [requestBound?.id ?? 'service.deadline', ...path.names.map((n) => `dep.${n}.halfOpen`)],
          `chained breakers ${path.names.join(' -> ')} recover after ${path.delays.map((x) => formatMs(x)).join(' + ')} = ${formatMs(path.totalMs)}, above the ${formatMs(bound)} deadline`,
          'give each breaker a half-open delay within the deadline and let only the outermost caller retry; an open breaker must fail fast, never queue callers',
        ),
      );
    }
  }
  return out;
}
