/**
 * Dependencies against the caller's deadline: retries (RETRY_EXCEEDS_DEADLINE), breaker delays
 * (BREAKER_DELAY_EXCEEDS_DEADLINE) and retries stacked along a call chain (RETRY_AMPLIFIED). The
 * checks run dependency by dependency, so each dependency's findings stay together.
 */
import { formatMs } from '../../output/duration.js';
import { type Finding, finding } from '../findings.js';
import type { DependencyLayer } from '../timeout-layers.js';
import type { LadderRows } from './ladder-rows.js';
import { label, requestBoundOf, sum, worstCaseMs } from './layer-math.js';

/** The deadline a dependency's calls must fit in, how findings name it, and the row it points at. */
interface CallerBound {
  readonly ms: number | null;
  readonly label: string;
  readonly id: string;
}

function callerBound(d: DependencyLayer, r: LadderRows): CallerBound {
  const requestBound = requestBoundOf(r);
  return {
    ms: d.callerDeadlineMs ?? requestBound?.valueMs ?? null,
    label: d.callerDeadlineMs !== undefined ? `its caller's deadline` : requestBound ? label(requestBound) : '',
    id: requestBound?.id ?? 'service.deadline',
  };
}

/** Every attempt timing out, plus every backoff, must fit in the caller's deadline. */
function retriesWithinDeadline(d: DependencyLayer, bound: CallerBound): Finding[] {
  if (bound.ms === null || d.maxAttempts <= 1 || !d.attemptTimeoutMs) return [];
  const worst = worstCaseMs(d);
  if (worst <= bound.ms) return [];
  const fit = Math.max(1, Math.floor((bound.ms * 0.8 - sum(d.backoffMs)) / d.maxAttempts));
  return [
    finding(
      'RETRY_EXCEEDS_DEADLINE',
      [bound.id, `dep.${d.name}.worst`],
      `${d.name}: ${d.maxAttempts} attempts x ${formatMs(d.attemptTimeoutMs)} + ${formatMs(sum(d.backoffMs))} backoff = ${formatMs(worst)}, above ${bound.label} (${formatMs(bound.ms)})`,
      `cap the whole call by the remaining budget (hangproof deps timeoutMs) and set attemptTimeoutMs to about ${formatMs(fit)}, or retry less (maxAttempts 2)`,
    ),
  ];
}

/** A breaker that stays open longer than the caller's deadline never recovers within a request. */
function breakerDelayWithinDeadline(d: DependencyLayer, bound: CallerBound): Finding[] {
  const delay = d.halfOpenAfterMs;
  if (bound.ms === null || delay === undefined || delay === null || delay <= bound.ms) return [];
  return [
    finding(
      'BREAKER_DELAY_EXCEEDS_DEADLINE',
      [bound.id, `dep.${d.name}.halfOpen`],
      `${d.name}: breaker stays open ${formatMs(delay)}, above ${bound.label} (${formatMs(bound.ms)})`,
      `set ${d.name} breaker halfOpenAfterMs to at most ${formatMs(bound.ms)} and fail fast while open (hangproof deps answers 503 DEPENDENCY_UNAVAILABLE at once); bound the probe by attemptTimeoutMs`,
    ),
  ];
}

/** Retries at two layers multiply; a callee's retries must fit in one attempt of its caller. */
function calleeRetries(d: DependencyLayer, callee: DependencyLayer): Finding[] {
  const out: Finding[] = [];
  if (callee.maxAttempts > 1 && d.maxAttempts > 1) {
    out.push(
      finding(
        'RETRY_AMPLIFIED',
        [`dep.${d.name}.attempt`, `dep.${callee.name}.attempt`],
        `${d.name} (${d.maxAttempts} attempts) calls ${callee.name} (${callee.maxAttempts} attempts): up to ${d.maxAttempts * callee.maxAttempts} calls to ${callee.name} per request`,
        `retry at one layer only: set maxAttempts 1 on ${d.name} or on ${callee.name}`,
      ),
    );
  }
  if (
    callee.attemptTimeoutMs &&
    d.attemptTimeoutMs &&
    worstCaseMs(callee) > d.attemptTimeoutMs &&
    callee.maxAttempts > 1
  ) {
    out.push(
      finding(
        'RETRY_EXCEEDS_DEADLINE',
        [`dep.${d.name}.attempt`, `dep.${callee.name}.worst`],
        `${callee.name} worst case ${formatMs(worstCaseMs(callee))} exceeds the attempt timeout of its caller ${d.name} (${formatMs(d.attemptTimeoutMs)})`,
        `derive ${callee.name}'s timeout from the remaining budget of ${d.name}'s attempt`,
      ),
    );
  }
  return out;
}

export function dependencyBudgets(r: LadderRows): Finding[] {
  const byName = new Map(r.dependencies.map((e) => [e.dep.name, e.dep]));
  return r.dependencies.flatMap(({ dep: d }) => {
    const bound = callerBound(d, r);
    return [
      ...retriesWithinDeadline(d, bound),
      ...breakerDelayWithinDeadline(d, bound),
      ...d.calls.flatMap((name) => {
        const callee = byName.get(name);
        return callee === undefined ? [] : calleeRetries(d, callee);
      }),
    ];
  });
}
