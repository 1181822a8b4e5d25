import type pg from 'pg';
import { RunTables } from './runTables.js';
import type { ChunkRow, PreviousRun, RejectCount, RunListRow, RunRow, RunTableRow, SiblingRun, TickRun } from './types.js';

/** A connection or a pool: what a single statement needs. */
export type Queryable = pg.ClientBase | pg.Pool;

/**
 * The ledger's reads: what reports, the due check, metrics and the checks before a resume or a
 * forced publish ask of the run, chunk and reject tables. The writes are in {@link Ledger}
 * (ledger.ts), which extends this: one entry point, one file per side.
 */
export class RunHistory extends RunTables {
  async getRun(c: Queryable, runId: string): Promise<RunRow | undefined> {
    const { rows } = await c.query<RunRow>(`SELECT * FROM ${this.table('score_runs')} WHERE run_id = $1`, [runId]);
    return rows[0];
  }

  async getChunks(c: Queryable, runId: string): Promise<ChunkRow[]> {
    const { rows } = await c.query<ChunkRow>(
      `SELECT chunk_no, COALESCE(key_lo::text, key_lo_text) AS key_lo, COALESCE(key_hi::text, key_hi_text) AS key_hi, status, attempts, rows_scored, rows_rejected, duration_ms, last_error, stats, claim_host, claim_pid, failed
         FROM ${this.table('score_chunks')} WHERE run_id = $1 ORDER BY chunk_no`,
      [runId],
    );
    return rows;
  }

  /** How many of the run's chunks are not done. */
  async pendingChunkCount(c: Queryable, runId: string): Promise<number> {
    const { rows } = await c.query<{ n: number }>(`SELECT count(*)::int AS n FROM ${this.table('score_chunks')} WHERE run_id = $1 AND status <> 'done'`, [
      runId,
    ]);
    return rows[0]?.n ?? 0;
  }

  /**
   * The baseline of a run's drift and of `runs show`: the run readers saw when `runId` was scored. For a
   * run that was published, the run its publication replaced; for one that was not, the model's
   * current published run (a rollback counts: after `scorejob rollback`, the run put back is what
   * readers see, not the newer run rolled back from). Read from the publication ledger
   * (score_publications), whose order is the order of the pointer's moves.
   */
  async previousPublishedRun(c: Queryable, runId: string): Promise<PreviousRun | undefined> {
    const { rows } = await c.query<PreviousRun>(
      `WITH own AS (
         SELECT p.from_run_id FROM ${this.table('score_publications')} p
          WHERE p.run_id = $1 AND p.kind <> 'rollback' ORDER BY p.publication_id LIMIT 1
       ), current AS (
         SELECT p.run_id FROM ${this.table('score_publications')} p
          WHERE p.model_name = (SELECT model_name FROM ${this.table('score_runs')} WHERE run_id = $1)
          ORDER BY p.publication_id DESC LIMIT 1
       )
       SELECT run_id::text AS run_id, model_version, rows_scored, stats FROM ${this.table('score_runs')}
        WHERE run_id <> $1
          AND run_id = CASE WHEN EXISTS (SELECT 1 FROM own) THEN (SELECT from_run_id FROM own) ELSE (SELECT run_id FROM current) END`,
      [runId],
    );
    return rows[0];
  }

  /** The first run of the model after `runId` that was published: publishing `runId` now would go back in time. */
  async laterPublishedRun(c: Queryable, runId: string, modelName: string): Promise<string | undefined> {
    const { rows } = await c.query<{ run_id: string }>(
      `SELECT run_id::text FROM ${this.table('score_runs')} WHERE run_id > $1 AND published_at IS NOT NULL AND model_name = $2 ORDER BY run_id LIMIT 1`,
      [runId, modelName],
    );
    return rows[0]?.run_id;
  }

