/** Test helpers: run the `hangproof` CLI against the desk as a user does, and keep the desk's log lines. */
import { type Logger, pino } from 'pino';

/**
 * Runs `hangproof <args>` from the repository root as a user does, bounded by `timeoutMs` (a hang
 * comes back with code null). The library's own CLI tests use the same runner.
 */
export { type CliRun, runCli as runHangproof } from '../../../packages/hangproof-cli/test/run-cli.js';

/**
 * A pino logger (level info) whose JSON lines are kept in memory, what `hangproof report` reads
 * from a real deployment's log. Bounded: lines past `maxLines` are dropped, never buffered.
 */
export class LogCapture {
  readonly #lines: string[] = [];
  readonly #maxLines: number;
  readonly logger: Logger;

  constructor(maxLines = 100_000) {
    this.#maxLines = maxLines;
    this.logger = pino(
      { level: 'info' },
      {
        write: (line: string) => {
          if (this.#lines.length < this.#maxLines) this.#lines.push(line);
        },
      },
    );
  }

  /** Lines written so far; pass it to `since` to get the lines of one run. */
  get mark(): number {
    return this.#lines.length;
  }

  /** The lines written after `mark`, newline-terminated, as one log file's text. */
  since(mark: number): string {
    return this.#lines.slice(mark).join('');
  }
}
