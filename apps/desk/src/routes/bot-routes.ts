import { createHash } from 'node:crypto';
import type { FastifyInstance } from 'fastify';
import { annotate, HangproofError } from 'hangproof';
import { keysetPage } from 'hangproof/pg';
import { STAGES, STRATEGIES, SYMBOLS } from '../db/seed.js';
import type { DeskContext } from '../desk-context.js';
import { applyRouteFaults } from './route-faults.js';

/** Largest page of /api/bots. */
export const MAX_BOTS_PAGE = 100;
/** Largest body of a create or stage change: a few fields. */
const SMALL_BODY_BYTES = 4 * 1024;

/** Columns of a bot in every answer; `cursor_ts` keeps microseconds, which a JS Date would lose. */
const BOT_COLUMNS = `id, user_id, name, strategy, symbol, stage, capital::float8 AS capital, created_at, updated_at,
  to_char(updated_at AT TIME ZONE 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS.US"Z"') AS cursor_ts`;

interface BotRow {
  id: string;
  user_id: string;
  name: string;
  strategy: string;
  symbol: string;
  stage: string;
  capital: number;
  created_at: Date;
  updated_at: Date;
  cursor_ts: string;
}

const publicBot = ({ cursor_ts: _c, ...bot }: BotRow): Omit<BotRow, 'cursor_ts'> => bot;

const idParams = {
  type: 'object',
  required: ['id'],
  properties: { id: { type: 'string', pattern: '^[1-9][0-9]{0,17}$' } },
} as const;

