import { readFile } from 'node:fs/promises';
import type { Registry } from 'prom-client';
import { HangproofError } from '../errors.js';
import type { AccessRequest, AdminAccess } from './admin-access.js';
import type { ExtraStatus } from './extra-status.js';

/** Shipped in the package's `static/` folder: plain HTML, CSS and JS, no build step. */
const STATIC_DIR = new URL('../../static/', import.meta.url);
const ASSETS = Object.freeze({
  'status.js': 'text/javascript; charset=utf-8',
  'status.css': 'text/css; charset=utf-8',
});

/** The page runs only its own script and style; nothing may frame it or receive its referrer. */
const PAGE_HEADERS = Object.freeze({
  'content-security-policy':
    "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; connect-src 'self'; form-action 'self'; frame-ancestors 'none'; base-uri 'none'",
  'x-frame-options': 'DENY',
  'referrer-policy': 'no-referrer',
  'cache-control': 'no-store',
  'x-content-type-options': 'nosniff',
  'content-type': 'text/html; charset=utf-8',
});

/** How long one status snapshot is reused, so several open pages cost one computation. */
const SNAPSHOT_CACHE_MS = 1000;
/** Largest login form body accepted, in bytes. */
export const LOGIN_BODY_LIMIT = 4096;

/** One answer of the status endpoints, written by whichever framework serves them. */
export interface StatusAnswer {
  readonly status: number;
  readonly headers: Readonly<Record<string, string>>;
  readonly body: string;
}

export interface StatusEndpointsOptions<R extends AccessRequest> {
  readonly access: AdminAccess<R>;
  readonly registry: Registry;
  readonly snapshot: () => Record<string, unknown>;
  /** The service's extra fields of /status.json, when `extraStatus` is set. */
  readonly extra: ExtraStatus | undefined;
  readonly metricsPath: string | false;
  readonly statusPath: string | false;
}

/** The paths of the status page, derived from `statusPath`. */
export interface StatusPaths {
  readonly status: string;
  readonly statusJson: string;
  readonly login: string;
  readonly logout: string;
  /** Asset path to its content type and body. */
  readonly assets: ReadonlyMap<string, { readonly type: string; readonly body: string }>;
}

/** The page's templates and assets, read from `static/` once at start-up. */
export interface StatusTemplates {
  readonly statusHtml: string;
  readonly loginHtml: string;
  readonly assets: readonly { readonly name: string; readonly type: string; readonly body: string }[];
}

export async function loadStatusTemplates(): Promise<StatusTemplates> {
  const [statusHtml, loginHtml, ...assets] = await Promise.all([
    readFile(new URL('status.html', STATIC_DIR), 'utf8'),
    readFile(new URL('login.html', STATIC_DIR), 'utf8'),
    ...Object.keys(ASSETS).map((name) => readFile(new URL(name, STATIC_DIR), 'utf8')),
  ]);
  return {
    statusHtml,
    loginHtml,
    assets: Object.entries(ASSETS).map(([name, type], i) => ({ name, type, body: assets[i] as string })),
  };
}

function fill(template: string, values: Readonly<Record<string, string>>): string {
  return template.replace(/__([A-Z_]+)__/g, (whole, key: string) => values[key] ?? whole);
}

