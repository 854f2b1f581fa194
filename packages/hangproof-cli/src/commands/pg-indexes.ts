/** `hangproof pg indexes`: tables read mostly by sequential scans, and indexes never used. */
import type pg from 'pg';
import { EXIT } from '../output/cli-error.js';
import { type CliIo, painter, printJson, println } from '../output/cli-io.js';
import { renderTable } from '../output/table.js';
import { withSession } from '../pg/connect.js';

export interface PgIndexesOptions {
  readonly databaseUrl: string;
  /** Tables smaller than this (live rows) are ignored: a seq scan of a small table is the right plan. @default 1000 */
  readonly minRows?: number;
  /** Share of scans that are sequential (percent) that flags a table. @default 50 */
  readonly minSeqPct?: number;
  /** Rows per list. @default 20 */
  readonly limit?: number;
  readonly json?: boolean;
}

export interface SeqScanTable {
  readonly table: string;
  readonly seqScans: number;
  readonly idxScans: number;
  readonly seqPct: number;
  readonly seqRowsRead: number;
  readonly liveRows: number;
}

export interface UnusedIndex {
  readonly index: string;
  readonly table: string;
  readonly bytes: number;
}

export interface IndexReport {
  readonly statsSince: string | null;
  readonly seqScanTables: SeqScanTable[];
  readonly unusedIndexes: UnusedIndex[];
}

export async function readIndexReport(
  c: pg.Client,
  o: Omit<PgIndexesOptions, 'databaseUrl'> = {},
): Promise<IndexReport> {
  const limit = o.limit ?? 20;
  const since = await c.query<{ at: Date | null }>(
    'SELECT stats_reset AS at FROM pg_stat_database WHERE datname = current_database()',
  );
  const seq = await c.query(
    `SELECT format('%I.%I', schemaname, relname) AS tbl, seq_scan, coalesce(idx_scan, 0) AS idx_scan,
            (100.0 * seq_scan / NULLIF(seq_scan + coalesce(idx_scan, 0), 0))::float8 AS seq_pct,
            seq_tup_read, n_live_tup
       FROM pg_stat_user_tables
      WHERE n_live_tup >= $1 AND seq_scan > 0
        AND 100.0 * seq_scan / NULLIF(seq_scan + coalesce(idx_scan, 0), 0) >= $2
      ORDER BY seq_tup_read DESC
      LIMIT $3`,
    [o.minRows ?? 1000, o.minSeqPct ?? 50, limit],
  );
  const unused = await c.query(
    `SELECT format('%I.%I', s.schemaname, s.indexrelname) AS idx, format('%I.%I', s.schemaname, s.relname) AS tbl,
            pg_relation_size(s.indexrelid) AS bytes
       FROM pg_stat_user_indexes s JOIN pg_index i ON i.indexrelid = s.indexrelid
      WHERE s.idx_scan = 0 AND NOT i.indisunique AND NOT i.indisprimary AND NOT i.indisexclusion
      ORDER BY pg_relation_size(s.indexrelid) DESC
      LIMIT $1`,
    [limit],
  );
  return {
    statsSince: since.rows[0]?.at ? new Date(since.rows[0].at).toISOString() : null,
    seqScanTables: seq.rows.map((r) => ({
      table: r.tbl,
      seqScans: Number(r.seq_scan),
      idxScans: Number(r.idx_scan),
      seqPct: Math.round(r.seq_pct * 10) / 10,
      seqRowsRead: Number(r.seq_tup_read),
      liveRows: Number(r.n_live_tup),
    })),
    unusedIndexes: unused.rows.map((r) => ({ index: r.idx, table: r.tbl, bytes: Number(r.bytes) })),
  };
}

export async function pgIndexes(o: PgIndexesOptions, io: CliIo): Promise<number> {
  const report = await withSession(o.databaseUrl, (c) => readIndexReport(c, o));
  const findings = report.seqScanTables.length + report.unusedIndexes.length;
  if (o.json) {
    printJson(io, { ...report, ok: findings === 0 });
    return findings === 0 ? EXIT.OK : EXIT.FINDINGS;
  }
  const paint = painter(io);
  println(io, paint('dim', `statistics since ${report.statsSince ?? 'the server started'}`));
  if (report.seqScanTables.length === 0) println(io, 'No large table is read mostly by sequential scans.');
  else {
    println(io, paint('bold', 'Tables read mostly by sequential scans (a missing index, or an unbounded query)'));
    println(
      io,
      renderTable(
        io,
        ['table', 'seq scans', 'index scans', '% seq', 'rows read by seq scans', 'live rows'],
        report.seqScanTables.map((t) => [
          t.table,
          String(t.seqScans),
          String(t.idxScans),
          String(t.seqPct),
          String(t.seqRowsRead),
          String(t.liveRows),
        ]),
      ),
    );
  }
  if (report.unusedIndexes.length === 0) println(io, 'No unused index.');
  else {
    println(io, paint('bold', 'Indexes never scanned since the statistics were reset (they still cost every write)'));
    println(
      io,
      renderTable(
        io,
        ['index', 'table', 'size'],
        report.unusedIndexes.map((u) => [u.index, u.table, `${Math.round(u.bytes / 1024)} kB`]),
      ),
    );
    println(
      io,
      paint('dim', 'check replicas and rare jobs before dropping one: these counts are for this server only'),
    );
  }
  return findings === 0 ? EXIT.OK : EXIT.FINDINGS;
}
