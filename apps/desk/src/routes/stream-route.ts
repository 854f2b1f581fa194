import type { FastifyInstance } from 'fastify';
import { HangproofError, isHangproofError, runWithBudget } from 'hangproof';
import type { DeskContext } from '../desk-context.js';

/** Limits of the live stream. Defaults live in STREAM_DEFAULTS. */
export interface StreamOptions {
  /** Time between two ticks sent to a client, in ms. @default 1_000 */
  readonly tickMs?: number;
  /** Deadline of the query behind one tick, in ms. @default 800 */
  readonly tickBudgetMs?: number;
  /** Time between server pings; a client that did not pong since the last one is dropped, in ms. @default 15_000 */
  readonly pingMs?: number;
  /** Bytes allowed to queue in a socket before its client counts as too slow and is dropped. @default 262_144 */
  readonly maxBufferedBytes?: number;
  /** Open streams per process; one more is refused with 503 OVERLOADED before the upgrade. @default 500 */
  readonly maxConnections?: number;
  /** Open streams per user. @default 5 */
  readonly maxPerUser?: number;
  /** Failed ticks in a row after which the stream is closed (1013 or 1011). @default 3 */
  readonly maxConsecutiveFailures?: number;
}

export const STREAM_DEFAULTS = Object.freeze({
  tickMs: 1_000,
  tickBudgetMs: 800,
  pingMs: 15_000,
  maxBufferedBytes: 262_144,
  maxConnections: 500,
  maxPerUser: 5,
  maxConsecutiveFailures: 3,
} satisfies Required<StreamOptions>);

/** WebSocket close codes the stream uses (RFC 6455 section 7.4). */
export const CLOSE = Object.freeze({
  GOING_AWAY: 1001,
  POLICY: 1008,
  INTERNAL: 1011,
  TRY_AGAIN_LATER: 1013,
});

/** Bots per tick message: the user's paper and live bots, most recently changed first. */
const TICK_BOTS = 50;
/** Codes of failures that may pass (the client should reconnect later) rather than a server bug. */
const TRANSIENT = new Set([
  'REQUEST_TIMEOUT',
  'DEPENDENCY_TIMEOUT',
  'DEPENDENCY_UNAVAILABLE',
  'OVERLOADED',
  'SHUTTING_DOWN',
]);

/** The part of a `ws` WebSocket the stream uses (the package ships no types). */
interface StreamSocket {
  readonly readyState: number;
  readonly OPEN: number;
  readonly bufferedAmount: number;
  send(data: string): void;
  close(code: number, reason: string): void;
  terminate(): void;
  ping(): void;
  on(event: 'pong' | 'message' | 'close', listener: () => void): void;
}

interface TickRow {
  bot_id: string;
  name: string;
  symbol: string;
  status: string;
  last_tick_at: Date | null;
  position: number;
  unrealized_pnl: number;
}

/**
 * `GET /api/stream` (WebSocket): live ticks of the caller's running bots. Every server-side
 * operation has a deadline (a tick's query runs under runWithBudget), a tick never starts while
 * the previous one runs, a client that cannot keep up is dropped instead of buffered without
 * bound, and a client that stops answering pings is terminated. Close codes say why:
 * 1008 slow consumer, 1011 internal failure, 1013 database trouble (reconnect later), 1001 shutdown.
 */
