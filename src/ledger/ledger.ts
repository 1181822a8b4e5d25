import type pg from 'pg';
import { ChunkClaims } from './chunkClaims.js';
import { RunHistory } from './history.js';
import { OnlyNewLedger } from './onlyNewLedger.js';
import { Publications } from './publications.js';
import { RunStorage } from './runStorage.js';
import { ScoreStreams } from './scoreStreams.js';
import { holderAliveSql, lockTiming } from './lockLiveness.js';
import type { ErrorKind, NewRun, PlannedChunk, RunStats, RunStatus } from './types.js';
import type { Queryable } from './history.js';
import type { ScoreStats } from '../stats/scoreStats.js';
import { boundOf, keySqlType, type KeyType } from '../keyColumn.js';

export type * from './types.js';
export type { Queryable } from './history.js';

/**
 * The run ledger: the only code that reads or writes the run, chunk and reject tables (score_runs,
 * score_chunks, score_rejects), one method per operation. The schema name enters once, quoted
 * (RunTables); every value goes as a parameter. The writes are here, the reads in history.ts. Built once
 * per session, it is also the facade of the ledger's parts: `ledger.publications`, `ledger.onlyNew`,
 * `ledger.storage`, `ledger.claims`; a feature with tables of its own builds its part from the facade.
 */
export class Ledger extends RunHistory {
  /** The publications: the pointer, score_publications, ranks and bands (publications.ts). */
  readonly publications = new Publications(this);
  /** Only-new runs' part: base runs, layers, carried scores, stored histograms (onlyNewLedger.ts). */
  readonly onlyNew = new OnlyNewLedger(this);
  /** A run's scores streamed for its percentile cut points (scoreStreams.ts). */
  readonly scores = new ScoreStreams(this);
  /** A run's tables: created, keyed, attached, analyzed, detached, dropped (runStorage.ts). */
  readonly storage = new RunStorage(this);
  /** A shared run's chunk claims and their leases (chunkClaims.ts). */
  readonly claims = new ChunkClaims(this.schema);

  async createRun(c: pg.ClientBase, run: NewRun): Promise<string> {
    const { rows } = await c.query<{ run_id: string }>(
      `INSERT INTO ${this.table('score_runs')} (status, trigger, dry_run, model_name, model_version, model_sha256, backend, params, tick_at, host, pid)
       VALUES ('running', $1, $2, $3, $4, $5, $6, $7, $8, $9, $10) RETURNING run_id`,
      [
        run.trigger,
        run.dryRun,
        run.modelName,
        run.modelVersion,
        run.modelSha256,
        run.backend,
        JSON.stringify(run.params),
        run.tickAt ?? null,
        run.host,
        run.pid,
      ],
    );
    return (rows[0] as { run_id: string }).run_id;
  }

  /**
   * Records the plan and creates the run's own score table with its primary key, in the caller's
   * transaction. The key is built as the chunks are written (a duplicate source key fails its chunk,
   * which a resume redoes once the source is fixed) so that the table can be attached to score_data
   * now, long before it is published (see attachRunTable).
   */
  async recordPlan(c: pg.ClientBase, runId: string, chunks: readonly PlannedChunk[]): Promise<void> {
    await c.query(
      `INSERT INTO ${this.table('score_chunks')} (run_id, chunk_no, key_lo, key_hi, key_lo_text, key_hi_text)
       SELECT $1, n, lo, hi, lo_text, hi_text FROM unnest($2::int[], $3::int8[], $4::int8[], $5::text[], $6::text[]) AS t(n, lo, hi, lo_text, hi_text)`,
      [runId, chunks.map((c) => c.chunkNo), ...interleave(boundColumns(chunks, 'lo'), boundColumns(chunks, 'hi'))],
    );
    await c.query(`UPDATE ${this.table('score_runs')} SET chunks_total = $2 WHERE run_id = $1`, [runId, chunks.length]);
    await this.storage.ensureScoreTable(c, runId);
  }

  async modelRegistered(c: pg.ClientBase, modelName: string): Promise<boolean> {
    const { rowCount } = await c.query(`SELECT 1 FROM ${this.table('models')} WHERE model_name = $1`, [modelName]);
    return rowCount === 1;
  }

  /** Every model registered in the schema (by its first run), by name. */
  async registeredModels(c: pg.ClientBase): Promise<string[]> {
    const { rows } = await c.query<{ model_name: string }>(`SELECT model_name FROM ${this.table('models')} ORDER BY model_name`);
    return rows.map((r) => r.model_name);
  }

