import type { FastifyInstance } from 'fastify';
import { HangproofError } from 'hangproof';
import type { DeskContext } from '../desk-context.js';

/** Rows of one export, and of one FETCH of its cursor. */
const EXPORT_MAX_ROWS = 10_000;
const FETCH_ROWS = 1_000;

/** A CSV field: quoted when it holds a separator, a quote or a line break. */
const csvField = (v: unknown): string => {
  const text = v instanceof Date ? v.toISOString() : String(v ?? '');
  return /[",\n\r]/.test(text) ? `"${text.replace(/"/g, '""')}"` : text;
};

/**
 * `GET /api/bots/:id/audits.csv`: a bot's latest execution audits as CSV, read through a cursor on
 * a raw pooled client (`dangerouslyRawPool`), the way exports are often written before anyone
 * moves them to `db.tx` with DECLARE/FETCH (docs/reference/pg.md).
 *
 * It keeps, on purpose, the classic bug of a raw checkout: the not-found branch throws before the
 * `try` that releases the client, so every export of a bot that is not the caller's leaks one
 * connection for good. The leak playbook (docs/playbooks.md) traces it from the log: hangproof
 * records raw checkouts as holders, and its leak line names this route.
 */
export async function exportRoutes(app: FastifyInstance, desk: DeskContext): Promise<void> {
  const { db, authenticate } = desk;
  app.get(
    '/api/bots/:id/audits.csv',
    {
      schema: {
        params: {
          type: 'object',
          required: ['id'],
          properties: { id: { type: 'string', pattern: '^[1-9][0-9]{0,17}$' } },
        },
      },
    },
    async (request, reply) => {
      const { userId } = await authenticate(request);
      const { id } = request.params as { id: string };
      const client = await db.dangerouslyRawPool.connect();
      const owned = await client.query('SELECT 1 FROM bots WHERE id = $1 AND user_id = $2', [id, userId]);
      if (owned.rowCount === 0)
        throw new HangproofError('NOT_FOUND', { message: 'no such bot', details: { resource: 'bot' } });
      try {
        await client.query('BEGIN READ ONLY');
        await client.query(
          `DECLARE audits_cur NO SCROLL CURSOR FOR
           SELECT id, checked_at, kind, ok, latency_ms FROM execution_audits
           WHERE bot_id = $1 ORDER BY checked_at DESC LIMIT ${EXPORT_MAX_ROWS}`,
          [id],
        );
        const lines = ['id,checked_at,kind,ok,latency_ms'];
        for (;;) {
          const { rows } = await client.query(`FETCH FORWARD ${FETCH_ROWS} FROM audits_cur`);
          if (rows.length === 0) break;
          for (const r of rows) lines.push([r.id, r.checked_at, r.kind, r.ok, r.latency_ms].map(csvField).join(','));
        }
        await client.query('COMMIT');
        reply.header('content-type', 'text/csv; charset=utf-8');
        return `${lines.join('\n')}\n`;
      } catch (err) {
        await client.query('ROLLBACK').catch(() => {});
        throw err;
      } finally {
        client.release();
      }
    },
  );
}
