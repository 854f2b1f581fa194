/** `hangproof pg ...`: the database side of an incident (top queries, sessions, cancel, indexes). */
import type { Command } from 'commander';
import { CliError } from '../output/cli-error.js';
import type { CliIo } from '../output/cli-io.js';
import { parseDurationMs } from '../output/duration.js';
import { databaseUrl } from '../pg/connect.js';
import { parsePositiveInt } from './doctor.js';
import { pgActive } from './pg-active.js';
import { pgCancel } from './pg-cancel.js';
import { pgIndexes } from './pg-indexes.js';
import { pgTop, TOP_ORDER, type TopOrder } from './pg-top.js';

const EXIT_HELP = `
Exit codes: 0 ok, 1 findings (or a session that could not be signalled), 2 usage or connection error.`;

export function registerPg(program: Command, io: CliIo, setExit: (code: number) => void): void {
  const pg = program
    .command('pg')
    .description('inspect and act on Postgres: top queries, active sessions, cancel, index use')
    .option('--database-url <url>', 'Postgres to connect to (default: DATABASE_URL); connect is bounded to 3 s');
  const url = (cmd: Command): string => databaseUrl(cmd.optsWithGlobals().databaseUrl as string | undefined, io.env);

  pg.command('top')
    .description('heaviest query fingerprints from pg_stat_statements')
    .option('--by <key>', `sort by ${Object.keys(TOP_ORDER).join('|')}`, 'total')
    .option('--limit <n>', 'rows to show (1..100)', parsePositiveInt, 10)
    .option('--all-databases', 'include statements of every database')
    .option(
      '--explain <queryid>',
      'show the plan of one fingerprint (EXPLAIN, never ANALYZE; GENERIC_PLAN for $n parameters on PG16+)',
    )
    .option('--json', 'print JSON')
    .addHelpText(
      'after',
      `
Examples:
  $ hangproof pg top --by mean --limit 5
  $ hangproof pg top --explain 4200136712745310523
${EXIT_HELP}`,
    )
    .action(async (opts, cmd: Command) => {
      if (!(opts.by in TOP_ORDER))
        throw new CliError('USAGE', `--by must be one of ${Object.keys(TOP_ORDER).join(', ')}, received ${opts.by}`);
      setExit(
        await pgTop(
          {
            databaseUrl: url(cmd),
            by: opts.by as TopOrder,
            limit: opts.limit,
            allDatabases: opts.allDatabases === true,
            json: opts.json === true,
            ...(opts.explain === undefined ? {} : { explain: String(opts.explain) }),
          },
          io,
        ),
      );
    });

  pg.command('active')
    .description(
      'running and idle-in-transaction sessions: age, state, wait event, blockers, hangproof route and request id',
    )
    .option('--all', 'include idle sessions')
    .option('--all-databases', 'include other databases')
    .option('--limit <n>', 'rows to show', parsePositiveInt, 50)
    .option('--json', 'print JSON')
    .addHelpText(
      'after',
      `
Examples:
  $ hangproof pg active
  $ hangproof pg active --json | jq '.sessions[] | select(.blockedBy | length > 0)'
${EXIT_HELP}`,
    )
    .action(async (opts, cmd: Command) => {
      setExit(
        await pgActive(
          {
            databaseUrl: url(cmd),
            all: opts.all === true,
            allDatabases: opts.allDatabases === true,
            limit: opts.limit,
            json: opts.json === true,
          },
          io,
        ),
      );
    });

  pg.command('cancel')
    .description('cancel the statement of (or --terminate) sessions by pid or by age; asks first on a terminal')
    .argument('[pids...]', 'backend pids (from pg active)')
    .option(
      '--older-than <duration>',
      'every non-idle session whose statement or idle transaction is older, e.g. 30s, 2m',
    )
    .option('--terminate', 'end the session (pg_terminate_backend) instead of cancelling its statement')
    .option('--yes', 'do not ask (required without a terminal)')
    .option('--json', 'print JSON')
    .addHelpText(
      'after',
      `
Examples:
  $ hangproof pg cancel 4242
  $ hangproof pg cancel --older-than 30s --yes
  $ hangproof pg cancel 4243 --terminate --yes      # an idle-in-transaction session holding locks
${EXIT_HELP}`,
    )
    .action(async (pids: string[], opts, cmd: Command) => {
      const parsedPids = pids.map((p) => {
        const n = Number(p);
        if (!Number.isInteger(n) || n <= 0)
          throw new CliError('USAGE', `a pid must be a positive whole number, received ${p}`);
        return n;
      });
      let olderThanMs: number | undefined;
      if (opts.olderThan !== undefined) {
        olderThanMs = parseDurationMs(String(opts.olderThan), 's');
        if (olderThanMs === undefined)
          throw new CliError('USAGE', `--older-than must be a duration like 30s, received ${opts.olderThan}`);
      }
      setExit(
        await pgCancel(
          {
            databaseUrl: url(cmd),
            pids: parsedPids,
            ...(olderThanMs === undefined ? {} : { olderThanMs }),
            terminate: opts.terminate === true,
            yes: opts.yes === true,
            json: opts.json === true,
          },
          io,
        ),
      );
    });

  pg.command('indexes')
    .description('tables read mostly by sequential scans, and indexes never used')
    .option('--min-rows <n>', 'ignore tables with fewer live rows', parsePositiveInt, 1000)
    .option('--min-seq-pct <n>', 'flag tables with at least this share of sequential scans', parsePositiveInt, 50)
    .option('--limit <n>', 'rows per list', parsePositiveInt, 20)
    .option('--json', 'print JSON')
    .addHelpText(
      'after',
      `
Examples:
  $ hangproof pg indexes
  $ hangproof pg indexes --min-rows 100000 --json
${EXIT_HELP}`,
    )
    .action(async (opts, cmd: Command) => {
      setExit(
        await pgIndexes(
          {
            databaseUrl: url(cmd),
            minRows: opts.minRows,
            minSeqPct: opts.minSeqPct,
            limit: opts.limit,
            json: opts.json === true,
          },
          io,
        ),
      );
    });
}
