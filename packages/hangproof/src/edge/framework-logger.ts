import { type Logger, pino } from 'pino';

/**
 * The framework's logger when it is a real pino logger (Fastify's `app.log` with `logger` or
 * `loggerInstance` set), else undefined: Fastify without a logger gives a no-op stand-in, and
 * hangproof's request lines must not vanish into it.
 */
export function pinoLoggerOf(log: unknown): Logger | undefined {
  if (typeof log !== 'object' || log === null) return undefined;
  const l = log as Record<symbol, unknown> & { child?: unknown; isLevelEnabled?: unknown };
  const real =
    typeof l.child === 'function' &&
    typeof l.isLevelEnabled === 'function' &&
    l[pino.symbols.streamSym] !== undefined &&
    l[pino.symbols.serializersSym] !== undefined;
  return real ? (log as Logger) : undefined;
}
