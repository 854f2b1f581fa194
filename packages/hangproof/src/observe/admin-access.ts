import { createHash, createHmac, timingSafeEqual } from 'node:crypto';
import type { IncomingHttpHeaders } from 'node:http';
import type { FastifyRequest } from 'fastify';
import type { AllowRule } from './options.js';

/**
 * What access is decided from, in any framework: the headers, and whether the request came over
 * https (Fastify's `protocol`, which honours trustProxy; else node's TLS socket).
 */
export interface AccessRequest {
  readonly headers: IncomingHttpHeaders;
  readonly protocol?: string;
  /** node's socket: a TLS socket has `encrypted: true`. */
  readonly socket?: unknown;
}

/** Cookie that holds a status-page session. */
export const SESSION_COOKIE = 'hangproof_status';

export interface AdminAccessOptions<R extends AccessRequest = FastifyRequest> {
  readonly token: string | undefined;
  readonly allow: AllowRule<R> | undefined;
  readonly sessionMaxAgeSec: number;
}

const digest = (value: string): Buffer => createHash('sha256').update(value).digest();

/**
 * Who may read /metrics and /status: a request carrying the admin token in `X-Admin-Token`, a
 * browser holding a session cookie from the login form, or whatever the `allow` rule admits;
 * /metrics also takes the token as a bearer token (`allowedScrape`).
 *
 * The cookie never holds the token: it holds `<expiry>.<HMAC-SHA256(token, expiry)>`, so it
 * expires on its own, stays valid across instances that share the token (behind a load balancer),
 * and becomes worthless when the token is rotated. All comparisons are constant-time.
 */
export class AdminAccess<R extends AccessRequest = FastifyRequest> {
  readonly #tokenDigest: Buffer | undefined;
  readonly #token: string | undefined;
  readonly #allow: AllowRule<R> | undefined;
  readonly #maxAgeSec: number;

  constructor(o: AdminAccessOptions<R>) {
    this.#token = o.token;
    this.#tokenDigest = o.token === undefined ? undefined : digest(o.token);
    this.#allow = o.allow;
    this.#maxAgeSec = o.sessionMaxAgeSec;
  }

  /** True when a token is configured, i.e. the login form can succeed. */
  get hasToken(): boolean {
    return this.#token !== undefined;
  }

  /** Constant-time check of a presented token (hashed first, so lengths do not leak). */
  checkToken(presented: unknown): boolean {
    if (this.#tokenDigest === undefined || typeof presented !== 'string' || presented.length === 0) return false;
    return timingSafeEqual(digest(presented), this.#tokenDigest);
  }

  async allowed(request: R): Promise<boolean> {
    if (this.checkToken(request.headers['x-admin-token'])) return true;
    if (this.#validSession(readCookie(request.headers.cookie, SESSION_COOKIE))) return true;
    if (this.#allow !== undefined) {
      try {
        return (await this.#allow(request)) === true;
      } catch {
        return false;
      }
    }
    return false;
  }

  /**
   * Whether a Prometheus scrape may read /metrics: everything `allowed` admits, plus the admin
   * token sent as `Authorization: Bearer <token>`, Prometheus' standard scrape authentication
   * (`authorization.credentials` in a scrape config). Compared in constant time like the header.
   */
  async allowedScrape(request: R): Promise<boolean> {
    if (this.checkToken(bearerToken(request.headers.authorization))) return true;
    return this.allowed(request);
  }

  /** `Set-Cookie` value of a new session for `request` (Secure when the request came over https). */
  sessionCookie(request: R, nowMs: number = Date.now()): string {
    const expires = Math.floor(nowMs / 1000) + this.#maxAgeSec;
    const value = `${expires}.${this.#sign(expires)}`;
    return `${SESSION_COOKIE}=${value}; Path=/; Max-Age=${this.#maxAgeSec}; HttpOnly; SameSite=Strict${secure(request)}`;
  }

  /** `Set-Cookie` value that removes the session. */
  clearCookie(request: R): string {
    return `${SESSION_COOKIE}=; Path=/; Max-Age=0; HttpOnly; SameSite=Strict${secure(request)}`;
  }

  #sign(expires: number): string {
    return createHmac('sha256', this.#token ?? '')
      .update(`hangproof-status-session:${expires}`)
      .digest('base64url');
  }

  #validSession(value: string | undefined): boolean {
    if (this.#token === undefined || value === undefined) return false;
    const dot = value.indexOf('.');
    if (dot <= 0) return false;
    const expires = Number(value.slice(0, dot));
    const nowSec = Date.now() / 1000;
    if (!Number.isInteger(expires) || expires < nowSec || expires > nowSec + this.#maxAgeSec + 60) return false;
    const presented = Buffer.from(value.slice(dot + 1));
    const expected = Buffer.from(this.#sign(expires));
    return presented.length === expected.length && timingSafeEqual(presented, expected);
  }
}

function secure(request: AccessRequest): string {
  const https =
    request.protocol !== undefined
      ? request.protocol === 'https'
      : (request.socket as { encrypted?: unknown } | null | undefined)?.encrypted === true;
  return https ? '; Secure' : '';
}

/** The credentials of an `Authorization: Bearer <token>` header (scheme case-insensitive), if any. */
export function bearerToken(header: string | undefined): string | undefined {
  if (header === undefined) return undefined;
  const m = /^Bearer +(\S+) *$/i.exec(header);
  return m?.[1];
}

/** The value of cookie `name` in a Cookie header, if present. */
export function readCookie(header: string | undefined, name: string): string | undefined {
  if (header === undefined) return undefined;
  for (const part of header.split(';')) {
    const eq = part.indexOf('=');
    if (eq > 0 && part.slice(0, eq).trim() === name) return part.slice(eq + 1).trim();
  }
  return undefined;
}
