import { createReadStream } from 'node:fs';
import { createInterface } from 'node:readline';
import { CliError } from '../output/cli-error.js';
import { type LogEvent, toLogEvent } from './log-events.js';

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
  return { events, lines, ignored };
}
