import type { FastifyInstance } from 'fastify';
import {
  AdminAccess,
  type EncodedWindow,
  type ExportedWindows,
  mergeEncoded,
  WINDOW_NAMES,
  type WindowName,
  type WindowSummary,
} from 'hangproof/observe';

/** One other desk instance of the cluster. */
export interface ClusterPeer {
  /** Name shown on /status.json, e.g. `desk-2`. */
  readonly id: string;
  /** Base URL of the instance itself (not the load balancer), e.g. `http://127.0.0.1:3102`. */
  readonly url: string;
}

/** Options of registerClusterView. Defaults live in CLUSTER_VIEW_DEFAULTS. */
export interface ClusterViewOptions {
  /** Name of this instance. Required. */
  readonly self: string;
  /** The other instances (this one may be listed too: it is skipped by id). Required. */
  readonly peers: readonly ClusterPeer[];
  /** Token peers present to each other's export route (the cluster shares one admin token). Required. */
  readonly adminToken: string;
  /** Longest wait for one peer's windows, in ms; a slower peer is shown as down. @default 500 */
  readonly peerTimeoutMs?: number;
  /** How long a fetched cluster view is reused, in ms, so status polling costs one fan-out. @default 2_000 */
  readonly cacheMs?: number;
  /** Path of the route that exports this instance's windows to its peers. @default '/cluster/windows.json' */
  readonly exportPath?: string;
}

export const CLUSTER_VIEW_DEFAULTS = Object.freeze({
  peerTimeoutMs: 500,
  cacheMs: 2_000,
  exportPath: '/cluster/windows.json',
});

/**
 * Time observe gives the cluster view beyond peerTimeoutMs: the fan-out waits at most
 * peerTimeoutMs for the peers (in parallel), then merges, which takes a few ms.
 */
const STATUS_MARGIN_MS = 250;

/** What registerClusterView returns: observe options that add the `cluster` field to /status.json. */
export interface ClusterStatus {
  /** observe's `extraStatus`: `{ cluster: ClusterSnapshot }`. */
  readonly extraStatus: (signal: AbortSignal) => Promise<{ cluster: ClusterSnapshot }>;
  /** observe's `extraStatusTimeoutMs`: peerTimeoutMs plus a margin, so a slow peer shows as down, not as a missing view. */
  readonly extraStatusTimeoutMs: number;
}

/** What one instance exports to its peers: its identity and every series' windows. */
export interface InstanceExport {
  readonly instance: string;
  readonly pid: number;
  readonly startedAt: string;
  readonly windows: Readonly<Record<WindowName, ExportedWindows>>;
}

/** One instance as the cluster view sees it. */
export interface ClusterMember {
  readonly id: string;
  readonly url: string | null;
  readonly self: boolean;
  /** True when it answered the last fan-out within peerTimeoutMs. */
  readonly up: boolean;
  readonly pid: number | null;
  readonly startedAt: string | null;
  /** Why it is shown down: `timeout`, `refused`, `http_<status>`, `bad_body`. */
  readonly error: string | null;
}

/** The `cluster` field of /status.json. Percentiles are from merged histograms, never averaged. */
export interface ClusterSnapshot {
  readonly self: string;
  readonly fetchedAt: string;
  readonly instances: readonly ClusterMember[];
  readonly instancesUp: number;
  /** Per route, windows merged over the instances that are up. */
  readonly endpoints: readonly {
    readonly method: string;
    readonly route: string;
    readonly windows: Readonly<Record<WindowName, WindowSummary>>;
  }[];
  /** Every Postgres statement of every instance that is up, merged. */
  readonly postgres: Readonly<Record<WindowName, WindowSummary>>;
}

/** Routes of observe itself: not part of the service's endpoint table. */
const OWN_ROUTE = /^\/(status|metrics|cluster)(\/|\.json|$)/;

/**
 * One view of the cluster from any instance. Adds an admin-only route that exports this instance's
 * HdrHistogram windows (`app.observe.exportWindows`), and returns the observe options
 * (`extraStatus`, `extraStatusTimeoutMs`) that add a `cluster` field to /status.json: every peer's
 * windows fetched in parallel (each within peerTimeoutMs, the fan-out cached for cacheMs and
 * shared by concurrent readers), merged per route with `mergeEncoded` so a cluster p99 is the p99
 * of all requests together, and each instance marked up or down. /metrics stays per instance:
 * Prometheus scrapes every instance and aggregates itself.
 *
 * Call it before registering observe (to pass it the returned options): `app.observe` is only
 * read when a status snapshot or an export is asked for.
 */