  /** Adds the model to the schema's registry; false when it was there already. */
  async registerModel(c: pg.ClientBase, modelName: string): Promise<boolean> {
    const { rowCount } = await c.query(`INSERT INTO ${this.table('models')} (model_name) VALUES ($1) ON CONFLICT DO NOTHING`, [modelName]);
    return rowCount === 1;
  }

  /** Rebuilds customer_scores with one branch per registered model (sql/006_models.sql). */
  async refreshScoreViews(c: pg.ClientBase): Promise<void> {
    await c.query(`SELECT ${this.table('refresh_score_views')}()`);
  }

  /** Stamps when the run's table became visible to planners: publish waits for reader transactions older than this. */
  async markAttached(c: pg.ClientBase, runId: string): Promise<void> {
    await c.query(`UPDATE ${this.table('score_runs')} SET scores_attached_at = clock_timestamp() WHERE run_id = $1`, [runId]);
  }

  /** Milliseconds until the run's table has been attached for `ms` (0 when it has; `ms` when the time is unknown). */
  async msUntilAttachedFor(c: pg.ClientBase, runId: string, ms: number): Promise<number> {
    const { rows } = await c.query<{ wait: number | null }>(
      `SELECT ceil(extract(epoch FROM scores_attached_at + $2 * interval '1 millisecond' - clock_timestamp()) * 1000)::int AS wait
         FROM ${this.table('score_runs')} WHERE run_id = $1`,
      [runId, ms],
    );
    const wait = rows[0]?.wait;
    return wait === null || wait === undefined ? ms : Math.max(0, wait);
  }

  /** Sessions (other than the caller's) in a transaction older than the run's attach that hold a lock on score_data. */
  async readersOlderThanAttach(c: pg.ClientBase, runId: string): Promise<{ pid: number; xact_start: Date; application_name: string }[]> {
    const { rows } = await c.query<{ pid: number; xact_start: Date; application_name: string }>(
      `SELECT DISTINCT a.pid, a.xact_start, a.application_name
         FROM pg_locks l
         JOIN pg_stat_activity a ON a.pid = l.pid
        WHERE l.locktype = 'relation' AND l.relation = to_regclass($2) AND l.pid <> pg_backend_pid()
          AND a.xact_start < COALESCE((SELECT scores_attached_at FROM ${this.table('score_runs')} WHERE run_id = $1), clock_timestamp())`,
      [runId, `${this.table('score_data')}`],
    );
    return rows;
  }

  /** Each chunk's planned row count (in the snapshot it will be read in), in the caller's transaction if any. */
  async recordChunkRows(c: pg.ClientBase, runId: string, chunks: readonly { chunkNo: number; rows: number }[]): Promise<void> {
    await c.query(
      `UPDATE ${this.table('score_chunks')} ch SET rows_planned = t.rows FROM unnest($2::int[], $3::int8[]) AS t(n, rows)
        WHERE ch.run_id = $1 AND ch.chunk_no = t.n`,
      [runId, chunks.map((ch) => ch.chunkNo), chunks.map((ch) => ch.rows)],
    );
  }

  /** The snapshot the run's chunks read now (see db/snapshot.ts): importable while the run's process holds it. */
  async recordSnapshot(c: pg.ClientBase, runId: string, snapshot: string): Promise<void> {
    await c.query(`UPDATE ${this.table('score_runs')} SET source_snapshot = $2 WHERE run_id = $1`, [runId, snapshot]);
  }

  /** The chunks not done yet, in order, with their bounds and planned rows. */
  async pendingChunks(c: pg.ClientBase, runId: string): Promise<PlannedChunk[]> {
    const { rows } = await c.query<{
      chunk_no: number;
      key_lo: string | null;
      key_hi: string | null;
      key_lo_text: string | null;
      key_hi_text: string | null;
      rows_planned: string | null;
    }>(
      `SELECT chunk_no, key_lo, key_hi, key_lo_text, key_hi_text, rows_planned FROM ${this.table('score_chunks')} WHERE run_id = $1 AND status <> 'done' ORDER BY chunk_no`,
      [runId],
    );
    return rows.map((r) => ({
      chunkNo: r.chunk_no,
      lo: boundOf(r.key_lo, r.key_lo_text),
      hi: boundOf(r.key_hi, r.key_hi_text),
      rows: r.rows_planned === null ? undefined : Number(r.rows_planned),
    }));
  }

