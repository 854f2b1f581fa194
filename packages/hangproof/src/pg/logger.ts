import pino from 'pino';

type LogFn = (obj: Record<string, unknown>, msg: string) => void;

/** The part of a pino logger the guard uses; any pino logger (or child) fits. */
export interface PgLogger {
  readonly error: LogFn;
  readonly warn: LogFn;
  readonly info: LogFn;
  readonly debug: LogFn;
}

/**
 * The logger used when none is passed: pino at `warn` to stderr. A library should not be chatty,
 * but what the guard logs at warn (slow queries, N+1, leaks, acquire timeouts naming the holders)
 * is exactly the evidence that is gone for good when it is swallowed by a silent default.
 */
export function defaultPgLogger(): PgLogger {
  return pino({ name: 'hangproof:pg', level: 'warn' }, pino.destination({ dest: 2, sync: true }));
}
