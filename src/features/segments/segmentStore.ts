import type pg from 'pg';
import { quoteIdent, quoteQualified } from '../../db/sql.js';
import { segmentKey, type PreviousSegment, type SegmentRow } from './segmentDrift.js';

/** The SQL of the segment tables (sql/021_segments.sql): the only code on them. */
export class SegmentStore {
  private readonly s: string;

  constructor(schema: string) {
    this.s = quoteIdent(schema);
  }

  /** A chunk's counts, in the chunk's transaction (a retried chunk's earlier attempt rolled back with its own). */
  async insertChunkCounts(c: pg.ClientBase, runId: string, chunkNo: number, counts: readonly number[]): Promise<void> {
    await c.query(
      `INSERT INTO ${this.s}.chunk_segment_counts (run_id, chunk_no, counts) VALUES ($1, $2, $3::float8[])
         ON CONFLICT (run_id, chunk_no) DO UPDATE SET counts = excluded.counts`,
      [runId, chunkNo, counts],
    );
  }

  /** Every done chunk's counts summed position by position (all workers' chunks, and those done before a resume). */
  async mergedCounts(c: pg.ClientBase, runId: string, total: number): Promise<Float64Array> {
    const { rows } = await c.query<{ i: string; n: number }>(
      `SELECT u.i, sum(u.n) AS n
         FROM ${this.s}.chunk_segment_counts k
         JOIN ${this.s}.score_chunks ch ON ch.run_id = k.run_id AND ch.chunk_no = k.chunk_no AND ch.status = 'done'
         CROSS JOIN LATERAL unnest(k.counts) WITH ORDINALITY AS u(n, i)
        WHERE k.run_id = $1
        GROUP BY u.i`,
      [runId],
    );
    const out = new Float64Array(total);
    for (const r of rows) if (Number(r.i) <= total) out[Number(r.i) - 1] = Number(r.n);
    return out;
  }

  /** A run's segments, by {@link segmentKey}. */
  async runSegments(c: pg.ClientBase, runId: string): Promise<Map<string, PreviousSegment>> {
    const { rows } = await c.query<{ segment: string; value_kind: string; value: string | null; rows_scored: string; share: number; score_bins: string[] }>(
      `SELECT segment, value_kind, value, rows_scored, share, score_bins FROM ${this.s}.run_segments WHERE run_id = $1`,
      [runId],
    );
    return new Map(rows.map((r) => [segmentKey(r), { rows_scored: Number(r.rows_scored), share: r.share, score_bins: r.score_bins.map(Number) }]));
  }

  /** The run's segments (again on a resume: the latest statistics win). */
  async saveRunSegments(c: pg.ClientBase, runId: string, previousRunId: string | null, segments: readonly SegmentRow[]): Promise<void> {
    await c.query(`DELETE FROM ${this.s}.run_segments WHERE run_id = $1`, [runId]);
    await c.query(
      `INSERT INTO ${this.s}.run_segments (run_id, segment, value_no, value, value_kind, rows_scored, rows_rejected, share, mean_score, band_shares,
                                           score_bins, psi_previous, previous_share, previous_run_id)
       SELECT $1, s.segment, s.value_no, s.value, s.value_kind, s.rows_scored, s.rows_rejected, s.share, s.mean_score, s.band_shares,
              ARRAY(SELECT jsonb_array_elements_text(s.score_bins)::int8), s.psi_previous, s.previous_share, $2
         FROM jsonb_to_recordset($3::jsonb) AS s(segment text, value_no int, value text, value_kind text, rows_scored int8, rows_rejected int8, share float8,
                                                 mean_score float8, band_shares jsonb, score_bins jsonb, psi_previous float8, previous_share float8)`,
      [runId, previousRunId, JSON.stringify(segments)],
    );
  }
}

/**
 * Each segment column's values in the source, most rows first, at most `limit` (the rest count as
 * "other"); `more` says there were more. Read as text, as the chunks read the columns. One scan of the
 * source for all the columns: it groups by every column at once (a parallel aggregate, like a single
 * column's), then sums those groups per column.
 */
export async function sourceSegmentValues(
  c: pg.ClientBase,
  source: { table: string },
  columns: readonly string[],
  limit: number,
): Promise<{ values: string[]; more: boolean }[]> {
  if (columns.length === 0) return [];
  const texts = columns.map((col, k) => `${quoteIdent(col)}::text AS v${k}`).join(', ');
  const per = columns.map((_, k) => `SELECT ${k} AS k, v${k} AS v, sum(n) AS n FROM g WHERE v${k} IS NOT NULL GROUP BY v${k}`).join(' UNION ALL ');
  const { rows } = await c.query<{ k: number; v: string }>(
    `WITH g AS MATERIALIZED (SELECT ${texts}, count(*) AS n FROM ${quoteQualified(source.table)} GROUP BY ${columns.map((_, k) => k + 1).join(', ')})
     SELECT k, v FROM (SELECT k, v, row_number() OVER (PARTITION BY k ORDER BY n DESC, v) AS r FROM (${per}) AS s) AS ranked
      WHERE r <= $1 ORDER BY k, r`,
    [limit + 1],
  );
  return columns.map((_, k) => {
    const values = rows.filter((r) => r.k === k).map((r) => r.v);
    return { values: values.slice(0, limit), more: values.length > limit };
  });
}
