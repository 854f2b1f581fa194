import type { Server } from 'node:http';
import type { FastifyInstance } from 'fastify';
import { type Logger, pino } from 'pino';
import type { RequestContext } from '../core/index.js';
import { HangproofError } from '../errors.js';
import type { NodeEdge } from './node-edge.js';

/** Options of installShutdown. Defaults live in SHUTDOWN_DEFAULTS. */
export interface ShutdownOptions {
  /** Time in-flight requests get to finish after the signal, in ms. @default the app's deadlineMs + 1000 */
  readonly drainMs?: number;
  /**
   * Time to keep serving after the signal with /readyz already failing, so load balancers stop
   * sending traffic before the listener closes (Kubernetes: about one readiness period), in ms.
   * @default 0
   */
  readonly readinessGraceMs?: number;
  /** Time each close hook may take, in ms. @default 5000 */
  readonly hookTimeoutMs?: number;
  /** Signals that start a graceful shutdown; a second one exits at once. @default ['SIGTERM', 'SIGINT'] */
  readonly signals?: readonly NodeJS.Signals[];
  /** Signal that writes a diagnostic report (every JS stack of the main thread) without stopping. `false` to disable. @default 'SIGUSR2' */
  readonly diagnosticSignal?: NodeJS.Signals | false;
  /** Called with the exit code at the end. @default process.exit */
  readonly exit?: (code: number) => void;
  /** Logger for shutdown progress. @default pino to stdout */
  readonly logger?: Logger;
}

export const SHUTDOWN_DEFAULTS = Object.freeze({
  readinessGraceMs: 0,
  hookTimeoutMs: 5000,
  signals: ['SIGTERM', 'SIGINT'] as readonly NodeJS.Signals[],
  diagnosticSignal: 'SIGUSR2' as NodeJS.Signals | false,
});

export interface ShutdownHandle {
  /** Registers work to run after requests drained (close pools, stop jobs, stop a database), in order. */
  onShutdown(name: string, fn: () => unknown): void;
  /** Runs the shutdown now (as a signal would). Resolves with the exit code passed to `exit`. */
  shutdown(reason: string): Promise<number>;
  /** Removes the signal listeners. */
  uninstall(): void;
}

/** What a shutdown drains: a Fastify app with the hangproof plugin, or a node:http server with its edge. */
export type ShutdownTarget = FastifyInstance | { readonly server: Server; readonly edge: NodeEdge };

/** The four things a shutdown does to its target, whatever the framework. */
interface Drainable {
  readonly deadlineMs: number;
  beginShutdown(): void;
  inFlight(): Iterable<RequestContext>;
  /** Stops accepting; resolves once the open requests are done. */
  close(): Promise<unknown>;
  closeAllConnections(): void;
}

function drainableOf(target: ShutdownTarget): Drainable {
  if ('edge' in target && 'server' in target && !('hangproof' in target)) {
    const { server, edge } = target;
    return {
      deadlineMs: edge.options.deadlineMs,
      beginShutdown: () => edge.beginShutdown(),
      inFlight: () => edge.lifecycle.inFlight,
      // Then what the edge runs beside requests (an observatory's timers, threads, probe listener).
      close: () => new Promise<void>((resolve) => server.close(() => resolve())).then(() => edge.close()),
      closeAllConnections: () => server.closeAllConnections(),
    };
  }
  const app = target as FastifyInstance;
  return {
    deadlineMs: app.hangproof.options.deadlineMs,
    beginShutdown: () => app.hangproof.beginShutdown(),
    inFlight: () => app.hangproof.inFlight(),
    close: () => app.close(),
    closeAllConnections: () => app.server.closeAllConnections(),
  };
}

/**
 * Graceful shutdown for a hangproof app: on the first signal, fail readiness, stop accepting,
 * let in-flight requests finish up to `drainMs` (then abort them with SHUTTING_DOWN and close
 * their connections), run close hooks each within `hookTimeoutMs`, and exit. A second signal exits
 * at once with code 1. Every step is bounded, so shutdown itself can never hang.
 */
export function installShutdown(target: ShutdownTarget, options: ShutdownOptions = {}): ShutdownHandle {
  const app = drainableOf(target);
  const o = { ...SHUTDOWN_DEFAULTS, ...options };
  const logger = options.logger ?? pino();
  const drainMs = o.drainMs ?? app.deadlineMs + 1000;
  const exit = o.exit ?? ((code: number) => process.exit(code));
  const hooks: { name: string; fn: () => unknown }[] = [];
  let running: Promise<number> | undefined;

  const onSignal = (signal: NodeJS.Signals): void => {
    if (running !== undefined) {
      logger.warn({ signal }, 'second signal: exiting now');
      exit(1);
      return;
    }
    void shutdown(signal);
  };
  const onDiagnostic = (): void => {
    const inFlight = [...app.inFlight()].map((ctx) => ({
      request_id: ctx.requestId,
      route: ctx.name,
      elapsed_ms: Math.round(ctx.elapsedMs()),
      step_in_flight: ctx.stepInFlight ?? null,
      last_completed_step: ctx.lastCompletedStep ?? null,
    }));
    const file = process.report?.writeReport();
    logger.warn({ report_file: file, in_flight: inFlight }, 'diagnostic report written');
  };

  async function shutdown(reason: string): Promise<number> {
    running ??= run(reason);
    return running;
  }

  async function run(reason: string): Promise<number> {
    const started = performance.now();
    logger.info({ reason, drain_ms: drainMs }, 'shutdown started');
    app.beginShutdown();
    if (o.readinessGraceMs > 0) await sleep(o.readinessGraceMs);
    let code = 0;
    const closed = app.close().then(
      () => true,
      () => true,
    );
    if (!(await Promise.race([closed, sleep(drainMs).then(() => false)]))) {
      code = 1;
      const stuck = [...app.inFlight()];
      logger.error(
        { in_flight: stuck.length, routes: stuck.map((c) => c.name) },
        'drain bound reached: aborting requests still in flight',
      );
      for (const ctx of stuck) ctx.abort(new HangproofError('SHUTTING_DOWN', { retryAfterSec: 1 }));
      await Promise.race([closed, sleep(250)]);
      app.closeAllConnections();
      await Promise.race([closed, sleep(o.hookTimeoutMs)]);
    }
    for (const hook of hooks) {
      const ok = await Promise.race([
        Promise.resolve()
          .then(hook.fn)
          .then(
            () => true,
            (err: unknown) => {
              logger.error({ err, hook: hook.name }, 'shutdown hook failed');
              return true;
            },
          ),
        sleep(o.hookTimeoutMs).then(() => false),
      ]);
      if (!ok) {
        code = 1;
        logger.error({ hook: hook.name, timeout_ms: o.hookTimeoutMs }, 'shutdown hook timed out');
      }
    }
    logger.info({ duration_ms: Math.round(performance.now() - started), exit_code: code }, 'shutdown complete');
    uninstall();
    exit(code);
    return code;
  }

  function uninstall(): void {
    for (const s of o.signals) process.removeListener(s, onSignal);
    if (o.diagnosticSignal !== false) process.removeListener(o.diagnosticSignal, onDiagnostic);
  }

  for (const s of o.signals) process.on(s, onSignal);
  if (o.diagnosticSignal !== false) process.on(o.diagnosticSignal, onDiagnostic);
  return { onShutdown: (name, fn) => void hooks.push({ name, fn }), shutdown, uninstall };
}

const sleep = (ms: number): Promise<void> => new Promise((resolve) => setTimeout(resolve, ms).unref());