  /**
   * Marks one chunk done and adds its counts to the run, in the writer's chunk transaction, so that
   * a chunk's scores and its "done" mark commit together: a crash leaves a chunk either done with all its scores or pending with none, so a resume redoes exactly the pending chunks. Returns false when the run
   * is no longer `running` here (another process took it over): the caller must roll back.
   */
  async commitChunk(
    c: pg.ClientBase,
    runId: string,
    chunk: { chunkNo: number; scored: number; rejected: number; startedAt: Date; stats: ScoreStats },
  ): Promise<boolean> {
    const { rows } = await c.query<{ chunks: string; runs: string }>(
      `WITH ch AS (
         UPDATE ${this.table('score_chunks')}
            SET status = 'done', attempts = attempts + 1, rows_scored = $3, rows_rejected = $4, started_at = $5,
                finished_at = clock_timestamp(), duration_ms = (extract(epoch FROM clock_timestamp() - $5) * 1000)::int,
                last_error = NULL, stats = $6
          WHERE run_id = $1 AND chunk_no = $2 AND status = 'pending' RETURNING 1),
       r AS (
         UPDATE ${this.table('score_runs')}
            SET rows_scored = rows_scored + $3, rows_rejected = rows_rejected + $4, heartbeat_at = now()
          WHERE run_id = $1 AND status = 'running' RETURNING 1)
       SELECT (SELECT count(*) FROM ch) AS chunks, (SELECT count(*) FROM r) AS runs`,
      [runId, chunk.chunkNo, chunk.scored, chunk.rejected, chunk.startedAt, JSON.stringify(chunk.stats)],
    );
    const row = rows[0];
    return row !== undefined && row.chunks === '1' && row.runs === '1';
  }

  /**
   * The counts of a chunk that is done, or undefined while it is pending; `startedAt` is the committing
   * attempt's own start (commitChunk's `startedAt`), which tells an attempt whether the commit was its own.
   */
  async doneChunk(c: pg.ClientBase, runId: string, chunkNo: number): Promise<{ scored: number; rejected: number; startedAt: Date } | undefined> {
    const { rows } = await c.query<{ scored: number; rejected: number; startedAt: Date }>(
      `SELECT rows_scored AS scored, rows_rejected AS rejected, started_at AS "startedAt" FROM ${this.table('score_chunks')} WHERE run_id = $1 AND chunk_no = $2 AND status = 'done'`,
      [runId, chunkNo],
    );
    return rows[0];
  }

  async insertRejects(
    c: pg.ClientBase,
    runId: string,
    rejects: readonly { key: bigint | string; reason: string; column: string | null; value: string | null }[],
    keyType: KeyType = 'int8',
  ): Promise<void> {
    if (rejects.length === 0) return;
    // uuid and text keys arrive as text (src/keyColumn.ts): cast to the key's type, that of customer_id.
    await c.query(
      `INSERT INTO ${this.table('score_rejects')} (run_id, customer_id, reason, detail)
       SELECT $1, k::${keySqlType[keyType]}, r, jsonb_build_object('column', col, 'value', v)
         FROM unnest($2::${keySqlType[keyType]}[], $3::text[], $4::text[], $5::text[]) AS t(k, r, col, v)`,
      [runId, rejects.map((r) => r.key.toString()), rejects.map((r) => r.reason), rejects.map((r) => r.column), rejects.map((r) => r.value)],
    );
  }

  /** A failed attempt at a chunk, recorded outside the (rolled back) chunk transaction. */
  async recordChunkFailure(c: pg.ClientBase, runId: string, chunkNo: number, error: string): Promise<void> {
    await c.query(`UPDATE ${this.table('score_chunks')} SET attempts = attempts + 1, last_error = $3 WHERE run_id = $1 AND chunk_no = $2`, [
      runId,
      chunkNo,
      error,
    ]);
  }

  /** Stamps that a tick announced this gate-stopped run as waiting for a person: true for the first tick only. */
  async announceWaiting(c: Queryable, runId: string): Promise<boolean> {
    const { rowCount } = await c.query(
      `UPDATE ${this.table('score_runs')} SET waiting_announced_at = now() WHERE run_id = $1 AND waiting_announced_at IS NULL`,
      [runId],
    );
    return rowCount === 1;
  }

