/**
 * The rows of the timeout ladder, built from the collected layers: one per timeout that was found,
 * each named so the rules can compare them. Rows are added in the order they are read; the audit
 * sorts them outermost first.
 */
import type { NginxSetting, NginxTimeouts } from '../nginx-config.js';
import type { PgBouncerSettings } from '../pgbouncer-ini.js';
import type { DependencyLayer, TimeoutLayers } from '../timeout-layers.js';
import { worstCaseMs } from './layer-math.js';

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

export interface AuditInput {
  readonly layers: TimeoutLayers;
  /** Where each part of `layers` came from, for the source column (e.g. { pg: 'service', postgres: 'database' }). */
  readonly sourceOf: Readonly<Record<string, string>>;
  readonly nginx?: NginxTimeouts;
  readonly pgbouncer?: PgBouncerSettings;
}

/** A dependency's rows: its (attempt) timeout, its worst case with retries, its breaker delay. */
export interface DependencyRows {
  readonly dep: DependencyLayer;
  readonly attempt: LadderLayer;
  readonly worst: LadderLayer | undefined;
  readonly halfOpen: LadderLayer | undefined;
}

/** Every row, in reading order, and the named rows the rules compare (undefined: not found). */
export interface LadderRows {
  readonly all: LadderLayer[];
  readonly gateway: LadderLayer | undefined;
  readonly gatewayIdle: LadderLayer | undefined;
  readonly proxyRead: LadderLayer | undefined;
  /** The longest proxy_read_timeout of any location (proxyRead when all agree). */
  readonly proxyReadMax: LadderLayer | undefined;
  readonly nginxKeepalive: LadderLayer | undefined;
  readonly upstreamIdle: LadderLayer | undefined;
  readonly workers: LadderLayer | undefined;
  readonly requestTimeout: LadderLayer | undefined;
  readonly headersTimeout: LadderLayer | undefined;
  readonly keepAlive: LadderLayer | undefined;
  readonly deadline: LadderLayer | undefined;
  readonly queryWait: LadderLayer | undefined;
  readonly acquire: LadderLayer | undefined;
  readonly dependencies: readonly DependencyRows[];
  readonly queryTimeout: LadderLayer | undefined;
  readonly appStatement: LadderLayer | undefined;
  readonly dbStatement: LadderLayer | undefined;
  readonly appLock: LadderLayer | undefined;
  readonly dbLock: LadderLayer | undefined;
  readonly appIdleTx: LadderLayer | undefined;
  readonly dbIdleTx: LadderLayer | undefined;
}

export function buildLadderRows(input: AuditInput): LadderRows {
  const { layers: l, nginx, pgbouncer: pgb } = input;
  const src = (part: string): string => input.sourceOf[part] ?? 'config';
  const all: LadderLayer[] = [];
  const add = (row: Omit<LadderLayer, 'verdict'>): LadderLayer => {
    const r = { ...row, verdict: 'ok' };
    all.push(r);
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
  const dependencies = (l.dependencies ?? []).map((d): DependencyRows => {
    const attempt = add({
      id: `dep.${d.name}.attempt`,
      tier: 4,
      component: `dependency ${d.name}`,
      setting: d.maxAttempts > 1 ? 'attempt timeout' : 'timeout',
      valueMs: d.attemptTimeoutMs ?? null,
      source: src('dependencies'),
    });
    const worst =
      d.maxAttempts > 1 && d.attemptTimeoutMs
        ? add({
            id: `dep.${d.name}.worst`,
            tier: 4,
            component: `dependency ${d.name}`,
            setting: `worst case (${d.maxAttempts} attempts + backoff)`,
            valueMs: worstCaseMs(d),
            source: 'computed',
          })
        : undefined;
    const halfOpen =
      d.halfOpenAfterMs !== undefined
        ? add({
            id: `dep.${d.name}.halfOpen`,
            tier: 4,
            component: `dependency ${d.name}`,
            setting: 'breaker half-open after',
            valueMs: d.halfOpenAfterMs,
            source: src('dependencies'),
          })
        : undefined;
    return { dep: d, attempt, worst, halfOpen };
  });
  const queryTimeout = pgbouncerRow('query_timeout', pgb?.queryTimeoutMs);
  const pgRow = (id: string, component: string, setting: string, v: number | null | undefined, source: string) =>
    v === undefined ? undefined : add({ id, tier: 5, component, setting, valueMs: v, source });
  const pgClient = (id: string, setting: string, v: number | null | undefined) =>
    pgRow(id, 'pg client', setting, v, src('pg'));
  const postgres = (id: string, setting: string, v: number | null | undefined) =>
    pgRow(id, 'postgres', setting, v, src('postgres'));
  const appStatement = pgClient('pg.statementTimeout', 'statement_timeout', l.pg?.statementTimeoutMs);
  const dbStatement = postgres(
    'postgres.statement_timeout',
    'statement_timeout (default)',
    l.postgres?.statementTimeoutMs,
  );
  const appLock = pgClient('pg.lockTimeout', 'lock_timeout', l.pg?.lockTimeoutMs);
  const dbLock = postgres('postgres.lock_timeout', 'lock_timeout (default)', l.postgres?.lockTimeoutMs);
  const appIdleTx = pgClient(
    'pg.idleInTransaction',
    'idle_in_transaction_session_timeout',
    l.pg?.idleInTransactionSessionTimeoutMs,
  );
  const dbIdleTx = postgres(
    'postgres.idle_in_transaction_session_timeout',
    'idle_in_transaction_session_timeout (default)',
    l.postgres?.idleInTransactionSessionTimeoutMs,
  );

  return {
    all,
    gateway,
    gatewayIdle,
    proxyRead,
    proxyReadMax,
    nginxKeepalive,
    upstreamIdle,
    workers,
    requestTimeout,
    headersTimeout,
    keepAlive,
    deadline,
    queryWait,
    acquire,
    dependencies,
    queryTimeout,
    appStatement,
    dbStatement,
    appLock,
    dbLock,
    appIdleTx,
    dbIdleTx,
  };
}
