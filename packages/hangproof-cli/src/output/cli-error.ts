/**
 * Exit codes every command shares (docs/cli.md). A command returns 0 or 1 itself; a CliError
 * carries 2 (usage, connection or precondition) or, rarely, 1.
 */
export const EXIT = Object.freeze({ OK: 0, FINDINGS: 1, USAGE: 2 } as const);

export type ExitCode = (typeof EXIT)[keyof typeof EXIT];

/**
 * An error the CLI reports as one line (`hangproof: <message>`), never with a stack. `code` is
 * stable and appears in `--json` output as `{"error":{"code","message"}}`.
 */
export class CliError extends Error {
  readonly code: string;
  readonly exitCode: ExitCode;
  constructor(code: string, message: string, exitCode: ExitCode = EXIT.USAGE, options?: ErrorOptions) {
    super(message, options);
    this.name = 'CliError';
    this.code = code;
    this.exitCode = exitCode;
  }
}

export const isCliError = (e: unknown): e is CliError => e instanceof CliError;

/** A one-line description of a network error, from its code (ECONNREFUSED, ETIMEDOUT...) when it has one. */
export function describeNetworkError(err: unknown): string {
  const seen = new Set<unknown>();
  let e: unknown = err;
  while (typeof e === 'object' && e !== null && !seen.has(e)) {
    seen.add(e);
    const code = (e as { code?: unknown }).code;
    if (typeof code === 'string' && code !== '') return code;
    const name = (e as { name?: unknown }).name;
    if (name === 'TimeoutError' || name === 'AbortError') return 'timed out';
    e = (e as { cause?: unknown }).cause;
  }
  const msg = err instanceof Error ? err.message : String(err);
  return msg.split('\n')[0] ?? 'unknown error';
}