/** The bots API: keyset list, detail, idempotent create, stage change. */
export async function botRoutes(app: FastifyInstance, desk: DeskContext): Promise<void> {
  const { db, authenticate } = desk;

  app.get(
    '/api/bots',
    {
      schema: {
        querystring: {
          type: 'object',
          additionalProperties: false,
          properties: {
            stage: { type: 'string', enum: [...STAGES] },
            user_id: { type: 'string', pattern: '^[1-9][0-9]{0,17}$' },
            limit: { type: 'integer', minimum: 1, maximum: MAX_BOTS_PAGE, default: 50 },
            cursor: { type: 'string', minLength: 1, maxLength: 2048 },
          },
        },
      },
    },
    async (request) => {
      const { userId } = await authenticate(request);
      const q = request.query as { stage?: string; user_id?: string; limit: number; cursor?: string };
      // A trader sees their own bots; the admin token may list anyone's (or everyone's).
      const admin = app.hangproof.isAdmin(request);
      const owner = q.user_id ?? (admin ? undefined : userId);
      if (owner !== undefined && owner !== userId && !admin) {
        throw new HangproofError('FORBIDDEN', {
          message: 'you may only list your own bots',
          details: { reason: 'other_user' },
        });
      }
      await applyRouteFaults(desk, 'list');
      const filters: string[] = [];
      const params: unknown[] = [];
      if (owner !== undefined) {
        params.push(owner);
        filters.push(`user_id = $${params.length}`);
      }
      if (q.stage !== undefined) {
        params.push(q.stage);
        filters.push(`stage = $${params.length}`);
      }
      // Seek, never OFFSET: each page is an index range scan of (user_id, stage, updated_at, id).
      const k = keysetPage({
        orderBy: ['updated_at', 'id'],
        direction: 'desc',
        cursor: q.cursor,
        limit: q.limit,
        maxPageSize: MAX_BOTS_PAGE,
        paramOffset: params.length,
      });
      const where = [...filters, k.where].join(' AND ');
      const { rows } = await db.query<BotRow & Record<string, unknown>>(
        `SELECT ${BOT_COLUMNS} FROM bots WHERE ${where} ORDER BY ${k.orderBy} ${k.limit}`,
        [...params, ...k.params],
      );
      const page = k.page(rows, (r) => [r.cursor_ts, r.id]);
      annotate({ bot_count: page.items.length });
      return { items: page.items.map(publicBot), nextCursor: page.nextCursor };
    },
  );

  app.get('/api/bots/:id', { schema: { params: idParams } }, async (request) => {
    const { userId } = await authenticate(request);
    const { id } = request.params as { id: string };
    await applyRouteFaults(desk, 'detail');
    // One statement, each part an index range with a LIMIT: no N+1, no unbounded read.
    const { rows } = await db.query<BotRow & Record<string, unknown>>(
      `SELECT ${BOT_COLUMNS},
        (SELECT row_to_json(i) FROM (
           SELECT id, status, host, started_at, last_tick_at, position::float8 AS position, unrealized_pnl::float8 AS unrealized_pnl
           FROM bot_instances WHERE bot_id = b.id AND is_primary_runner ORDER BY last_tick_at DESC NULLS LAST LIMIT 1) i) AS primary_instance,
        (SELECT count(*) FROM (SELECT 1 FROM bot_instances WHERE bot_id = b.id LIMIT 100) c)::int AS instance_count,
        (SELECT coalesce(json_agg(s), '[]') FROM (
           SELECT id, created_at, period_days, trades, pnl::float8 AS pnl, sharpe::float8 AS sharpe, max_drawdown::float8 AS max_drawdown
           FROM backtest_sessions WHERE bot_id = b.id ORDER BY created_at DESC LIMIT 5) s) AS recent_backtests,
        (SELECT coalesce(json_agg(a), '[]') FROM (
           SELECT id, checked_at, kind, ok, latency_ms FROM execution_audits
           WHERE bot_id = b.id ORDER BY checked_at DESC LIMIT 10) a) AS recent_audits,
        (SELECT row_to_json(p) FROM (
           SELECT sessions, total_pnl::float8 AS total_pnl, avg_sharpe::float8 AS avg_sharpe, best_sharpe::float8 AS best_sharpe,
                  score::float8 AS score, computed_at FROM bot_performance WHERE bot_id = b.id) p) AS performance,
        (SELECT coalesce(json_agg(e ORDER BY e.day), '[]') FROM (
           SELECT day, equity::float8 AS equity FROM equity_curves WHERE bot_id = b.id ORDER BY day DESC LIMIT 90) e) AS equity_curve
       FROM bots b WHERE b.id = $1 AND b.user_id = $2`,
      [id, userId],
    );
    const row = rows[0];
    if (row === undefined)
      throw new HangproofError('NOT_FOUND', { message: 'no such bot', details: { resource: 'bot' } });
    // The quote is snapshot-first: a slow or down market-data provider gives the last known price
    // with a warning, never a slow page.
    const quote = await desk.quotes.latest(row.symbol);
    return { ...publicBot(row), quote: quote.value, warnings: quote.warnings };
  });

  app.post(
    '/api/bots',
    {
      bodyLimit: SMALL_BODY_BYTES,
      schema: {
        headers: {
          type: 'object',
          required: ['idempotency-key'],
          properties: { 'idempotency-key': { type: 'string', pattern: '^[A-Za-z0-9_.:-]{8,128}$' } },
        },
        body: {
          type: 'object',
          additionalProperties: false,
          required: ['name', 'strategy', 'symbol'],
          properties: {
            name: { type: 'string', minLength: 1, maxLength: 80, pattern: '\\S' },
            strategy: { type: 'string', enum: STRATEGIES },
            symbol: { type: 'string', enum: SYMBOLS },
            stage: { type: 'string', enum: ['draft', 'backtest'], default: 'draft' },
            capital: { type: 'number', minimum: 100, maximum: 10_000_000, default: 10_000 },
          },
        },
      },
    },
    async (request, reply) => {
      const { userId } = await authenticate(request);
      const key = request.headers['idempotency-key'] as string;
      const body = request.body as { name: string; strategy: string; symbol: string; stage: string; capital: number };
      const requestHash = createHash('sha256')
        .update(JSON.stringify([body.name, body.strategy, body.symbol, body.stage, body.capital]))
        .digest();
      const outcome = await db.tx(async (t) => {
        // The unique constraint (user_id, idempotency_key) decides: of N concurrent retries one
        // inserts, the others wait for it on the index and then insert nothing.
        const inserted = await t.query<BotRow & Record<string, unknown>>(
          `INSERT INTO bots (user_id, name, strategy, symbol, stage, capital, idempotency_key, request_hash)
           VALUES ($1, $2, $3, $4, $5, $6, $7, $8)
           ON CONFLICT (user_id, idempotency_key) DO NOTHING
           RETURNING ${BOT_COLUMNS}`,
          [userId, body.name, body.strategy, body.symbol, body.stage, body.capital, key, requestHash],
        );
        const created = inserted.rows[0];
        if (created !== undefined) {
          await t.query(
            `INSERT INTO user_stage_counts (user_id, stage, bot_count) VALUES ($1, $2, 1)
             ON CONFLICT (user_id, stage) DO UPDATE SET bot_count = user_stage_counts.bot_count + 1, updated_at = now()`,
            [userId, body.stage],
          );
          return { bot: created, replayed: false };
        }
        const existing = await t.query<BotRow & { request_hash: Buffer } & Record<string, unknown>>(
          `SELECT ${BOT_COLUMNS}, request_hash FROM bots WHERE user_id = $1 AND idempotency_key = $2`,
          [userId, key],
        );
        const row = existing.rows[0];
        if (row === undefined) throw new HangproofError('CONFLICT', { details: { reason: 'idempotency_race' } });
        if (!requestHash.equals(row.request_hash)) {
          throw new HangproofError('CONFLICT', {
            message: 'this Idempotency-Key was already used with a different request body',
            details: { reason: 'idempotency_key_reused' },
          });
        }
        const { request_hash: _h, ...bot } = row;
        return { bot, replayed: true };
      });
      reply.code(outcome.replayed ? 200 : 201);
      if (outcome.replayed) reply.header('idempotent-replayed', 'true');
      return publicBot(outcome.bot);
    },
  );

  app.patch(
    '/api/bots/:id/stage',
    {
      bodyLimit: SMALL_BODY_BYTES,
      schema: {
        params: idParams,
        body: {
          type: 'object',
          additionalProperties: false,
          required: ['stage'],
          properties: { stage: { type: 'string', enum: [...STAGES] } },
        },
      },
    },
    async (request) => {
      const { userId } = await authenticate(request);
      const { id } = request.params as { id: string };
      const { stage } = request.body as { stage: string };
      return db.tx(async (t) => {
        // FOR UPDATE waits at most lock_timeout (the guard sets it): a held lock fails fast.
        const current = await t.query<{ stage: string }>(
          'SELECT stage FROM bots WHERE id = $1 AND user_id = $2 FOR UPDATE',
          [id, userId],
        );
        const from = current.rows[0]?.stage;
        if (from === undefined)
          throw new HangproofError('NOT_FOUND', { message: 'no such bot', details: { resource: 'bot' } });
        if (from === 'retired' && stage !== 'retired') {
          throw new HangproofError('CONFLICT', {
            message: 'a retired bot cannot change stage',
            details: { reason: 'retired' },
          });
        }
        const updated = await t.query<BotRow & Record<string, unknown>>(
          `UPDATE bots SET stage = $2, updated_at = now() WHERE id = $1 RETURNING ${BOT_COLUMNS}`,
          [id, stage],
        );
        if (from !== stage) {
          await t.query(
            `WITH dec AS (UPDATE user_stage_counts SET bot_count = bot_count - 1, updated_at = now()
                          WHERE user_id = $1 AND stage = $2 AND bot_count > 0)
             INSERT INTO user_stage_counts (user_id, stage, bot_count) VALUES ($1, $3, 1)
             ON CONFLICT (user_id, stage) DO UPDATE SET bot_count = user_stage_counts.bot_count + 1, updated_at = now()`,
            [userId, from, stage],
          );
        }
        return publicBot(updated.rows[0] as BotRow);
      });
    },
  );
}