  /** A run of the model after `runId` that succeeded (not a dry run, not an unpublished run made as part of another): resuming `runId` would go back in time. */
  async laterSucceededRun(c: Queryable, runId: string, modelName: string): Promise<string | undefined> {
    const { rows } = await c.query<{ run_id: string }>(
      `SELECT run_id FROM ${this.table('score_runs')} WHERE run_id > $1 AND status = 'succeeded' AND NOT dry_run AND model_name = $2
          AND (champion_run_id IS NULL OR published_at IS NOT NULL) LIMIT 1`,
      [runId, modelName],
    );
    return rows[0]?.run_id;
  }

  /** The run made as part of `runId` (scored beside it, in its chunks: score_runs.champion_run_id), if it has one. */
  async siblingOf(c: Queryable, runId: string): Promise<SiblingRun | undefined> {
    const { rows } = await c.query<SiblingRun>(
      `SELECT run_id::text, status, model_version, published_at FROM ${this.table('score_runs')} WHERE champion_run_id = $1`,
      [runId],
    );
    return rows[0];
  }

  /** The latest succeeded, published (not dry) run's finish time, of one model (the metrics file's last success). */
  async lastSuccessAt(c: Queryable, modelName: string): Promise<Date | null> {
    const { rows } = await c.query<{ at: Date | null }>(
      `SELECT max(finished_at) AS at FROM ${this.table('score_runs')} WHERE status = 'succeeded' AND NOT dry_run AND model_name = $1`,
      [modelName],
    );
    return rows[0]?.at ?? null;
  }

  /** The longest of the last 20 succeeded runs, ms (what "far longer than a normal run" compares with); null when none. */
  async longestRecentRunMs(c: Queryable, modelName: string): Promise<number | null> {
    const { rows } = await c.query<{ ms: string | null }>(
      `SELECT (extract(epoch FROM max(finished_at - started_at)) * 1000)::bigint AS ms
         FROM (SELECT started_at, finished_at FROM ${this.table('score_runs')}
                WHERE status = 'succeeded' AND finished_at IS NOT NULL AND model_name = $1 ORDER BY run_id DESC LIMIT 20) t`,
      [modelName],
    );
    const ms = rows[0]?.ms;
    return ms === null || ms === undefined ? null : Number(ms);
  }

  /** `scorejob runs`: the newest runs first, optionally of one status and one model. */
  async listRuns(c: Queryable, opts: { limit: number; status?: string | undefined; modelName?: string | undefined }): Promise<RunListRow[]> {
    const { rows } = await c.query<RunListRow>(
      `SELECT ${this.listColumns()} FROM ${this.table('score_runs')} r
        WHERE ($2::text IS NULL OR r.status = $2) AND ($3::text IS NULL OR r.model_name = $3) ORDER BY r.run_id DESC LIMIT $1`,
      [opts.limit, opts.status ?? null, opts.modelName ?? null],
    );
    return rows;
  }

  /** `scorejob runs show`: the whole run row with its list columns. */
  async listedRun(c: Queryable, runId: string): Promise<(RunListRow & RunRow) | undefined> {
    const { rows } = await c.query<RunListRow & RunRow>(`SELECT ${this.listColumns()}, r.* FROM ${this.table('score_runs')} r WHERE r.run_id = $1`, [runId]);
    return rows[0];
  }

  private listColumns(): string {
    return `r.run_id, r.status, r.trigger, r.dry_run, r.model_name, r.model_version, r.backend, r.rows_scored, r.rows_rejected, r.champion_run_id::text AS champion_run_id,
  r.kind, r.rows_carried, COALESCE((SELECT cr.params->(r.kind)->>'name' FROM ${this.table('score_runs')} cr WHERE cr.run_id = r.champion_run_id), r.model_name) AS manifest_name,
  r.chunks_total, r.started_at, r.finished_at, r.heartbeat_at, r.error, r.error_kind, r.published_at,
  (SELECT count(*) FROM ${this.table('score_chunks')} ch WHERE ch.run_id = r.run_id AND ch.status = 'done')::int AS chunks_done,
  EXISTS (SELECT 1 FROM ${this.table('score_runs')} l WHERE l.run_id > r.run_id AND l.published_at IS NOT NULL AND l.model_name = r.model_name) AS superseded,
  (r.chunks_total IS NULL OR EXISTS (SELECT 1 FROM pg_class t WHERE t.relname = 'score_data_' || r.run_id
     AND t.relnamespace = (SELECT s.relnamespace FROM pg_class s WHERE s.oid = r.tableoid))) AS resumable_scores`;
  }

