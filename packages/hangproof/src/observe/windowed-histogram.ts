import * as hdr from 'hdr-histogram-js';

type Histogram = hdr.Histogram;

/** The sliding windows every measured series offers. */
export const WINDOWS = Object.freeze({ '1m': 60_000, '5m': 300_000, '60m': 3_600_000 });
export type WindowName = keyof typeof WINDOWS;
export const WINDOW_NAMES = Object.freeze(Object.keys(WINDOWS) as WindowName[]);

/** Largest value a histogram holds: 120 s in µs. Longer values are recorded as 120 s. */
export const MAX_RECORDED_US = 120_000_000;

/**
 * Values are recorded in µs, from 1 µs to 120 s, with 2 significant digits (1% relative error):
 * ~11 KB per histogram. 3 digits would cost 75 KB each for precision no latency report needs.
 * The pure-JS build is used: no WebAssembly to compile at startup.
 */
const BUILD: hdr.BuildRequest = Object.freeze({
  bitBucketSize: 32,
  autoResize: false,
  lowestDiscernibleValue: 1,
  highestTrackableValue: MAX_RECORDED_US,
  numberOfSignificantValueDigits: 2,
  useWebAssembly: false,
});

/** A cleared histogram, from a small free list so slot rotation makes no garbage. */
const freeList: Histogram[] = [];
const FREE_LIST_LIMIT = 256;

function takeHistogram(): Histogram {
  return freeList.pop() ?? hdr.build(BUILD);
}

function giveBack(h: Histogram): void {
  if (freeList.length < FREE_LIST_LIMIT) {
    h.reset();
    freeList.push(h);
  }
}

/** A new empty histogram with the shared layout, e.g. to merge windows of several instances into. */
export function newHistogram(): Histogram {
  return hdr.build(BUILD);
}

interface Slot {
  /** Start of the period the slot holds (epoch ms, a multiple of the ring's slot length); -1 when empty. */
  start: number;
  hist: Histogram | undefined;
  /** Failures by error code in this period; allocated on the first failure. */
  errors: Map<string, number> | undefined;
}

interface Ring {
  readonly slotMs: number;
  readonly slots: Slot[];
}

function ring(slotMs: number, count: number): Ring {
  return { slotMs, slots: Array.from({ length: count }, () => ({ start: -1, hist: undefined, errors: undefined })) };
}

function clear(slot: Slot, start: number): void {
  if (slot.hist !== undefined) giveBack(slot.hist);
  slot.hist = undefined;
  slot.errors?.clear();
  slot.start = start;
}

function addErrors(into: Slot, from: Map<string, number>): void {
  into.errors ??= new Map();
  for (const [code, n] of from) into.errors.set(code, (into.errors.get(code) ?? 0) + n);
}

/** Latency summary of one window, in ms. */
export interface WindowSummary {
  readonly count: number;
  /** Requests (or calls) per second over the time the window actually covers. */
  readonly ratePerSec: number;
  readonly p50Ms: number;
  readonly p95Ms: number;
  readonly p99Ms: number;
  readonly maxMs: number;
  /** Failures by error code. */
  readonly errors: Readonly<Record<string, number>>;
  /** Time the window covers, in ms (shorter than the window just after startup). */
  readonly coveredMs: number;
}

/** One window in a form another instance can merge (see `mergeEncoded`). */
export interface EncodedWindow {
  readonly window: WindowName;
  /** Epoch ms of the first and last moment covered. */
  readonly fromMs: number;
  readonly toMs: number;
  /** HdrHistogram compressed base64 (the V2 format every HdrHistogram port reads), values in µs. */
  readonly histogram: string;
  readonly errors: Readonly<Record<string, number>>;
}

const FINE_MS = 10_000;
const MINUTE_MS = 60_000;
const FIVE_MS = 300_000;

/** Slot length and slot count of the ring behind each window. */
const RINGS = Object.freeze({ '1m': [FINE_MS, 6], '5m': [MINUTE_MS, 5], '60m': [FIVE_MS, 12] } as const);

/**
 * Epoch ms where `window` starts at `nowMs`: the start of its oldest slot. Lists shown next to a
 * window's counts (recent timeouts on /status) use the same start, so the two agree.
 */
export function windowStartMs(window: WindowName, nowMs: number): number {
  const [slotMs, slots] = RINGS[window];
  return nowMs - (nowMs % slotMs) - (slots - 1) * slotMs;
}

