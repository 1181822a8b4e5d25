import type pg from 'pg';
import { quoteIdent, quoteQualified } from '../../db/sql.js';
import type { Baseline } from './evaluate.js';

/**
 * The input checks' figures. The source's are read in the run's snapshot (the caller's transaction):
 * the checks see exactly the rows the run will score.
 */

/** The features summary a run stores on score_runs.stats (src/stats/featureStats.ts), as far as the checks read it. */
interface StoredFeatures {
  rows?: number;
  features?: { column: string; null_fraction: number }[];
}

/**
 * The last published full run of the model (not this one, not a dry run, not an only-new layer or a
 * run made as part of another): what "the input looks as usual" is measured against.
 */
export async function lastPublishedFullRun(c: pg.ClientBase, schema: string, modelName: string, runId: string): Promise<Baseline | undefined> {
  const { rows } = await c.query<{ run_id: string; rows_scored: string; rows_rejected: string; features: StoredFeatures | null }>(
    `SELECT run_id::text, rows_scored, rows_rejected, stats->'features' AS features FROM ${quoteQualified(`${schema}.score_runs`)}
      WHERE model_name = $1 AND run_id <> $2 AND published_at IS NOT NULL AND NOT dry_run AND kind = 'full'
      ORDER BY published_at DESC, run_id DESC LIMIT 1`,
    [modelName, runId],
  );
  const row = rows[0];
  if (!row) return undefined;
  const nullFractions = new Map((row.features?.features ?? []).map((f) => [f.column, f.null_fraction]));
  return { runId: row.run_id, rows: row.features?.rows ?? Number(row.rows_scored) + Number(row.rows_rejected), nullFractions };
}

/** The source's rows (the run's: the plan refuses NULL keys, so count(*) is what it will count). */
export async function countRows(c: pg.ClientBase, table: string): Promise<number> {
  const { rows } = await c.query<{ n: string }>(`SELECT count(*) AS n FROM ${quoteQualified(table)}`);
  return Number(rows[0]?.n ?? 0);
}

/** NULLs per column and the rows, in one scan of the source. */
export async function countNulls(c: pg.ClientBase, table: string, columns: readonly string[]): Promise<{ rows: number; nulls: Map<string, number> }> {
  const counts = columns.map((col) => `count(${quoteIdent(col)})`).join(', ');
  const { rows } = await c.query<unknown[]>({ text: `SELECT count(*)${counts ? `, ${counts}` : ''} FROM ${quoteQualified(table)}`, rowMode: 'array' });
  const row = (rows[0] ?? []).map(Number);
  const total = row[0] ?? 0;
  return { rows: total, nulls: new Map(columns.map((col, i) => [col, total - (row[i + 1] ?? 0)])) };
}

/**
 * An assertion's offending rows: how many its query returns, and the first 10 keys (its first column).
 * Counted by a window over the whole result, so the query runs once.
 */
export async function runAssertion(c: pg.ClientBase, sql: string): Promise<{ offending: number; keys: string[] }> {
  const query = sql.trim().replace(/;+\s*$/, '');
  const { rows } = await c.query<unknown[]>({ text: `SELECT count(*) OVER (), offending.* FROM (${query}) AS offending LIMIT 10`, rowMode: 'array' });
  return { offending: Number(rows[0]?.[0] ?? 0), keys: rows.map((r) => String(r[1])) };
}
