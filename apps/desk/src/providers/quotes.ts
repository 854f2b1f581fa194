import { isHangproofError } from 'hangproof';
import type { Dependencies, HttpDependency, SnapshotWarning } from 'hangproof/deps';

export interface Quote {
  readonly symbol: string;
  readonly price: number;
  readonly at: string;
}

/** A quote (or null when none was ever loaded) and why it may be old. */
export interface QuoteResult {
  readonly value: Quote | null;
  readonly warnings: readonly SnapshotWarning[];
}

export interface Quotes {
  latest(symbol: string): Promise<QuoteResult>;
}

/** Quote freshness: served as is for 5 s, served stale (refreshing behind) up to 10 min. */
export const QUOTE_SNAPSHOT = Object.freeze({ freshMs: 5_000, maxStaleMs: 600_000, waitMs: 300, loadTimeoutMs: 2_000 });

/**
 * Snapshot-first quotes: a page never waits more than QUOTE_SNAPSHOT.waitMs on the market-data
 * provider. When it is slow or down the last known price comes back with a warning, and with no
 * price at all the page still answers (value null, warning) instead of failing.
 */
export function createQuotes(deps: Dependencies, marketData: HttpDependency): Quotes {
  return {
    async latest(symbol) {
      try {
        const r = await deps.snapshot(
          `quote:${symbol}`,
          async () => {
            const res = await marketData.get(`/v1/quotes?symbols=${encodeURIComponent(symbol)}`);
            const body = res.json<{ quotes?: Quote[] }>();
            const q = body.quotes?.[0];
            if (q === undefined) throw new Error('no quote in the answer');
            return q;
          },
          { ...QUOTE_SNAPSHOT, dependency: marketData.name },
        );
        return { value: r.value, warnings: r.warnings };
      } catch (err) {
        if (!isHangproofError(err) || err.code === 'REQUEST_TIMEOUT' || err.code === 'CLIENT_CLOSED_REQUEST') throw err;
        return { value: null, warnings: [{ code: err.code, dependency: marketData.name, ageMs: 0 }] };
      }
    },
  };
}