/** What a window is read from: one series' rings, or several summed (SummedWindows). */
export interface WindowSource {
  /** Sums the window into `into` (cleared first) and returns the failures and the period covered. */
  collect(window: WindowName, nowMs: number, into: Histogram): { errors: Map<string, number>; fromMs: number };
}

/** The reads every window source offers (see WindowedHistogram). */
export interface WindowReader extends WindowSource {
  summary(window: WindowName, nowMs?: number): WindowSummary;
  exportWindow(window: WindowName, nowMs?: number): EncodedWindow;
}

/**
 * Latency over sliding windows of 1, 5 and 60 minutes, kept as rings of per-period HdrHistograms
 * so that windows of several instances merge into correct percentiles (averaging percentiles
 * would not).
 *
 * Recording touches one histogram: the current 10 s slot. When a 10 s slot is retired it is folded
 * into the 1-minute ring (5 slots) and the 5-minute ring (12 slots). A window is the sum of the
 * newest slots of one ring plus the current 10 s slot: 1m covers 50-60 s, 5m 4-5 min, 60m 55-60 min.
 * Histograms are allocated on the first value of a period, so an idle series costs ~1 KB.
 */
export class WindowedHistogram implements WindowReader {
  readonly #fine = ring(FINE_MS, 6);
  readonly #minutes = ring(MINUTE_MS, 5);
  readonly #fives = ring(FIVE_MS, 12);
  #current: Slot;
  readonly #createdAt: number;

  constructor(nowMs: number = Date.now()) {
    this.#createdAt = nowMs;
    this.#current = this.#fine.slots[0] as Slot;
  }

  /** Records one value (µs) at `nowMs`, with the error code when it failed. */
  record(valueUs: number, nowMs: number, errorCode?: string): void {
    let slot = this.#current;
    if (nowMs - slot.start >= FINE_MS || nowMs < slot.start) slot = this.#advance(nowMs);
    if (slot.hist === undefined) slot.hist = takeHistogram();
    slot.hist.recordValue(valueUs < 0 ? 0 : valueUs > MAX_RECORDED_US ? MAX_RECORDED_US : Math.round(valueUs));
    if (errorCode !== undefined) {
      if (slot.errors === undefined) slot.errors = new Map();
      slot.errors.set(errorCode, (slot.errors.get(errorCode) ?? 0) + 1);
    }
  }

  /** Sums the window into `into` (cleared first) and returns the failures and the period covered. */
  collect(window: WindowName, nowMs: number, into: Histogram): { errors: Map<string, number>; fromMs: number } {
    into.reset();
    const errors = new Map<string, number>();
    const addSlot = (slot: Slot): void => {
      if (slot.hist !== undefined) into.add(slot.hist);
      if (slot.errors !== undefined) for (const [c, n] of slot.errors) errors.set(c, (errors.get(c) ?? 0) + n);
    };
    const r = window === '1m' ? this.#fine : window === '5m' ? this.#minutes : this.#fives;
    const oldest = windowStartMs(window, nowMs);
    for (const slot of r.slots) if (slot.start >= oldest && slot.start <= nowMs) addSlot(slot);
    // The current 10 s slot is folded into the coarse rings only when it is retired.
    const cur = this.#current;
    if (r !== this.#fine && cur.start >= oldest && cur.start <= nowMs) addSlot(cur);
    return { errors, fromMs: Math.max(oldest, this.#createdAt) };
  }

  /** Percentiles, count, rate and failures of one window. */
  summary(window: WindowName, nowMs: number = Date.now()): WindowSummary {
    return summaryOf(this, window, nowMs);
  }

  /** One window encoded for merging elsewhere (a cluster view, a load-test report). */
  exportWindow(window: WindowName, nowMs: number = Date.now()): EncodedWindow {
    return exportOf(this, window, nowMs);
  }

  #advance(nowMs: number): Slot {
    const prev = this.#current;
    if (prev.start >= 0 && prev.hist !== undefined) {
      this.#fold(this.#minutes, prev);
      this.#fold(this.#fives, prev);
    }
    const start = nowMs - (nowMs % FINE_MS);
    const slot = this.#fine.slots[(start / FINE_MS) % this.#fine.slots.length] as Slot;
    clear(slot, start);
    this.#current = slot;
    return slot;
  }

  #fold(r: Ring, from: Slot): void {
    const start = from.start - (from.start % r.slotMs);
    const slot = r.slots[(start / r.slotMs) % r.slots.length] as Slot;
    if (slot.start > start) return; // a newer period already owns the slot: the data is too old to count
    if (slot.start !== start) clear(slot, start);
    if (from.hist !== undefined) {
      if (slot.hist === undefined) slot.hist = takeHistogram();
      slot.hist.add(from.hist);
    }
    if (from.errors !== undefined && from.errors.size > 0) addErrors(slot, from.errors);
  }
}

/**
 * The windows of several series read as one (all Postgres queries: the sum of the per-query
 * series), summed when read instead of recorded once more per value. Their slots start at the
 * same epoch multiples, so the sum of each series' window is the window of all their values.
 */
export class SummedWindows implements WindowReader {
  readonly #parts: () => Iterable<WindowSource>;
  readonly #sinceMs: number;

