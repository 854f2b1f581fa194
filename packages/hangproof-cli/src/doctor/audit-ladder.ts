/**
 * The timeout-ladder audit: turns the collected layers into rows, outermost first, and findings.
 * Rule (docs/cli.md): every inner timeout fires before the one outside it, nothing waits forever,
 * the proxy (not the server) closes idle connections, retries and breaker delays fit the caller's
 * deadline, and the pools of all instances fit the database.
 */
import { formatMs } from '../output/duration.js';
import { type Finding, finding } from './findings.js';
import type { NginxSetting, NginxTimeouts } from './nginx-config.js';
import type { PgBouncerSettings } from './pgbouncer-ini.js';
import type { DependencyLayer, TimeoutLayers } from './timeout-layers.js';

/** One row of the ladder. `valueMs` null means none (0, infinite). */
export interface LadderLayer {
  readonly id: string;
  /** 0 gateway, 1 proxy, 2 server/workers, 3 request deadline, 4 waits inside a request, 5 database. */
  readonly tier: number;
  readonly component: string;
  readonly setting: string;
  readonly valueMs: number | null;
  readonly source: string;
  /** `ok`, or the id of the worst finding naming this layer. */
  verdict: string;
}

export interface CapacityRow {
  readonly id: string;
  readonly setting: string;
  readonly value: number;
  readonly source: string;
}

export interface AuditInput {
  readonly layers: TimeoutLayers;
  /** Where each part of `layers` came from, for the source column (e.g. { pg: 'service', postgres: 'database' }). */
  readonly sourceOf: Readonly<Record<string, string>>;
  readonly nginx?: NginxTimeouts;
  readonly pgbouncer?: PgBouncerSettings;
}

export interface AuditResult {
  readonly ok: boolean;
  readonly ladder: readonly LadderLayer[];
  readonly capacity: readonly CapacityRow[];
  readonly findings: readonly Finding[];
}

/** A request path longer than this is flagged as TIMEOUT_EXCESSIVE. */
export const EXCESSIVE_REQUEST_MS = 60_000;
/** Postgres's default `superuser_reserved_connections`. */
const DEFAULT_RESERVED = 3;

