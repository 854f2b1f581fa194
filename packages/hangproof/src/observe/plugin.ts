import type { FastifyInstance, FastifyReply, FastifyRequest } from 'fastify';
import fp from 'fastify-plugin';
import { Observatory, type ObserveApi } from './observatory.js';
import type { ObserveOptions } from './options.js';
import { registerStatusRoutes } from './status-routes.js';

export type { ExportedWindows } from './export-windows.js';
export type { ObserveApi } from './observatory.js';

declare module 'fastify' {
  interface FastifyInstance {
    observe: ObserveApi;
  }
}

/** The Fastify adapter of an Observatory: the edge is the hangproof plugin's, the status endpoints are routes. */
async function observePlugin(app: FastifyInstance, input: ObserveOptions): Promise<void> {
  const edge = app.hangproof;
  const observatory = await Observatory.create<FastifyRequest>(input);
  observatory.attach({
    deadlineMs: edge.options.deadlineMs,
    adminToken: edge.options.adminToken,
    healthPath: edge.options.healthPath || '/healthz',
    readyPath: edge.options.readyPath || '/readyz',
    lifecycle: edge.lifecycle,
    readiness: () => edge.readiness(),
    shuttingDown: () => edge.shuttingDown,
  });
  // Whatever fails from here on must not leave the observatory's timers and threads running.
  app.addHook('onClose', () => observatory.close());

  if (observatory.tracesRequests) {
    app.addHook('onRequest', (request: FastifyRequest, reply: FastifyReply, done: (err?: Error) => void) => {
      const ctx = request.hangproof;
      if (ctx !== null) observatory.requestStarted(ctx, request.headers, reply.raw);
      done();
    });
  }

  // The probe listener binds once the app is ready (its routes and readiness checks are known)
  // and stops at close; the edge's preClose hook has begun shutdown by the time ours runs.
  app.addHook('onReady', () => observatory.start());
  app.addHook('preClose', (done) => {
    observatory.beginShutdown();
    done();
  });

  app.decorate('observe', {
    registry: observatory.registry,
    snapshot: () => observatory.snapshot(),
    exportWindows: (window) => observatory.exportWindows(window),
    probePort: () => observatory.probePort(),
  } satisfies ObserveApi);

  await registerStatusRoutes(app, observatory.endpoints);
}

/**
 * hangproof's observability and overload protection for Fastify: per-route, Postgres, pool and
 * dependency latency windows; GET /metrics (Prometheus); the admin status page; event-loop delay
 * and stall reports with the blocking stack; a concurrency limit with a short bounded queue; load
 * shedding on loop delay or heap; OpenTelemetry: spans in the application's own traces when it
 * registered a tracer provider, else hangproof's own export when the OTLP variables are set.
 * Register it after the `hangproof` plugin, once per process. For the node:http adapters, see
 * `createObservatory`, which runs the same parts.
 */
export const observe = fp(observePlugin, { fastify: '5.x', name: 'hangproof-observe', dependencies: ['hangproof'] });
