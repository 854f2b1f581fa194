import { Worker } from 'node:worker_threads';
import { ProbeMemory } from './probe-memory.js';
import type { ProbeThreadData, ProbeThreadMessage } from './probe-thread.js';

/** Where the probe listener binds and how it judges the main loop. */
export interface ProbeListenerOptions {
  readonly host: string;
  /** 0 for an ephemeral port (tests); `ProbeListener.port` tells which. */
  readonly port: number;
  /** A heartbeat older than this makes `/healthz` and `/readyz` answer 503, in ms. */
  readonly stalledAfterMs: number;
  readonly healthPath: string;
  readonly readyPath: string;
}

/** What the listener reads from the app on the main thread. */
export interface ProbeSources {
  /** The app's readiness, evaluated (and cached) by the edge. */
  readiness(): Promise<{ readonly ready: boolean }>;
  /** True once shutdown began. */
  shuttingDown(): boolean;
  /** The probe thread failed after it started (its port then refuses: liveness fails, as it should). */
  onThreadError(err: Error): void;
}

/**
 * Period of the main thread's heartbeat, in ms. A timer this slow costs nothing measurable, and a
 * heartbeat a few periods old is still far below any useful stall threshold.
 */
export const PROBE_BEAT_MS = 50;
/** Longest wait for the probe thread to bind its port, in ms (from source, the thread first loads a TypeScript loader). */
const START_BOUND_MS = 10_000;
/** Longest wait for the probe thread to close its server before it is terminated, in ms. */
const CLOSE_BOUND_MS = 2_000;

/**
 * The probe listener: `/healthz` and `/readyz` on their own port, served by a worker thread from
 * what the main thread writes into shared memory (heartbeat and lag every PROBE_BEAT_MS, readiness
 * when evaluated, the draining flag). Neither the thread nor the heartbeat keeps the process alive.
 */
export class ProbeListener {
  readonly memory = new ProbeMemory();
  readonly #worker: Worker;
  readonly #beat: NodeJS.Timeout;
  readonly #sources: ProbeSources;
  #port = 0;
  #refreshing = false;
  #onStart: ((m: ProbeThreadMessage) => void) | undefined;
  #closed: Promise<void> | undefined;
  /** Settles when the thread has ended, whenever that happens (even before close() is called). */
  readonly #exited: Promise<void>;

  private constructor(options: ProbeListenerOptions, sources: ProbeSources) {
    this.#sources = sources;
    let last = performance.now();
    this.memory.beat(0);
    this.#beat = setInterval(() => {
      const now = performance.now();
      this.memory.beat(now - last - PROBE_BEAT_MS);
      last = now;
      if (sources.shuttingDown()) this.memory.setDraining();
    }, PROBE_BEAT_MS);
    this.#beat.unref();
    const thread = probeThreadEntry();
    this.#worker = new Worker(thread.entry, {
      eval: thread.eval,
      // None of the main thread's flags: the thread needs no loader once compiled.
      execArgv: [],
      workerData: {
        buffer: this.memory.buffer,
        host: options.host,
        port: options.port,
        stalledAfterMs: options.stalledAfterMs,
        beatMs: PROBE_BEAT_MS,
        healthPath: options.healthPath,
        readyPath: options.readyPath,
      } satisfies ProbeThreadData,
    });
    // One 'message' listener for the thread's life, attached before unref(): adding one later
    // would ref the thread's port again and keep the process alive.
    this.#worker.on('message', (m: ProbeThreadMessage) => {
      if (m.kind === 'refresh-readiness') this.refreshReadiness();
      else this.#onStart?.(m);
    });
    this.#exited = new Promise((resolve) => this.#worker.once('exit', () => resolve()));
    this.#worker.unref();
    // Without a listener an 'error' of the thread would be thrown in the main thread.
    this.#worker.on('error', (err) => {
      if (this.#port !== 0) sources.onThreadError(err);
    });
  }

  /** Starts the thread and resolves once its port is bound; rejects (and stops it) if it cannot bind. */
  static async start(options: ProbeListenerOptions, sources: ProbeSources): Promise<ProbeListener> {
    const listener = new ProbeListener(options, sources);
    try {
      listener.#port = await listener.#listening(options);
    } catch (err) {
      await listener.close();
      throw err;
    }
    listener.refreshReadiness();
    return listener;
  }

  /** The port the probe thread is bound to. */
  get port(): number {
    return this.#port;
  }

  /** Evaluates readiness (the edge caches it) and writes the answer for the probe thread. */
  refreshReadiness(): void {
    if (this.#refreshing) return;
    this.#refreshing = true;
    if (this.#sources.shuttingDown()) this.memory.setDraining();
    this.#sources
      .readiness()
      .then(
        (r) => this.memory.setReady(r.ready),
        () => this.memory.setReady(false),
      )
      .finally(() => {
        this.#refreshing = false;
      });
  }

  /** Marks the app as draining now (the heartbeat would within PROBE_BEAT_MS). */
  markDraining(): void {
    this.memory.setDraining();
  }

  /** Closes the probe server and ends the thread, within CLOSE_BOUND_MS. */
  close(): Promise<void> {
    this.#closed ??= this.#close();
    return this.#closed;
  }

  async #close(): Promise<void> {
    clearInterval(this.#beat);
    // Held for the (bounded) close only, so that awaiting it keeps the loop alive until the thread ends.
    this.#worker.ref();
    this.#worker.postMessage('close');
    const timer = setTimeout(() => void this.#worker.terminate(), CLOSE_BOUND_MS);
    timer.unref();
    await this.#exited;
    clearTimeout(timer);
  }

  #listening(options: ProbeListenerOptions): Promise<number> {
    const worker = this.#worker;
    const self = this;
    return new Promise<number>((resolve, reject) => {
      const timer = setTimeout(
        () => done(new Error(`probe listener did not bind within ${START_BOUND_MS} ms`)),
        START_BOUND_MS,
      );
      const onMessage = (m: ProbeThreadMessage): void => {
        if (m.kind === 'listening') done(undefined, m.port);
        else if (m.kind === 'listen-error') {
          done(new Error(`probe listener cannot bind ${options.host}:${options.port}: ${m.code} ${m.message}`));
        }
      };
      const onError = (err: Error): void => done(err);
      const onExit = (code: number): void => done(new Error(`probe thread exited with code ${code} before binding`));
      function done(err: Error | undefined, port = 0): void {
        clearTimeout(timer);
        worker.off('error', onError).off('exit', onExit);
        self.#onStart = undefined;
        if (err === undefined) resolve(port);
        else reject(err);
      }
      self.#onStart = onMessage;
      worker.on('error', onError).on('exit', onExit);
    });
  }
}

/**
 * How to start the probe thread. Compiled (dist/), its module is the `.js` beside this file and the
 * thread runs it with no flags. Run from source (tests under `--import tsx`), this file's URL ends
 * in `.ts`, and a worker does not inherit the parent's TypeScript loader for its entry module: the
 * thread then starts from a two-line script that registers tsx and imports the `.ts` module.
 */
export function probeThreadEntry(): { entry: URL | string; eval: boolean } {
  if (!import.meta.url.endsWith('.ts')) return { entry: new URL('./probe-thread.js', import.meta.url), eval: false };
  const tsx = import.meta.resolve('tsx/esm/api');
  const thread = new URL('./probe-thread.ts', import.meta.url).href;
  return {
    entry: `import(${JSON.stringify(tsx)}).then((m) => { m.register(); return import(${JSON.stringify(thread)}); });`,
    eval: true,
  };
}
