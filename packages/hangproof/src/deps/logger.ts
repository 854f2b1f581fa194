/**
 * The logger hangproof/deps writes breaker and health changes to: any pino logger fits, as does
 * anything with pino's `(fields, message)` methods.
 */
export interface DepsLogger {
  info(fields: object, message?: string): void;
  warn(fields: object, message?: string): void;
  error(fields: object, message?: string): void;
}

/** The default: no output. Pass a logger to see breaker and health changes. */
export const silentLogger: DepsLogger = Object.freeze({
  info: () => {},
  warn: () => {},
  error: () => {},
});
