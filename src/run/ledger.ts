import type pg from 'pg';
import type { ScoreStats } from './scoreStats.js';

export type RunStatus = 'running' | 'succeeded' | 'failed' | 'interrupted';
/** Why a run failed, for people and for filters: data, model, database, gate, interrupted, internal. */
export type ErrorKind = 'data' | 'model' | 'database' | 'gate' | 'interrupted' | 'internal';

/** The parameters a run was started with; a resume continues with exactly these. */
export interface RunParams {
  modelDir: string;
  chunkSize: number;
  dryRun: boolean;
  keepRuns: number;
  maxRejectRatio: number;
  /** The PSI gate (`--max-psi`); null or absent: none. */
  maxPsi?: number | null;
  chunkAttempts: number;
  backendChoice: string;
  source: { table: string; key: string };
}

export interface RunRow {
  run_id: string;
  status: RunStatus;
  trigger: string;
  dry_run: boolean;
  model_name: string;
  model_version: string;
  model_sha256: string;
  backend: string;
  params: RunParams;
  started_at: Date;
  finished_at: Date | null;
  heartbeat_at: Date;
  published_at: Date | null;
  tick_at: Date | null;
  chunks_total: number | null;
  rows_scored: string;
  rows_rejected: string;
  error: string | null;
  error_kind: ErrorKind | null;
  stats: Record<string, unknown> | null;
  host: string;
  pid: number;
  resumes: number;
}

export interface ChunkRow {
  chunk_no: number;
  /** null: no lower bound (the first chunk). */
  key_lo: string | null;
  /** null: no upper bound (the last chunk). */
  key_hi: string | null;
  status: 'pending' | 'done';
  attempts: number;
  rows_scored: number | null;
  rows_rejected: number | null;
  duration_ms: number | null;
  last_error: string | null;
  stats: ScoreStats | null;
}

/** A planned chunk: keys in (lo, hi]; a null bound is no bound (the first chunk is open below, the last above). */
export interface PlannedChunk {
  chunkNo: number;
  lo: bigint | null;
  hi: bigint | null;
  /** The rows it holds in the snapshot it is read in (score_chunks.rows_planned); undefined: not known. */
  rows?: number | undefined;
}

export interface NewRun {
  trigger: string;
  dryRun: boolean;
  modelName: string;
  modelVersion: string;
  modelSha256: string;
  backend: string;
  params: RunParams;
  tickAt?: Date | undefined;
  host: string;
  pid: number;
}

/**
 * The ledger's SQL, one method per operation. The schema name enters here, escaped once;
 * every value goes as a parameter.
 */
export class Ledger {
  readonly s: string;
  constructor(
    escape: (name: string) => string,
    readonly schema: string,
  ) {
    this.s = escape(schema);
  }

  /** The table a run writes its scores into before it is published (attached to score_data). */
  runTable(runId: string): string {
    return `${this.s}.${`"score_data_${BigInt(runId).toString()}"`}`;
  }

  async createRun(c: pg.ClientBase, run: NewRun): Promise<string> {
    const { rows } = await c.query<{ run_id: string }>(
      `INSERT INTO ${this.s}.score_runs (status, trigger, dry_run, model_name, model_version, model_sha256, backend, params, tick_at, host, pid)
       VALUES ('running', $1, $2, $3, $4, $5, $6, $7, $8, $9, $10) RETURNING run_id`,
      [run.trigger, run.dryRun, run.modelName, run.modelVersion, run.modelSha256, run.backend, JSON.stringify(run.params), run.tickAt ?? null, run.host, run.pid],
    );
    return (rows[0] as { run_id: string }).run_id;
  }

  /** Records the plan and creates the run's own score table, in the caller's transaction. */
  async recordPlan(c: pg.ClientBase, runId: string, chunks: readonly PlannedChunk[]): Promise<void> {
    await c.query(
      `INSERT INTO ${this.s}.score_chunks (run_id, chunk_no, key_lo, key_hi)
       SELECT $1, n, lo, hi FROM unnest($2::int[], $3::int8[], $4::int8[]) AS t(n, lo, hi)`,
      [runId, chunks.map((c) => c.chunkNo), chunks.map((c) => c.lo?.toString() ?? null), chunks.map((c) => c.hi?.toString() ?? null)],
    );
    await c.query(`UPDATE ${this.s}.score_runs SET chunks_total = $2 WHERE run_id = $1`, [runId, chunks.length]);
    // run_id defaults to this run and is checked, so COPY sends two columns and ATTACH needs no validation scan.
    const id = BigInt(runId).toString();
    await c.query(
      `CREATE TABLE ${this.runTable(runId)} (LIKE ${this.s}.score_data INCLUDING DEFAULTS,
         CONSTRAINT "score_data_${id}_run" CHECK (run_id = ${id}))`,
    );
    await c.query(`ALTER TABLE ${this.runTable(runId)} ALTER COLUMN run_id SET DEFAULT ${id}`);
  }

