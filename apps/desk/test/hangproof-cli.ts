/** Test helpers: run the `hangproof` CLI against the desk as a user does, and keep the desk's log lines. */
import { spawn } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import { type Logger, pino } from 'pino';

const repoRoot = fileURLToPath(new URL('../../../', import.meta.url));
const cliMain = fileURLToPath(new URL('../../../packages/hangproof/src/cli/main.ts', import.meta.url));

export interface CliRun {
  readonly code: number | null;
  readonly stdout: string;
  readonly stderr: string;
  readonly durationMs: number;
}

/**
 * Runs `hangproof <args>` from the repository root (node + tsx, source condition, so paths like
 * `examples/chaos/...` resolve) and waits at most `timeoutMs`: a run that outlives it is killed
 * and comes back with code null, so a hang fails the test instead of stalling the file.
 */
export function runHangproof(
  args: readonly string[],
  options: { readonly env?: NodeJS.ProcessEnv; readonly timeoutMs: number },
): Promise<CliRun> {
  const started = performance.now();
  const child = spawn(process.execPath, ['--conditions=source', '--import', 'tsx', cliMain, ...args], {
    cwd: repoRoot,
    env: { ...process.env, NO_COLOR: '1', ...options.env },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  let stdout = '';
  let stderr = '';
  child.stdout.on('data', (d) => {
    stdout += d;
  });
  child.stderr.on('data', (d) => {
    stderr += d;
  });
  return new Promise((resolve) => {
    const timer = setTimeout(() => child.kill('SIGKILL'), options.timeoutMs);
    child.on('close', (code) => {
      clearTimeout(timer);
      resolve({ code, stdout, stderr, durationMs: performance.now() - started });
    });
  });
}

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