export function auditLadder(input: AuditInput): AuditResult {
  const { layers: l, nginx, pgbouncer } = input;
  const src = (part: string): string => input.sourceOf[part] ?? 'config';
  const ladder: LadderLayer[] = [];
  const findings: Finding[] = [];
  const add = (row: Omit<LadderLayer, 'verdict'>): LadderLayer => {
    const r = { ...row, verdict: 'ok' };
    ladder.push(r);
    return r;
  };
  const fromNginx = (id: string, setting: string, s: NginxSetting | undefined): LadderLayer | undefined =>
    s === undefined
      ? undefined
      : add({
          id,
          tier: 1,
          component: 'nginx',
          setting: s.scope === undefined ? setting : `${setting} (${s.scope})`,
          valueMs: s.valueMs,
          source: s.where,
        });

  // --- rows, outermost first -------------------------------------------------------------
  const gwName = l.gateway?.name ?? 'gateway';
  const gateway =
    l.gateway?.timeoutMs !== undefined
      ? add({
          id: 'gateway.timeout',
          tier: 0,
          component: gwName,
          setting: 'request timeout',
          valueMs: l.gateway.timeoutMs,
          source: src('gateway'),
        })
      : undefined;
  const gatewayIdle =
    l.gateway?.idleTimeoutMs !== undefined
      ? add({
          id: 'gateway.idle',
          tier: 0,
          component: gwName,
          setting: 'idle timeout',
          valueMs: l.gateway.idleTimeoutMs,
          source: src('gateway'),
        })
      : undefined;
  const proxyRead = fromNginx('nginx.proxy_read_timeout', 'proxy_read_timeout', nginx?.proxyReadTimeout);
  const proxyReadMax =
    nginx && nginx.proxyReadTimeoutMax.valueMs !== nginx.proxyReadTimeout.valueMs
      ? fromNginx('nginx.proxy_read_timeout.max', 'proxy_read_timeout (longest)', nginx.proxyReadTimeoutMax)
      : proxyRead;
  fromNginx('nginx.proxy_send_timeout', 'proxy_send_timeout', nginx?.proxySendTimeout);
  fromNginx('nginx.proxy_connect_timeout', 'proxy_connect_timeout', nginx?.proxyConnectTimeout);
  fromNginx('nginx.client_body_timeout', 'client_body_timeout', nginx?.clientBodyTimeout);
  const nginxKeepalive = fromNginx('nginx.keepalive_timeout', 'keepalive_timeout (clients)', nginx?.keepaliveTimeout);
  const upstreamIdle = fromNginx(
    'nginx.upstream_keepalive_timeout',
    'keepalive_timeout',
    nginx?.upstreamKeepaliveTimeout,
  );

  const workers =
    l.workers?.timeoutMs !== undefined
      ? add({
          id: 'workers.timeout',
          tier: 2,
          component: l.workers.name,
          setting: 'worker timeout',
          valueMs: l.workers.timeoutMs,
          source: src('workers'),
        })
      : undefined;
  const server = l.server;
  const srvRow = (id: string, setting: string, v: number | null | undefined) =>
    v === undefined
      ? undefined
      : add({ id, tier: 2, component: server?.name ?? 'node server', setting, valueMs: v, source: src('server') });
  const requestTimeout = srvRow('server.requestTimeout', 'requestTimeout', server?.requestTimeoutMs);
  const headersTimeout = srvRow('server.headersTimeout', 'headersTimeout', server?.headersTimeoutMs);
  const keepAlive = srvRow('server.keepAliveTimeout', 'keepAliveTimeout', server?.keepAliveTimeoutMs);
  const deadline =
    l.deadlineMs !== undefined
      ? add({
          id: 'service.deadline',
          tier: 3,
          component: l.service ?? 'service',
          setting: 'request deadline',
          valueMs: l.deadlineMs,
          source: src('deadlineMs'),
        })
      : undefined;

  const pgb = pgbouncer;
  // A PgBouncer limit row; 0 in the ini means "wait forever" and is shown as infinite.
  const pgbouncerRow = (setting: 'query_wait_timeout' | 'query_timeout', valueMs: number | undefined) =>
    pgb
      ? add({
          id: `pgbouncer.${setting}`,
          tier: 4,
          component: 'pgbouncer',
          setting,
          valueMs: valueMs || null,
          source: pgb.explicit.has(setting) ? src('pgbouncer') : 'pgbouncer default',
        })
      : undefined;
  const queryWait = pgbouncerRow('query_wait_timeout', pgb?.queryWaitTimeoutMs);
  const acquire =
    l.pg?.acquireTimeoutMs !== undefined
      ? add({
          id: 'pg.acquireTimeout',
          tier: 4,
          component: 'pg pool',
          setting: 'acquire timeout',
          valueMs: l.pg.acquireTimeoutMs,
          source: src('pg'),
        })
      : undefined;
  const depRows = new Map<
    string,
    { attempt?: LadderLayer; worst?: LadderLayer; halfOpen?: LadderLayer; dep: DependencyLayer }
  >();
  for (const d of l.dependencies ?? []) {
    const entry: { attempt?: LadderLayer; worst?: LadderLayer; halfOpen?: LadderLayer; dep: DependencyLayer } = {
      dep: d,
    };
    entry.attempt = add({
      id: `dep.${d.name}.attempt`,
      tier: 4,
      component: `dependency ${d.name}`,
      setting: d.maxAttempts > 1 ? 'attempt timeout' : 'timeout',
      valueMs: d.attemptTimeoutMs ?? null,
      source: src('dependencies'),
    });
    if (d.maxAttempts > 1 && d.attemptTimeoutMs) {
      entry.worst = add({
        id: `dep.${d.name}.worst`,
        tier: 4,
        component: `dependency ${d.name}`,
        setting: `worst case (${d.maxAttempts} attempts + backoff)`,
        valueMs: worstCaseMs(d),
        source: 'computed',
      });
    }
    if (d.halfOpenAfterMs !== undefined) {
      entry.halfOpen = add({
        id: `dep.${d.name}.halfOpen`,
        tier: 4,
        component: `dependency ${d.name}`,
        setting: 'breaker half-open after',
        valueMs: d.halfOpenAfterMs,
        source: src('dependencies'),
      });
    }
    depRows.set(d.name, entry);
  }
  const queryTimeout = pgbouncerRow('query_timeout', pgb?.queryTimeoutMs);
  const pgRow = (id: string, component: string, setting: string, v: number | null | undefined, source: string) =>
    v === undefined ? undefined : add({ id, tier: 5, component, setting, valueMs: v, source });
  const appStatement = pgRow(
    'pg.statementTimeout',
    'pg client',
    'statement_timeout',
    l.pg?.statementTimeoutMs,
    src('pg'),
  );
  const dbStatement = pgRow(
    'postgres.statement_timeout',
    'postgres',
    'statement_timeout (default)',
    l.postgres?.statementTimeoutMs,
    src('postgres'),
  );
  const appLock = pgRow('pg.lockTimeout', 'pg client', 'lock_timeout', l.pg?.lockTimeoutMs, src('pg'));
  const dbLock = pgRow(
    'postgres.lock_timeout',
    'postgres',
    'lock_timeout (default)',
    l.postgres?.lockTimeoutMs,
    src('postgres'),
  );
  const appIdleTx = pgRow(
    'pg.idleInTransaction',
    'pg client',
    'idle_in_transaction_session_timeout',
    l.pg?.idleInTransactionSessionTimeoutMs,
    src('pg'),
  );
  const dbIdleTx = pgRow(
    'postgres.idle_in_transaction_session_timeout',
    'postgres',
    'idle_in_transaction_session_timeout (default)',
    l.postgres?.idleInTransactionSessionTimeoutMs,
    src('postgres'),
  );

  // --- findings --------------------------------------------------------------------------
  const inverted = (inner: LadderLayer | undefined, outer: LadderLayer | undefined, advice: string): void => {
    if (!inner || !outer || inner.valueMs === null || outer.valueMs === null) return;
    if (inner.valueMs >= outer.valueMs) {
      const target = Math.max(1, Math.floor(outer.valueMs * 0.8));
      findings.push(
        finding(
          'LADDER_INVERTED',
          [outer.id, inner.id],
          `${label(inner)} (${formatMs(inner.valueMs)}) is not shorter than ${label(outer)} (${formatMs(outer.valueMs)}) outside it`,
          `set ${label(inner)} below ${formatMs(outer.valueMs)}, e.g. ${formatMs(target)}${advice ? `; ${advice}` : ''}`,
        ),
      );
    }
  };
  /** The tightest finite layer among `candidates` (the bound an inner wait must fit in). */
  const tightest = (...candidates: (LadderLayer | undefined)[]): LadderLayer | undefined =>
    candidates
      .filter((c): c is LadderLayer => c !== undefined && c.valueMs !== null)
      .reduce<LadderLayer | undefined>(
        (a, b) => (a === undefined || (b.valueMs as number) < (a.valueMs as number) ? b : a),
        undefined,
      );

  // Request path: gateway > proxy_read > workers > deadline. Each compared with the tightest outside it.
  inverted(proxyRead, gateway, '');
  inverted(workers, tightest(gateway, proxyRead), 'a worker killed after the proxy gave up is a hang nobody sees');
  inverted(
    deadline,
    tightest(gateway, proxyRead, workers),
    'the service must answer (504 REQUEST_TIMEOUT) before the proxy gives up',
  );
  const requestBound = tightest(deadline, workers, proxyRead, gateway);
  const inner = [queryWait, acquire, queryTimeout, appStatement ?? dbStatement];
  for (const row of inner) inverted(row, requestBound, 'leave room to turn the failure into a clear error');
  for (const [, e] of depRows) {
    const caller =
      e.dep.callerDeadlineMs !== undefined ? pseudo(`caller of ${e.dep.name}`, e.dep.callerDeadlineMs) : requestBound;
    if (e.dep.maxAttempts === 1 || e.dep.timeoutMs === undefined || e.dep.timeoutMs === null)
      inverted(e.attempt, caller, '');
  }
  inverted(
    appStatement ?? dbStatement,
    queryTimeout,
    'PgBouncer documents query_timeout as slightly above statement_timeout',
  );
  inverted(appLock ?? dbLock, appStatement ?? dbStatement, 'lock_timeout is pointless unless below statement_timeout');

  // Waits without a limit.
  const infinite = (row: LadderLayer | undefined, fix: string, severity?: 'warning'): void => {
    if (row && row.valueMs === null)
      findings.push(
        finding('TIMEOUT_INFINITE', [row.id], `${label(row)} is 0 or not set: it waits forever`, fix, severity),
      );
  };
  infinite(workers, 'set a worker timeout just above the request deadline');
  infinite(requestTimeout, 'set requestTimeout (hangproof serverOptions derives it from maxDeadlineMs)');
  infinite(headersTimeout, 'set headersTimeout, e.g. 10 s');
  infinite(deadline, 'give every request a deadline, e.g. 10 s (hangproof plugin deadlineMs)');
  infinite(queryWait, 'set query_wait_timeout below the request deadline, e.g. 5 s');
  infinite(acquire, 'set a pool acquire timeout, e.g. 2 s (hangproof pg acquireTimeoutMs)');
  for (const [, e] of depRows)
    infinite(e.attempt, `set a timeout on ${e.dep.name} calls below the caller deadline, e.g. 1-3 s`);
  const appSetsStatement = appStatement !== undefined && appStatement.valueMs !== null;
  infinite(appStatement, 'set statement_timeout per transaction, e.g. 5 s (hangproof pg statementTimeoutMs)');
  if (dbStatement && dbStatement.valueMs === null) {
    infinite(
      dbStatement,
      `ALTER ROLE <app role> SET statement_timeout = '${formatPg(requestBound?.valueMs ?? 30_000)}' (or the database), so a session that sets none is still bounded`,
      appSetsStatement ? 'warning' : undefined,
    );
  }
  const lockSet = (appLock?.valueMs ?? null) !== null || (dbLock?.valueMs ?? null) !== null;
  if (!lockSet) {
    const row = appLock ?? dbLock;
    infinite(row, "set lock_timeout below statement_timeout, e.g. '2s'", 'warning');
  }
  const idleTxSet = (appIdleTx?.valueMs ?? null) !== null || (dbIdleTx?.valueMs ?? null) !== null;
  if (!idleTxSet)
    infinite(
      appIdleTx ?? dbIdleTx,
      "set idle_in_transaction_session_timeout, e.g. '30s', so a leaked transaction cannot hold locks and a connection forever",
    );

  // Request paths of minutes.
  for (const row of [deadline, workers, proxyReadMax]) {
    if (row && row.valueMs !== null && row.valueMs > EXCESSIVE_REQUEST_MS) {
      findings.push(
        finding(
          'TIMEOUT_EXCESSIVE',
          [row.id],
          `${label(row)} is ${formatMs(row.valueMs)}: requests may take that long`,
          `keep user-facing requests under ${formatMs(EXCESSIVE_REQUEST_MS)} (a deadline of 5-30 s); move the slow work to a background job or a snapshot the request reads`,
        ),
      );
    }
  }

  // Keep-alive: each server must keep idle connections longer than the proxy in front of it.
  const keepalivePair = (server: LadderLayer | undefined, proxy: LadderLayer | undefined): void => {
    if (!server || !proxy || proxy.valueMs === null) return;
    if (server.valueMs !== null && server.valueMs > proxy.valueMs) return;
    findings.push(
      finding(
        'KEEPALIVE_BELOW_PROXY_IDLE',
        [proxy.id, server.id],
        `${label(server)} (${formatMs(server.valueMs)}) is not above ${label(proxy)} (${formatMs(proxy.valueMs)})`,
        `set ${label(server)} above the proxy's idle timeout, e.g. ${formatMs(proxy.valueMs + 5000)}${server.id === 'server.keepAliveTimeout' ? ' (hangproof serverOptions keepAliveTimeoutMs, default 72 s)' : ''}`,
      ),
    );
  };
  keepalivePair(keepAlive, upstreamIdle ?? (nginx ? undefined : gatewayIdle));
  keepalivePair(nginxKeepalive, gatewayIdle);

  // Dependencies: retries and breakers against the caller's deadline, and along chains.
  const byName = new Map((l.dependencies ?? []).map((d) => [d.name, d]));
  for (const [, e] of depRows) {
    const d = e.dep;
    const bound = d.callerDeadlineMs ?? requestBound?.valueMs ?? null;
    const boundLabel =
      d.callerDeadlineMs !== undefined ? `its caller's deadline` : requestBound ? label(requestBound) : '';
    const boundId = requestBound?.id ?? 'service.deadline';
    if (bound !== null && d.maxAttempts > 1 && d.attemptTimeoutMs) {
      const worst = worstCaseMs(d);
      if (worst > bound) {
        const fit = Math.max(1, Math.floor((bound * 0.8 - sum(d.backoffMs)) / d.maxAttempts));
        findings.push(
          finding(
            'RETRY_EXCEEDS_DEADLINE',
            [boundId, `dep.${d.name}.worst`],
            `${d.name}: ${d.maxAttempts} attempts x ${formatMs(d.attemptTimeoutMs)} + ${formatMs(sum(d.backoffMs))} backoff = ${formatMs(worst)}, above ${boundLabel} (${formatMs(bound)})`,
            `cap the whole call by the remaining budget (hangproof deps timeoutMs) and set attemptTimeoutMs to about ${formatMs(fit)}, or retry less (maxAttempts 2)`,
          ),
        );
      }
    }
    if (bound !== null && d.halfOpenAfterMs !== undefined && d.halfOpenAfterMs !== null && d.halfOpenAfterMs > bound) {
      findings.push(
        finding(
          'BREAKER_DELAY_EXCEEDS_DEADLINE',
          [boundId, `dep.${d.name}.halfOpen`],
          `${d.name}: breaker stays open ${formatMs(d.halfOpenAfterMs)}, above ${boundLabel} (${formatMs(bound)})`,
          `set ${d.name} breaker halfOpenAfterMs to at most ${formatMs(bound)} and fail fast while open (hangproof deps answers 503 DEPENDENCY_UNAVAILABLE at once); bound the probe by attemptTimeoutMs`,
        ),
      );
    }
    for (const calleeName of d.calls) {
      const callee = byName.get(calleeName);
      if (!callee) continue;
      if (callee.maxAttempts > 1 && d.maxAttempts > 1) {
        findings.push(
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
        findings.push(
          finding(
            'RETRY_EXCEEDS_DEADLINE',
            [`dep.${d.name}.attempt`, `dep.${callee.name}.worst`],
            `${callee.name} worst case ${formatMs(worstCaseMs(callee))} exceeds the attempt timeout of its caller ${d.name} (${formatMs(d.attemptTimeoutMs)})`,
            `derive ${callee.name}'s timeout from the remaining budget of ${d.name}'s attempt`,
          ),
        );
      }
    }
  }
  // Chains of breakers: the recovery delays add up along a call path.
  const calledByOthers = new Set((l.dependencies ?? []).flatMap((d) => d.calls));
  for (const d of l.dependencies ?? []) {
    if (calledByOthers.has(d.name) || d.calls.length === 0) continue;
    const path = longestBreakerChain(d, byName, new Set());
    const bound = d.callerDeadlineMs ?? requestBound?.valueMs ?? null;
    if (path.names.length > 1 && bound !== null && path.totalMs > bound) {
      findings.push(
        finding(
          'BREAKER_DELAY_EXCEEDS_DEADLINE',
          [requestBound?.id ?? 'service.deadline', ...path.names.map((n) => `dep.${n}.halfOpen`)],
          `chained breakers ${path.names.join(' -> ')} recover after ${path.delays.map((x) => formatMs(x)).join(' + ')} = ${formatMs(path.totalMs)}, above the ${formatMs(bound)} deadline`,
          'give each breaker a half-open delay within the deadline and let only the outermost caller retry; an open breaker must fail fast, never queue callers',
        ),
      );
    }
  }

  // Capacity.
  const capacity: CapacityRow[] = [];
  const instances = l.instances ?? 1;
  if (l.pg?.max !== undefined)
    capacity.push({ id: 'pg.max', setting: 'pool max per instance', value: l.pg.max, source: src('pg') });
  if (l.instances !== undefined)
    capacity.push({ id: 'instances', setting: 'instances', value: l.instances, source: src('instances') });
  const maxConn = l.postgres?.maxConnections;
  const reserved = l.postgres?.superuserReservedConnections ?? DEFAULT_RESERVED;
  if (maxConn !== undefined)
    capacity.push({
      id: 'postgres.max_connections',
      setting: 'max_connections',
      value: maxConn,
      source: src('postgres'),
    });
  if (pgb) {
    capacity.push({
      id: 'pgbouncer.max_client_conn',
      setting: 'pgbouncer max_client_conn',
      value: pgb.maxClientConn,
      source: src('pgbouncer'),
    });
    capacity.push({
      id: 'pgbouncer.default_pool_size',
      setting: 'pgbouncer default_pool_size',
      value: pgb.defaultPoolSize,
      source: src('pgbouncer'),
    });
  }
  if (l.pg?.max !== undefined) {
    const total = l.pg.max * instances;
    if (pgb && total > pgb.maxClientConn) {
      findings.push(
        finding(
          'POOL_EXCEEDS_MAX_CONNECTIONS',
          ['pg.max', 'pgbouncer.max_client_conn'],
          `${instances} instance(s) x pool max ${l.pg.max} = ${total} client connections, above PgBouncer max_client_conn ${pgb.maxClientConn}`,
          `set pool max to at most ${Math.floor(pgb.maxClientConn / instances)} per instance, or raise max_client_conn`,
        ),
      );
    } else if (!pgb && maxConn !== undefined && total > maxConn - reserved) {
      findings.push(
        finding(
          'POOL_EXCEEDS_MAX_CONNECTIONS',
          ['pg.max', 'postgres.max_connections'],
          `${instances} instance(s) x pool max ${l.pg.max} = ${total} connections, above max_connections ${maxConn} - ${reserved} reserved`,
          `set pool max to at most ${Math.max(1, Math.floor((maxConn - reserved) / instances))} per instance (leave room for migrations and psql), or put PgBouncer in transaction mode in front`,
        ),
      );
    }
  }
  if (pgb && maxConn !== undefined && pgb.defaultPoolSize > maxConn - reserved) {
    findings.push(
      finding(
        'POOL_EXCEEDS_MAX_CONNECTIONS',
        ['pgbouncer.default_pool_size', 'postgres.max_connections'],
        `PgBouncer default_pool_size ${pgb.defaultPoolSize} is above max_connections ${maxConn} - ${reserved} reserved`,
        `set default_pool_size to at most ${maxConn - reserved}`,
      ),
    );
  }

  // Verdict per row: the first (most severe) finding naming it.
  const rank = { error: 0, warning: 1 } as const;
  for (const f of [...findings].sort((a, b) => rank[a.severity] - rank[b.severity]).reverse()) {
    for (const id of f.layers.slice(-1)) {
      const row = ladder.find((r) => r.id === id);
      if (row) row.verdict = f.id;
    }
  }
  const ordered = ladder
    .map((r, i) => ({ r, i }))
    .sort((a, b) => a.r.tier - b.r.tier || a.i - b.i)
    .map((x) => x.r);
  return { ok: findings.length === 0, ladder: ordered, capacity, findings };
}

function pseudo(name: string, valueMs: number): LadderLayer {
  return { id: 'caller', tier: 3, component: name, setting: 'deadline', valueMs, source: 'config', verdict: 'ok' };
}

const label = (r: LadderLayer): string => `${r.component} ${r.setting}`;
const sum = (xs: readonly number[]): number => xs.reduce((a, b) => a + b, 0);

/** Longest a call can take: every attempt times out and every backoff waits its full bound. */
export function worstCaseMs(d: DependencyLayer): number {
  const attempts = (d.attemptTimeoutMs ?? 0) * d.maxAttempts + sum(d.backoffMs);
  return d.timeoutMs ? Math.min(d.timeoutMs, attempts) : attempts;
}

function longestBreakerChain(
  d: DependencyLayer,
  byName: ReadonlyMap<string, DependencyLayer>,
  seen: Set<string>,
): { names: string[]; delays: number[]; totalMs: number } {
  if (seen.has(d.name)) return { names: [], delays: [], totalMs: 0 };
  seen.add(d.name);
  const own = d.halfOpenAfterMs ?? 0;
  let best = { names: [] as string[], delays: [] as number[], totalMs: 0 };
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

/** A Postgres duration literal: '30s', '500ms'. */
function formatPg(ms: number): string {
  return ms % 1000 === 0 ? `${ms / 1000}s` : `${Math.round(ms)}ms`;
}
