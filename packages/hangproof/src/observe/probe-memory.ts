/**
 * What the main thread tells the probe thread, in shared memory: the heartbeat (a monotonic
 * stamp), the event-loop lag it measured, readiness and the draining flag. Shared memory rather
 * than messages because a message to a flooded main thread waits behind everything else in its
 * queue, and the probe must answer without waiting for the main thread at all.
 *
 * Stamps are `process.hrtime.bigint()`: one monotonic clock for every thread of the process (a
 * `performance.now()` of one thread is relative to that thread's own start).
 */
export class ProbeMemory {
  readonly buffer: SharedArrayBuffer;
  readonly #stamps: BigInt64Array;
  readonly #values: Int32Array;

  constructor(buffer: SharedArrayBuffer = new SharedArrayBuffer(BYTES)) {
    if (buffer.byteLength < BYTES)
      throw new RangeError(`probe memory needs ${BYTES} bytes, received ${buffer.byteLength}`);
    this.buffer = buffer;
    this.#stamps = new BigInt64Array(buffer, 0, 2);
    this.#values = new Int32Array(buffer, 16, 4);
  }

  /** Main thread: the loop is alive now; its last timer ran `lagMs` late. */
  beat(lagMs: number): void {
    Atomics.store(this.#values, LAG, Math.min(0x7fffffff, Math.max(0, Math.round(lagMs))));
    Atomics.store(this.#stamps, HEARTBEAT, process.hrtime.bigint());
  }

  /** Main thread: the result of a readiness evaluation. */
  setReady(ready: boolean): void {
    Atomics.store(this.#values, READY, ready ? READY_YES : READY_NO);
    Atomics.store(this.#stamps, CHECKED, process.hrtime.bigint());
    Atomics.add(this.#values, READINESS_SEQ, 1);
    Atomics.notify(this.#values, READINESS_SEQ);
  }

  /** Counts readiness evaluations written so far; `waitForReadiness` waits for it to move. */
  get readinessSeq(): number {
    return Atomics.load(this.#values, READINESS_SEQ);
  }

  /**
   * Probe thread: resolves once an evaluation after `seq` is written, or after `timeoutMs`,
   * without blocking the thread (Atomics.waitAsync).
   */
  async waitForReadiness(seq: number, timeoutMs: number): Promise<void> {
    const waited = (Atomics as unknown as AtomicsWaitAsync).waitAsync(this.#values, READINESS_SEQ, seq, timeoutMs);
    if (waited.async) await waited.value;
  }

  /** Main thread: shutdown began; readiness is false from now on. */
  setDraining(): void {
    Atomics.store(this.#values, DRAINING, 1);
  }

  /** Time since the last heartbeat, in ms; Infinity before the first. */
  heartbeatAgeMs(): number {
    return ageMs(Atomics.load(this.#stamps, HEARTBEAT));
  }

  /** The lag of the main loop's last heartbeat timer, in ms. */
  get lagMs(): number {
    return Atomics.load(this.#values, LAG);
  }

  /** true/false from the last readiness evaluation; undefined before the first. */
  get ready(): boolean | undefined {
    const v = Atomics.load(this.#values, READY);
    return v === READY_UNKNOWN ? undefined : v === READY_YES;
  }

  /** Time since the last readiness evaluation, in ms; Infinity before the first. */
  readinessAgeMs(): number {
    return ageMs(Atomics.load(this.#stamps, CHECKED));
  }

  get draining(): boolean {
    return Atomics.load(this.#values, DRAINING) === 1;
  }
}

const BYTES = 32;
// BigInt64 slots.
const HEARTBEAT = 0;
const CHECKED = 1;
// Int32 slots.
const LAG = 0;
const READY = 1;
const DRAINING = 2;
const READINESS_SEQ = 3;
const READY_UNKNOWN = 0;
const READY_YES = 1;
const READY_NO = 2;

/** Atomics.waitAsync (Node 16+), which the ES2023 lib of this project does not declare. */
interface AtomicsWaitAsync {
  waitAsync(
    array: Int32Array,
    index: number,
    value: number,
    timeoutMs: number,
  ): { async: false; value: 'not-equal' | 'timed-out' } | { async: true; value: Promise<'ok' | 'timed-out'> };
}

function ageMs(stamp: bigint): number {
  if (stamp === 0n) return Number.POSITIVE_INFINITY;
  return Number(process.hrtime.bigint() - stamp) / 1e6;
}
