import { randomUUID } from 'node:crypto';
import type pg from 'pg';
import { quoteIdent } from '../db/sql.js';
import type { Queryable } from './history.js';
import { boundOf } from '../keyColumn.js';
import type { PlannedChunk } from './types.js';

/** A worker's claim on one chunk: the chunk, and the token that fences its commit. */
export interface ChunkClaim extends PlannedChunk {
  token: string;
  /** The worker whose lease this claim took over (it stalled or died), if any. */
  takenFrom: { host: string; pid: number } | undefined;
  /** The chunk's attempts before this worker's first, on every worker since the coordinator (re)started the run (a lease taken over counts as one). */
  attempts: number;
}

/** A chunk that failed for good on some worker: the run fails for everyone. */
export interface FailedChunk {
  chunkNo: number;
  host: string | null;
  pid: number | null;
  error: string | null;
}

/** Where the run's chunks stand, for a worker deciding whether to wait or stop. */
export interface ClaimState {
  /** The run row's status (a worker stops once it is not `running`). */
  runStatus: string | undefined;
  pending: number;
  failed: FailedChunk | undefined;
}

/**
 * The chunk claims of shared runs (sql/009_chunk_claims.sql): the only code that reads or writes the
 * claim columns of score_chunks. PostgreSQL is the coordinator: a claim is `FOR UPDATE SKIP LOCKED` on
 * the pending chunks, held by a lease the worker renews; a chunk whose lease ran out is claimed again.
 */
export class ChunkClaims {
  private readonly chunks: string;
  private readonly runs: string;

  constructor(schema: string) {
    this.chunks = `${quoteIdent(schema)}.score_chunks`;
    this.runs = `${quoteIdent(schema)}.score_runs`;
  }

  /**
   * Claims the first pending chunk no live worker holds, or returns undefined. Taking over an expired
   * lease counts the lost attempt (the worker that held it could not say so itself).
   */
  async claim(c: Queryable, runId: string, worker: { host: string; pid: number }, leaseMs: number): Promise<ChunkClaim | undefined> {
    const token = randomUUID();
    // SKIP LOCKED: two workers claiming at once each get a different chunk, without waiting on each other.
    const { rows } = await c.query<{
      chunk_no: number;
      key_lo: string | null;
      key_hi: string | null;
      key_lo_text: string | null;
      key_hi_text: string | null;
      rows_planned: string | null;
      prev_host: string | null;
      prev_pid: number | null;
      attempts: number;
    }>(
      `WITH pick AS (
         SELECT run_id, chunk_no, claim_token AS prev_token, claim_host AS prev_host, claim_pid AS prev_pid
           FROM ${this.chunks}
          WHERE run_id = $1 AND status = 'pending' AND NOT failed AND (claim_token IS NULL OR lease_until < now())
            -- A chunk failed for good: the run fails, and no worker claims anything more.
            AND NOT EXISTS (SELECT 1 FROM ${this.chunks} f WHERE f.run_id = $1 AND f.failed)
          ORDER BY chunk_no LIMIT 1 FOR UPDATE SKIP LOCKED)
       UPDATE ${this.chunks} ch
          SET claim_token = $2, claim_host = $3, claim_pid = $4, claimed_at = now(),
              lease_until = now() + $5::int * interval '1 millisecond',
              attempts = ch.attempts + CASE WHEN pick.prev_token IS NULL THEN 0 ELSE 1 END,
              last_error = CASE WHEN pick.prev_token IS NULL THEN ch.last_error
                                ELSE 'the lease of pid ' || pick.prev_pid || ' on ' || pick.prev_host || ' expired (stalled or died); taken over' END
         FROM pick
        WHERE ch.run_id = pick.run_id AND ch.chunk_no = pick.chunk_no
          AND EXISTS (SELECT 1 FROM ${this.runs} r WHERE r.run_id = $1 AND r.status = 'running')
       RETURNING ch.chunk_no, ch.key_lo, ch.key_hi, ch.key_lo_text, ch.key_hi_text, ch.rows_planned, ch.attempts - ch.attempts_at_start AS attempts,
                 CASE WHEN pick.prev_token IS NULL THEN NULL ELSE pick.prev_host END AS prev_host, pick.prev_pid`,
      [runId, token, worker.host, worker.pid, leaseMs],
    );
    const r = rows[0];
    if (!r) return undefined;
    return {
      chunkNo: r.chunk_no,
      lo: boundOf(r.key_lo, r.key_lo_text),
      hi: boundOf(r.key_hi, r.key_hi_text),
      rows: r.rows_planned === null ? undefined : Number(r.rows_planned),
      token,
      takenFrom: r.prev_host === null ? undefined : { host: r.prev_host, pid: r.prev_pid ?? 0 },
      attempts: r.attempts,
    };
  }

