/** Test and demo helpers: a real embedded Postgres and throwaway databases. */
export {
  type EmbeddedPostgresOptions,
  type RunningPostgres,
  startEmbeddedPostgres,
} from './embedded-postgres.js';
export { freePort } from './free-port.js';
export { createTestDatabase, type TestDatabase } from './test-database.js';
