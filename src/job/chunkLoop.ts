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
import { accumulate, emptyStats, type ScoreStats } from '../stats/scoreStats.js';
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
  /** Shared runs: the chunk's attempts on other workers before this one took it (they count against `attempts`). */
  attemptsBefore?(chunkNo: number): number;
  stop: StopSignal;
  log: Logger;
  timings: StageTimings;
  /** Records a failed attempt in the ledger (outside the rolled-back chunk transaction). */
  recordFailure(chunkNo: number, message: string): Promise<void>;
  /** After a connection loss: makes sure the ledger connection and the run lock are still ours. */
  recover(): Promise<void>;
  /** Checked in the chunk's transaction just before COMMIT: the run lock (and, in a shared run, the chunk's claim) is still ours. */
  fence?(c: pg.ClientBase, chunkNo: number): Promise<void>;
  /** Shared runs (claimLoop.ts): the next chunk, claimed when the given ones run out; undefined when none is free. */
  more?(): Promise<PlannedChunk | undefined>;
  onChunkDone?(info: { chunkNo: number; scored: number; rejected: number }): void;
  /**
   * Statistics of the chunk just transformed that the transform gathered (feature counters), stored
   * beside its score statistics in score_chunks.stats, in the chunk's transaction. Called once per
   * attempt, right after `transform`.
   */
  chunkStats?(): Record<string, unknown>;
  /** A committed chunk's scores (the first `rows`, finite), exactly once per chunk committed by this loop. */
  onScoresCommitted?(scores: Float32Array, rows: number): void;
  /** Base backoff between attempts, ms (doubles each time). */
  backoffMs?: number;
  /** More output per chunk (reasons, src/job/reasons.ts; a challenger's scores, src/job/challenger.ts), written in the chunk's transaction: exactly once with its scores. */
  sidecar?: ChunkSidecar | undefined;
}

/** Several sidecars as one: prepared and written in the given order, in the chunk's transaction. */
export function combineSidecars(parts: readonly (ChunkSidecar | undefined)[]): ChunkSidecar | undefined {
  const all = parts.filter((p): p is ChunkSidecar => p !== undefined);
  if (all.length <= 1) return all[0];
  return {
    async prepare(x, rows, scores, batch) {
      for (const p of all) await p.prepare(x, rows, scores, batch);
    },
    seal(keys, accepted, chunkNo) {
      const writes = all.map((p) => p.seal(keys, accepted, chunkNo));
      return async (c) => {
        for (const w of writes) await w(c);
      };
    },
  };
}

/** Per-chunk output beside the scores, committed (or rolled back) with them. */
export interface ChunkSidecar {
  /**
   * Right after scoring, before non-finite scores are taken out: row r of `x` gave `scores[r]`. `batch` is
   * the chunk as decoded (valid until prepare returns: the next read reuses it), for a sidecar that
   * transforms the columns itself (a challenger model, src/job/challenger.ts).
   */
  prepare(x: Float32Array, rows: number, scores: Float32Array, batch: ColumnBatch): Promise<void>;
  /**
   * Once the non-finite scores are out (`keys[0..accepted)` are the rows kept, in order): encodes what
   * `prepare` computed into a buffer of the chunk's own (the next chunk is prepared while this one is
   * written) and returns its write, run in the chunk's transaction (chunk `chunkNo`).
   */
  seal(keys: BigInt64Array, accepted: number, chunkNo: number): (c: pg.ClientBase) => Promise<void>;
}

/**
 * Scores the given chunks in order. Reading chunk k+1 (one connection) overlaps transforming,
 * predicting and writing chunk k (another connection); two batches alternate, so memory is bounded
 * by two chunks whatever the table size. Each chunk's scores, rejects and "done" mark commit in one
 * transaction. Every chunk is read in the run's snapshot, and must read exactly the rows planned for it
 * there (a rewritten table reads empty). Returns false when stopped by a signal before all chunks were done.
 */
