import { createTestDatabase, type TestDatabase } from 'hangproof/testing';
import { pino } from 'pino';
import { buildDesk, type Desk, type DeskOptions } from '../src/build-desk.js';
import { migrate } from '../src/db/migrate.js';
import { seedDatabase } from '../src/db/seed.js';
import type { SimulatedProvider } from '../src/providers/simulated-provider.js';
import { startBroker, startMarketData } from '../src/providers/simulated-providers.js';

export const DEMO_TOKEN = 'demo-user-token-for-tests-0123456789';
export const ADMIN_TOKEN = 'admin-token-for-tests-0123456789';

export interface TestDesk {
  readonly url: string;
  readonly desk: Desk;
  readonly database: TestDatabase;
  readonly marketData: SimulatedProvider;
  readonly broker: SimulatedProvider;
  /** fetch against the desk as the demo user (JSON body, bearer token). */
  api(path: string, init?: { method?: string; body?: unknown; headers?: Record<string, string> }): Promise<Response>;
  close(): Promise<void>;
}

/**
 * A desk on a fresh database with the `small` seed, real simulated providers and the API on
 * port 0: what `npm start` runs, minus the embedded Postgres (the test runner's server is used).
 */
export async function startTestDesk(overrides: Partial<DeskOptions> = {}): Promise<TestDesk> {
  const database = await createTestDatabase();
  await migrate(database.url);
  await seedDatabase(database.url, { size: 'small', demoUserToken: DEMO_TOKEN });
  const marketData = await startMarketData();
  const broker = await startBroker();
  const desk = await buildDesk({
    databaseUrl: database.url,
    marketDataUrl: marketData.url,
    brokerUrl: broker.url,
    adminToken: ADMIN_TOKEN,
    logger: pino({ level: process.env.DESK_TEST_LOG ?? 'silent' }),
    providerProbeMs: 300,
    jobs: false,
    ...overrides,
  });
  const url = await desk.app.listen({ port: 0, host: '127.0.0.1' });
  return {
    url,
    desk,
    database,
    marketData,
    broker,
    api: (path, init = {}) =>
      fetch(`${url}${path}`, {
        method: init.method ?? 'GET',
        headers: {
          authorization: `Bearer ${DEMO_TOKEN}`,
          ...(init.body === undefined ? {} : { 'content-type': 'application/json' }),
          ...init.headers,
        },
        ...(init.body === undefined
          ? {}
          : { body: typeof init.body === 'string' ? init.body : JSON.stringify(init.body) }),
        signal: AbortSignal.timeout(10_000),
      }),
    async close() {
      await desk.close();
      await marketData.close();
      await broker.close();
      await database.drop();
    },
  };
}

/** Polls `check` until it returns true or `timeoutMs` passes. */
export async function eventually(check: () => Promise<boolean>, timeoutMs: number, everyMs = 100): Promise<boolean> {
  const until = performance.now() + timeoutMs;
  while (performance.now() < until) {
    if (await check()) return true;
    await new Promise((r) => setTimeout(r, everyMs));
  }
  return false;
}
