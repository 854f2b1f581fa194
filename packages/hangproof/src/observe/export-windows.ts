import type { SeriesView } from './latency-series.js';
import type { Measurements } from './measurements.js';
import type { EncodedWindow, WindowName } from './windowed-histogram.js';

/** Encoded windows of every series, for merging across instances (`mergeEncoded`). */
export interface ExportedWindows {
  readonly window: WindowName;
  readonly routes: readonly { readonly method: string; readonly route: string; readonly latency: EncodedWindow }[];
  readonly postgres: EncodedWindow;
  readonly queries: readonly {
    readonly queryId: string;
    readonly fingerprint: string;
    readonly latency: EncodedWindow;
  }[];
  readonly poolAcquire: readonly { readonly pool: string; readonly latency: EncodedWindow }[];
  readonly dependencies: readonly { readonly dependency: string; readonly latency: EncodedWindow }[];
}

/** Every series' `window`, encoded so another instance can merge it. */
export function exportWindows(m: Measurements, window: WindowName): ExportedWindows {
  const now = Date.now();
  const enc = (s: SeriesView): EncodedWindow => s.windows.exportWindow(window, now);
  return {
    window,
    routes: [...m.routes.series()].map((s) => ({
      method: s.labels.method ?? '',
      route: s.labels.route ?? '',
      latency: enc(s),
    })),
    postgres: enc(m.queryTotal),
    queries: [...m.queries.entries()].map(([fingerprint, s]) => ({
      queryId: s.labels.query_id ?? '',
      fingerprint,
      latency: enc(s),
    })),
    poolAcquire: [...m.poolAcquire.entries()].map(([pool, s]) => ({ pool, latency: enc(s) })),
    dependencies: [...m.dependencies.entries()].map(([dependency, s]) => ({ dependency, latency: enc(s) })),
  };
}
