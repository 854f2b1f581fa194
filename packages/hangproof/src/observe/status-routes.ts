import { readFile } from 'node:fs/promises';
import type { FastifyInstance, FastifyReply, FastifyRequest } from 'fastify';
import type { Registry } from 'prom-client';
import { HangproofError } from '../errors.js';
import type { AdminAccess } from './admin-access.js';
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
});

/** How long one status snapshot is reused, so several open pages cost one computation. */
const SNAPSHOT_CACHE_MS = 1000;
/** Largest login form body accepted, in bytes. */
const LOGIN_BODY_LIMIT = 4096;

export interface StatusRoutesOptions {
  readonly access: AdminAccess;
  readonly registry: Registry;
  readonly snapshot: () => Record<string, unknown>;
  /** The service's extra fields of /status.json, when `extraStatus` is set. */
  readonly extra: ExtraStatus | undefined;
  readonly metricsPath: string | false;
  readonly statusPath: string | false;
  /** Marks a path as exempt from load shedding. */
  readonly exempt: (path: string) => void;
}

function fill(template: string, values: Readonly<Record<string, string>>): string {
  return template.replace(/__([A-Z_]+)__/g, (whole, key: string) => values[key] ?? whole);
}

const escapeAttr = (s: string): string => s.replace(/[&<>"']/g, (c) => `&#${c.charCodeAt(0)};`);

/** GET /metrics, GET /status, GET /status.json, POST /status/login and /status/logout, the page's assets. */
export async function registerStatusRoutes(app: FastifyInstance, o: StatusRoutesOptions): Promise<void> {
  const unauthorized = (): HangproofError =>
    new HangproofError('UNAUTHORIZED', { message: 'this endpoint needs the admin token (X-Admin-Token)' });

  if (o.metricsPath !== false) {
    o.exempt(o.metricsPath);
    app.get(o.metricsPath, async (request, reply) => {
      if (!(await o.access.allowedScrape(request))) throw unauthorized();
      reply.header('content-type', o.registry.contentType);
      return o.registry.metrics();
    });
  }

  if (o.statusPath === false) return;
  const base = o.statusPath;
  const paths = {
    STATUS_JSON: `${base}.json`,
    ASSETS: `${base}/assets`,
    LOGIN: `${base}/login`,
    LOGOUT: `${base}/logout`,
    STATUS: base,
  };
  const values = Object.fromEntries(Object.entries(paths).map(([k, v]) => [k, escapeAttr(v)]));
  const [statusHtml, loginHtml, ...assets] = await Promise.all([
    readFile(new URL('status.html', STATIC_DIR), 'utf8'),
    readFile(new URL('login.html', STATIC_DIR), 'utf8'),
    ...Object.keys(ASSETS).map((name) => readFile(new URL(name, STATIC_DIR), 'utf8')),
  ]);
  const statusPage = fill(statusHtml, values);
  // The "no token configured" hint is shown only when there is no token: with one, signing in works.
  const loginPage = (failed: boolean): string =>
    fill(loginHtml, { ...values, ERROR_HIDDEN: failed ? '' : 'hidden', TOKEN_HINT: o.access.hasToken ? 'hidden' : '' });
  for (const p of [paths.STATUS, paths.STATUS_JSON, paths.LOGIN, paths.LOGOUT]) o.exempt(p);

  const compose = async (): Promise<Record<string, unknown>> => {
    const own = o.snapshot();
    if (o.extra === undefined) return own;
    const extra = await o.extra.collect(new Set(Object.keys(own)));
    const warnings = [...((own.warnings as unknown[] | undefined) ?? []), ...extra.warnings];
    // collect() left out observe's own keys, so an extra field can add, never replace.
    return { ...own, ...extra.fields, warnings };
  };
  // The promise is cached, so readers arriving while `extraStatus` runs share its one call.
  let cached: { atMs: number; body: Promise<Record<string, unknown>> } | undefined;
  const snapshot = (): Promise<Record<string, unknown>> => {
    const now = Date.now();
    if (cached === undefined || now - cached.atMs >= SNAPSHOT_CACHE_MS) {
      const entry = { atMs: now, body: compose() };
      // A failed snapshot is not reused: the next reader tries again.
      entry.body.catch(() => {
        if (cached === entry) cached = undefined;
      });
      cached = entry;
    }
    return cached.body;
  };

  const page = (reply: FastifyReply, status: number, html: string): FastifyReply =>
    reply.code(status).headers(PAGE_HEADERS).type('text/html; charset=utf-8').send(html);

  app.get(paths.STATUS, async (request, reply) => {
    if (await o.access.allowed(request)) return page(reply, 200, statusPage);
    return page(reply, 401, loginPage(false));
  });

  app.get(paths.STATUS_JSON, async (request, reply) => {
    if (!(await o.access.allowed(request))) throw unauthorized();
    reply.header('cache-control', 'no-store');
    return snapshot();
  });

  Object.entries(ASSETS).forEach(([name, type], i) => {
    const body = assets[i] as string;
    const path = `${paths.ASSETS}/${name}`;
    o.exempt(path);
    app.get(path, (_request, reply) => {
      reply
        .header('content-type', type)
        .header('cache-control', 'no-cache')
        .header('x-content-type-options', 'nosniff')
        .send(body);
    });
  });

  // The login form posts urlencoded data, which Fastify does not parse by default; the parser is
  // added in an encapsulated context so the service's own routes are unaffected.
  await app.register(async (child) => {
    child.addContentTypeParser(
      'application/x-www-form-urlencoded',
      { parseAs: 'string', bodyLimit: LOGIN_BODY_LIMIT },
      (_req, body, done) => {
        done(null, new URLSearchParams(body as string));
      },
    );
    child.post(paths.LOGIN, async (request: FastifyRequest, reply) => {
      const token = request.body instanceof URLSearchParams ? request.body.get('token') : undefined;
      if (!o.access.checkToken(token ?? undefined)) return page(reply, 401, loginPage(true));
      reply.header('set-cookie', o.access.sessionCookie(request));
      return reply.redirect(paths.STATUS, 303);
    });
    child.post(paths.LOGOUT, async (request, reply) => {
      reply.header('set-cookie', o.access.clearCookie(request));
      return reply.redirect(paths.STATUS, 303);
    });
  });
}
