/** The plan a report names for a slow statement, chosen among every plan captured for it. */
export interface CapturedPlan {
  /** The plan node with the largest own cost: `Seq Scan`, `Sort`... */
  readonly nodeType: string;
  readonly relation: string | undefined;
  /** An index that would serve it, when there is one. */
  readonly suggestion: string | undefined;
}

/**
 * Every plan captured per fingerprint, and the one that explains the slow runs. A plan is taken
 * after its statement was slow, so one taken after the fix (the index back) describes the cure,
 * not the incident: the plan that points at a fix wins over one that does not, then the plan
 * captured most often, then the first.
 */
export class CapturedPlans {
  readonly #byFingerprint = new Map<string, Map<string, { plan: CapturedPlan; captures: number }>>();

  add(fingerprint: string, plan: CapturedPlan): void {
    const seen = this.#byFingerprint.get(fingerprint) ?? new Map<string, { plan: CapturedPlan; captures: number }>();
    const key = `${plan.nodeType}\u0000${plan.relation ?? ''}\u0000${plan.suggestion ?? ''}`;
    const entry = seen.get(key);
    if (entry === undefined) seen.set(key, { plan, captures: 1 });
    else entry.captures++;
    this.#byFingerprint.set(fingerprint, seen);
  }

  /** The plan that explains `fingerprint`'s slow runs, undefined when none was captured. */
  explaining(fingerprint: string): CapturedPlan | undefined {
    let best: { plan: CapturedPlan; captures: number } | undefined;
    for (const entry of this.#byFingerprint.get(fingerprint)?.values() ?? []) {
      if (best === undefined) best = entry;
      else {
        const fixable = Number(entry.plan.suggestion !== undefined) - Number(best.plan.suggestion !== undefined);
        if (fixable > 0 || (fixable === 0 && entry.captures > best.captures)) best = entry;
      }
    }
    return best?.plan;
  }
}
