/**
 * Durations as written in configs and on the command line: `300s`, `5m`, `1h`, `500ms`, `1h 30m`,
 * a bare number in a given default unit. Postgres (`1min`, `30s`, `100ms`) and nginx (`ms s m h d w
 * M y`) spell units differently; `unitMs` below accepts both where they do not conflict.
 */
const UNIT_MS: Readonly<Record<string, number>> = {
  us: 0.001,
  ms: 1,
  s: 1000,
  sec: 1000,
  m: 60_000,
  min: 60_000,
  h: 3_600_000,
  d: 86_400_000,
  w: 604_800_000,
};

/** Units whose meaning differs between nginx and Postgres are resolved by the caller's flavour. */
const NGINX_ONLY: Readonly<Record<string, number>> = { M: 2_592_000_000, y: 31_536_000_000 };

/**
 * Parses a duration into ms. Returns undefined when the text is not a duration.
 * @param defaultUnit unit of a bare number: nginx and PgBouncer use seconds, Postgres GUCs ms.
 */
export function parseDurationMs(text: string, defaultUnit: 'ms' | 's' = 's'): number | undefined {
  const t = text.trim();
  if (t === '') return undefined;
  const bare = Number(t);
  if (Number.isFinite(bare)) return defaultUnit === 's' ? bare * 1000 : bare;
  let total = 0;
  let matched = 0;
  for (const m of t.matchAll(/(\d+(?:\.\d+)?)\s*([a-zA-Z]+)\s*/g)) {
    const unit = m[2] as string;
    const factor = UNIT_MS[unit] ?? UNIT_MS[unit.toLowerCase()] ?? NGINX_ONLY[unit];
    if (factor === undefined) return undefined;
    total += Number(m[1]) * factor;
    matched += m[0].length;
  }
  return matched === t.length ? total : undefined;
}

/** `1500` -> `1.5 s`, `300000` -> `5 min`, `null`/`0` -> `none`. For tables meant for humans. */
export function formatMs(ms: number | null | undefined): string {
  if (ms === undefined) return 'not set';
  if (ms === null) return 'none (0)';
  if (ms === 0) return '0 (none)';
  if (ms < 1000) return `${round(ms)} ms`;
  if (ms < 120_000) return `${round(ms / 1000)} s`;
  if (ms < 7_200_000) return `${round(ms / 60_000)} min`;
  return `${round(ms / 3_600_000)} h`;
}

const round = (n: number): string => String(Math.round(n * 10) / 10);
