/** Test and demo helpers: a real embedded Postgres and throwaway databases. */
export {
  type EmbeddedPostgresOptions,
  freePort,
  type RunningPostgres,
  startEmbeddedPostgres,
} from './embedded-postgres.js';
export { createTestDatabase, type TestDatabase } from './test-database.js';
