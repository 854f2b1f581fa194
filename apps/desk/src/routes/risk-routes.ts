import type { FastifyInstance } from 'fastify';
import { HangproofError, step } from 'hangproof';
import type { DeskContext } from '../desk-context.js';
import { RISK_LIMITS, simulateDrawdowns } from '../risk/drawdown-risk.js';

/** Backtests a risk estimate resamples: the bot's latest ones. */
const RISK_SESSIONS = 50;

/**
 * `GET /api/bots/:id/risk?paths=N`: the drawdown risk of a bot from its latest backtests. The
 * simulation runs on the event loop (see simulateDrawdowns): with `paths` near RISK_LIMITS.maxPaths
 * one request blocks every other for about a second, the hazard the event-loop playbook traces.
 */
export async function riskRoutes(app: FastifyInstance, desk: DeskContext): Promise<void> {
  const { db, authenticate } = desk;
  app.get(
    '/api/bots/:id/risk',
    {
      schema: {
        params: {
          type: 'object',
          required: ['id'],
          properties: { id: { type: 'string', pattern: '^[1-9][0-9]{0,17}$' } },
        },
        querystring: {
          type: 'object',
          additionalProperties: false,
          properties: {
            paths: {
              type: 'integer',
              minimum: 100,
              maximum: RISK_LIMITS.maxPaths,
              default: RISK_LIMITS.defaultPaths,
            },
          },
        },
      },
    },
    async (request) => {
      const { userId } = await authenticate(request);
      const { id } = request.params as { id: string };
      const { paths } = request.query as { paths: number };
      const { rows } = await db.query<{ ret: number; owned: boolean }>(
        `SELECT (s.pnl / nullif(b.capital, 0) / greatest(s.period_days, 1))::float8 AS ret
         FROM bots b JOIN LATERAL (
           SELECT pnl, period_days FROM backtest_sessions WHERE bot_id = b.id ORDER BY created_at DESC LIMIT ${RISK_SESSIONS}) s ON true
         WHERE b.id = $1 AND b.user_id = $2`,
        [id, userId],
      );
      if (rows.length === 0)
        throw new HangproofError('NOT_FOUND', { message: 'no such bot or no backtests', details: { resource: 'bot' } });
      const returns = rows.map((r) => r.ret ?? 0);
      return step('simulate-drawdowns', async () => simulateDrawdowns(returns, paths, Number(id)));
    },
  );
}