export async function runChunks(d: ChunkLoopDeps, planned: readonly PlannedChunk[]): Promise<boolean> {
  if (planned.length === 0 && !d.more) return true;
  /** Copies: a new snapshot recounts the chunks left. */
  const chunks = planned.map((c) => ({ ...c }));
  const capacity = Math.ceil(d.chunkSize * 1.25) + 64;
  const batches: ColumnBatch[] = [allocateBatch(d.columns, capacity), allocateBatch(d.columns, capacity)];
  let x = new Float32Array(capacity * d.scorer.inputWidth);
  let keys = new BigInt64Array(capacity);
  /** One encode buffer per write in flight and one for the chunk being encoded. */
  const encoded: (Buffer | undefined)[] = new Array<Buffer | undefined>(writerCount + 1).fill(undefined);
  const table = d.ledger.runTable(d.runId);
  let reader: pg.PoolClient | undefined = await connect(d.pool, 'reader');
  const writers: (pg.PoolClient | undefined)[] = [];
  for (let k = 0; k < writerCount; k++) writers.push(await connect(d.pool, 'writer'));
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

  /** The chunks whose write transactions are in flight (oldest first), each on its own writer. */
  let writing: { index: number; writer: number; slot: number; promise: Promise<PreparedChunk> }[] = [];
  /** Chunks committed after a lower one failed: the retry from the failed one skips them. */
  const committedAhead = new Set<number>();
  const finished = (p: PreparedChunk): void => {
    d.log.debug({ chunk: p.chunkNo, rows: p.rows, scored: p.scored, rejected: p.rejects.length }, `chunk ${p.chunkNo}/${chunks.at(-1)?.chunkNo} done`);
    d.onScoresCommitted?.(p.scores, p.scored);
    d.onChunkDone?.({ chunkNo: p.chunkNo, scored: p.scored, rejected: p.rejects.length });
  };

  /** Reads (the read-ahead), transforms, scores and encodes chunk i into a free encode buffer; writes nothing. */
  const prepare = async (i: number): Promise<PreparedChunk> => {
    const chunk = chunks[i] as PlannedChunk;
    const startedAt = new Date();
    const current = prefetch?.index === i ? prefetch : read(i);
    prefetch = undefined;
    let t = performance.now();
    const batch = await current.promise;
    d.timings.add('read', performance.now() - t);
    if (i + 1 === chunks.length && d.more && !d.stop.requested) {
      // A shared run claims the next chunk now, so that its read overlaps this one's scoring as in a run of its own.
      const next = await d.more();
      if (next) chunks.push({ ...next });
    }
    if (i + 1 < chunks.length && !d.stop.requested) prefetch = read(i + 1);
    if (chunk.rows !== undefined && batch.rows !== chunk.rows) throw new ChunkCountError(chunk.chunkNo, d.source, batch.rows, chunk.rows, d.runId);

    if (batch.rows > keys.length) {
      keys = new BigInt64Array(batch.capacity);
      x = new Float32Array(batch.capacity * d.scorer.inputWidth);
    }
    const rejects: Reject[] = [];
    t = performance.now();
    const transformed = d.transform(batch, { x, keys }, rejects);
    // Taken now: the next chunk's transform resets the counters while this chunk is still being written.
    const extra = d.chunkStats?.();
    d.timings.add('transform', performance.now() - t);
    t = performance.now();
    const scores = transformed > 0 ? await d.scorer.score(x, transformed) : new Float32Array(0);
    await d.sidecar?.prepare(x, transformed, scores, batch);
    // A NaN or ±Infinity score is a reject, never a published score.
    const accepted = keepFiniteScores(keys, scores, transformed, rejects);
    const side = d.sidecar?.seal(keys, accepted, chunk.chunkNo);
    d.timings.add('predict', performance.now() - t);
    const stats = emptyStats();
    accumulate(stats, scores, accepted);
    // keys and x are free again once encoded: the next chunk is scored while this one's buffer is written.
    const slot = encoded.findIndex((_, k) => !writing.some((w) => w.slot === k));
    const buf = (encoded[slot] = encodeScores(keys, scores, accepted, encoded[slot]));
    return { chunkNo: chunk.chunkNo, rows: batch.rows, startedAt, slot, encoded: buf, scores, scored: accepted, rejects, stats: extra ? { ...stats, ...extra } : stats, side };
  };

  /** The chunk's scores, rejects and "done" mark in one transaction on the given writer. */
  const write = async (p: PreparedChunk, writer: pg.PoolClient): Promise<PreparedChunk> => {
    const t = performance.now();
    await withTransaction(writer, async (w) => {
      await copyScores(w, table, p.encoded);
      await d.ledger.insertRejects(w, d.runId, p.rejects);
      await p.side?.(w);
      const ours = await d.ledger.commitChunk(w, d.runId, { chunkNo: p.chunkNo, scored: p.scored, rejected: p.rejects.length, startedAt: p.startedAt, stats: p.stats });
      if (!ours) throw new RunFailedError(`run ${d.runId} is no longer running in this process (another process marked it); stopping`, d.runId);
      // The run lock must still be ours at COMMIT: the fence is the transaction's last statement.
      await d.fence?.(w, p.chunkNo);
    });
    d.timings.add('write', performance.now() - t);
    return p;
  };

  /** Waits for the oldest write in flight; the chunks are reported done in their order. */
  const drainOne = async (): Promise<void> => {
    const oldest = writing[0];
    if (!oldest) return;
    const t = performance.now();
    const p = await oldest.promise;
    d.timings.add('writeWait', performance.now() - t);
    writing.shift();
    finished(p);
  };
  const drainAll = async (): Promise<void> => {
    while (writing.length > 0) await drainOne();
  };

  // Chunk i is scored while the writes of chunks i-1 and i-2 run, each in its own transaction on its own
  // connection (and chunk i+1 is read): the client's CPU (transform, predict) overlaps the server's, and
  // the server's COPY into the keyed table, the longest stage, runs on two of its backends. Each chunk
  // still commits whole or not at all; after a failure every write in flight settles, and the retry
  // starts from the lowest chunk that failed, skipping those that committed.
  let i = 0;
  try {
    for (;;) {
      // A shared run (claimLoop.ts) claims its next chunk when the ones it holds are all started.
      if (i === chunks.length && d.more && !d.stop.requested) {
        const next = await d.more();
        if (next) chunks.push({ ...next });
      }
      if (i >= chunks.length && writing.length === 0) break;
      try {
        if (d.stop.requested) {
          await drainAll();
          return false;
        }
        if (i >= chunks.length) {
          await drainAll();
          continue;
        }
        if (committedAhead.delete(i)) {
          i++;
          continue;
        }
        const chunk = chunks[i] as PlannedChunk;
        if (pendingFailure !== undefined || !reader || writers.some((w) => !w)) {
          // After a failure: inside the try, so a server still restarting counts as one more failed attempt.
          await d.recover();
          reader ??= await connect(d.pool, 'reader');
          for (let k = 0; k < writerCount; k++) writers[k] ??= await connect(d.pool, 'writer');
          // A connection lost at COMMIT may have lost only the reply: the chunk can be done already.
          const committed = pendingFailure === undefined ? undefined : await d.ledger.doneChunk(writers[0] as pg.PoolClient, d.runId, chunk.chunkNo);
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
        const prepared = await prepare(i);
        if (writing.length >= writerCount) await drainOne();
        const k = writers.findIndex((_, n) => !writing.some((w) => w.writer === n));
        const promise = write(prepared, writers[k] as pg.PoolClient);
        promise.catch(() => undefined); // awaited by drainOne (or the catch below); never an unhandled rejection
        writing.push({ index: i, writer: k, slot: prepared.slot, promise });
        i++;
        failures = 0;
      } catch (thrown) {
        let err = thrown;
        // The writes in flight settle first: done, their chunks count; failed, the retry starts from the lowest.
        const settled = writing;
        writing = [];
        let failedAt: number | undefined;
        for (const w of settled) {
          const outcome = await w.promise.then(
            (p) => ({ p }),
            (e: unknown) => ({ e }),
          );
          if ('p' in outcome) {
            finished(outcome.p);
            if (failedAt !== undefined) committedAhead.add(w.index);
          } else if (failedAt === undefined) {
            failedAt = w.index;
            err = outcome.e;
          }
        }
        if (failedAt !== undefined) i = failedAt;
        if (prefetch) await prefetch.promise.catch(() => undefined);
        prefetch = undefined;
        failures++;
        const chunk = chunks[i] as PlannedChunk;
        const message = describeDbError(err);
        // The reader may be mid-COPY and a writer mid-transaction: never reuse them after an error.
        reader?.release(true);
        reader = undefined;
        writers.forEach((w, n) => {
          w?.release(true);
          writers[n] = undefined;
        });
        // A lost snapshot is taken again (d.view.ensure) before the retry.
        const transient = isTransient(err) || err instanceof SnapshotLostError;
        if (!transient || failures + (d.attemptsBefore?.(chunk.chunkNo) ?? 0) >= d.attempts || d.stop.requested) {
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
    for (const w of writing) await w.promise.catch(() => undefined);
    if (prefetch) await prefetch.promise.catch(() => undefined);
    reader?.release();
    for (const w of writers) w?.release();
  }
}

/** A chunk scored and encoded, waiting for (or in) its write transaction. */
interface PreparedChunk {
  chunkNo: number;
  rows: number;
  startedAt: Date;
  /** Its encode buffer's index (busy until the write settles). */
  slot: number;
  encoded: Buffer;
  /** The scorer's array (new for each chunk): the first `scored` are the chunk's finite scores. */
  scores: Float32Array;
  scored: number;
  rejects: Reject[];
  stats: ScoreStats;
  /** The sidecar's write of this chunk (reasons), in its transaction. */
  side?: ((c: pg.ClientBase) => Promise<void>) | undefined;
}

/**
 * Write transactions in flight at once. Two: the COPY into the run's keyed table is the longest stage
 * (its index build is server CPU), and with one writer the loop waited on it while a core idled.
 */
const writerCount = 2;

function connect(pool: pg.Pool, role: string): Promise<pg.PoolClient> {
  return connectAs(pool, role);
}
