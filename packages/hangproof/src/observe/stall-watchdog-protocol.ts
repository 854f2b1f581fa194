/**
 * What the main thread and the stall watchdog thread (stall-watchdog-thread.ts) send each other.
 * Types only: neither side imports the other's code.
 */
import type { InFlightRequest, StallFrame } from './stall-watchdog.js';

/** The thread's `workerData`. */
export interface WatchdogData {
  /** A SharedArrayBuffer of one BigInt64: `process.hrtime.bigint()` at the main thread's last beat. */
  readonly buffer: SharedArrayBuffer;
  /** Loop blocked this long (no beat) is a stall, in ms. */
  readonly thresholdMs: number;
  /** How often the main thread beats, in ms. */
  readonly beatMs: number;
  /** How often the thread reads the last beat while beats come on time, in ms. */
  readonly pollMs: number;
  /** How often it reads it once a beat is late, until the next beat or a stall, in ms. */
  readonly latePollMs: number;
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
