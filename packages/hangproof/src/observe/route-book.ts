import { LatencySeries, OTHER } from './latency-series.js';

/**
 * Series per route (method + pattern), found without building a key string per request (two map
 * lookups instead), and bounded like SeriesBook: beyond `max` routes, one `(other)` series.
 */
export class RouteBook {
  readonly #byMethod = new Map<string, Map<string, LatencySeries>>();
  readonly #max: number;
  readonly #boundsMs: Float64Array;
  #size = 0;
  #other: LatencySeries | undefined;

  readonly #sinceMs: number;
  readonly #beforeRead: (() => void) | undefined;

  /** `beforeRead`: run before the series are read (records held back are folded in). */
  constructor(max: number, boundsMs: Float64Array, sinceMs: number, beforeRead?: () => void) {
    this.#max = max;
    this.#sinceMs = sinceMs;
    this.#boundsMs = boundsMs;
    this.#beforeRead = beforeRead;
  }

  get(method: string, route: string): LatencySeries {
    let routes = this.#byMethod.get(method);
    const found = routes?.get(route);
    if (found !== undefined) return found;
    if (this.#size >= this.#max) {
      if (this.#other === undefined)
        this.#other = new LatencySeries({ method: OTHER, route: OTHER }, this.#boundsMs, this.#sinceMs);
      return this.#other;
    }
    if (routes === undefined) {
      routes = new Map();
      this.#byMethod.set(method, routes);
    }
    const s = new LatencySeries({ method, route: route === '' ? '(unmatched)' : route }, this.#boundsMs, this.#sinceMs);
    routes.set(route, s);
    this.#size++;
    return s;
  }

  *series(): IterableIterator<LatencySeries> {
    this.#beforeRead?.();
    for (const routes of this.#byMethod.values()) yield* routes.values();
    if (this.#other !== undefined) yield this.#other;
  }
}