  /** `sinceMs`: when measuring began (epoch ms), for a window read before any part exists. */
  constructor(parts: () => Iterable<WindowSource>, sinceMs: number) {
    this.#parts = parts;
    this.#sinceMs = sinceMs;
  }

  collect(window: WindowName, nowMs: number, into: Histogram): { errors: Map<string, number>; fromMs: number } {
    into.reset();
    const errors = new Map<string, number>();
    let fromMs = Math.max(windowStartMs(window, nowMs), this.#sinceMs);
    for (const part of this.#parts()) {
      const got = part.collect(window, nowMs, partScratch);
      into.add(partScratch);
      for (const [code, n] of got.errors) errors.set(code, (errors.get(code) ?? 0) + n);
      fromMs = Math.min(fromMs, got.fromMs);
    }
    return { errors, fromMs };
  }

  summary(window: WindowName, nowMs: number = Date.now()): WindowSummary {
    return summaryOf(this, window, nowMs);
  }

  exportWindow(window: WindowName, nowMs: number = Date.now()): EncodedWindow {
    return exportOf(this, window, nowMs);
  }
}

/** Shared scratch histograms for reads: reads run on the main thread one at a time. */
const scratch = newHistogram();
const partScratch = newHistogram();

function summaryOf(source: WindowSource, window: WindowName, nowMs: number): WindowSummary {
  const { errors, fromMs } = source.collect(window, nowMs, scratch);
  return summarize(scratch, errors, nowMs - fromMs);
}

function exportOf(source: WindowSource, window: WindowName, nowMs: number): EncodedWindow {
  const { errors, fromMs } = source.collect(window, nowMs, scratch);
  return {
    window,
    fromMs,
    toMs: nowMs,
    histogram: hdr.encodeIntoCompressedBase64(scratch),
    errors: Object.fromEntries(errors),
  };
}

const round2 = (v: number): number => Math.round(v * 100) / 100;

/**
 * Summary of a histogram of µs values (as recorded here), in ms. No mean: hdr-histogram-js computes
 * it by iterating every recorded value, which made a status snapshot ten times slower.
 */
export function summarize(h: Histogram, errors: ReadonlyMap<string, number>, coveredMs: number): WindowSummary {
  const count = h.totalCount;
  const us = (p: number): number => (count === 0 ? 0 : round2(h.getValueAtPercentile(p) / 1000));
  return {
    count,
    ratePerSec: coveredMs > 0 ? round2((count * 1000) / coveredMs) : 0,
    p50Ms: us(50),
    p95Ms: us(95),
    p99Ms: us(99),
    maxMs: count === 0 ? 0 : round2(h.maxValue / 1000),
    errors: Object.fromEntries(errors),
    coveredMs: Math.round(coveredMs),
  };
}

/**
 * Merges windows exported by several instances (`exportWindow`) into one summary whose
 * percentiles are those of all the values together. The rate is the sum of the instances' rates.
 */
export function mergeEncoded(windows: readonly EncodedWindow[]): WindowSummary {
  const merged = newHistogram();
  const errors = new Map<string, number>();
  let rate = 0;
  let covered = 0;
  for (const w of windows) {
    const h = hdr.decodeFromCompressedBase64(w.histogram, 32, false);
    merged.add(h);
    const span = Math.max(1, w.toMs - w.fromMs);
    rate += (h.totalCount * 1000) / span;
    covered = Math.max(covered, span);
    for (const [code, n] of Object.entries(w.errors)) errors.set(code, (errors.get(code) ?? 0) + n);
  }
  return { ...summarize(merged, errors, covered), ratePerSec: round2(rate) };
}
