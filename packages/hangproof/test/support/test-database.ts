import { after, before } from 'node:test';
import { createTestDatabase, type TestDatabase } from 'hangproof/testing';

/**
 * A database of its own for the tests of one file: created before the first of them, dropped
 * after the last. Call it at the top of the file; read `url` inside the tests.
 */
export function useTestDatabase(): Pick<TestDatabase, 'url' | 'name'> {
  let database: TestDatabase | undefined;
  before(async () => {
    database = await createTestDatabase();
  });
  after(async () => {
    await database?.drop();
  });
  const current = (): TestDatabase => {
    if (database === undefined) throw new Error('the test database exists only while the tests of its file run');
    return database;
  };
  return {
    get url() {
      return current().url;
    },
    get name() {
      return current().name;
    },
  };
}
