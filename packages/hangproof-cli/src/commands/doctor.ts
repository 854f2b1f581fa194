/**
 * `hangproof doctor`: audits the timeout ladder from the outermost layer inwards. It reads what it
 * is given (a running service, nginx and PgBouncer files, a live database, a JSON description) and
 * prints one verdict per layer and one finding per problem, each with why and what to set.
 */
import { readFile } from 'node:fs/promises';
import { basename } from 'node:path';
import type { Command } from 'commander';
import { type AuditResult, auditLadder } from '../doctor/audit-ladder.js';
import { nginxTimeouts } from '../doctor/nginx-config.js';
import { loadNginxConfig, NginxLoadError } from '../doctor/nginx-includes.js';
import { parsePgBouncerIni } from '../doctor/pgbouncer-ini.js';
import { readPostgresLayers } from '../doctor/postgres-settings.js';
import { mergeLayers, normaliseLayers, type TimeoutLayers } from '../doctor/timeout-layers.js';
import { fetchJson } from '../http/fetch-json.js';
import { asStatusJson } from '../http/status-json.js';
import { CliError, EXIT } from '../output/cli-error.js';
import { type CliIo, painter, printJson, println } from '../output/cli-io.js';
import { formatMs } from '../output/duration.js';
import { renderTable } from '../output/table.js';
import { within } from '../output/within.js';
import { openSession, pgReason } from '../pg/connect.js';

export interface DoctorOptions {
  /** Base URL of a running hangproof service; its /status.json `settings` are read. */
  readonly service?: string;
  readonly adminToken?: string;
  readonly nginx?: string;
  readonly pgbouncer?: string;
  /** Read the database defaults live (`--database-url`, else DATABASE_URL when `--database` is given). */
  readonly databaseUrl?: string;
  readonly config?: string;
  /** Bound of each network read, in ms. @default 3_000 */
  readonly timeoutMs?: number;
  readonly json?: boolean;
  /** Exit 1 only on errors, not warnings. @default false */
  readonly errorsOnly?: boolean;
}

export interface DoctorReport extends AuditResult {
  readonly sources: readonly string[];
}

/** Collects the layers from every given source and audits them. Throws CliError (exit 2) on a bad source. */
export async function collectDoctorReport(o: DoctorOptions): Promise<DoctorReport> {
  const timeoutMs = o.timeoutMs ?? 3000;
  const parts: TimeoutLayers[] = [];
  const sourceOf: Record<string, string> = {};
  const sources: string[] = [];
  const note = (layers: TimeoutLayers, label: string): void => {
    parts.push(layers);
    for (const k of Object.keys(layers)) sourceOf[k] = label;
    sources.push(label);
  };
  if (o.config !== undefined) {
    const text = await readText(o.config);
    let json: unknown;
    try {
      json = JSON.parse(text);
    } catch (err) {
      throw new CliError('BAD_CONFIG', `${o.config} is not valid JSON: ${(err as Error).message}`);
    }
    note(
      wrap(() => normaliseLayers(json, basename(o.config as string))),
      basename(o.config),
    );
  }
  if (o.service !== undefined) {
    const url = statusUrl(o.service);
    const headers: Record<string, string> = o.adminToken ? { 'x-admin-token': o.adminToken } : {};
    const status = await fetchJson(url, headers, timeoutMs);
    const settings = asStatusJson(status)?.settings;
    if (typeof settings !== 'object' || settings === null) {
      throw new CliError(
        'NO_SETTINGS',
        `${url} has no "settings" object (is the observe plugin registered with settings?)`,
      );
    }
    note(
      wrap(() => normaliseLayers(settings, 'service settings')),
      'service',
    );
  }
  let nginx: ReturnType<typeof nginxTimeouts> | undefined;
  if (o.nginx !== undefined) {
    const label = basename(o.nginx);
    const tree = await loadNginxConfig(o.nginx).catch((err: unknown) => {
      throw err instanceof NginxLoadError ? new CliError('BAD_CONFIG', err.message) : err;
    });
    nginx = wrap(() => nginxTimeouts(tree, label), label);
    sources.push(label);
  }
  let pgbouncer: ReturnType<typeof parsePgBouncerIni> | undefined;
  if (o.pgbouncer !== undefined) {
    const label = basename(o.pgbouncer);
    const text = await readText(o.pgbouncer);
    pgbouncer = wrap(() => parsePgBouncerIni(text), label);
    sourceOf.pgbouncer = label;
    sources.push(label);
  }
  if (o.databaseUrl !== undefined) {
    const client = await openSession(o.databaseUrl, { connectTimeoutMs: timeoutMs, startupLimits: false });
    try {
      note(await readPostgresLayers(client, timeoutMs), 'database');
    } catch (err) {
      throw new CliError('QUERY_FAILED', `reading database settings failed: ${pgReason(err)}`);
    } finally {
      await within(
        client.end().catch(() => {}),
        1000,
      );
    }
  }
  if (sources.length === 0) {
    throw new CliError(
      'NO_SOURCES',
      'nothing to audit: give --service, --nginx, --pgbouncer, --database-url or --config',
    );
  }
  const result = auditLadder({
    layers: mergeLayers(...parts),
    sourceOf,
    ...(nginx ? { nginx } : {}),
    ...(pgbouncer ? { pgbouncer } : {}),
  });
  return { ...result, sources };
}

