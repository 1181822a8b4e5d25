import type pg from 'pg';
import { quoteIdent } from '../db/sql.js';
import type { Ledger } from './ledger.js';

/** The published run an only_new run starts from. */
export interface BaseRun {
  runId: string;
  modelSha256: string;
  modelVersion: string;
  startedAt: Date;
}

/**
 * The ledger's part of incremental runs (`run --only-new`, sql/010_analyst.sql): score_runs' kind,
 * base_run_id and rows_carried. Kept apart from ledger.ts, which other work changes too.
 */
export class IncrementalLedger {
  private readonly s: string;
  constructor(private readonly ledger: Ledger) {
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
}
