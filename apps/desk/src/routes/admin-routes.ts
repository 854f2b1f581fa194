import type { FastifyInstance, FastifyRequest } from 'fastify';
import { badRequest, HangproofError } from 'hangproof';
import type { DeskContext } from '../desk-context.js';
import { FAULT_LIMITS, FAULT_ROUTES, type FaultRoute, faultDurationSec } from '../faults.js';
import { PROVIDER_MODES } from '../providers/simulated-provider.js';

/** Bound of one control call to a provider. */
const CONTROL_TIMEOUT_MS = 2_000;

const faultBody = {
  type: 'object',
  additionalProperties: false,
  required: ['kind'],
  properties: {
    kind: { type: 'string', enum: ['provider', 'slowQuery', 'heldLock', 'cpu', 'clear'] },
    provider: { type: 'string', enum: ['market-data', 'broker'] },
    mode: { type: 'string', enum: [...PROVIDER_MODES] },
    latencyMs: { type: 'integer', minimum: 0, maximum: FAULT_LIMITS.maxProviderLatencyMs },
    route: { type: 'string', enum: [...FAULT_ROUTES] },
    sleepMs: { type: 'integer', minimum: 1, maximum: FAULT_LIMITS.maxSleepMs },
    blockMs: { type: 'integer', minimum: 1, maximum: FAULT_LIMITS.maxBlockMs },
    holdMs: { type: 'integer', minimum: 100, maximum: FAULT_LIMITS.maxLockHoldMs },
    botId: { type: 'string', pattern: '^[1-9][0-9]{0,17}$' },
    durationSec: { type: 'integer', minimum: 1, maximum: FAULT_LIMITS.maxDurationSec },
  },
} as const;

interface FaultInput {
  kind: 'provider' | 'slowQuery' | 'heldLock' | 'cpu' | 'clear';
  provider?: 'market-data' | 'broker';
  mode?: string;
  latencyMs?: number;
  route?: FaultRoute;
  sleepMs?: number;
  blockMs?: number;
  holdMs?: number;
  botId?: string;
  durationSec?: number;
}

/**
 * The fault switchboard for demonstrations, admin only (X-Admin-Token): `GET /admin/faults` lists
 * what is on, `PUT` or `POST` sets one fault. Off by default, every fault expires by itself, and
 * every magnitude is capped (FAULT_LIMITS).
 */
export async function adminRoutes(
  app: FastifyInstance,
  desk: DeskContext,
  providerUrls: Readonly<Record<string, string>>,
): Promise<void> {
  const requireAdmin = async (request: FastifyRequest): Promise<void> => {
    if (!app.hangproof.isAdmin(request)) {
      throw new HangproofError('UNAUTHORIZED', {
        message: 'the admin token is required',
        details: { reason: 'admin_token' },
      });
    }
  };

  async function control(provider: string, method: 'GET' | 'PUT', body?: unknown): Promise<unknown> {
    const base = providerUrls[provider];
    if (base === undefined) throw badRequest('unknown provider', { field: 'provider' });
    try {
      const res = await fetch(`${base}/__control`, {
        method,
        headers: { 'content-type': 'application/json' },
        ...(body === undefined ? {} : { body: JSON.stringify(body) }),
        signal: AbortSignal.timeout(CONTROL_TIMEOUT_MS),
      });
      if (!res.ok) throw new Error(`status ${res.status}`);
      return await res.json();
    } catch {
      // An external provider (MARKET_DATA_URL/BROKER_URL) has no control endpoint.
      throw new HangproofError('DEPENDENCY_UNAVAILABLE', {
        message: 'the provider does not accept fault control',
        details: { dependency: provider, reason: 'no_control' },
      });
    }
  }

  app.get('/admin/faults', { preHandler: requireAdmin }, async () => {
    const providers: Record<string, unknown> = {};
    await Promise.all(
      Object.keys(providerUrls).map(async (name) => {
        providers[name] = await control(name, 'GET').catch(() => ({ mode: 'unknown', reason: 'no_control' }));
      }),
    );
    return { ...desk.faults.list(), heldLocks: desk.heldLocks.list(), providers, limits: FAULT_LIMITS };
  });

  const setFault = async (request: FastifyRequest): Promise<unknown> => {
    const f = request.body as FaultInput;
    const durationSec = faultDurationSec(f.durationSec);
    switch (f.kind) {
      case 'provider': {
        if (f.provider === undefined) throw badRequest('provider is required', { field: 'provider' });
        const state = await control(f.provider, 'PUT', {
          mode: f.mode ?? 'ok',
          latencyMs: f.latencyMs ?? 0,
          durationMs: durationSec * 1000,
        });
        return { kind: 'provider', provider: f.provider, state };
      }
      case 'slowQuery':
        if (f.route === undefined || f.sleepMs === undefined)
          throw badRequest('route and sleepMs are required', { field: 'sleepMs' });
        desk.faults.setSlowQuery(f.route, f.sleepMs, durationSec);
        return { kind: 'slowQuery', ...desk.faults.list() };
      case 'cpu':
        if (f.route === undefined || f.blockMs === undefined)
          throw badRequest('route and blockMs are required', { field: 'blockMs' });
        desk.faults.setCpu(f.route, f.blockMs, durationSec);
        return { kind: 'cpu', ...desk.faults.list() };
      case 'heldLock': {
        if (f.holdMs === undefined) throw badRequest('holdMs is required', { field: 'holdMs' });
        const botId = f.botId ?? (await firstDemoBot(desk));
        let held: boolean;
        try {
          held = await desk.heldLocks.hold(botId, f.holdMs);
        } catch (err) {
          if (err instanceof RangeError)
            throw new HangproofError('CONFLICT', { details: { reason: 'too_many_locks' } });
          throw err;
        }
        if (!held) throw new HangproofError('NOT_FOUND', { message: 'no such bot', details: { resource: 'bot' } });
        return { kind: 'heldLock', heldLocks: desk.heldLocks.list() };
      }
      case 'clear':
        desk.faults.clear();
        await desk.heldLocks.releaseAll();
        await Promise.all(
          Object.keys(providerUrls).map((p) => control(p, 'PUT', { mode: 'ok' }).catch(() => undefined)),
        );
        return { kind: 'clear', ...desk.faults.list() };
    }
  };
  app.put('/admin/faults', { preHandler: requireAdmin, bodyLimit: 4096, schema: { body: faultBody } }, setFault);
  app.post('/admin/faults', { preHandler: requireAdmin, bodyLimit: 4096, schema: { body: faultBody } }, setFault);
}

/** The demo user's most recently changed bot, the default target of a held lock. */
async function firstDemoBot(desk: DeskContext): Promise<string> {
  const { rows } = await desk.db.query<{ id: string }>(
    'SELECT id FROM bots WHERE user_id = 1 ORDER BY updated_at DESC, id DESC LIMIT 1',
  );
  const id = rows[0]?.id;
  if (id === undefined)
    throw new HangproofError('NOT_FOUND', { message: 'no bot to lock', details: { resource: 'bot' } });
  return String(id);
}
