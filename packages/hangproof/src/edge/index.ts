/** hangproof/fastify: the request edge for Fastify 5. */

export { parseTimeoutHeader } from '../core/timeout-header.js';
export { createAdminTokenCheck } from './admin-token.js';
export { BUFFERED_LOGGER_DEFAULTS, type BufferedLoggerOptions, bufferedLogger } from './buffered-logger.js';
export { EDGE_DEFAULTS, type HangproofOptions, type RouteHangproofConfig } from './options.js';
export { type HangproofApi, hangproof } from './plugin.js';
export type { CheckResult, ReadinessCheck, ReadinessCheckOptions, ReadinessReport } from './readiness.js';
export {
  type DerivedServerTimeouts,
  deriveServerTimeouts,
  SERVER_DEFAULTS,
  type ServerTimeoutOptions,
  serverOptions,
} from './server-options.js';
export { installShutdown, SHUTDOWN_DEFAULTS, type ShutdownHandle, type ShutdownOptions } from './shutdown.js';
export { toHangproofError } from './to-hangproof-error.js';
