/**
 * `hangproof report [logs...]`: reads a service's JSON logs (and optionally /status.json) and
 * writes an incident report in Markdown and HTML: what moved, where the time went, and a ranked
 * list of likely causes with the request ids that support each.
 */
import { mkdir, readFile, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import type { Command } from 'commander';
import { fetchJson } from '../http/fetch-json.js';
import { isLoopbackHost } from '../load/loopback.js';
import { CliError, EXIT } from '../output/cli-error.js';
import { type CliIo, painter, printJson, println } from '../output/cli-io.js';
import { renderTable } from '../output/table.js';
import { buildIncidentReport, type IncidentReport } from '../report/incident-report.js';
import { readLogs } from '../report/read-logs.js';
import { renderHtml } from '../report/render-html.js';
import { renderMarkdown } from '../report/render-markdown.js';
import { parsePositiveInt } from './doctor.js';

export interface ReportOptions {
  /** Log files; empty or `-` reads stdin. */
  readonly files: readonly string[];
  /** A log of a normal period to compare with, instead of the window's first half. */
  readonly baseline?: string | undefined;
  /** /status.json as a file or an http(s) URL. */
  readonly status?: string | undefined;
  readonly adminToken?: string | undefined;
  readonly allowRemote?: boolean;
  /** Directory for incident-report.md and incident-report.html. */
  readonly outDir?: string | undefined;
  readonly json?: boolean;
  /** Causes printed on the terminal. @default 5 */
  readonly top?: number;
  /** Bound of the /status.json read, in ms. @default 3_000 */
  readonly timeoutMs?: number;
}

/** File names written into --out-dir. */
export const REPORT_FILES = Object.freeze({ markdown: 'incident-report.md', html: 'incident-report.html' });

export async function report(o: ReportOptions, io: CliIo): Promise<number> {
  if (o.files.length === 0 && (io.stdin as { isTTY?: boolean }).isTTY === true)
    throw new CliError('USAGE', 'no log files given and stdin is a terminal: pass files or pipe the logs in');
  const logs = await readLogs(o.files, io.stdin);
  const baseline = o.baseline === undefined ? undefined : (await readLogs([o.baseline], io.stdin)).events;
  const status = o.status === undefined ? undefined : await readStatus(o);
  const r = buildIncidentReport({
    events: logs.events,
    lines: logs.lines,
    ignoredLines: logs.ignored,
    baseline,
    status,
  });
  const written: string[] = [];
  if (o.outDir !== undefined) {
    await mkdir(o.outDir, { recursive: true });
    const md = join(o.outDir, REPORT_FILES.markdown);
    const html = join(o.outDir, REPORT_FILES.html);
    await writeFile(md, renderMarkdown(r));
    await writeFile(html, renderHtml(r));
    written.push(md, html);
  }
  if (o.json) printJson(io, { ...r, files: written });
  else printSummary(io, r, o.top ?? 5, written);
  return EXIT.OK;
}

async function readStatus(o: ReportOptions): Promise<unknown> {
  const src = o.status as string;
  if (/^https?:\/\//.test(src)) {
    const u = new URL(src);
    if (!o.allowRemote && !isLoopbackHost(u.hostname))
      throw new CliError('REMOTE_TARGET', `${u.hostname} is not a loopback address; pass --allow-remote`);
    return fetchJson(src, o.adminToken === undefined ? {} : { 'x-admin-token': o.adminToken }, o.timeoutMs ?? 3_000);
  }
  try {
    return JSON.parse(await readFile(src, 'utf8')) as unknown;
  } catch (err) {
    throw new CliError(
      'BAD_CONFIG',
      `cannot read ${src}: ${(err as NodeJS.ErrnoException).code ?? (err as Error).message}`,
    );
  }
}

function printSummary(io: CliIo, r: IncidentReport, top: number, written: readonly string[]): void {
  const paint = painter(io);
  if (r.window.from === null) println(io, paint('yellow', `no usable log line in ${r.inputs.lines} line(s)`));
  else
    println(
      io,
      paint('bold', `${r.window.from} .. ${r.window.to}: ${r.inputs.requests} requests, ${r.inputs.events} events`),
    );
  const moved = r.endpoints.filter((e) => e.moved);
  if (moved.length > 0)
    println(io, `moved: ${moved.map((e) => `${e.method} ${e.route} (${e.reasons.join('; ')})`).join(', ')}`);
  println(io);
  if (r.causes.length === 0) println(io, 'no likely cause stood out');
  else
    println(
      io,
      renderTable(
        io,
        ['#', 'likely cause', 'kind', 'score', 'requests', 'evidence'],
        r.causes
          .slice(0, top)
          .map((c, i) => [
            String(i + 1),
            c.title,
            c.kind,
            String(c.score),
            String(c.requests),
            c.requestIds.slice(0, 3).join(', ') || `${c.lines} line(s)`,
          ]),
      ),
    );
  for (const f of written) println(io, `wrote ${f}`);
}

export function registerReport(program: Command, io: CliIo, setExit: (code: number) => void): void {
  program
    .command('report')
    .description(
      'incident report from JSON logs (and /status.json): moved endpoints, dominant steps, timeouts, queries, pool holders, breakers, stalls, likely causes',
    )
    .argument('[logs...]', 'pino JSON log files (default: stdin)')
    .option('--baseline <file>', 'log of a normal period to compare with (default: first half of the window)')
    .option('--status <file|url>', "the service's /status.json, saved or live")
    .option('--admin-token <token>', 'X-Admin-Token for a --status URL (default: HANGPROOF_ADMIN_TOKEN)')
    .option('--allow-remote', 'allow a --status URL that is not loopback')
    .option('--out-dir <dir>', `write ${REPORT_FILES.markdown} and ${REPORT_FILES.html} there`)
    .option('--top <n>', 'likely causes shown on the terminal', parsePositiveInt, 5)
    .option('--timeout-ms <ms>', 'bound of the --status read', parsePositiveInt, 3000)
    .option('--json', 'print the report data as JSON')
    .addHelpText(
      'after',
      `
Examples:
  $ hangproof report service.log --out-dir incident/
  $ kubectl logs deploy/api --since 30m | hangproof report --status http://127.0.0.1:3000/status.json --out-dir incident/
  $ hangproof report today.log --baseline yesterday.log --json | jq '.causes[0]'

Exit codes: 0 report made, 2 unreadable input or usage error.`,
    )
    .action(async (files: string[], opts: Record<string, unknown>) => {
      setExit(
        await report(
          {
            files: files.filter((f) => f !== '-'),
            baseline: opts.baseline as string | undefined,
            status: opts.status as string | undefined,
            adminToken: (opts.adminToken as string | undefined) ?? io.env.HANGPROOF_ADMIN_TOKEN,
            allowRemote: opts.allowRemote === true,
            outDir: opts.outDir as string | undefined,
            json: opts.json === true,
            top: opts.top as number,
            timeoutMs: opts.timeoutMs as number,
          },
          io,
        ),
      );
    });
}
