/**
 * What the main thread and the stall watchdog thread (stall-watchdog-thread.ts) share: the beat's
 * encoding, the thread's data and its messages. Neither side imports the other's code.
 */
import type { InFlightRequest, StallFrame } from './stall-watchdog.js';

/**
 * A beat as stored in the shared Int32Array: the main thread's `performance.now()` in whole ms,
 * modulo 2^32. An Int32 takes an atomic store and no allocation (a BigInt would be one per beat,
 * and beats come with every request); it wraps after 49.7 days, which `beatAgeMs` accounts for.
 */
export function toBeat(mainPerfNowMs: number): number {
  return mainPerfNowMs | 0;
}

/** ms from a beat to `mainPerfNowMs` (the main thread's clock), correct across the Int32 wrap. */
export function beatAgeMs(beat: number, mainPerfNowMs: number): number {
  return ((mainPerfNowMs | 0) - beat) | 0;
}

/**
 * The monotonic clock in ms less this thread's `performance.now()`. Each thread's
 * `performance.now()` counts from its own start; the difference of two threads' origins turns
 * one's reading into the other's.
 */
export function clockOriginMs(): number {
  return Number(process.hrtime.bigint()) / 1e6 - performance.now();
}

/** The thread's `workerData`. */
export interface WatchdogData {
  /** A SharedArrayBuffer of one Int32: the main thread's last beat (`toBeat`). */
  readonly buffer: SharedArrayBuffer;
  /** The main thread's `clockOriginMs()`: how the thread reads the main thread's clock from its own. */
  readonly mainClockOriginMs: number;
  /** Loop blocked this long (no beat) is a stall, in ms. */
  readonly thresholdMs: number;
  /** How often the thread reads the last beat while a stall lasts, to see it end, in ms. */
  readonly stallPollMs: number;
  /** Pause the main thread through the inspector to take the blocking stack. */
  readonly captureStacks: boolean;
  /** Evaluated on the paused main thread; returns the in-flight requests as a JSON string. */
  readonly snapshotExpression: string;
  /** A stall still going after this many ms is written straight to stderr. */
  readonly longStallLogMs: number;
}

/** One stall, sent when the loop runs again. */
export interface WatchdogStallMessage {
  readonly kind: 'stall';
  readonly startedAtEpochMs: number;
  readonly durationMs: number;
  readonly frames: StallFrame[] | undefined;
  readonly inFlight: InFlightRequest[] | undefined;
  readonly pausedAfterMs: number | undefined;
  readonly note: string | undefined;
}

export type WatchdogMessage =
  | WatchdogStallMessage
  /** The thread is polling: stalls from now on are seen. */
  | { readonly kind: 'ready' }
  | { readonly kind: 'warning'; readonly message: string };
