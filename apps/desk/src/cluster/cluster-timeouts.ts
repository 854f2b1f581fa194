import { deriveServerTimeouts } from 'hangproof/fastify';
import { DESK_DEFAULTS } from '../build-desk.js';

/**
 * The timeout ladder of a desk cluster, outermost first. Every inner limit fires before the one
 * outside it, with room left to send the error: nginx waits longer than an instance can take
 * (so the client gets the instance's 504, never nginx's), and nginx closes idle upstream
 * connections before the instance does (so nginx never reuses a socket the instance is closing).
 * `hangproof doctor --nginx --pgbouncer --service` checks the generated files against this.
 */
export interface ClusterTimeouts {
  /** nginx `proxy_connect_timeout`, in ms: instances are on the same host, so a connect is fast or refused. */
  readonly proxyConnectMs: number;
  /** nginx `proxy_read_timeout` / `proxy_send_timeout`, in ms: above the instances' requestTimeout. */
  readonly proxyReadMs: number;
  /** nginx `proxy_next_upstream_timeout`, in ms: bounds the retries on other instances. */
  readonly nextUpstreamMs: number;
  /** nginx upstream `keepalive_timeout`, in ms: below the instances' keepAliveTimeout. */
  readonly upstreamKeepaliveMs: number;
  /** nginx client `keepalive_timeout`, in ms. */
  readonly clientKeepaliveMs: number;
  /** nginx `client_header_timeout` / `client_body_timeout`, in ms. */
  readonly clientBodyMs: number;
  /** Node `requestTimeout` of each instance, in ms (derived from the deadline). */
  readonly requestTimeoutMs: number;
  /** Node `keepAliveTimeout` of each instance, in ms. */
  readonly keepAliveTimeoutMs: number;
  /** The desk's request deadline, in ms. */
  readonly deadlineMs: number;
  /** The desk's per-statement limit, in ms. */
  readonly statementTimeoutMs: number;
  /** PgBouncer `query_wait_timeout`, in ms: a client waiting for a server connection gives up before the deadline. */
  readonly pgbouncerQueryWaitMs: number;
  /** PgBouncer `query_timeout`, in ms: a backstop just above the statement limit, below the deadline. */
  readonly pgbouncerQueryMs: number;
}

const server = deriveServerTimeouts({ maxDeadlineMs: DESK_DEFAULTS.deadlineMs });

export const CLUSTER_TIMEOUTS: ClusterTimeouts = Object.freeze({
  proxyConnectMs: 1_000,
  proxyReadMs: server.requestTimeout + 1_000,
  nextUpstreamMs: 2_000,
  upstreamKeepaliveMs: 60_000,
  clientKeepaliveMs: 65_000,
  clientBodyMs: 10_000,
  requestTimeoutMs: server.requestTimeout,
  keepAliveTimeoutMs: server.keepAliveTimeout,
  deadlineMs: DESK_DEFAULTS.deadlineMs,
  statementTimeoutMs: DESK_DEFAULTS.statementTimeoutMs,
  pgbouncerQueryWaitMs: 2_000,
  pgbouncerQueryMs: DESK_DEFAULTS.statementTimeoutMs + 500,
});

/** Throws RangeError naming the first rung that does not nest. */
export function assertLadder(t: ClusterTimeouts): void {
  const rungs: [string, number, string, number][] = [
    ['proxyReadMs', t.proxyReadMs, 'requestTimeoutMs', t.requestTimeoutMs],
    ['requestTimeoutMs', t.requestTimeoutMs, 'deadlineMs', t.deadlineMs],
    ['deadlineMs', t.deadlineMs, 'pgbouncerQueryMs', t.pgbouncerQueryMs],
    ['pgbouncerQueryMs', t.pgbouncerQueryMs, 'statementTimeoutMs', t.statementTimeoutMs],
    ['deadlineMs', t.deadlineMs, 'pgbouncerQueryWaitMs', t.pgbouncerQueryWaitMs],
    ['keepAliveTimeoutMs', t.keepAliveTimeoutMs, 'upstreamKeepaliveMs', t.upstreamKeepaliveMs],
  ];
  for (const [outer, o, inner, i] of rungs) {
    if (!(o > i)) throw new RangeError(`${outer} (${o}) must exceed ${inner} (${i})`);
  }
}
