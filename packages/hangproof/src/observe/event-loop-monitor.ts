import { type EventLoopUtilization, type IntervalHistogram, monitorEventLoopDelay, performance } from 'node:perf_hooks';
import { getHeapStatistics } from 'node:v8';
import { BoundedRing } from './bounded-ring.js';

/** Event-loop delay over one sample interval, in ms. */
export interface LoopSample {
  readonly atMs: number;
  readonly meanMs: number;
  readonly p50Ms: number;
  readonly p99Ms: number;
  readonly maxMs: number;
  /** Share of the interval the loop was busy (0..1). */
  readonly utilization: number;
  readonly heapUsedBytes: number;
}

/** Why new requests are being shed, if they are. */
export type PressureReason = 'event_loop' | 'heap';

export interface EventLoopMonitorOptions {
  readonly sampleIntervalMs: number;
  /** 0 disables. Compared with the mean delay of the last sample, as @fastify/under-pressure does. */
  readonly maxEventLoopDelayMs: number;
  /** 0 disables. */
  readonly maxHeapUsedBytes: number;
}

/**
 * perf_hooks sampling resolution, in ms. Subtracted from the delays (a timer of this period is the
 * probe). Every probe wakes an idle loop, which costs about 0.06 ms of CPU on a virtual machine: at
 * 10 ms (Node's default) that was 6 ms of CPU a second with no request at all. Stalls are caught by
 * the watchdog thread, not by this histogram, so a coarser probe loses nothing that is reported.
 * prom-client's loop-lag histogram uses the same resolution and starts in the same tick, so both
 * probes fire in one wake-up.
 */
export const LOOP_DELAY_RESOLUTION_MS = 20;
const RESOLUTION_MS = LOOP_DELAY_RESOLUTION_MS;
const nsToMs = (ns: number): number => Math.round((ns / 1e6) * 100) / 100;

/**
 * Samples event-loop delay (perf_hooks.monitorEventLoopDelay), loop utilisation and V8 heap use
 * every interval, keeps the last minute of samples for /status, and raises `pressure` while a
 * configured limit is passed so the overload guard can shed with a boolean check per request.
 */
export class EventLoopMonitor {
  /** Set while a limit is passed; read on every request, so it is a plain field. */
  pressure: PressureReason | undefined;
  readonly #histogram: IntervalHistogram;
  readonly #samples: BoundedRing<LoopSample>;
  readonly #options: EventLoopMonitorOptions;
  #elu: EventLoopUtilization;
  #timer: NodeJS.Timeout | undefined;
  /** performance.now() when the window of the next sample began. */
  #windowStart = performance.now();
  /** A sample whose window began before this (performance.now()) judges no delay: see `servingFrom`. */
  #judgeFrom = Number.NEGATIVE_INFINITY;

  constructor(options: EventLoopMonitorOptions) {
    this.#options = options;
    this.#histogram = monitorEventLoopDelay({ resolution: RESOLUTION_MS });
    // Enabled at once, in the tick that registers prom-client's histogram (see above).
    this.#histogram.enable();
    this.#samples = new BoundedRing(Math.max(1, Math.ceil(60_000 / options.sampleIntervalMs)));
    this.#elu = performance.eventLoopUtilization();
  }

  start(): void {
    // Already enabled by the constructor (a no-op then); again after a stop().
    this.#histogram.enable();
    this.#timer = setInterval(() => this.sample(), this.#options.sampleIntervalMs);
    this.#timer.unref();
  }

  stop(): void {
    if (this.#timer !== undefined) clearInterval(this.#timer);
    this.#timer = undefined;
    this.#histogram.disable();
  }

  /**
   * The service starts serving now. What blocked the loop until now was startup (modules loading,
   * schemas and serializers compiled), not load: on a busy host it can pass the limit, and the first
   * sample after it would then shed the service's first requests for a whole interval. So a sample
   * whose window began before now judges no delay, and a delay pressure already raised is dropped
   * (the heap is judged as ever: a heap over its limit is one now). The probe records a block when
   * it next fires, up to a resolution after the block: the window that holds it begins before now
   * plus two resolutions, so that is where judging resumes.
   */
  servingFrom(now = performance.now()): void {
    this.#judgeFrom = now + 2 * RESOLUTION_MS;
    if (this.pressure === 'event_loop') this.pressure = undefined;
  }

  /** Takes one sample now (the timer calls this; exposed for an immediate reading). */
  sample(): LoopSample {
    const h = this.#histogram;
    const count = h.count;
    const less = (v: number): number => (count === 0 ? 0 : Math.max(0, nsToMs(v) - RESOLUTION_MS));
    const elu = performance.eventLoopUtilization(this.#elu);
    this.#elu = performance.eventLoopUtilization();
    const s: LoopSample = {
      atMs: Date.now(),
      meanMs: Math.round(less(h.mean) * 100) / 100,
      p50Ms: less(h.percentile(50)),
      p99Ms: less(h.percentile(99)),
      maxMs: less(h.max),
      utilization: Math.round(elu.utilization * 1000) / 1000,
      heapUsedBytes: getHeapStatistics().used_heap_size,
    };
    h.reset();
    this.#samples.push(s);
    const windowStart = this.#windowStart;
    this.#windowStart = performance.now();
    const o = this.#options;
    this.pressure =
      windowStart >= this.#judgeFrom && o.maxEventLoopDelayMs > 0 && s.meanMs > o.maxEventLoopDelayMs
        ? 'event_loop'
        : o.maxHeapUsedBytes > 0 && s.heapUsedBytes > o.maxHeapUsedBytes
          ? 'heap'
          : undefined;
    return s;
  }

  /** The last sample and the worst of the last minute. */
  summary(): {
    last: LoopSample | undefined;
    minute: { p99Ms: number; maxMs: number; meanMs: number };
    pressure: PressureReason | null;
  } {
    const samples = this.#samples.toArray();
    let p99 = 0;
    let max = 0;
    let mean = 0;
    for (const s of samples) {
      p99 = Math.max(p99, s.p99Ms);
      max = Math.max(max, s.maxMs);
      mean += s.meanMs;
    }
    return {
      last: samples[0],
      minute: {
        p99Ms: p99,
        maxMs: max,
        meanMs: samples.length === 0 ? 0 : Math.round((mean / samples.length) * 100) / 100,
      },
      pressure: this.pressure ?? null,
    };
  }
}