  /** Extends the claim's lease; false when the claim is no longer ours (another worker took it over). */
  async renew(c: Queryable, runId: string, claim: ChunkClaim, leaseMs: number): Promise<boolean> {
    // No status condition: a renewal racing this worker's own commit of the chunk must not read as a lost claim.
    const { rowCount } = await c.query(
      `UPDATE ${this.chunks} SET lease_until = now() + $4::int * interval '1 millisecond' WHERE run_id = $1 AND chunk_no = $2 AND claim_token = $3`,
      [runId, claim.chunkNo, claim.token, leaseMs],
    );
    return rowCount === 1;
  }

  /**
   * The fence, in the chunk's transaction: locks the chunk's row and checks the claim is still ours. While
   * this transaction holds the row, no other worker can take the claim over (its claim skips locked rows),
   * and a worker that took it over earlier has changed the token: then this one must roll back.
   */
  async holds(c: pg.ClientBase, runId: string, claim: ChunkClaim): Promise<boolean> {
    const { rowCount } = await c.query(`SELECT 1 FROM ${this.chunks} WHERE run_id = $1 AND chunk_no = $2 AND claim_token = $3 FOR UPDATE`, [
      runId,
      claim.chunkNo,
      claim.token,
    ]);
    return rowCount === 1;
  }

  /** A failed attempt, recorded only while the claim is ours (a worker that lost it says nothing on the chunk). */
  async recordFailure(c: Queryable, runId: string, claim: ChunkClaim, error: string): Promise<void> {
    await c.query(
      `UPDATE ${this.chunks} SET attempts = attempts + 1, last_error = $4 WHERE run_id = $1 AND chunk_no = $2 AND claim_token = $3 AND status = 'pending'`,
      [runId, claim.chunkNo, claim.token, error],
    );
  }

  /** The chunk failed for good on this worker: every worker stops, and the coordinator fails the run. */
  async markFailed(c: Queryable, runId: string, claim: ChunkClaim, error: string): Promise<void> {
    await c.query(
      `UPDATE ${this.chunks} SET failed = true, last_error = COALESCE(last_error, $4) WHERE run_id = $1 AND chunk_no = $2 AND claim_token = $3 AND status = 'pending'`,
      [runId, claim.chunkNo, claim.token, error],
    );
  }

  /**
   * The chunk used up its attempts across workers (`--chunk-attempts`; workers that died on it count, by
   * their leases taken over): it fails for good without another try, with its last error kept.
   */
  async giveUp(c: Queryable, runId: string, claim: ChunkClaim, limit: number): Promise<void> {
    await c.query(
      `UPDATE ${this.chunks} SET failed = true, last_error = (attempts - attempts_at_start) || CASE WHEN attempts - attempts_at_start = 1 THEN ' attempt' ELSE ' attempts' END || ' across workers (--chunk-attempts ' || $4::int || '); the last: ' || COALESCE(last_error, 'unknown error')
        WHERE run_id = $1 AND chunk_no = $2 AND claim_token = $3 AND status = 'pending'`,
      [runId, claim.chunkNo, claim.token, limit],
    );
  }

