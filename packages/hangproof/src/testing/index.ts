/** Test and demo helpers: a real embedded Postgres, throwaway databases, and a proxy that freezes. */
export {
  type EmbeddedPostgresOptions,
  type RunningPostgres,
  startEmbeddedPostgres,
} from './embedded-postgres.js';
export { freePort } from './free-port.js';
export { type FreezableProxy, startFreezableProxy } from './freezable-proxy.js';
export { createTestDatabase, type TestDatabase } from './test-database.js';
