/** The database every example serves from: a throwaway one with three bots of user 1. */
import { after, before } from 'node:test';
import { createTestDatabase, type TestDatabase } from 'hangproof/testing';
import pg from 'pg';

/** Where the test file's database is, once its `before` hook has run. */
export interface BotsDatabase {
  readonly url: string;
}

/** Registers before/after hooks that create the `bots` table the examples read, and drop it all. */
export function botsDatabase(): BotsDatabase {
  let db: TestDatabase | undefined;
  before(async () => {
    db = await createTestDatabase();
    const c = new pg.Client({ connectionString: db.url, connectionTimeoutMillis: 5000 });
    await c.connect();
    await c.query(`CREATE TABLE bots (id bigserial PRIMARY KEY, user_id bigint NOT NULL, name text NOT NULL, stage text NOT NULL);
                 INSERT INTO bots (user_id, name, stage) SELECT 1, 'bot ' || g, 'live' FROM generate_series(1, 3) g;`);
    await c.end();
  });
  after(() => db?.drop());
  return {
    get url(): string {
      if (db === undefined)
        throw new Error('the examples database is created in a before hook; read its url in a test');
      return db.url;
    },
  };
}
