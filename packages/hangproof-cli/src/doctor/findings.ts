/**
 * The catalogue of `doctor` findings. Ids are stable (scripts and tests switch on them) and each
 * has a row in docs/cli.md. `why` is fixed per id; the message and the fix name the values found.
 */
export const FINDINGS = Object.freeze({
  LADDER_INVERTED: {
    severity: 'error',
    why: 'An inner timeout that is not shorter than the one outside it never fires first: the outer layer gives up, the client gets a generic 502/504, and the inner work (query, call, worker) keeps running and holding its connection.',
  },
  TIMEOUT_INFINITE: {
    severity: 'error',
    why: 'A wait with no limit (0 or not set) is how a request hangs: one stuck query, lock or socket holds a connection and a slot until something outside kills it.',
  },
  TIMEOUT_EXCESSIVE: {
    severity: 'warning',
    why: 'A request path allowed to take minutes hides the slow work instead of fixing it: each waiting request pins a socket, a worker and often a pool connection, so a slow spell turns into exhaustion. Long work belongs in a background job or a precomputed snapshot.',
  },
  KEEPALIVE_BELOW_PROXY_IDLE: {
    severity: 'error',
    why: 'When the server closes an idle kept-alive connection before the proxy does, the proxy can send the next request on a socket that is closing and answer 502 for a request the server never saw.',
  },
  RETRY_EXCEEDS_DEADLINE: {
    severity: 'error',
    why: 'Attempts x per-attempt timeout + backoff longer than the caller can wait means the later retries run after the caller has given up: wasted load on a dependency that is already struggling, and no answer in time.',
  },
  RETRY_AMPLIFIED: {
    severity: 'warning',
    why: 'Retries at several layers of a chain multiply: 3 attempts calling 3 attempts send up to 9 requests to the innermost dependency exactly when it is failing.',
  },
  BREAKER_DELAY_EXCEEDS_DEADLINE: {
    severity: 'error',
    why: 'A breaker that stays open longer than the caller deadline keeps the feature down long after the dependency recovered, and a caller that waits for it to half-open outlives its deadline; chained breakers add up (60 s + 60 s = 120 s stalls).',
  },
  POOL_EXCEEDS_MAX_CONNECTIONS: {
    severity: 'error',
    why: 'If every instance fills its pool, the database refuses connections (53300 too_many_connections) or the pooler queues them: new requests fail or wait while existing ones are fine.',
  },
} as const satisfies Record<string, { severity: 'error' | 'warning'; why: string }>);

export type FindingId = keyof typeof FINDINGS;
export type Severity = 'error' | 'warning';

export interface Finding {
  readonly id: FindingId;
  readonly severity: Severity;
  /** Ids of the ladder layers involved, outermost first. */
  readonly layers: readonly string[];
  /** What is wrong, with the values found. */
  readonly message: string;
  readonly why: string;
  /** What to set, with a value. */
  readonly fix: string;
}

export function finding(
  id: FindingId,
  layers: readonly string[],
  message: string,
  fix: string,
  severity: Severity = FINDINGS[id].severity,
): Finding {
  return { id, severity, layers, message, why: FINDINGS[id].why, fix };
}