async function readText(path: string): Promise<string> {
  try {
    return await readFile(path, 'utf8');
  } catch (err) {
    throw new CliError('BAD_CONFIG', `cannot read ${path}: ${(err as NodeJS.ErrnoException).code ?? 'error'}`);
  }
}

function wrap<T>(fn: () => T, label?: string): T {
  try {
    return fn();
  } catch (err) {
    if (err instanceof CliError) throw err;
    throw new CliError('BAD_CONFIG', `${label ? `${label}: ` : ''}${(err as Error).message}`);
  }
}

function statusUrl(service: string): string {
  let u: URL;
  try {
    u = new URL(service);
  } catch {
    throw new CliError('USAGE', `--service must be a URL, received ${service}`);
  }
  if (!u.pathname.endsWith('.json')) u.pathname = `${u.pathname.replace(/\/$/, '')}/status.json`;
  return u.toString();
}

/** Runs the audit and prints it. Returns the exit code. */
export async function doctor(o: DoctorOptions, io: CliIo): Promise<number> {
  const report = await collectDoctorReport(o);
  const failing = report.findings.filter((f) => !o.errorsOnly || f.severity === 'error');
  if (o.json) {
    printJson(io, { ...report, ok: failing.length === 0 });
  } else {
    printHuman(report, io);
  }
  return failing.length === 0 ? EXIT.OK : EXIT.FINDINGS;
}

function printHuman(r: DoctorReport, io: CliIo): void {
  const paint = painter(io);
  println(io, paint('bold', `Timeout ladder, outermost first (from ${r.sources.join(', ')})`));
  const verdict = (v: string): string => (v === 'ok' ? paint('green', 'ok') : paint('red', v));
  println(
    io,
    renderTable(
      io,
      ['layer', 'setting', 'value', 'source', 'verdict'],
      r.ladder.map((l) => [l.component, l.setting, formatMs(l.valueMs), l.source, verdict(l.verdict)]),
    ),
  );
  if (r.capacity.length > 0) {
    println(io);
    println(io, paint('bold', 'Connections'));
    println(
      io,
      renderTable(
        io,
        ['setting', 'value', 'source'],
        r.capacity.map((c) => [c.setting, String(c.value), c.source]),
      ),
    );
  }
  println(io);
  if (r.findings.length === 0) {
    println(io, paint('green', 'No findings: every inner timeout fires before the one outside it.'));
    return;
  }
  const errors = r.findings.filter((f) => f.severity === 'error').length;
  println(
    io,
    paint('bold', `${r.findings.length} finding(s): ${errors} error(s), ${r.findings.length - errors} warning(s)`),
  );
  const explained = new Set<string>();
  for (const f of r.findings) {
    println(io);
    const mark = f.severity === 'error' ? paint('red', 'error  ') : paint('yellow', 'warning');
    println(io, `${mark} ${paint('bold', f.id)}: ${f.message}`);
    if (!explained.has(f.id)) println(io, `  ${paint('dim', 'why:')} ${f.why}`);
    explained.add(f.id);
    println(io, `  ${paint('cyan', 'fix:')} ${f.fix}`);
  }
}