  /** Each chunk's planned row count (in the snapshot it will be read in), in the caller's transaction if any. */
  async recordChunkRows(c: pg.ClientBase, runId: string, chunks: readonly { chunkNo: number; rows: number }[]): Promise<void> {
    await c.query(
      `UPDATE ${this.s}.score_chunks ch SET rows_planned = t.rows FROM unnest($2::int[], $3::int8[]) AS t(n, rows)
        WHERE ch.run_id = $1 AND ch.chunk_no = t.n`,
      [runId, chunks.map((ch) => ch.chunkNo), chunks.map((ch) => ch.rows)],
    );
  }

  /** The snapshot the run's chunks read now (see db/snapshot.ts): importable while the run's process holds it. */
  async recordSnapshot(c: pg.ClientBase, runId: string, snapshot: string): Promise<void> {
    await c.query(`UPDATE ${this.s}.score_runs SET source_snapshot = $2 WHERE run_id = $1`, [runId, snapshot]);
  }

  /** The chunks not done yet, in order, with their bounds and planned rows. */
  async pendingChunks(c: pg.ClientBase, runId: string): Promise<PlannedChunk[]> {
    const { rows } = await c.query<{ chunk_no: number; key_lo: string | null; key_hi: string | null; rows_planned: string | null }>(
      `SELECT chunk_no, key_lo, key_hi, rows_planned FROM ${this.s}.score_chunks WHERE run_id = $1 AND status <> 'done' ORDER BY chunk_no`,
      [runId],
    );
    return rows.map((r) => ({
      chunkNo: r.chunk_no,
      lo: r.key_lo === null ? null : BigInt(r.key_lo),
      hi: r.key_hi === null ? null : BigInt(r.key_hi),
      rows: r.rows_planned === null ? undefined : Number(r.rows_planned),
    }));
  }

  async getRun(c: pg.ClientBase, runId: string): Promise<RunRow | undefined> {
    const { rows } = await c.query<RunRow>(`SELECT * FROM ${this.s}.score_runs WHERE run_id = $1`, [runId]);
    return rows[0];
  }

  async getChunks(c: pg.ClientBase, runId: string): Promise<ChunkRow[]> {
    const { rows } = await c.query<ChunkRow>(
      `SELECT chunk_no, key_lo, key_hi, status, attempts, rows_scored, rows_rejected, duration_ms, last_error, stats
         FROM ${this.s}.score_chunks WHERE run_id = $1 ORDER BY chunk_no`,
      [runId],
    );
    return rows;
  }

  /**
   * Marks one chunk done and adds its counts to the run, in the writer's chunk transaction, so that
   * a chunk's scores and its "done" mark commit together (guarantee 2). Returns false when the run
   * is no longer `running` here (another process took it over): the caller must roll back.
   */
  async commitChunk(
    c: pg.ClientBase,
    runId: string,
    chunk: { chunkNo: number; scored: number; rejected: number; startedAt: Date; stats: ScoreStats },
  ): Promise<boolean> {
    const { rows } = await c.query<{ chunks: string; runs: string }>(
      `WITH ch AS (
         UPDATE ${this.s}.score_chunks
            SET status = 'done', attempts = attempts + 1, rows_scored = $3, rows_rejected = $4, started_at = $5,
                finished_at = clock_timestamp(), duration_ms = (extract(epoch FROM clock_timestamp() - $5) * 1000)::int,
                last_error = NULL, stats = $6
          WHERE run_id = $1 AND chunk_no = $2 AND status = 'pending' RETURNING 1),
       r AS (
         UPDATE ${this.s}.score_runs
            SET rows_scored = rows_scored + $3, rows_rejected = rows_rejected + $4, heartbeat_at = now()
          WHERE run_id = $1 AND status = 'running' RETURNING 1)
       SELECT (SELECT count(*) FROM ch) AS chunks, (SELECT count(*) FROM r) AS runs`,
      [runId, chunk.chunkNo, chunk.scored, chunk.rejected, chunk.startedAt, JSON.stringify(chunk.stats)],
    );
    const row = rows[0];
    return row !== undefined && row.chunks === '1' && row.runs === '1';
  }

