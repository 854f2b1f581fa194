import type * as OtelApi from '@opentelemetry/api';

/** `@opentelemetry/api`, as this module loads it. */
export type OtelApiModule = typeof OtelApi;

/** Where `@opentelemetry/api` 1.x keeps its registered globals (see its internal/global-utils). */
const GLOBAL_API_KEY = Symbol.for('opentelemetry.js.api.1');

let detection: Promise<OtelApiModule | undefined> | undefined;
let settled: OtelApiModule | undefined;

/**
 * `@opentelemetry/api` when the application registered a global tracer provider (a NodeSDK or a
 * `NodeTracerProvider.register()`), else undefined. The API is an optional dependency, imported
 * here only, once: a service without OpenTelemetry loads none of it, and code that asks on the
 * request path reads a settled answer (see `registeredOtelApi`).
 *
 * The check: first the API's global registry (`Symbol.for('opentelemetry.js.api.1')` on
 * globalThis, where every copy of API 1.x records what was registered): with no `trace` entry
 * nothing was registered and the API is not even imported. Then, with the API loaded,
 * `trace.getTracerProvider()` is the registered provider itself, or the API's proxy
 * whose delegate is the no-op provider while nothing is registered. The no-op provider is not
 * exported, but every fresh proxy delegates to that one instance, so it is compared by identity.
 */
export function detectOtelApi(): Promise<OtelApiModule | undefined> {
  if (detection !== undefined) return detection;
  const registry = (globalThis as Record<symbol, { trace?: unknown } | undefined>)[GLOBAL_API_KEY];
  // Not remembered: a provider registered later is still found by the next caller.
  if (registry?.trace === undefined) return Promise.resolve(undefined);
  detection = import('@opentelemetry/api').then(
    (api) => {
      const noop = new api.ProxyTracerProvider().getDelegate();
      let provider: OtelApi.TracerProvider = api.trace.getTracerProvider();
      if (provider instanceof api.ProxyTracerProvider) provider = provider.getDelegate();
      settled = provider === noop ? undefined : api;
      return settled;
    },
    () => undefined,
  );
  return detection;
}

/** The API once `detectOtelApi` found a registered provider; undefined before and otherwise. */
export function registeredOtelApi(): OtelApiModule | undefined {
  return settled;
}