const escapeAttr = (s: string): string => s.replace(/[&<>"']/g, (c) => `&#${c.charCodeAt(0)};`);

const unauthorized = (): HangproofError =>
  new HangproofError('UNAUTHORIZED', { message: 'this endpoint needs the admin token (X-Admin-Token)' });

const redirect = (location: string, cookie: string): StatusAnswer => ({
  status: 303,
  headers: { location, 'set-cookie': cookie },
  body: '',
});

/**
 * GET /metrics, GET /status, GET /status.json, POST /status/login and /status/logout and the
 * page's assets, decided without any framework: each method takes the request (for the access
 * rules) and returns the answer, or throws UNAUTHORIZED for the caller's error path. The Fastify
 * routes (status-routes.ts) and the node:http handler (status-handler.ts) both write these.
 */
export class StatusEndpoints<R extends AccessRequest> {
  readonly metricsPath: string | undefined;
  readonly paths: StatusPaths | undefined;
  readonly #o: StatusEndpointsOptions<R>;
  readonly #statusPage: string;
  readonly #loginPage: (failed: boolean) => string;
  #cached: { atMs: number; body: Promise<Record<string, unknown>> } | undefined;

  constructor(o: StatusEndpointsOptions<R>, templates: StatusTemplates | undefined) {
    this.#o = o;
    this.metricsPath = o.metricsPath === false ? undefined : o.metricsPath;
    const base = o.statusPath === false ? '' : o.statusPath;
    this.paths =
      o.statusPath === false || templates === undefined
        ? undefined
        : {
            status: base,
            statusJson: `${base}.json`,
            login: `${base}/login`,
            logout: `${base}/logout`,
            assets: new Map(templates.assets.map((a) => [`${base}/assets/${a.name}`, a])),
          };
    const values = Object.fromEntries(
      Object.entries({
        STATUS_JSON: `${base}.json`,
        ASSETS: `${base}/assets`,
        LOGIN: `${base}/login`,
        LOGOUT: `${base}/logout`,
        STATUS: base,
      }).map(([k, v]) => [k, escapeAttr(v)]),
    );
    this.#statusPage = fill(templates?.statusHtml ?? '', values);
    const loginHtml = templates?.loginHtml ?? '';
    // The "no token configured" hint is shown only when there is no token: with one, signing in works.
    this.#loginPage = (failed) =>
      fill(loginHtml, {
        ...values,
        ERROR_HIDDEN: failed ? '' : 'hidden',
        TOKEN_HINT: o.access.hasToken ? 'hidden' : '',
      });
  }

  /** Every path served here: never shed, and left out of the endpoint table (except /metrics). */
  servedPaths(): string[] {
    const p = this.paths;
    const own = p === undefined ? [] : [p.status, p.statusJson, p.login, p.logout, ...p.assets.keys()];
    return this.metricsPath === undefined ? own : [this.metricsPath, ...own];
  }

  /** `${method} ${path}` of every endpoint (HEAD is answered as GET). */
  routes(): string[] {
    const p = this.paths;
    const gets = this.servedPaths().filter((path) => p === undefined || (path !== p.login && path !== p.logout));
    const posts = p === undefined ? [] : [p.login, p.logout];
    return [...gets.map((path) => `GET ${path}`), ...posts.map((path) => `POST ${path}`)];
  }

  async metrics(request: R): Promise<StatusAnswer> {
    if (!(await this.#o.access.allowedScrape(request))) throw unauthorized();
    return {
      status: 200,
      headers: { 'content-type': this.#o.registry.contentType },
      body: await this.#o.registry.metrics(),
    };
  }

  async statusPage(request: R): Promise<StatusAnswer> {
    if (await this.#o.access.allowed(request)) return { status: 200, headers: PAGE_HEADERS, body: this.#statusPage };
    return { status: 401, headers: PAGE_HEADERS, body: this.#loginPage(false) };
  }

  async statusJson(request: R): Promise<StatusAnswer> {
    if (!(await this.#o.access.allowed(request))) throw unauthorized();
    return {
      status: 200,
      headers: { 'content-type': 'application/json; charset=utf-8', 'cache-control': 'no-store' },
      body: JSON.stringify(await this.#snapshot()),
    };
  }

  /** The page's script or stylesheet at `path`; undefined when `path` is none of them. */
  asset(path: string): StatusAnswer | undefined {
    const asset = this.paths?.assets.get(path);
    if (asset === undefined) return undefined;
    return {
      status: 200,
      headers: { 'content-type': asset.type, 'cache-control': 'no-cache', 'x-content-type-options': 'nosniff' },
      body: asset.body,
    };
  }

  /** The login form's post: a session cookie and back to the page, or the form again with an error. */
  login(request: R, token: string | undefined): StatusAnswer {
    const status = this.paths?.status ?? '/';
    if (!this.#o.access.checkToken(token)) return { status: 401, headers: PAGE_HEADERS, body: this.#loginPage(true) };
    return redirect(status, this.#o.access.sessionCookie(request));
  }

  logout(request: R): StatusAnswer {
    return redirect(this.paths?.status ?? '/', this.#o.access.clearCookie(request));
  }

  async #compose(): Promise<Record<string, unknown>> {
    const own = this.#o.snapshot();
    const extra = this.#o.extra;
    if (extra === undefined) return own;
    const collected = await extra.collect(new Set(Object.keys(own)));
    const warnings = [...((own.warnings as unknown[] | undefined) ?? []), ...collected.warnings];
    // collect() left out observe's own keys, so an extra field can add, never replace.
    return { ...own, ...collected.fields, warnings };
  }

  /** The promise is cached, so readers arriving while `extraStatus` runs share its one call. */
  #snapshot(): Promise<Record<string, unknown>> {
    const now = Date.now();
    const cached = this.#cached;
    if (cached !== undefined && now - cached.atMs < SNAPSHOT_CACHE_MS) return cached.body;
    const entry = { atMs: now, body: this.#compose() };
    // A failed snapshot is not reused: the next reader tries again.
    entry.body.catch(() => {
      if (this.#cached === entry) this.#cached = undefined;
    });
    this.#cached = entry;
    return entry.body;
  }
}
