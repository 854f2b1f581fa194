import { randomBytes } from 'node:crypto';
import { resolve } from 'node:path';

/** Seed volumes: `small` for tests, `default` for a demo, `large` to feel the indexes work. */
export type SeedSize = 'small' | 'default' | 'large';

/** Everything `npm start` reads from the environment, resolved and validated. */
export interface DeskEnvConfig {
  /** TCP port of the API and web pages (`PORT`). @default 3000 */
  readonly port: number;
  /** Port of the probe listener (`PROBE_PORT`); unset: off. @default false */
  readonly probePort: number | false;
  /** Interface the API binds to (`HOST`). @default '127.0.0.1' */
  readonly host: string;
  /** Postgres to use instead of the embedded one (`DATABASE_URL`). @default undefined (embedded) */
  readonly databaseUrl: string | undefined;
  /** Market-data provider base URL (`MARKET_DATA_URL`). @default undefined (simulated, started locally) */
  readonly marketDataUrl: string | undefined;
  /** Broker provider base URL (`BROKER_URL`). @default undefined (simulated, started locally) */
  readonly brokerUrl: string | undefined;
  /** Token of the admin pages and fault switchboard (`ADMIN_TOKEN`). @default random, printed */
  readonly adminToken: string;
  /** True when adminToken was generated (so it must be printed). */
  readonly adminTokenGenerated: boolean;
  /** Bearer token of the seeded demo user (`DEMO_USER_TOKEN`). @default random, printed */
  readonly demoUserToken: string;
  /** True when demoUserToken was generated (so it must be printed). */
  readonly demoUserTokenGenerated: boolean;
  /** Seed volume on first start (`DESK_SEED`). @default 'default' */
  readonly seed: SeedSize;
  /** Folder of the embedded Postgres cluster (`DESK_DATA_DIR`). @default '<repo>/.data/desk-pg' */
  readonly dataDir: string;
}

/** A configuration problem: main prints `message` as one line and exits, never a stack. */
export class ConfigError extends Error {
  /** The environment variable at fault. */
  readonly variable: string;
  constructor(variable: string, message: string) {
    super(`${variable}: ${message}`);
    this.name = 'ConfigError';
    this.variable = variable;
  }
}

const SEEDS: readonly SeedSize[] = ['small', 'default', 'large'];
/** Shortest accepted token: the edge refuses admin tokens under 16 characters. */
const MIN_TOKEN_LENGTH = 16;
const TOKEN_CHARS = /^[A-Za-z0-9._~+/=-]+$/;

/** The repository root, where `.data/` lives (apps/desk/src -> ../../..). */
const REPO_ROOT = resolve(new URL('../../..', import.meta.url).pathname);

/**
 * Reads the desk's configuration from `env`. Unset variables take their documented defaults;
 * a set but invalid one throws ConfigError naming it. Empty strings count as unset, which is what
 * `PORT= npm start` means.
 */
export function parseConfig(env: Readonly<Record<string, string | undefined>>): DeskEnvConfig {
  const get = (name: string): string | undefined => {
    const v = env[name]?.trim();
    return v === undefined || v === '' ? undefined : v;
  };
  const admin = token(get('ADMIN_TOKEN'), 'ADMIN_TOKEN');
  const demo = token(get('DEMO_USER_TOKEN'), 'DEMO_USER_TOKEN');
  const dataDir = get('DESK_DATA_DIR');
  return {
    port: port(get('PORT')),
    probePort: get('PROBE_PORT') === undefined ? false : port(get('PROBE_PORT'), 'PROBE_PORT'),
    host: host(get('HOST')),
    databaseUrl: url(get('DATABASE_URL'), 'DATABASE_URL', ['postgres:', 'postgresql:']),
    marketDataUrl: url(get('MARKET_DATA_URL'), 'MARKET_DATA_URL', ['http:', 'https:']),
    brokerUrl: url(get('BROKER_URL'), 'BROKER_URL', ['http:', 'https:']),
    adminToken: admin.value,
    adminTokenGenerated: admin.generated,
    demoUserToken: demo.value,
    demoUserTokenGenerated: demo.generated,
    seed: seed(get('DESK_SEED')),
    dataDir: dataDir === undefined ? resolve(REPO_ROOT, '.data', 'desk-pg') : resolve(REPO_ROOT, dataDir),
  };
}

function port(raw: string | undefined, name = 'PORT'): number {
  if (raw === undefined) return 3000;
  const n = Number(raw);
  if (!/^\d+$/.test(raw) || !Number.isInteger(n) || n < 0 || n > 65_535) {
    throw new ConfigError(name, `must be an integer from 0 to 65535, received '${raw}'`);
  }
  return n;
}

function host(raw: string | undefined): string {
  if (raw === undefined) return '127.0.0.1';
  if (!/^[A-Za-z0-9.:[\]-]+$/.test(raw))
    throw new ConfigError('HOST', `must be a host name or IP address, received '${raw}'`);
  return raw;
}

function url(raw: string | undefined, name: string, protocols: readonly string[]): string | undefined {
  if (raw === undefined) return undefined;
  let parsed: URL;
  try {
    parsed = new URL(raw);
  } catch {
    // The value itself is not echoed: a database URL carries a password.
    throw new ConfigError(name, `is not a valid URL (expected ${protocols.map((p) => `${p}//...`).join(' or ')})`);
  }
  if (!protocols.includes(parsed.protocol)) {
    throw new ConfigError(
      name,
      `must start with ${protocols.map((p) => `${p}//`).join(' or ')}, received '${parsed.protocol}//...'`,
    );
  }
  return raw.replace(/\/+$/, '');
}

function token(raw: string | undefined, name: string): { value: string; generated: boolean } {
  if (raw === undefined) return { value: randomBytes(24).toString('base64url'), generated: true };
  if (raw.length < MIN_TOKEN_LENGTH) {
    throw new ConfigError(name, `must be at least ${MIN_TOKEN_LENGTH} characters, received ${raw.length}`);
  }
  if (!TOKEN_CHARS.test(raw)) throw new ConfigError(name, 'may only contain letters, digits and ._~+/=-');
  return { value: raw, generated: false };
}

function seed(raw: string | undefined): SeedSize {
  if (raw === undefined) return 'default';
  if (!(SEEDS as readonly string[]).includes(raw)) {
    throw new ConfigError('DESK_SEED', `must be one of ${SEEDS.join(', ')}, received '${raw}'`);
  }
  return raw as SeedSize;
}