export function registerClusterView(app: FastifyInstance, options: ClusterViewOptions): ClusterStatus {
  const o = { ...CLUSTER_VIEW_DEFAULTS, ...options };
  if (!(o.peerTimeoutMs >= 10)) throw new RangeError(`peerTimeoutMs must be at least 10, received ${o.peerTimeoutMs}`);
  if (!(o.cacheMs >= 0)) throw new RangeError(`cacheMs must be 0 or more, received ${o.cacheMs}`);
  const access = new AdminAccess({ token: o.adminToken, allow: undefined, sessionMaxAgeSec: 60 });
  const startedAt = new Date().toISOString();
  const peers = o.peers.filter((p) => p.id !== o.self);

  const exportSelf = (): InstanceExport => ({
    instance: o.self,
    pid: process.pid,
    startedAt,
    windows: Object.fromEntries(WINDOW_NAMES.map((w) => [w, app.observe.exportWindows(w)])) as Record<
      WindowName,
      ExportedWindows
    >,
  });

  app.get(o.exportPath, async (request, reply) => {
    if (!(await access.allowed(request))) {
      return reply.code(401).send({ error: { code: 'UNAUTHORIZED', message: 'admin token required' } });
    }
    reply.header('cache-control', 'no-store');
    return exportSelf();
  });

  let cached: { atMs: number; value: Promise<ClusterSnapshot> } | undefined;
  const view = (signal: AbortSignal): Promise<ClusterSnapshot> => {
    const now = performance.now();
    if (cached === undefined || now - cached.atMs >= o.cacheMs) {
      const entry = { atMs: now, value: fanOut(signal) };
      // A fan-out cut by observe's timeout would mark every slow peer down: never reuse it.
      signal.addEventListener(
        'abort',
        () => {
          if (cached === entry) cached = undefined;
        },
        { once: true },
      );
      cached = entry;
    }
    return cached.value;
  };

  async function fanOut(signal: AbortSignal): Promise<ClusterSnapshot> {
    const results = await Promise.all(
      peers.map((p) =>
        fetchPeer(p, o.adminToken, AbortSignal.any([signal, AbortSignal.timeout(o.peerTimeoutMs)]), o.exportPath),
      ),
    );
    const mine = exportSelf();
    const members: ClusterMember[] = [
      { id: o.self, url: null, self: true, up: true, pid: process.pid, startedAt, error: null },
      ...peers.map((p, i): ClusterMember => {
        const r = results[i] as PeerResult;
        return r.ok
          ? { id: p.id, url: p.url, self: false, up: true, pid: r.body.pid, startedAt: r.body.startedAt, error: null }
          : { id: p.id, url: p.url, self: false, up: false, pid: null, startedAt: null, error: r.error };
      }),
    ];
    const exports = [mine, ...results.flatMap((r) => (r.ok ? [r.body] : []))];
    return {
      self: o.self,
      fetchedAt: new Date().toISOString(),
      instances: members,
      instancesUp: members.filter((m) => m.up).length,
      ...mergeExports(exports),
    };
  }

  return {
    extraStatus: async (signal) => ({ cluster: await view(signal) }),
    extraStatusTimeoutMs: o.peerTimeoutMs + STATUS_MARGIN_MS,
  };
}

/**
 * Merges the windows several instances exported: per route and for Postgres, each window's
 * histograms are added (`mergeEncoded`), so percentiles are those of all values together.
 */
export function mergeExports(exports: readonly InstanceExport[]): Pick<ClusterSnapshot, 'endpoints' | 'postgres'> {
  const routes = new Map<string, { method: string; route: string; byWindow: Map<WindowName, EncodedWindow[]> }>();
  const postgres = new Map<WindowName, EncodedWindow[]>(WINDOW_NAMES.map((w) => [w, []]));
  for (const e of exports) {
    for (const w of WINDOW_NAMES) {
      const win = e.windows[w];
      if (win === undefined) continue;
      postgres.get(w)?.push(win.postgres);
      for (const r of win.routes) {
        if (OWN_ROUTE.test(r.route)) continue;
        const key = `${r.method} ${r.route}`;
        let entry = routes.get(key);
        if (entry === undefined) {
          entry = { method: r.method, route: r.route, byWindow: new Map() };
          routes.set(key, entry);
        }
        const list = entry.byWindow.get(w) ?? [];
        list.push(r.latency);
        entry.byWindow.set(w, list);
      }
    }
  }
  const merge = (byWindow: ReadonlyMap<WindowName, readonly EncodedWindow[]>) =>
    Object.fromEntries(WINDOW_NAMES.map((w) => [w, mergeEncoded(byWindow.get(w) ?? [])])) as Record<
      WindowName,
      WindowSummary
    >;
  const endpoints = [...routes.values()]
    .map((r) => ({ method: r.method, route: r.route, windows: merge(r.byWindow) }))
    .filter((r) => r.windows['60m'].count > 0)
    .sort((a, b) => b.windows['5m'].count - a.windows['5m'].count || a.route.localeCompare(b.route));
  return { endpoints, postgres: merge(postgres) };
}

type PeerResult = { ok: true; body: InstanceExport } | { ok: false; error: string };

/** Largest export accepted from a peer: a few hundred series of ~1 KB compressed histograms each. */
const MAX_EXPORT_BYTES = 4 * 1024 * 1024;

async function fetchPeer(peer: ClusterPeer, token: string, signal: AbortSignal, path: string): Promise<PeerResult> {
  try {
    const res = await fetch(`${peer.url}${path}`, { headers: { 'x-admin-token': token }, signal });
    if (!res.ok) {
      await res.body?.cancel();
      return { ok: false, error: `http_${res.status}` };
    }
    const length = Number(res.headers.get('content-length') ?? '0');
    if (length > MAX_EXPORT_BYTES) {
      await res.body?.cancel();
      return { ok: false, error: 'bad_body' };
    }
    const body = (await res.json()) as InstanceExport;
    if (typeof body !== 'object' || body === null || typeof body.windows !== 'object') {
      return { ok: false, error: 'bad_body' };
    }
    return { ok: true, body };
  } catch (err) {
    // Cut by observe's extraStatus timeout (the fan-out is then discarded): count it as a timeout.
    if (signal.aborted) return { ok: false, error: 'timeout' };
    const name = err instanceof Error ? err.name : '';
    if (name === 'TimeoutError' || name === 'AbortError') return { ok: false, error: 'timeout' };
    if (name === 'SyntaxError') return { ok: false, error: 'bad_body' };
    return { ok: false, error: 'refused' };
  }
}
