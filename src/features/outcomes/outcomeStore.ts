import type pg from 'pg';
import { quoteIdent } from '../../db/sql.js';
import type { SegmentFigures } from '../../stats/outcomeFigures.js';

/** A run a sync visits: a kept, published run of the model. */
export interface KeptRun {
  runId: string;
  publishedAt: Date;
}

/**
 * The only code on outcome_syncs, outcome_performance and outcome_estimates (sql/018_outcomes.sql).
 */
export class OutcomeStore {
  private readonly s: string;

  constructor(readonly schema: string) {
    this.s = quoteIdent(schema);
  }

  /**
   * The model's published runs whose scores are still kept (a layered run's own rows or those it lies on),
   * and its runs scored beside another model's published run in the same pass (champion_run_id): their
   * window opens when that run was published, so both models are judged on the same outcomes.
   */
  async keptRuns(c: pg.ClientBase, modelName: string): Promise<KeptRun[]> {
    const { rows } = await c.query<{ run_id: string; published_at: Date }>(
      `SELECT r.run_id, COALESCE(r.published_at, beside.published_at) AS published_at
         FROM ${this.s}.score_runs r
         LEFT JOIN ${this.s}.score_runs beside ON beside.run_id = r.champion_run_id
        WHERE r.model_name = $1 AND COALESCE(r.published_at, beside.published_at) IS NOT NULL AND NOT r.dry_run
          AND (EXISTS (SELECT 1 FROM ${this.s}.score_data k WHERE k.run_id = r.run_id)
               OR EXISTS (SELECT 1 FROM ${this.s}.score_layers y JOIN ${this.s}.score_data k ON k.run_id = y.under_run_id WHERE y.run_id = r.run_id))
        ORDER BY r.run_id`,
      [modelName],
    );
    return rows.map((r) => ({ runId: r.run_id, publishedAt: r.published_at }));
  }

  /**
   * The run's bands (names and lower bounds), and how many rows its scores are at most: its own and, for a
   * layered run, those of the runs it lies on (an upper bound, to size the arrays the rows are read into).
   */
  async runShape(c: pg.ClientBase, runId: string): Promise<{ bandNames: string[]; bandBounds: number[] | null; rows: number }> {
    const { rows } = await c.query<{ band_names: string[] | null; band_bounds: number[] | null; rows: string }>(
      `SELECT r.band_names, r.band_bounds,
              r.rows_scored + COALESCE((SELECT sum(u.rows_scored) FROM ${this.s}.score_layers y
                                         JOIN ${this.s}.score_runs u ON u.run_id = y.under_run_id WHERE y.run_id = r.run_id), 0) AS rows
         FROM ${this.s}.score_runs r WHERE r.run_id = $1`,
      [runId],
    );
    const r = rows[0];
    return { bandNames: r?.band_names ?? [], bandBounds: r?.band_bounds ?? null, rows: Number(r?.rows ?? 0) };
  }

  /** The signature and horizon of the run's last sync, if any; with whether its estimates exist. */
  async lastSync(c: pg.ClientBase, runId: string): Promise<{ signature: string; horizon: string } | undefined> {
    const { rows } = await c.query<{ signature: string; horizon: string }>(
      `SELECT s.signature, s.horizon::text AS horizon FROM ${this.s}.outcome_syncs s
        WHERE s.run_id = $1 AND EXISTS (SELECT 1 FROM ${this.s}.outcome_estimates e WHERE e.run_id = s.run_id)`,
      [runId],
    );
    return rows[0];
  }

  /**
   * Replaces the run's realised figures and sync row; adds its estimates only the first time (they come
   * from the scores, which do not change). In the caller's transaction.
   */
  async replace(
    c: pg.ClientBase,
    sync: { runId: string; modelName: string; publishedAt: Date; horizon: string; asOf: Date; maturity: number; signature: string },
    figures: readonly SegmentFigures[],
  ): Promise<void> {
    const whole = figures.find((f) => f.band === null);
    await c.query(`DELETE FROM ${this.s}.outcome_performance WHERE run_id = $1`, [sync.runId]);
    await c.query(
      `INSERT INTO ${this.s}.outcome_syncs (run_id, model_name, published_at, horizon, as_of, maturity, signature, roc_fpr, roc_tpr)
       VALUES ($1, $2, $3, $4::interval, $5, $6, $7, $8, $9)
       ON CONFLICT (run_id) DO UPDATE SET model_name = EXCLUDED.model_name, published_at = EXCLUDED.published_at, horizon = EXCLUDED.horizon,
         as_of = EXCLUDED.as_of, maturity = EXCLUDED.maturity, signature = EXCLUDED.signature, synced_at = now(),
         roc_fpr = EXCLUDED.roc_fpr, roc_tpr = EXCLUDED.roc_tpr`,
      [sync.runId, sync.modelName, sync.publishedAt, sync.horizon, sync.asOf, sync.maturity, sync.signature, whole?.roc?.fpr ?? null, whole?.roc?.tpr ?? null],
    );
    for (const f of figures) {
      await c.query(
        `INSERT INTO ${this.s}.outcome_performance (run_id, band, model_name, customers, with_outcome, positives, coverage, auc, gini, ks, brier, log_loss,
           top_decile_lift, ece, decile_customers, decile_predicted, decile_observed)
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, 2 * $8::float8 - 1, $9, $10, $11, $12, $13, $14, $15, $16)`,
        [
          sync.runId,
          f.band,
          sync.modelName,
          f.customers,
          f.withOutcome,
          f.positives,
          f.customers > 0 ? f.withOutcome / f.customers : null,
          f.auc,
          f.ks,
          f.brier,
          f.logLoss,
          f.topDecileLift,
          f.ece,
          f.deciles?.customers ?? null,
          f.deciles?.predicted ?? null,
          f.deciles?.observed ?? null,
        ],
      );
      await c.query(
        `INSERT INTO ${this.s}.outcome_estimates (run_id, band, model_name, customers, expected_positive_rate, estimated_auc)
         VALUES ($1, $2, $3, $4, $5, $6) ON CONFLICT (run_id, (COALESCE(band, ''))) DO NOTHING`,
        [sync.runId, f.band, sync.modelName, f.customers, f.expectedPositiveRate, f.estimatedAuc],
      );
    }
  }
}
