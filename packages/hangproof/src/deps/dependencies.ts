import { HangproofError } from '../errors.js';
import { type AttemptFn, type CallOptions, Dependency, type DependencyStatus } from './dependency.js';
import { HealthMonitor } from './health-monitor.js';
import { HttpDependency } from './http-dependency.js';
import { type DepsLogger, silentLogger } from './logger.js';
import {
  type DependencyOptions,
  type HttpDependencyOptions,
  resolveDependencyOptions,
  resolveHttpOptions,
  validateName,
} from './options.js';
import {
  SnapshotCache,
  type SnapshotCacheOptions,
  type SnapshotReadOptions,
  type SnapshotResult,
} from './snapshot-cache.js';

export interface DependenciesOptions {
  /** Receives breaker state changes, health changes and snapshot load failures; pino fits. @default silent */
  readonly logger?: DepsLogger;
  /** The snapshot cache behind `snapshot()`. */
  readonly snapshots?: SnapshotCacheOptions;
}

/** The readiness of the declared dependencies, from the health cache only. */
export interface DependenciesReadiness {
  /** False when a critical dependency is down or not probed yet. */
  readonly ready: boolean;
  readonly dependencies: ReadonlyArray<{ readonly name: string; readonly critical: boolean; readonly state: string }>;
}

/**
 * The registry of a service's dependencies: each is declared once, by name, with its policies;
 * calls, health, readiness and status all go through here.
 */
export class Dependencies {
  readonly #logger: DepsLogger;
  readonly #byName = new Map<string, Dependency>();
  readonly #http: HttpDependency[] = [];
  readonly #snapshots: SnapshotCache;
  #closed = false;

  constructor(options: DependenciesOptions = {}) {
    this.#logger = options.logger ?? silentLogger;
    this.#snapshots = new SnapshotCache(options.snapshots ?? {}, this.#logger);
  }

  /**
   * Declares an HTTP dependency. Health probing (if `health` is set) starts now, in the
   * background. Declare dependencies at startup, outside any request.
   */
  http(name: string, options: HttpDependencyOptions): HttpDependency {
    this.#assertNew(name);
    const resolved = resolveHttpOptions(name, options);
    const dependency = new Dependency({
      name,
      kind: 'http',
      options: resolved,
      logger: this.#logger,
      extraConfig: { connectTimeoutMs: resolved.connectTimeoutMs },
    });
    const http = new HttpDependency(dependency, resolved);
    const h = resolved.health;
    if (h !== undefined) {
      const probe = h.probe ?? ((signal: AbortSignal) => http.probe(h.path ?? '/', signal, h.timeoutMs));
      dependency.health = new HealthMonitor(name, probe, { ...h, logger: this.#logger });
    }
    this.#add(dependency);
    this.#http.push(http);
    return http;
  }

  /** Declares a non-HTTP dependency (an SDK, a queue...), called with `call(name, fn)` or `.call(fn)`. */
  define(name: string, options: DependencyOptions = {}): Dependency {
    this.#assertNew(name);
    const resolved = resolveDependencyOptions(name, options);
    const dependency = new Dependency({ name, kind: 'call', options: resolved, logger: this.#logger });
    const h = resolved.health;
    if (h !== undefined) {
      if (h.probe === undefined) throw new TypeError(`${name}: health needs a probe function`);
      dependency.health = new HealthMonitor(name, h.probe, { ...h, logger: this.#logger });
    }
    this.#add(dependency);
    return dependency;
  }

  /** The declared dependency `name`; throws a TypeError when there is none (a programming error). */
  get(name: string): Dependency {
    const dependency = this.#byName.get(name);
    if (dependency === undefined) throw new TypeError(`no dependency named '${name}' is declared`);
    return dependency;
  }

  /** Runs `fn(signal, attempt)` as a call to the declared dependency `name`. */
  call<T>(name: string, fn: AttemptFn<T>, options: CallOptions = {}): Promise<T> {
    return this.get(name).call(fn, options);
  }

  /** Snapshot-first read of an expensive value; see SnapshotCache. */
  snapshot<T>(
    key: string,
    load: (signal: AbortSignal) => Promise<T>,
    options: SnapshotReadOptions,
  ): Promise<SnapshotResult<T>> {
    return this.#snapshots.get(key, load, options);
  }

  /** Readiness from the health cache, never calling a dependency. */
  readiness(): DependenciesReadiness {
    const dependencies = [...this.#byName.values()]
      .filter((d) => d.health !== undefined)
      .map((d) => ({
        name: d.name,
        critical: d.options.health?.critical ?? false,
        state: d.health?.snapshot.state ?? 'unknown',
      }));
    return { ready: dependencies.every((d) => !d.critical || d.state === 'up'), dependencies };
  }

  /**
   * A readiness check for the edge (`app.hangproof.addReadinessCheck('dependencies', deps.readinessCheck())`):
   * reads only the cache, so it answers at once even while a provider hangs. Throws
   * DEPENDENCY_UNAVAILABLE naming the first critical dependency that is down or not probed yet.
   */
  readinessCheck(): (signal?: AbortSignal) => Promise<void> {
    return async () => {
      const down = this.readiness().dependencies.find((d) => d.critical && d.state !== 'up');
      if (down !== undefined) {
        throw new HangproofError('DEPENDENCY_UNAVAILABLE', {
          message: `dependency '${down.name}' is ${down.state === 'unknown' ? 'not probed yet' : 'down'}`,
          details: { dependency: down.name, reason: down.state === 'unknown' ? 'not_probed' : 'health_down' },
        });
      }
    };
  }

  /** What a status page shows: one entry per dependency, from memory only. */
  status(): { readonly dependencies: DependencyStatus[]; readonly snapshots: ReturnType<SnapshotCache['stats']> } {
    return { dependencies: [...this.#byName.values()].map((d) => d.status()), snapshots: this.#snapshots.stats() };
  }

  /** Probes every dependency with a health check now and resolves when all answered (each bounded). */
  async probeAll(): Promise<void> {
    await Promise.all([...this.#byName.values()].map((d) => d.health?.probeNow()));
  }

  /** Stops health probing (the cache keeps its last answers). */
  stop(): void {
    for (const d of this.#byName.values()) d.health?.stop();
  }

  /** Stops probing and closes HTTP connection pools, waiting at most `graceMs` for calls in flight. */
  async close(graceMs = 1_000): Promise<void> {
    if (this.#closed) return;
    this.#closed = true;
    this.stop();
    await Promise.all(this.#http.map((h) => h.close(graceMs)));
  }

  #assertNew(name: string): void {
    validateName(name);
    if (this.#closed) throw new TypeError(`cannot declare '${name}': the dependencies are closed`);
    if (this.#byName.has(name)) throw new TypeError(`dependency '${name}' is already declared`);
  }

  #add(dependency: Dependency): void {
    this.#byName.set(dependency.name, dependency);
    dependency.health?.start();
  }
}

/** Creates the registry of a service's outbound dependencies. */
export function createDependencies(options: DependenciesOptions = {}): Dependencies {
  return new Dependencies(options);
}