  /** The run's rejects by reason and column, the most frequent first. */
  async rejectsByReason(c: Queryable, runId: string): Promise<RejectCount[]> {
    const { rows } = await c.query<RejectCount>(
      `SELECT reason, detail->>'column' AS column, count(*)::int AS rows FROM ${this.table('score_rejects')} WHERE run_id = $1 GROUP BY 1, 2 ORDER BY 3 DESC`,
      [runId],
    );
    return rows;
  }

  /** The model's (not dry, not made as part of another) runs started for `tick` or since it, newest first (at most 100): the due check's rows. A sibling run is never a tick's run: the run it is part of is. */
  async runsForTick(c: Queryable, modelName: string, tick: Date): Promise<TickRun[]> {
    const { rows } = await c.query<TickRun>(
      `SELECT run_id::text, status, trigger, dry_run, started_at, tick_at, host, pid, error_kind, waiting_announced_at FROM ${this.table('score_runs')}
        WHERE NOT dry_run AND champion_run_id IS NULL AND model_name = $2 AND (tick_at = $1 OR started_at >= $1) ORDER BY run_id DESC LIMIT 100`,
      [tick, modelName],
    );
    return rows;
  }

  /** The latest run a process (pid on host) started for `tick`: what a scheduler's child run wrote. */
  async runOfProcess(c: Queryable, tick: Date, pid: number, host: string): Promise<Pick<RunRow, 'run_id' | 'status' | 'error'> | undefined> {
    const { rows } = await c.query<Pick<RunRow, 'run_id' | 'status' | 'error'>>(
      `SELECT run_id::text, status, error FROM ${this.table('score_runs')} WHERE tick_at = $1 AND pid = $2 AND host = $3 ORDER BY run_id DESC LIMIT 1`,
      [tick, pid, host],
    );
    return rows[0];
  }

  /**
   * The model's finished runs that still have a score table, newest first, with what retention
   * decides on: published, attached to score_data, named by the pointer, superseded. `current` (the
   * run in progress) is left out.
   */
  async runTables(c: Queryable, modelName: string, current?: string): Promise<RunTableRow[]> {
    const { rows } = await c.query<RunTableRow>(
      `SELECT r.run_id::text, r.published_at IS NOT NULL AS published,
              i.inhrelid IS NOT NULL AS attached, COALESCE(i.inhdetachpending, false) AS pending,
              EXISTS (SELECT 1 FROM ${this.table('published_run')} p WHERE p.run_id = r.run_id) AS is_pointer,
              r.run_id < COALESCE((SELECT max(l.run_id) FROM ${this.table('score_runs')} l WHERE l.published_at IS NOT NULL AND l.model_name = r.model_name), -1) AS superseded,
              r.champion_run_id::text AS champion_run_id
         FROM pg_class t
         JOIN pg_namespace n ON n.oid = t.relnamespace AND n.nspname = $1
         JOIN ${this.table('score_runs')} r ON t.relname = 'score_data_' || r.run_id
         LEFT JOIN pg_inherits i ON i.inhrelid = t.oid AND i.inhparent = to_regclass($2)
        WHERE t.relkind = 'r' AND r.status <> 'running' AND r.run_id <> COALESCE($3::bigint, -1) AND r.model_name = $4
        ORDER BY r.run_id DESC`,
      [this.schema, this.table('score_data'), current ?? null, modelName],
    );
    return rows;
  }
}