  async heartbeat(c: pg.ClientBase, runId: string): Promise<void> {
    await c.query(`UPDATE ${this.table('score_runs')} SET heartbeat_at = now() WHERE run_id = $1 AND status = 'running'`, [runId]);
  }

  async finishRun(
    c: pg.ClientBase,
    runId: string,
    status: Exclude<RunStatus, 'running'>,
    fields: { error?: string | null; errorKind?: ErrorKind | null; stats?: RunStats | undefined } = {},
  ): Promise<void> {
    await c.query(
      `UPDATE ${this.table('score_runs')} SET status = $2, finished_at = now(), heartbeat_at = now(), error = $3, error_kind = $4, stats = COALESCE($5, stats)
        WHERE run_id = $1`,
      [runId, status, fields.error ?? null, fields.errorKind ?? null, fields.stats === undefined ? null : JSON.stringify(fields.stats)],
    );
  }

  /** The run's row as published (in the caller's publish transaction): succeeded, its failure cleared, its statistics final. */
  async markPublished(c: pg.ClientBase, runId: string, stats: RunStats): Promise<void> {
    await c.query(
      // A run published by force after a gate keeps the time it finished scoring: the review's wait is not the run's duration.
      `UPDATE ${this.table('score_runs')} SET status = 'succeeded', finished_at = COALESCE(finished_at, now()), heartbeat_at = now(), published_at = now(),
              error = NULL, error_kind = NULL, stats = $2 WHERE run_id = $1`,
      [runId, JSON.stringify(stats)],
    );
  }

  /**
   * Takes a failed or interrupted run back to `running` for a resume. Its failure moves to `failures`
   * (with its time) before `error` is cleared, so the history of a resumed run is never lost.
   */
  async reopenRun(c: pg.ClientBase, runId: string, host: string, pid: number): Promise<void> {
    await c.query(
      `UPDATE ${this.table('score_runs')} SET status = 'running', resumes = resumes + 1, error = NULL, error_kind = NULL, finished_at = NULL,
              failures = failures || jsonb_build_array(jsonb_build_object(
                'at', COALESCE(finished_at, heartbeat_at), 'status', status, 'kind', error_kind, 'error', error)),
              heartbeat_at = now(), host = $2, pid = $3 WHERE run_id = $1`,
      [runId, host, pid],
    );
  }

  /**
   * Runs still marked `running` whose process is gone (kill -9, machine lost): no live holder of a run
   * lock works on them (src/ledger/runLock.ts: lease current, and backend alive or heartbeat within the grace).
   * Marks them interrupted so they can be resumed. Safe without holding the lock: a live run is
   * attached to its lock in the transaction that creates or reopens it (a run made as part of another
   * lives while that run's holder does: it is created and reopened in that run's transaction).
   */
  async markDeadRuns(c: pg.ClientBase): Promise<string[]> {
    const { rows } = await c.query<{ run_id: string }>(
      `UPDATE ${this.table('score_runs')} r
          SET status = 'interrupted', error_kind = 'interrupted', finished_at = heartbeat_at,
              error = 'the process (pid ' || pid || ' on ' || host || ') stopped without a word; last sign of life ' ||
                      to_char(heartbeat_at AT TIME ZONE 'UTC', 'YYYY-MM-DD HH24:MI:SS') || ' UTC'
        WHERE status = 'running'
          AND NOT EXISTS (SELECT 1 FROM ${this.table('run_locks')} l WHERE l.run_id = COALESCE(r.champion_run_id, r.run_id) AND ${holderAliveSql('l', '$1')})
        RETURNING run_id`,
      [lockTiming.graceMs],
    );
    return rows.map((r) => r.run_id);
  }
}

/** A bound of each chunk as the two columns that store it: [int8 bounds, uuid and text bounds]. */
function boundColumns(chunks: readonly PlannedChunk[], which: 'lo' | 'hi'): [(string | null)[], (string | null)[]] {
  return [chunks.map((c) => (typeof c[which] === 'bigint' ? c[which].toString() : null)), chunks.map((c) => (typeof c[which] === 'string' ? c[which] : null))];
}

/** [lo int8, lo text] and [hi int8, hi text] as [lo int8, hi int8, lo text, hi text]. */
function interleave<T>(lo: [T, T], hi: [T, T]): [T, T, T, T] {
  return [lo[0], hi[0], lo[1], hi[1]];
}
