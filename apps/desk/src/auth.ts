import type { FastifyRequest } from 'fastify';
import { HangproofError, setUserId, step } from 'hangproof';
import type { Database } from 'hangproof/pg';
import { hashToken } from './db/seed.js';

/** The caller of an API request, once its bearer token is checked. */
export interface AuthUser {
  readonly userId: string;
}

/** Successful lookups are reused for this long, so auth is not a query on every request. */
const CACHE_TTL_MS = 30_000;
/** Bound of the cache: a flood of distinct tokens cannot grow memory. */
const CACHE_MAX = 10_000;
const BEARER = /^Bearer ([A-Za-z0-9._~+/=-]{1,256})$/;

/**
 * Bearer-token auth against users.token_hash, recorded as the request's `auth` span. Known
 * tokens are cached briefly (bounded, TTL) so the common case costs no query; a revoked token
 * stops working within CACHE_TTL_MS.
 */
export type Authenticate = (request: FastifyRequest, options?: { allowQueryToken?: boolean }) => Promise<AuthUser>;

export function createAuthenticator(db: Database): Authenticate {
  const cache = new Map<string, { userId: string; at: number }>();

  async function lookup(token: string): Promise<string | undefined> {
    const hash = hashToken(token);
    const key = hash.toString('base64');
    const hit = cache.get(key);
    if (hit !== undefined && Date.now() - hit.at < CACHE_TTL_MS) return hit.userId;
    const { rows } = await db.query<{ id: string }>('SELECT id FROM users WHERE token_hash = $1', [hash]);
    const userId = rows[0]?.id;
    if (userId === undefined) return undefined;
    if (cache.size >= CACHE_MAX) cache.delete(cache.keys().next().value as string);
    cache.set(key, { userId: String(userId), at: Date.now() });
    return String(userId);
  }

  return (request, options = {}) =>
    step(
      'auth',
      async () => {
        const token = tokenOf(request, options.allowQueryToken === true);
        if (token === undefined) throw unauthorized('missing_token');
        const userId = await lookup(token);
        if (userId === undefined) throw unauthorized('invalid_token');
        setUserId(userId);
        return { userId };
      },
      { kind: 'auth' },
    );
}

/** `Authorization: Bearer <token>`, or `?token=` for the WebSocket (browsers cannot set headers there). */
function tokenOf(request: FastifyRequest, allowQueryToken: boolean): string | undefined {
  const header = request.headers.authorization;
  if (typeof header === 'string') return BEARER.exec(header)?.[1];
  if (!allowQueryToken) return undefined;
  const q = (request.query as Record<string, unknown> | undefined)?.token;
  return typeof q === 'string' && /^[A-Za-z0-9._~+/=-]{1,256}$/.test(q) ? q : undefined;
}

function unauthorized(reason: string): HangproofError {
  return new HangproofError('UNAUTHORIZED', { message: 'a valid bearer token is required', details: { reason } });
}
