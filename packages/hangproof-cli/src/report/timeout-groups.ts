import type { RequestEvent } from 'hangproof/diagnosis';

/** Codes of requests that ended because time ran out (or the client stopped waiting). */
export const TIMEOUT_CODES: ReadonlySet<string> = new Set([
  'REQUEST_TIMEOUT',
  'DEPENDENCY_TIMEOUT',
  'CLIENT_CLOSED_REQUEST',
]);

export interface TimeoutGroup {
  readonly route: string;
  readonly lastCompletedStep: string | null;
  readonly stepInFlight: string | null;
  readonly count: number;
  readonly codes: Readonly<Record<string, number>>;
  readonly requestIds: readonly string[];
}

/** Timed-out requests grouped by route, last completed step and step in flight, largest group first. */
export function timeoutGroups(requests: readonly RequestEvent[]): TimeoutGroup[] {
  const groups = new Map<
    string,
    { g: Omit<TimeoutGroup, 'count'>; count: number; codes: Record<string, number>; ids: string[] }
  >();
  for (const r of requests) {
    if (r.errorCode === undefined || !TIMEOUT_CODES.has(r.errorCode)) continue;
    const last = r.lastCompletedStep ?? null;
    const inFlight = r.stepInFlight ?? null;
    const k = `${r.method} ${r.route}\u0000${last}\u0000${inFlight}`;
    let e = groups.get(k);
    if (e === undefined) {
      e = {
        g: {
          route: `${r.method} ${r.route}`,
          lastCompletedStep: last,
          stepInFlight: inFlight,
          codes: {},
          requestIds: [],
        },
        count: 0,
        codes: {},
        ids: [],
      };
      groups.set(k, e);
    }
    e.count++;
    e.codes[r.errorCode] = (e.codes[r.errorCode] ?? 0) + 1;
    if (e.ids.length < 5) e.ids.push(r.requestId);
  }
  return [...groups.values()]
    .map((e) => ({ ...e.g, count: e.count, codes: e.codes, requestIds: e.ids }))
    .sort((a, b) => b.count - a.count);
}
