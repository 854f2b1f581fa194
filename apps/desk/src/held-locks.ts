import pg from 'pg';
import { FAULT_LIMITS } from './faults.js';

/** One row lock held on purpose by the fault switchboard. */
export interface HeldLock {
  readonly botId: string;
  readonly pid: number | null;
  readonly until: string;
}

/** Held locks at once: each one is a whole Postgres session. */
const MAX_HELD = 3;
const CONNECT_TIMEOUT_MS = 3_000;

/**
 * The held-lock fault: a separate session (not from the desk's pool) that takes `FOR UPDATE` on
 * one bot row and sits on it for a bounded time, then rolls back. A stage change of that bot then
 * meets the guard's lock_timeout instead of queueing behind it. The server-side
 * idle_in_transaction_session_timeout is a second bound in case this process dies mid-hold.
 */
export class HeldLocks {
  readonly #url: string;
  readonly #held = new Map<pg.Client, { botId: string; pid: number | null; until: number; timer: NodeJS.Timeout }>();

  constructor(databaseUrl: string) {
    this.#url = databaseUrl;
  }

  list(): HeldLock[] {
    return [...this.#held.values()].map((h) => ({
      botId: h.botId,
      pid: h.pid,
      until: new Date(h.until).toISOString(),
    }));
  }

  /** Locks `bots.id = botId` for `holdMs`; false when the bot does not exist. */
  async hold(botId: string, holdMs: number): Promise<boolean> {
    if (this.#held.size >= MAX_HELD) throw new RangeError(`at most ${MAX_HELD} locks may be held at once`);
    const ms = Math.min(holdMs, FAULT_LIMITS.maxLockHoldMs);
    const client = new pg.Client({
      connectionString: this.#url,
      connectionTimeoutMillis: CONNECT_TIMEOUT_MS,
      statement_timeout: 5_000,
      idle_in_transaction_session_timeout: ms + 5_000,
      application_name: 'desk:fault:held-lock',
    });
    client.on('error', () => {});
    await client.connect();
    try {
      await client.query('BEGIN');
      const { rows } = await client.query<{ pid: number }>(
        'SELECT pg_backend_pid() AS pid FROM bots WHERE id = $1 FOR UPDATE',
        [botId],
      );
      if (rows.length === 0) {
        await client.end();
        return false;
      }
      const timer = setTimeout(() => void this.#release(client), ms);
      timer.unref();
      this.#held.set(client, { botId, pid: rows[0]?.pid ?? null, until: Date.now() + ms, timer });
      return true;
    } catch (err) {
      await client.end().catch(() => {});
      throw err;
    }
  }

  async releaseAll(): Promise<void> {
    await Promise.all([...this.#held.keys()].map((c) => this.#release(c)));
  }

  async #release(client: pg.Client): Promise<void> {
    const h = this.#held.get(client);
    if (h === undefined) return;
    clearTimeout(h.timer);
    this.#held.delete(client);
    // Ending the session releases the lock even if ROLLBACK cannot be sent.
    await Promise.race([client.query('ROLLBACK').catch(() => {}), new Promise((r) => setTimeout(r, 1_000).unref())]);
    await client.end().catch(() => {});
  }
}
