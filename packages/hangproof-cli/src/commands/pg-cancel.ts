/**
 * `hangproof pg cancel`: cancel (pg_cancel_backend) or end (pg_terminate_backend) sessions by pid
 * or by age. It asks first on a terminal, refuses without --yes when nobody can answer, and never
 * touches its own session.
 */
import { createInterface } from 'node:readline';
import { CliError, EXIT } from '../output/cli-error.js';
import { type CliIo, painter, printJson, println } from '../output/cli-io.js';
import { formatMs } from '../output/duration.js';
import { renderTable } from '../output/table.js';
import { withSession } from '../pg/connect.js';
import { type ActiveSession, readActive } from './pg-active.js';

export interface PgCancelOptions {
  readonly databaseUrl: string;
  readonly pids: readonly number[];
  /** Every non-idle session whose statement (or idle transaction) is older than this, in ms. */
  readonly olderThanMs?: number;
  /** End the whole session instead of cancelling its statement. @default false */
  readonly terminate?: boolean;
  /** Do not ask. Required when stdin is not a terminal. @default false */
  readonly yes?: boolean;
  readonly json?: boolean;
}

export interface CancelOutcome {
  readonly pid: number;
  readonly action: 'cancel' | 'terminate';
  /** Postgres accepted the signal (false: gone, or not allowed). */
  readonly signalled: boolean;
  readonly state: string | null;
  readonly applicationName: string | null;
}

/** How long a confirmation prompt waits for an answer before it counts as "no". */
const PROMPT_TIMEOUT_MS = 60_000;

export async function pgCancel(o: PgCancelOptions, io: CliIo): Promise<number> {
  if (o.pids.length === 0 && o.olderThanMs === undefined)
    throw new CliError('USAGE', 'give a pid or --older-than <duration>');
  if (o.pids.length > 0 && o.olderThanMs !== undefined)
    throw new CliError('USAGE', 'give either pids or --older-than, not both');
  if (!o.yes && !io.stdinIsTTY) {
    throw new CliError(
      'CONFIRMATION_REQUIRED',
      'refusing to signal sessions without a terminal to confirm on: pass --yes',
    );
  }
  const action = o.terminate ? 'terminate' : 'cancel';
  const outcomes = await withSession(o.databaseUrl, async (c) => {
    const own = (await c.query<{ pid: number }>('SELECT pg_backend_pid() AS pid')).rows[0]?.pid;
    if (o.pids.includes(own as number)) throw new CliError('OWN_SESSION', `pid ${own} is this command's own session`);
    const sessions = await readActive(c, { all: true, allDatabases: o.pids.length > 0, limit: 500 });
    const targets: { pid: number; session: ActiveSession | undefined }[] =
      o.olderThanMs !== undefined
        ? sessions
            .filter((s) => s.state !== 'idle' && (ageOf(s) ?? 0) > (o.olderThanMs as number))
            .map((s) => ({ pid: s.pid, session: s }))
        : o.pids.map((pid) => ({ pid, session: sessions.find((s) => s.pid === pid) }));
    if (targets.length === 0) return [];
    if (!o.yes) {
      describe(io, targets, action);
      const yes = await confirm(io, `${action} ${targets.length} session(s)? [y/N] `);
      if (!yes) throw new CliError('ABORTED', 'nothing done');
    }
    const fn = o.terminate ? 'pg_terminate_backend' : 'pg_cancel_backend';
    const out: CancelOutcome[] = [];
    for (const t of targets) {
      const { rows } = await c
        .query<{ ok: boolean }>(`SELECT ${fn}($1) AS ok`, [t.pid])
        .catch((err: { code?: string }) => {
          // 42501: not our role and not pg_signal_backend; reported, not fatal for the other pids.
          if (err.code === '42501') return { rows: [{ ok: false }] };
          throw err;
        });
      out.push({
        pid: t.pid,
        action,
        signalled: rows[0]?.ok === true,
        state: t.session?.state ?? null,
        applicationName: t.session?.applicationName ?? null,
      });
    }
    return out;
  });
  const failed = outcomes.filter((x) => !x.signalled).length;
  if (o.json) printJson(io, { action, outcomes });
  else if (outcomes.length === 0) println(io, 'No session matched.');
  else {
    const paint = painter(io);
    for (const x of outcomes) {
      const mark = x.signalled ? paint('green', 'ok  ') : paint('red', 'FAIL');
      println(io, `${mark} ${x.action} pid ${x.pid}${x.signalled ? '' : ' (gone, or not allowed for this role)'}`);
    }
    if (!o.terminate && outcomes.some((x) => x.state?.startsWith('idle in transaction')))
      println(io, paint('yellow', 'note: cancel does not end an idle-in-transaction session; use --terminate'));
  }
  return failed === 0 ? EXIT.OK : EXIT.FINDINGS;
}

/** The age that matters: of the open transaction when idle in it, else of the running statement. */
function ageOf(s: ActiveSession): number | null {
  return s.state?.startsWith('idle in transaction') ? s.stateAgeMs : s.queryAgeMs;
}

function describe(
  io: CliIo,
  targets: readonly { pid: number; session: ActiveSession | undefined }[],
  action: string,
): void {
  println(io, `About to ${action}:`);
  println(
    io,
    renderTable(
      io,
      ['pid', 'state', 'age', 'application', 'query'],
      targets.map(({ pid, session: s }) => [
        String(pid),
        s?.state ?? 'not found',
        s ? formatMs(ageOf(s)) : '',
        s?.applicationName ?? '',
        (s?.query ?? '').slice(0, 60),
      ]),
    ),
  );
}

async function confirm(io: CliIo, question: string): Promise<boolean> {
  const rl = createInterface({ input: io.stdin, output: io.stderr });
  try {
    const answer = await new Promise<string>((resolve) => {
      const timer = setTimeout(() => resolve(''), PROMPT_TIMEOUT_MS);
      rl.question(question, (a) => {
        clearTimeout(timer);
        resolve(a);
      });
      rl.on('close', () => resolve(''));
    });
    return /^y(es)?$/i.test(answer.trim());
  } finally {
    rl.close();
  }
}