  /** The counts of a chunk that is done, or undefined while it is pending. */
  async doneChunk(c: pg.ClientBase, runId: string, chunkNo: number): Promise<{ scored: number; rejected: number } | undefined> {
    const { rows } = await c.query<{ scored: number; rejected: number }>(
      `SELECT rows_scored AS scored, rows_rejected AS rejected FROM ${this.s}.score_chunks WHERE run_id = $1 AND chunk_no = $2 AND status = 'done'`,
      [runId, chunkNo],
    );
    return rows[0];
  }

  async insertRejects(c: pg.ClientBase, runId: string, rejects: readonly { key: bigint; reason: string; column: string; value: string | null }[]): Promise<void> {
    if (rejects.length === 0) return;
    await c.query(
      `INSERT INTO ${this.s}.score_rejects (run_id, customer_id, reason, detail)
       SELECT $1, k, r, jsonb_build_object('column', col, 'value', v) FROM unnest($2::int8[], $3::text[], $4::text[], $5::text[]) AS t(k, r, col, v)`,
      [runId, rejects.map((r) => r.key.toString()), rejects.map((r) => r.reason), rejects.map((r) => r.column), rejects.map((r) => r.value)],
    );
  }

  /** A failed attempt at a chunk, recorded outside the (rolled back) chunk transaction. */
  async recordChunkFailure(c: pg.ClientBase, runId: string, chunkNo: number, error: string): Promise<void> {
    await c.query(`UPDATE ${this.s}.score_chunks SET attempts = attempts + 1, last_error = $3 WHERE run_id = $1 AND chunk_no = $2`, [runId, chunkNo, error]);
  }

  async heartbeat(c: pg.ClientBase, runId: string): Promise<void> {
    await c.query(`UPDATE ${this.s}.score_runs SET heartbeat_at = now() WHERE run_id = $1 AND status = 'running'`, [runId]);
  }

  async finishRun(c: pg.ClientBase, runId: string, status: Exclude<RunStatus, 'running'>, fields: { error?: string | null; errorKind?: ErrorKind | null; stats?: unknown } = {}): Promise<void> {
    await c.query(
      `UPDATE ${this.s}.score_runs SET status = $2, finished_at = now(), heartbeat_at = now(), error = $3, error_kind = $4, stats = COALESCE($5, stats)
        WHERE run_id = $1`,
      [runId, status, fields.error ?? null, fields.errorKind ?? null, fields.stats === undefined ? null : JSON.stringify(fields.stats)],
    );
  }

  /** Takes a failed or interrupted run back to `running` for a resume. */
  async reopenRun(c: pg.ClientBase, runId: string, host: string, pid: number): Promise<void> {
    await c.query(
      `UPDATE ${this.s}.score_runs SET status = 'running', resumes = resumes + 1, error = NULL, error_kind = NULL, finished_at = NULL,
              heartbeat_at = now(), host = $2, pid = $3 WHERE run_id = $1`,
      [runId, host, pid],
    );
  }

  /**
   * Runs still marked `running` while the caller holds the run lock have lost their process
   * (kill -9, machine gone): mark them interrupted so they can be resumed.
   */
  async markDeadRuns(c: pg.ClientBase): Promise<string[]> {
    const { rows } = await c.query<{ run_id: string }>(
      `UPDATE ${this.s}.score_runs
          SET status = 'interrupted', error_kind = 'interrupted', finished_at = heartbeat_at,
              error = 'the process (pid ' || pid || ' on ' || host || ') stopped without a word; last sign of life ' ||
                      to_char(heartbeat_at AT TIME ZONE 'UTC', 'YYYY-MM-DD HH24:MI:SS') || ' UTC'
        WHERE status = 'running' RETURNING run_id`,
    );
    return rows.map((r) => r.run_id);
  }

  /** The newest running run (to say who holds the lock). */
  async runningRun(c: pg.ClientBase): Promise<Pick<RunRow, 'run_id' | 'host' | 'pid' | 'started_at'> | undefined> {
    const { rows } = await c.query<Pick<RunRow, 'run_id' | 'host' | 'pid' | 'started_at'>>(
      `SELECT run_id, host, pid, started_at FROM ${this.s}.score_runs WHERE status = 'running' ORDER BY run_id DESC LIMIT 1`,
    );
    return rows[0];
  }
}
