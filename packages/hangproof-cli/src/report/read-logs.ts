import { createReadStream } from 'node:fs';
import { createInterface } from 'node:readline';
import { type LogEvent, type SpanRecord, toLogEvent } from 'hangproof/diagnosis';
import { CliError } from '../output/cli-error.js';

export interface ReadLogsResult {
  readonly events: LogEvent[];
  readonly lines: number;
  /** Lines that were not JSON or not a kind the report uses. */
  readonly ignored: number;
}

/** Lines read at most from all inputs together; the rest is left out (and said so). */
export const MAX_LINES = 2_000_000;
/** A longer line is skipped: no log line of hangproof comes close. */
const MAX_LINE_CHARS = 1_000_000;

/**
 * Reads pino JSON lines from files, or from `stdin` when `files` is empty or `-`. Non-JSON lines
 * (a pretty-printer's output, a stack trace) are ignored, not fatal.
 */
export async function readLogs(files: readonly string[], stdin: NodeJS.ReadableStream): Promise<ReadLogsResult> {
  const events: LogEvent[] = [];
  let lines = 0;
  let ignored = 0;
  const sources = files.length === 0 ? ['-'] : files;
  for (const file of sources) {
    let input: NodeJS.ReadableStream;
    if (file === '-') input = stdin;
    else {
      const stream = createReadStream(file, { encoding: 'utf8' });
      await new Promise<void>((resolve, reject) => {
        stream.once('open', () => resolve());
        stream.once('error', (err: NodeJS.ErrnoException) =>
          reject(new CliError('BAD_CONFIG', `cannot read ${file}: ${err.code ?? err.message}`)),
        );
      });
      input = stream;
    }
    const rl = createInterface({ input, crlfDelay: Number.POSITIVE_INFINITY });
    for await (const line of rl) {
      if (lines >= MAX_LINES) break;
      lines++;
      const start = line.indexOf('{');
      if (start < 0 || line.length > MAX_LINE_CHARS) {
        ignored++;
        continue;
      }
      let parsed: unknown;
      try {
        parsed = JSON.parse(start === 0 ? line : line.slice(start));
      } catch {
        ignored++;
        continue;
      }
      const e =
        typeof parsed === 'object' && parsed !== null ? toLogEvent(parsed as Record<string, unknown>) : undefined;
      if (e === undefined) ignored++;
      else events.push(e);
    }
    rl.close();
  }
  events.sort((a, b) => a.at - b.at);
  return { events: attributeQueries(events), lines, ignored };
}

/**
 * A healthy request's line carries its query time as one `db` total, without SQL; the slow-query
 * lines name the statements and the request they ran for. This splits each such total into the
 * slow statements of that request (spans with their fingerprint) and the rest, so an endpoint's
 * dominant step still names the query that made it slow.
 */
function attributeQueries(events: LogEvent[]): LogEvent[] {
  const slowByRequest = new Map<string, { sql: string; durationMs: number }[]>();
  for (const e of events) {
    if (e.type !== 'slow-query' || e.requestId === undefined) continue;
    const list = slowByRequest.get(e.requestId) ?? [];
    list.push({ sql: e.sql, durationMs: e.durationMs });
    slowByRequest.set(e.requestId, list);
  }
  if (slowByRequest.size === 0) return events;
  return events.map((e) => {
    if (e.type !== 'request') return e;
    const slow = slowByRequest.get(e.requestId);
    const total = e.spans.find((s) => s.kind === 'db' && s.name === 'db' && s.fingerprint === undefined);
    if (slow === undefined || total === undefined) return e;
    const named: SpanRecord[] = slow.map((q) => ({
      name: 'db',
      startMs: 0,
      durMs: q.durationMs,
      kind: 'db',
      fingerprint: q.sql,
      rows: undefined,
      error: undefined,
    }));
    const rest = total.durMs - named.reduce((sum, q) => sum + q.durMs, 0);
    const spans = e.spans.filter((s) => s !== total).concat(named);
    if (rest >= 1) spans.push({ ...total, durMs: rest });
    return { ...e, spans };
  });
}