export async function streamRoute(
  app: FastifyInstance,
  desk: DeskContext,
  options: StreamOptions = {},
): Promise<{ closeAll(): void; count(): number }> {
  const o = { ...STREAM_DEFAULTS, ...options };
  for (const [k, v] of Object.entries(o)) {
    if (!(Number.isInteger(v) && v > 0))
      throw new RangeError(`stream option ${k} must be a positive integer, received ${v}`);
  }
  const open = new Map<StreamSocket, string>();
  const perUser = new Map<string, number>();

  app.get(
    '/api/stream',
    {
      websocket: true,
      preHandler: async (request) => {
        const { userId } = await desk.authenticate(request, { allowQueryToken: true });
        if (open.size >= o.maxConnections || (perUser.get(userId) ?? 0) >= o.maxPerUser) {
          throw new HangproofError('OVERLOADED', { details: { reason: 'too_many_streams' }, retryAfterSec: 5 });
        }
      },
    },
    (socket: StreamSocket, request) => {
      const userId = request.hangproof?.userId;
      if (userId === undefined || app.hangproof.shuttingDown) {
        socket.close(CLOSE.TRY_AGAIN_LATER, 'try again later');
        return;
      }
      open.set(socket, userId);
      perUser.set(userId, (perUser.get(userId) ?? 0) + 1);
      // The upgrade request's context ends with its own deadline; the stream outlives it, so each
      // tick below gets a fresh context and deadline of its own.
      request.hangproof?.end();
      const pnl = new Map<string, number>();
      let ticking = false;
      let failures = 0;
      let alive = true;

      const close = (code: number, reason: string): void => {
        if (socket.readyState !== socket.OPEN) return;
        socket.close(code, reason);
        // A peer that never completes the closing handshake is cut off.
        setTimeout(() => socket.terminate(), 2_000).unref();
      };

      const tick = async (): Promise<void> => {
        if (ticking || socket.readyState !== socket.OPEN) return;
        if (socket.bufferedAmount > o.maxBufferedBytes) {
          close(CLOSE.POLICY, 'slow consumer');
          return;
        }
        ticking = true;
        try {
          const rows = await runWithBudget('stream:tick', o.tickBudgetMs, async () => {
            const r = await desk.db.query<TickRow & Record<string, unknown>>(
              `SELECT b.id AS bot_id, b.name, b.symbol, i.status, i.last_tick_at, i.position::float8 AS position,
                      i.unrealized_pnl::float8 AS unrealized_pnl
               FROM (SELECT id, name, symbol FROM bots WHERE user_id = $1 AND stage IN ('paper', 'live')
                     ORDER BY updated_at DESC LIMIT ${TICK_BOTS}) b
               JOIN LATERAL (SELECT status, last_tick_at, position, unrealized_pnl FROM bot_instances
                             WHERE bot_id = b.id AND is_primary_runner ORDER BY last_tick_at DESC NULLS LAST LIMIT 1) i ON true`,
              [userId],
            );
            return r.rows;
          });
          failures = 0;
          const at = new Date().toISOString();
          const bots = rows.map((r) => {
            // A simulated mark-to-market walk on top of the stored P&L: the desk has no live feed.
            const next = (pnl.get(r.bot_id) ?? r.unrealized_pnl) + (Math.random() - 0.5) * 20;
            pnl.set(r.bot_id, next);
            return {
              botId: r.bot_id,
              name: r.name,
              symbol: r.symbol,
              status: r.status,
              position: r.position,
              unrealizedPnl: Math.round(next * 100) / 100,
            };
          });
          socket.send(JSON.stringify({ type: 'tick', at, bots }));
        } catch (err) {
          failures++;
          const code = isHangproofError(err) ? err.code : 'INTERNAL';
          if (socket.readyState === socket.OPEN)
            socket.send(JSON.stringify({ type: 'warning', code, consecutiveFailures: failures }));
          if (failures >= o.maxConsecutiveFailures) {
            if (TRANSIENT.has(code)) close(CLOSE.TRY_AGAIN_LATER, 'try again later');
            else close(CLOSE.INTERNAL, 'internal error');
          }
        } finally {
          ticking = false;
        }
      };

      const tickTimer = setInterval(() => void tick(), o.tickMs);
      const pingTimer = setInterval(() => {
        if (!alive) {
          socket.terminate();
          return;
        }
        alive = false;
        socket.ping();
      }, o.pingMs);
      socket.on('pong', () => {
        alive = true;
      });
      // The client has nothing to say; anything it sends is ignored (maxPayload bounds its size).
      socket.on('message', () => {});
      socket.on('close', () => {
        clearInterval(tickTimer);
        clearInterval(pingTimer);
        open.delete(socket);
        const n = (perUser.get(userId) ?? 1) - 1;
        if (n <= 0) perUser.delete(userId);
        else perUser.set(userId, n);
      });
      socket.send(JSON.stringify({ type: 'hello', userId, tickMs: o.tickMs, pingMs: o.pingMs }));
      void tick();
    },
  );

  return {
    closeAll() {
      for (const socket of open.keys()) {
        socket.close(CLOSE.GOING_AWAY, 'server shutting down');
        setTimeout(() => socket.terminate(), 1_000).unref();
      }
    },
    count: () => open.size,
  };
}
