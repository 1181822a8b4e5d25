import type pg from 'pg';
import { quoteIdent } from '../../db/sql.js';
import type { FeatureDriftRow } from './featureDrift.js';

/** The SQL of the feature-drift tables (sql/020_feature_drift.sql): the only code on them. */
export class DriftStore {
  private readonly s: string;

  constructor(schema: string) {
    this.s = quoteIdent(schema);
  }

  /** A chunk's counts, in the chunk's transaction (a retried chunk's earlier attempt rolled back with its own). */
  async insertChunkCounts(c: pg.ClientBase, runId: string, chunkNo: number, counts: readonly number[]): Promise<void> {
    await c.query(
      `INSERT INTO ${this.s}.chunk_feature_counts (run_id, chunk_no, counts) VALUES ($1, $2, $3::int8[])
         ON CONFLICT (run_id, chunk_no) DO UPDATE SET counts = excluded.counts`,
      [runId, chunkNo, counts],
    );
  }

  /** Every done chunk's counts summed bin by bin (all workers' chunks, and those done before a resume). */
  async mergedCounts(c: pg.ClientBase, runId: string, bins: number): Promise<number[]> {
    const { rows } = await c.query<{ i: string; n: string }>(
      `SELECT u.i, sum(u.n) AS n
         FROM ${this.s}.chunk_feature_counts k
         JOIN ${this.s}.score_chunks ch ON ch.run_id = k.run_id AND ch.chunk_no = k.chunk_no AND ch.status = 'done'
         CROSS JOIN LATERAL unnest(k.counts) WITH ORDINALITY AS u(n, i)
        WHERE k.run_id = $1
        GROUP BY u.i`,
      [runId],
    );
    const out = new Array<number>(bins).fill(0);
    for (const r of rows) if (Number(r.i) <= bins) out[Number(r.i) - 1] = Number(r.n);
    return out;
  }

  /** A run's merged counts per feature (by feature_no), if it counted with the same baseline. */
  async runCounts(c: pg.ClientBase, runId: string, baselineSha256: string): Promise<Map<number, number[]>> {
    const { rows } = await c.query<{ feature_no: number; counts: string[] }>(
      `SELECT feature_no, counts FROM ${this.s}.run_feature_drift WHERE run_id = $1 AND baseline_sha256 = $2`,
      [runId, baselineSha256],
    );
    return new Map(rows.map((r) => [r.feature_no, r.counts.map(Number)]));
  }

  /** The run's PSI per feature, the top movers (against the baseline) first; `limit` of them. */
  async runPsi(c: pg.ClientBase, runId: string, limit: number): Promise<{ feature: string; psi_baseline: number | null; psi_previous: number | null }[]> {
    const { rows } = await c.query<{ feature: string; psi_baseline: number | null; psi_previous: number | null }>(
      `SELECT feature, psi_baseline, psi_previous FROM ${this.s}.run_feature_drift WHERE run_id = $1
        ORDER BY psi_baseline DESC NULLS LAST, feature_no LIMIT $2`,
      [runId, limit],
    );
    return rows;
  }

  /** The run's drift per feature (again on a resume: the latest statistics win). */
  async saveRunDrift(c: pg.ClientBase, runId: string, baselineSha256: string, features: readonly FeatureDriftRow[]): Promise<void> {
    await c.query(
      `INSERT INTO ${this.s}.run_feature_drift (run_id, feature_no, feature, kind, counts, psi_baseline, psi_previous, previous_run_id, baseline_sha256)
       SELECT $1, f.feature_no, f.feature, f.kind, ARRAY(SELECT jsonb_array_elements_text(f.counts)::int8), f.psi_baseline, f.psi_previous, $2, $3
         FROM jsonb_to_recordset($4::jsonb) AS f(feature_no int, feature text, kind text, counts jsonb, psi_baseline float8, psi_previous float8)
       ON CONFLICT (run_id, feature_no) DO UPDATE SET feature = excluded.feature, kind = excluded.kind, counts = excluded.counts,
         psi_baseline = excluded.psi_baseline, psi_previous = excluded.psi_previous, previous_run_id = excluded.previous_run_id, baseline_sha256 = excluded.baseline_sha256`,
      [runId, features[0]?.previous_run_id ?? null, baselineSha256, JSON.stringify(features)],
    );
  }
}
