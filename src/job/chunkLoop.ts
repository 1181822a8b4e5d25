import type pg from 'pg';
import { allocateBatch, type ColumnBatch, type ColumnSpec } from '../columns.js';
import { chunkCopySql, readChunk, sourceWireTypes, type SourceRef } from '../db/copyReader.js';
import { copyScores, encodeScores } from '../db/copyWriter.js';
import { describeDbError } from '../db/describeError.js';
import { connectAs } from '../db/pool.js';
import { withTransaction } from '../db/sql.js';
import { inSnapshotSql, snapshotError } from '../db/snapshot.js';
import { isTransient } from '../db/sqlstate.js';
import { ChunkCountError, RunFailedError, SnapshotLostError } from '../errors.js';
import type { Logger } from '../log.js';
import type { ModelInput, Reject } from '../model/features.js';
import { keepFiniteScores, type Scorer } from '../model/scorer.js';
import type { Ledger, PlannedChunk } from '../ledger/ledger.js';
import { accumulate, emptyStats } from '../stats/scoreStats.js';
import type { StageTimings } from '../observe/timings.js';

/** Turns a decoded chunk into model input rows (compacting away rejects); returns the accepted count. */
export type Transform = (batch: ColumnBatch, out: ModelInput, rejects: Reject[]) => number;

/** Set by the CLI's signal handler: the loop stops after the chunk in flight. */
export interface StopSignal {
  requested: NodeJS.Signals | undefined;
}

/** The run's one view of the source (sourceView.ts): the snapshot every chunk read imports. */
export interface ChunkSource {
  readonly snapshotId: string;
  /** After a failure: if the snapshot is gone, takes a new one and returns `pending` counted in it. */
  ensure(client: pg.ClientBase, pending: readonly PlannedChunk[]): Promise<readonly PlannedChunk[] | undefined>;
}

export interface ChunkLoopDeps {
  pool: pg.Pool;
  view: ChunkSource;
  ledger: Ledger;
  runId: string;
  source: SourceRef;
  columns: readonly ColumnSpec[];
  transform: Transform;
  /** The narrow boundary to the model (a Scorer, not tfjs): tests of the loop still use a real model. */
  scorer: Scorer;
  chunkSize: number;
  /** Attempts per chunk before a transient failure fails the run. */
  attempts: number;
  stop: StopSignal;
  log: Logger;
  timings: StageTimings;
  /** Records a failed attempt in the ledger (outside the rolled-back chunk transaction). */
  recordFailure(chunkNo: number, message: string): Promise<void>;
  /** After a connection loss: makes sure the ledger connection and the run lock are still ours. */
  recover(): Promise<void>;
  /** Checked in the chunk's transaction just before COMMIT: the run lock is still ours. */
  fence?(c: pg.ClientBase): Promise<void>;
  onChunkDone?(info: { chunkNo: number; scored: number; rejected: number }): void;
  /**
   * Statistics of the chunk just transformed that the transform gathered (feature counters), stored
   * beside its score statistics in score_chunks.stats, in the chunk's transaction. Called once per
   * attempt, right after `transform`.
   */
  chunkStats?(): Record<string, unknown>;
  /** Base backoff between attempts, ms (doubles each time). */
  backoffMs?: number;
  /** More output per chunk (reasons, src/job/reasons.ts), written in the chunk's transaction: exactly once with its scores. */
  sidecar?: ChunkSidecar | undefined;
}

/** Per-chunk output beside the scores, committed (or rolled back) with them. */
export interface ChunkSidecar {
  /** Right after scoring, before non-finite scores are taken out: row r of `x` gave `scores[r]`. */
  prepare(x: Float32Array, rows: number, scores: Float32Array): Promise<void>;
  /** In the chunk's transaction: `keys[0..accepted)` are the rows kept (finite scores), in order. */
  write(c: pg.ClientBase, keys: BigInt64Array, accepted: number): Promise<void>;
}

/**
 * Scores the given chunks in order. Reading chunk k+1 (one connection) overlaps transforming,
 * predicting and writing chunk k (another connection); two batches alternate, so memory is bounded
 * by two chunks whatever the table size. Each chunk's scores, rejects and "done" mark commit in one
 * transaction. Every chunk is read in the run's snapshot, and must read exactly the rows planned for it
 * there (a rewritten table reads empty). Returns false when stopped by a signal before all chunks were done.
 */
