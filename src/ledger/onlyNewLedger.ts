import type pg from 'pg';
import { quoteIdent } from '../db/sql.js';
import type { RunTables } from './runTables.js';

/** The published run an only_new run starts from. */
export interface BaseRun {
  runId: string;
  modelSha256: string;
  modelVersion: string;
  startedAt: Date;
}

/** A layered only_new run (sql/013_layers.sql): the full run whose table holds its carried scores. */
export interface Layer {
  runId: string;
  underRunId: string;
  rowsCarried: number;
}

/**
 * The ledger's part of only-new runs (`run --only-new`, sql/010_analyst.sql and 013_layers.sql):
 * score_runs' kind, base_run_id and rows_carried; score_layers and score_layer_hidden. Kept apart from
 * ledger.ts, which other work changes too.
 */
export class OnlyNewLedger {
  private readonly s: string;
  constructor(ledger: RunTables) {
    this.s = quoteIdent(ledger.schema);
  }

  /** The model's published run, if any. */
  async publishedRun(c: pg.ClientBase, modelName: string): Promise<BaseRun | undefined> {
    const { rows } = await c.query<{ run_id: string; model_sha256: string; model_version: string; started_at: Date }>(
      `SELECT r.run_id::text, r.model_sha256, r.model_version, r.started_at
         FROM ${this.s}.published_run p JOIN ${this.s}.score_runs r ON r.run_id = p.run_id
        WHERE p.model_name = $1`,
      [modelName],
    );
    const r = rows[0];
    return r && { runId: r.run_id, modelSha256: r.model_sha256, modelVersion: r.model_version, startedAt: r.started_at };
  }

  /** Marks a new run only_new on its base, in the transaction that creates it. */
  async markOnlyNew(c: pg.ClientBase, runId: string, baseRunId: string): Promise<void> {
    await c.query(`UPDATE ${this.s}.score_runs SET kind = 'only_new', base_run_id = $2 WHERE run_id = $1`, [runId, baseRunId]);
  }

  /** The scores carried forward so far (a resume carries again what is missing). */
  async recordCarried(c: pg.ClientBase, runId: string, carried: number): Promise<void> {
    await c.query(`UPDATE ${this.s}.score_runs SET rows_carried = $2 WHERE run_id = $1`, [runId, carried]);
  }

  /** The run's layer, if it is a layered only_new run whose carry is done. */
  async layerOf(c: pg.ClientBase, runId: string): Promise<Layer | undefined> {
    const { rows } = await c.query<{ under_run_id: string; rows_carried: string }>(
      `SELECT under_run_id::text, rows_carried::text FROM ${this.s}.score_layers WHERE run_id = $1`,
      [runId],
    );
    const r = rows[0];
    return r && { runId, underRunId: r.under_run_id, rowsCarried: Number(r.rows_carried) };
  }

  /** Every layer: retention keeps a run while a run it does not drop lies on it. */
  async layers(c: pg.ClientBase): Promise<Layer[]> {
    const { rows } = await c.query<{ run_id: string; under_run_id: string; rows_carried: string }>(
      `SELECT run_id::text, under_run_id::text, rows_carried::text FROM ${this.s}.score_layers`,
    );
    return rows.map((r) => ({ runId: r.run_id, underRunId: r.under_run_id, rowsCarried: Number(r.rows_carried) }));
  }

  /** Forgets a run's layer and stored histogram, when its scores are dropped. */
  async dropLayer(c: pg.ClientBase, runId: string): Promise<void> {
    await c.query(`DELETE FROM ${this.s}.score_layer_hidden WHERE run_id = $1`, [runId]);
    await c.query(`DELETE FROM ${this.s}.score_layers WHERE run_id = $1`, [runId]);
    await c.query(`DELETE FROM ${this.s}.score_histograms WHERE run_id = $1`, [runId]);
  }

  /** Stores a full run's histogram (its non-empty bins), for the layers that will lie on it. */
  async recordHistogram(c: pg.ClientBase, runId: string, h: { bins: number[]; counts: number[] }): Promise<void> {
    await c.query(
      `INSERT INTO ${this.s}.score_histograms (run_id, bins, counts) VALUES ($1, $2, $3) ON CONFLICT (run_id) DO UPDATE SET bins = EXCLUDED.bins, counts = EXCLUDED.counts`,
      [runId, h.bins, h.counts],
    );
  }

  /** A run's stored histogram, if it has one (runs scored before schema version 13, or dry, have none). */
  async histogramOf(c: pg.ClientBase, runId: string): Promise<{ bins: number[]; counts: number[] } | undefined> {
    const { rows } = await c.query<{ bins: number[]; counts: number[] }>(`SELECT bins, counts FROM ${this.s}.score_histograms WHERE run_id = $1`, [runId]);
    return rows[0];
  }
}