  /** Whether the claim is still this worker's (outside a transaction: for the words after a failure). */
  async stillHeld(c: Queryable, runId: string, claim: ChunkClaim): Promise<boolean> {
    const { rowCount } = await c.query(`SELECT 1 FROM ${this.chunks} WHERE run_id = $1 AND chunk_no = $2 AND claim_token = $3 AND status = 'pending'`, [
      runId,
      claim.chunkNo,
      claim.token,
    ]);
    return rowCount === 1;
  }

  /** The newest shared run (started with --workers) still `running` and planned, not one made as part of another (that run's workers score it): what `scorejob work` joins without --run. */
  async joinableRun(c: Queryable): Promise<string | undefined> {
    const { rows } = await c.query<{ run_id: string }>(
      `SELECT run_id::text FROM ${this.runs} WHERE status = 'running' AND params ? 'workers' AND champion_run_id IS NULL AND chunks_total IS NOT NULL ORDER BY run_id DESC LIMIT 1`,
    );
    return rows[0]?.run_id;
  }

  /** The snapshot the run's chunks read now, and the rows each of `chunkNos` holds in it. */
  async snapshotAndRows(c: Queryable, runId: string, chunkNos: readonly number[]): Promise<{ snapshot: string | null; rows: Map<number, number | undefined> }> {
    const run = await c.query<{ s: string | null }>(`SELECT source_snapshot AS s FROM ${this.runs} WHERE run_id = $1`, [runId]);
    const { rows } = await c.query<{ chunk_no: number; rows_planned: string | null }>(
      `SELECT chunk_no, rows_planned FROM ${this.chunks} WHERE run_id = $1 AND chunk_no = ANY($2::int[])`,
      [runId, chunkNos],
    );
    return { snapshot: run.rows[0]?.s ?? null, rows: new Map(rows.map((r) => [r.chunk_no, r.rows_planned === null ? undefined : Number(r.rows_planned)])) };
  }

  /** Gives the claim back (a stopped worker): another worker may take the chunk at once. */
  async release(c: Queryable, runId: string, claim: ChunkClaim): Promise<void> {
    await c.query(
      `UPDATE ${this.chunks} SET claim_token = NULL, lease_until = NULL WHERE run_id = $1 AND chunk_no = $2 AND claim_token = $3 AND status = 'pending'`,
      [runId, claim.chunkNo, claim.token],
    );
  }

  /** A (re)started coordinator: the pending chunks' claims and failures of an earlier attempt are void, and their attempts count afresh. */
  async reset(c: Queryable, runId: string): Promise<void> {
    await c.query(
      `UPDATE ${this.chunks} SET claim_token = NULL, lease_until = NULL, failed = false, attempts_at_start = attempts WHERE run_id = $1 AND status = 'pending'`,
      [runId],
    );
  }

  async state(c: Queryable, runId: string): Promise<ClaimState> {
    const { rows } = await c.query<{
      status: string | null;
      pending: number;
      chunk_no: number | null;
      host: string | null;
      pid: number | null;
      error: string | null;
    }>(
      `SELECT (SELECT status FROM ${this.runs} WHERE run_id = $1) AS status,
              (SELECT count(*)::int FROM ${this.chunks} WHERE run_id = $1 AND status = 'pending') AS pending,
              f.chunk_no, f.claim_host AS host, f.claim_pid AS pid, f.last_error AS error
         FROM (SELECT 1) one
         LEFT JOIN LATERAL (SELECT chunk_no, claim_host, claim_pid, last_error FROM ${this.chunks}
                             WHERE run_id = $1 AND failed ORDER BY chunk_no LIMIT 1) f ON true`,
      [runId],
    );
    const r = rows[0];
    return {
      runStatus: r?.status ?? undefined,
      pending: r?.pending ?? 0,
      failed: r?.chunk_no === null || r?.chunk_no === undefined ? undefined : { chunkNo: r.chunk_no, host: r.host, pid: r.pid, error: r.error },
    };
  }
}