/** Registers `doctor` on the program. */
export function registerDoctor(program: Command, io: CliIo, setExit: (code: number) => void): void {
  program
    .command('doctor')
    .description(
      'audit the timeout ladder (proxy > server > deadline > pool/dependency > statement) for inversions, infinite waits and misfits',
    )
    .option('--service <url>', 'base URL of a running hangproof service (reads <url>/status.json settings)')
    .option('--admin-token <token>', 'X-Admin-Token for --service (default: HANGPROOF_ADMIN_TOKEN)')
    .option('--nginx <file>', 'nginx config to read proxy and keep-alive timeouts from')
    .option('--pgbouncer <file>', 'pgbouncer.ini to read query_wait_timeout, query_timeout, pool sizes from')
    .option(
      '--database-url <url>',
      'Postgres to read statement_timeout, lock_timeout, idle_in_transaction_session_timeout, max_connections from',
    )
    .option('--database', 'read the database named by DATABASE_URL')
    .option(
      '--config <file>',
      'JSON description of layers that cannot be read live (gateway, workers, dependencies, instances)',
    )
    .option('--timeout-ms <ms>', 'bound of each network read', parsePositiveInt, 3000)
    .option('--errors-only', 'exit 1 only for errors, not warnings')
    .option('--json', 'print the report as JSON')
    .addHelpText(
      'after',
      `
Examples:
  $ hangproof doctor --nginx /etc/nginx/nginx.conf --config layers.json
  $ hangproof doctor --service http://127.0.0.1:3000 --database-url postgres://app@db/app
  $ hangproof doctor --config examples/timeouts/seed-004-chained-breakers.json --json | jq '.findings[].id'

Exit codes: 0 no findings, 1 findings, 2 usage or connection error.`,
    )
    .action(async (opts: Record<string, unknown>) => {
      const dbUrl = (opts.databaseUrl as string | undefined) ?? (opts.database ? io.env.DATABASE_URL : undefined);
      if (opts.database && !dbUrl) throw new CliError('NO_DATABASE_URL', '--database needs DATABASE_URL');
      const token = (opts.adminToken as string | undefined) ?? io.env.HANGPROOF_ADMIN_TOKEN;
      setExit(
        await doctor(
          {
            ...pickDefined({
              service: opts.service as string | undefined,
              adminToken: token,
              nginx: opts.nginx as string | undefined,
              pgbouncer: opts.pgbouncer as string | undefined,
              databaseUrl: dbUrl,
              config: opts.config as string | undefined,
            }),
            timeoutMs: opts.timeoutMs as number,
            json: opts.json === true,
            errorsOnly: opts.errorsOnly === true,
          },
          io,
        ),
      );
    });
}

/** commander argument parser for a positive integer (exit 2 with the value on error). */
export function parsePositiveInt(value: string): number {
  const n = Number(value);
  if (!Number.isInteger(n) || n <= 0)
    throw new CliError('USAGE', `expected a positive whole number, received ${value}`);
  return n;
}

export function pickDefined<T extends Record<string, unknown>>(o: T): { [K in keyof T]: Exclude<T[K], undefined> } {
  return Object.fromEntries(Object.entries(o).filter(([, v]) => v !== undefined)) as {
    [K in keyof T]: Exclude<T[K], undefined>;
  };
}
