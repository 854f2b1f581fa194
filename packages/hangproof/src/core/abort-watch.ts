/**
 * Something that can abort, watched with plain callbacks: a request context (cheap: a Set of
 * functions) or an AbortSignal (through the adapter below).
 *
 * Why not AbortSignal everywhere: on Node 20 an AbortController costs microseconds to build and
 * each add/removeEventListener pair about a microsecond more; the Postgres guard watches the
 * request once per query and per pool wait, which made that the largest single cost of a
 * guarded query. Code handed to users still gets a real AbortSignal (`ctx.signal`), built only
 * when asked for.
 */
export interface AbortWatch {
  readonly aborted: boolean;
  /** The reason once aborted (the context's HangproofError, or the signal's reason). */
  readonly abortReason: unknown;
  /** Calls `fn` once when it aborts; returns the function that stops watching. */
  watchAbort(fn: (reason: unknown) => void): () => void;
  /**
   * Calls `fn` once when it aborts, until `unwatchAbort(fn)`: the closure-free pair, for a watcher
   * function that is kept and reused (a pooled connection's).
   */
  addAbortWatcher(fn: (reason: unknown) => void): void;
  unwatchAbort(fn: (reason: unknown) => void): void;
}

/** An AbortSignal as an AbortWatch; undefined stays undefined. */
export function watchSignal(signal: AbortSignal | undefined): AbortWatch | undefined {
  if (signal === undefined) return undefined;
  const listeners = new Map<(reason: unknown) => void, () => void>();
  const unwatchAbort = (fn: (reason: unknown) => void): void => {
    const listener = listeners.get(fn);
    if (listener === undefined) return;
    listeners.delete(fn);
    signal.removeEventListener('abort', listener);
  };
  return {
    get aborted() {
      return signal.aborted;
    },
    get abortReason() {
      return signal.reason as unknown;
    },
    watchAbort(fn) {
      this.addAbortWatcher(fn);
      return () => unwatchAbort(fn);
    },
    addAbortWatcher(fn) {
      const listener = (): void => {
        listeners.delete(fn);
        fn(signal.reason);
      };
      listeners.set(fn, listener);
      signal.addEventListener('abort', listener, { once: true });
    },
    unwatchAbort,
  };
}

/**
 * Arbitrates one wait with three possible ends: the work's own, a timeout after `ms`, or the
 * abort. Returns `claim`, which the work calls when it ends: true when it came first (go on),
 * false when the timeout or the abort already did. `onTimeout` and `onAbort` run only when they
 * come first. Whichever wins clears the others' timer and watcher, so nothing outlives the wait.
 */
export function firstOutcome(
  ms: number,
  abort: AbortWatch | undefined,
  onTimeout: () => void,
  onAbort: (reason: unknown) => void,
): () => boolean {
  let done = false;
  const claim = (): boolean => {
    if (done) return false;
    done = true;
    clearTimeout(timer);
    unwatch?.();
    return true;
  };
  // Neither callback can run before both constants below are set: timers and watchers fire later.
  const timer = setTimeout(() => {
    if (claim()) onTimeout();
  }, ms);
  const unwatch = abort?.watchAbort((reason) => {
    if (claim()) onAbort(reason);
  });
  return claim;
}