export async function runChunks(d: ChunkLoopDeps, planned: readonly PlannedChunk[]): Promise<boolean> {
  if (planned.length === 0) return true;
  /** Copies: a new snapshot recounts the chunks left. */
  const chunks = planned.map((c) => ({ ...c }));
  const capacity = Math.ceil(d.chunkSize * 1.25) + 64;
  const batches: ColumnBatch[] = [allocateBatch(d.columns, capacity), allocateBatch(d.columns, capacity)];
  let x = new Float32Array(capacity * d.scorer.inputWidth);
  let keys = new BigInt64Array(capacity);
  let encoded: Buffer | undefined;
  const table = d.ledger.runTable(d.runId);
  let reader: pg.PoolClient | undefined = await connect(d.pool, 'reader');
  let writer: pg.PoolClient | undefined = await connect(d.pool, 'writer');
  // Columns travel as stored when the reader decodes their type (see sourceWireTypes): less work for the server.
  const wire = await sourceWireTypes(reader, d.source, d.columns);
  let prefetch: { index: number; promise: Promise<ColumnBatch> } | undefined;
  let failures = 0;
  /** The last failure, recorded on the chunk once the ledger connection is back. */
  let pendingFailure: string | undefined;

  const read = (index: number): { index: number; promise: Promise<ColumnBatch> } => {
    const chunk = chunks[index] as PlannedChunk;
    const slot = index % 2;
    const client = reader as pg.PoolClient;
    // A transaction per chunk, in the run's snapshot: it holds its lock on the source only while it reads.
    const id = d.view.snapshotId;
    const sql = inSnapshotSql(client, id, chunkCopySql(d.source, d.columns, chunk.lo, chunk.hi, wire));
    const promise = readChunk(client, sql, batches[slot] as ColumnBatch, wire).then(
      (b) => (batches[slot] = b),
      async (err: unknown) => {
        await client.query('ROLLBACK').catch(() => undefined);
        throw snapshotError(err, id);
      },
    );
    promise.catch(() => undefined); // awaited below; never an unhandled rejection
    return { index, promise };
  };

  try {
    for (let i = 0; i < chunks.length; ) {
      if (d.stop.requested) return false;
      const chunk = chunks[i] as PlannedChunk;
      const startedAt = new Date();
      try {
        if (pendingFailure !== undefined || !reader || !writer) {
          // After a failure: inside the try, so a server still restarting counts as one more failed attempt.
          await d.recover();
          reader ??= await connect(d.pool, 'reader');
          writer ??= await connect(d.pool, 'writer');
          // A connection lost at COMMIT may have lost only the reply: the chunk can be done already.
          const committed = pendingFailure === undefined ? undefined : await d.ledger.doneChunk(writer, d.runId, chunk.chunkNo);
          if (committed) {
            pendingFailure = undefined;
            failures = 0;
            d.onChunkDone?.({ chunkNo: chunk.chunkNo, scored: committed.scored, rejected: committed.rejected });
            i++;
            continue;
          }
          if (pendingFailure !== undefined) await d.recordFailure(chunk.chunkNo, pendingFailure);
          pendingFailure = undefined;
          const recounted = await d.view.ensure(reader, chunks.slice(i));
          recounted?.forEach((c, k) => ((chunks[i + k] as PlannedChunk).rows = c.rows));
        }
        const current = prefetch?.index === i ? prefetch : read(i);
        prefetch = undefined;
        let t = performance.now();
        const batch = await current.promise;
        d.timings.add('read', performance.now() - t);
        if (i + 1 < chunks.length && !d.stop.requested) prefetch = read(i + 1);
        if (chunk.rows !== undefined && batch.rows !== chunk.rows) throw new ChunkCountError(chunk.chunkNo, d.source, batch.rows, chunk.rows, d.runId);

        if (batch.rows > keys.length) {
          keys = new BigInt64Array(batch.capacity);
          x = new Float32Array(batch.capacity * d.scorer.inputWidth);
        }
        const rejects: Reject[] = [];
        t = performance.now();
        const transformed = d.transform(batch, { x, keys }, rejects);
        d.timings.add('transform', performance.now() - t);
        t = performance.now();
        const scores = transformed > 0 ? await d.scorer.score(x, transformed) : new Float32Array(0);
        await d.sidecar?.prepare(x, transformed, scores);
        // A NaN or ±Infinity score is a reject, never a published score.
        const accepted = keepFiniteScores(keys, scores, transformed, rejects);
        d.timings.add('predict', performance.now() - t);
        const stats = emptyStats();
        accumulate(stats, scores, accepted);

        t = performance.now();
        encoded = encodeScores(keys, scores, accepted, encoded);
        const scoresBuffer = encoded;
        await withTransaction(writer as pg.PoolClient, async (w) => {
          await copyScores(w, table, scoresBuffer);
          await d.ledger.insertRejects(w, d.runId, rejects);
          await d.sidecar?.write(w, keys, accepted);
          const extra = d.chunkStats?.();
          const ours = await d.ledger.commitChunk(w, d.runId, { chunkNo: chunk.chunkNo, scored: accepted, rejected: rejects.length, startedAt, stats: extra ? { ...stats, ...extra } : stats });
          if (!ours) throw new RunFailedError(`run ${d.runId} is no longer running in this process (another process marked it); stopping`, d.runId);
          // The run lock must still be ours at COMMIT: the fence is the transaction's last statement.
          await d.fence?.(w);
        });
        d.timings.add('write', performance.now() - t);
        d.log.debug({ chunk: chunk.chunkNo, rows: batch.rows, scored: accepted, rejected: rejects.length }, `chunk ${chunk.chunkNo}/${chunks.at(-1)?.chunkNo} done`);
        d.onChunkDone?.({ chunkNo: chunk.chunkNo, scored: accepted, rejected: rejects.length });
        i++;
        failures = 0;
      } catch (err) {
        if (prefetch) await prefetch.promise.catch(() => undefined);
        prefetch = undefined;
        failures++;
        const message = describeDbError(err);
        // The reader may be mid-COPY and the writer mid-transaction: never reuse them after an error.
        reader?.release(true);
        writer?.release(true);
        reader = writer = undefined;
        // A lost snapshot is taken again (d.view.ensure) before the retry.
        const transient = isTransient(err) || err instanceof SnapshotLostError;
        if (!transient || failures >= d.attempts || d.stop.requested) {
          await d.recover().then(() => d.recordFailure(chunk.chunkNo, message)).catch(() => undefined);
          throw err;
        }
        const wait = (d.backoffMs ?? 500) * 2 ** (failures - 1);
        d.log.warn({ chunk: chunk.chunkNo, attempt: failures, retry_in_ms: wait, error: message, cause: (err as Error).message }, `chunk ${chunk.chunkNo} failed (${message}); retrying`);
        await new Promise((r) => setTimeout(r, wait));
        pendingFailure = message;
      }
    }
    return true;
  } finally {
    if (prefetch) await prefetch.promise.catch(() => undefined);
    reader?.release();
    writer?.release();
  }
}

function connect(pool: pg.Pool, role: string): Promise<pg.PoolClient> {
  return connectAs(pool, role);
}
