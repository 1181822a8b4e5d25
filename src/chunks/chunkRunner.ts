import type pg from 'pg';
import { allocateBatch, type ColumnBatch } from '../columns.js';
import { chunkCopySql, readChunk, sourceWireTypes, type WireType } from '../db/copyReader.js';
import { copyScores, encodeScores } from '../db/copyWriter.js';
import { describeDbError } from '../db/describeError.js';
import { connectAs } from '../db/pool.js';
import { withTransaction } from '../db/sql.js';
import { inSnapshotSql, snapshotError } from '../db/snapshot.js';
import { ChunkCountError, ModelError, RunFailedError } from '../errors.js';
import type { PlannedChunk } from '../ledger/ledger.js';
import { nameRejectKeys, type Reject } from '../model/features.js';
import { keepFiniteScores } from '../model/scorer.js';
import { accumulate, emptyStats } from '../stats/scoreStats.js';
import type { ChunkLoopDeps } from './chunkLoop.js';
import { waitForChunkDatabase } from './chunkOutage.js';
import { decideRetry, failureClass } from './retryPolicy.js';
import { writerCount, type PreparedChunk, type Writing } from './preparedChunk.js';

/** One run of the chunk loop (runChunks): its buffers, connections, writes in flight and retry state. */
export class ChunkRunner {
  /** Copies: a new snapshot recounts the chunks left. */
  private readonly chunks: PlannedChunk[];
  private readonly batches: ColumnBatch[];
  private x: Float32Array;
  private keys: BigInt64Array;
  /** One encode buffer per write in flight and one for the chunk being encoded. */
  private readonly encoded: (Buffer | undefined)[] = new Array<Buffer | undefined>(writerCount + 1).fill(undefined);
  private readonly table: string;
  private reader: pg.PoolClient | undefined;
  private readonly writers: (pg.PoolClient | undefined)[] = [];
  private prefetch: { index: number; promise: Promise<ColumnBatch> } | undefined;
  /** The chunks whose write transactions are in flight (oldest first). */
  private writing: Writing[] = [];
  /** Chunks committed after a lower one failed (or found committed in doubt): the retry skips them. */
  private readonly committedAhead = new Set<number>();
  /** Each chunk's counted failed attempts in this loop, whatever stage failed (read, score, write, commit). */
  private readonly attemptsOf = new Map<number, number>();
  /** Each chunk's outages waited out (not attempts; bounded all the same, see decideRetry). */
  private readonly outagesOf = new Map<number, number>();
  /** After a failure: reconnect, settle the in-doubt commits, record the failure, before the next chunk. */
  private recovering = false;
  /** The last counted failure, recorded on its chunk once the ledger connection is back. */
  private pendingFailure: { chunkNo: number; message: string } | undefined;
  /**
   * Chunks whose write failed (by index): the COMMIT may have reached the server and only the reply been
   * lost. The ledger settles them (score_chunks.status, and started_at as the attempt's token) before any
   * is written again.
   */
  private readonly inDoubt = new Map<number, PreparedChunk>();

  private constructor(
    private readonly d: ChunkLoopDeps,
    planned: readonly PlannedChunk[],
    private readonly wire: readonly WireType[],
    reader: pg.PoolClient,
    writers: pg.PoolClient[],
  ) {
    this.chunks = planned.map((c) => ({ ...c }));
    const capacity = Math.ceil(d.chunkSize * 1.25) + 64;
    this.batches = [allocateBatch(d.columns, capacity, d.source.keyType), allocateBatch(d.columns, capacity, d.source.keyType)];
    this.x = new Float32Array(capacity * d.scorer.inputWidth);
    this.keys = new BigInt64Array(capacity);
    this.table = d.ledger.runTable(d.runId);
    this.reader = reader;
    this.writers.push(...writers);
  }

  static async open(d: ChunkLoopDeps, planned: readonly PlannedChunk[]): Promise<ChunkRunner> {
    const reader = await connectAs(d.pool, 'reader');
    const writers: pg.PoolClient[] = [];
    try {
      for (let k = 0; k < writerCount; k++) writers.push(await connectAs(d.pool, 'writer'));
      // Columns travel as stored when the reader decodes their type (see sourceWireTypes): less work for the server.
      const wire = await sourceWireTypes(reader, d.source, d.columns);
      return new ChunkRunner(d, planned, wire, reader, writers);
    } catch (err) {
      reader.release();
      for (const w of writers) w.release();
      throw err;
    }
  }

  // Chunk i is scored while the writes of chunks i-1 and i-2 run, each in its own transaction on its own
  // connection (and chunk i+1 is read): the client's CPU (transform, predict) overlaps the server's, and
  // the server's COPY into the keyed table, the longest stage, runs on two of its backends. Each chunk
  // still commits whole or not at all; after a failure every write in flight settles, and the retry
  // starts from the lowest chunk that failed, skipping those that committed (in-doubt ones included).
  async run(): Promise<boolean> {
    const { d, chunks } = this;
    let i = 0;
    try {
      for (;;) {
        // A shared run (claimLoop.ts) claims its next chunk when the ones it holds are all started.
        if (i === chunks.length && d.more && !d.stop.requested) {
          const next = await d.more();
          if (next) chunks.push({ ...next });
        }
        if (i >= chunks.length && this.writing.length === 0) break;
        try {
          if (d.stop.requested) {
            await this.drainAll();
            return false;
          }
          if (this.recovering || !this.reader || this.writers.some((w) => !w)) await this.recoverConnections(i);
          if (i >= chunks.length) {
            await this.drainAll();
            continue;
          }
          if (this.committedAhead.delete(i)) {
            i++;
            continue;
          }
          await this.handOff(i, await this.prepare(i));
          i++;
        } catch (thrown) {
          const { err, failedAt } = await this.settleAfterFailure(thrown);
          if (failedAt !== undefined) i = failedAt;
          // A failure after the last chunk was handed off (reconnecting to drain): it is the last chunk's.
          const chunk = chunks[Math.min(i, chunks.length - 1)];
          if (!chunk) throw err;
          await this.afterFailure(chunk, err);
        }
      }
      return true;
    } finally {
      for (const w of this.writing) await w.promise.catch(() => undefined);
      if (this.prefetch) await this.prefetch.promise.catch(() => undefined);
      this.reader?.release();
      for (const w of this.writers) w?.release();
    }
  }

  /** Starts chunk i's write on a free writer (waiting for the oldest write when none is free). */
  private async handOff(i: number, prepared: PreparedChunk): Promise<void> {
    if (this.writing.length >= writerCount) await this.drainOne();
    const k = this.writers.findIndex((_, n) => !this.writing.some((w) => w.writer === n));
    const promise = this.write(prepared, this.writers[k] as pg.PoolClient);
    promise.catch(() => undefined); // awaited by drainOne (or settleAfterFailure); never an unhandled rejection
    this.writing.push({ index: i, writer: k, prepared, promise });
  }

  private read(index: number): { index: number; promise: Promise<ColumnBatch> } {
    const { d } = this;
    const chunk = this.chunks[index] as PlannedChunk;
    const slot = index % 2;
    const client = this.reader as pg.PoolClient;
    // A transaction per chunk, in the run's snapshot: it holds its lock on the source only while it reads.
    const id = d.view.snapshotId;
    const sql = inSnapshotSql(client, id, chunkCopySql(d.source, d.columns, chunk.lo, chunk.hi, this.wire));
    const promise = readChunk(client, sql, this.batches[slot] as ColumnBatch, this.wire).then(
      (b) => (this.batches[slot] = b),
      async (err: unknown) => {
        await client.query('ROLLBACK').catch(() => undefined);
        throw snapshotError(err, id);
      },
    );
    promise.catch(() => undefined); // awaited in prepare; never an unhandled rejection
    return { index, promise };
  }

  private finished(p: PreparedChunk): void {
    this.d.log.debug(
      { chunk: p.chunkNo, rows: p.rows, scored: p.scored, rejected: p.rejects.length },
      `chunk ${p.chunkNo}/${this.chunks.at(-1)?.chunkNo} done`,
    );
    this.d.onScoresCommitted?.(p.scores, p.scored);
    this.d.onChunkDone?.({ chunkNo: p.chunkNo, scored: p.scored, rejected: p.rejects.length });
  }

  /** Reads (the read-ahead), transforms, scores and encodes chunk i into a free encode buffer; writes nothing. */
  private async prepare(i: number): Promise<PreparedChunk> {
    const { d, chunks } = this;
    const chunk = chunks[i] as PlannedChunk;
    const startedAt = new Date();
    const current = this.prefetch?.index === i ? this.prefetch : this.read(i);
    this.prefetch = undefined;
    let t = performance.now();
    const batch = await current.promise;
    d.timings.add('read', performance.now() - t);
    if (i + 1 === chunks.length && d.more && !d.stop.requested) {
      // A shared run claims the next chunk now, so that its read overlaps this one's scoring as in a run of its own.
      const next = await d.more();
      if (next) chunks.push({ ...next });
    }
    if (i + 1 < chunks.length && !d.stop.requested) this.prefetch = this.read(i + 1);
    if (chunk.rows !== undefined && batch.rows !== chunk.rows) throw new ChunkCountError(chunk.chunkNo, d.source, batch.rows, chunk.rows, d.runId);

    if (batch.rows > this.keys.length) {
      this.keys = new BigInt64Array(batch.capacity);
      this.x = new Float32Array(batch.capacity * d.scorer.inputWidth);
    }
    const { x, keys } = this;
    const rejects: Reject[] = [];
    t = performance.now();
    const transformed = d.transform(batch, { x, keys }, rejects);
    // Taken now: the next chunk's transform resets the counters while this chunk is still being written.
    const extra = d.chunkStats?.();
    d.timings.add('transform', performance.now() - t);
    t = performance.now();
    let scores: Float32Array;
    try {
      scores = transformed > 0 ? await d.scorer.score(x, transformed) : new Float32Array(0);
      await d.sidecar?.prepare(x, transformed, scores, batch);
    } catch (err) {
      // The model backend refused this chunk's input (a shape, an index out of range): no retry cures that.
      throw new ModelError(chunk.chunkNo, err);
    }
    // A NaN or ±Infinity score is a reject, never a published score.
    const accepted = keepFiniteScores(keys, scores, transformed, rejects);
    if (batch.keyBytes) nameRejectKeys(rejects, batch.keyBytes);
    const side = d.sidecar?.seal(keys, accepted, chunk.chunkNo);
    d.timings.add('predict', performance.now() - t);
    const stats = emptyStats();
    accumulate(stats, scores, accepted);
    // keys and x are free again once encoded: the next chunk is scored while this one's buffer is written.
    const slot = this.encoded.findIndex((_, k) => !this.writing.some((w) => w.prepared.slot === k));
    const buf = (this.encoded[slot] = encodeScores(keys, scores, accepted, this.encoded[slot], batch.keyBytes));
    return {
      chunkNo: chunk.chunkNo,
      rows: batch.rows,
      startedAt,
      slot,
      encoded: buf,
      scores,
      scored: accepted,
      rejects,
      stats: extra ? { ...stats, ...extra } : stats,
      side,
    };
  }

  /** The chunk's scores, rejects and "done" mark in one transaction on the given writer. */
  private async write(p: PreparedChunk, writer: pg.PoolClient): Promise<PreparedChunk> {
    const { d } = this;
    const t = performance.now();
    await withTransaction(writer, async (w) => {
      await copyScores(w, this.table, p.encoded);
      await d.ledger.insertRejects(w, d.runId, p.rejects, d.source.keyType);
      await p.side?.(w);
      const ours = await d.ledger.commitChunk(w, d.runId, {
        chunkNo: p.chunkNo,
        scored: p.scored,
        rejected: p.rejects.length,
        startedAt: p.startedAt,
        stats: p.stats,
      });
      if (!ours) throw new RunFailedError(`run ${d.runId} is no longer running in this process (another process marked it); stopping`, d.runId);
      // The run lock must still be ours at COMMIT: the fence is the transaction's last statement.
      await d.fence?.(w, p.chunkNo);
    });
    d.timings.add('write', performance.now() - t);
    return p;
  }

  /** Waits for the oldest write in flight; the chunks are reported done in their order. */
  private async drainOne(): Promise<void> {
    const oldest = this.writing[0];
    if (!oldest) return;
    const t = performance.now();
    const p = await oldest.promise;
    this.d.timings.add('writeWait', performance.now() - t);
    this.writing.shift();
    this.finished(p);
  }

  private async drainAll(): Promise<void> {
    while (this.writing.length > 0) await this.drainOne();
  }

  /** Reconnects after a failure; settles the in-doubt commits from the ledger; records the failure; takes a lost snapshot again. */
  private async recoverConnections(i: number): Promise<void> {
    const { d, chunks } = this;
    // Inside the loop's try: a server still restarting is one more failure, handled as any.
    await d.recover();
    this.reader ??= await connectAs(d.pool, 'reader');
    for (let k = 0; k < writerCount; k++) this.writers[k] ??= await connectAs(d.pool, 'writer');
    if (this.recovering) {
      await this.settleInDoubt(this.writers[0] as pg.PoolClient);
      const failed = this.pendingFailure;
      this.pendingFailure = undefined;
      if (failed && !chunks.some((c, k) => c.chunkNo === failed.chunkNo && this.committedAhead.has(k))) await d.recordFailure(failed.chunkNo, failed.message);
      this.recovering = false;
    }
    const recounted = await d.view.ensure(this.reader, chunks.slice(i));
    recounted?.forEach((c, k) => ((chunks[i + k] as PlannedChunk).rows = c.rows));
  }

  /** Asks the ledger about every chunk whose commit is in doubt: one that is done is never written again. */
  private async settleInDoubt(c: pg.ClientBase): Promise<void> {
    const { d } = this;
    for (const [index, p] of this.inDoubt) {
      const done = await d.ledger.doneChunk(c, d.runId, p.chunkNo);
      if (!done) continue;
      this.committedAhead.add(index);
      // This attempt's commit landed (its start is the token): its scores count here. Another's (a shared run's worker that took it over): only its counts.
      if (done.startedAt.getTime() === p.startedAt.getTime()) this.finished(p);
      else d.onChunkDone?.({ chunkNo: p.chunkNo, scored: done.scored, rejected: done.rejected });
      d.log.info({ chunk: p.chunkNo }, `chunk ${p.chunkNo} was committed although its reply was lost: not written again`);
    }
    this.inDoubt.clear();
  }

  /**
   * After a failure: every write in flight settles (done, its chunk counts; failed, its commit is in
   * doubt until the ledger says); returns the error to judge (the lowest failed write's) and where to
   * start again (the lowest failed chunk), and closes the connections, which may be mid-COPY.
   */
  private async settleAfterFailure(thrown: unknown): Promise<{ err: unknown; failedAt: number | undefined }> {
    let err = thrown;
    const settled = this.writing;
    this.writing = [];
    let failedAt: number | undefined;
    for (const w of settled) {
      const outcome = await w.promise.then(
        (p) => ({ p }),
        (e: unknown) => ({ e }),
      );
      if ('p' in outcome) {
        this.finished(outcome.p);
        if (failedAt !== undefined) this.committedAhead.add(w.index);
        continue;
      }
      this.inDoubt.set(w.index, w.prepared);
      if (failedAt === undefined) {
        failedAt = w.index;
        err = outcome.e;
      }
    }
    if (this.prefetch) await this.prefetch.promise.catch(() => undefined);
    this.prefetch = undefined;
    // The reader may be mid-COPY and a writer mid-transaction: never reuse them after an error.
    this.reader?.release(true);
    this.reader = undefined;
    this.writers.forEach((w, n) => {
      w?.release(true);
      this.writers[n] = undefined;
    });
    return { err, failedAt };
  }

  /**
   * Decides, after a failure of `chunk`, whether to try it again (returns once it is time) or to fail the
   * run (throws). An unreachable database is waited for within the outage budget without using up the
   * chunk's attempts; a failure while the database answers counts as one of the chunk's attempts.
   */
  private async afterFailure(chunk: PlannedChunk, err: unknown): Promise<void> {
    const { d } = this;
    const message = describeDbError(err);
    const failure = failureClass(err);
    let counted = failure !== 'connection';
    if (failure === 'connection' && !d.stop.requested) {
      // The database answered at once: the connection loss was this chunk's own (its backend ended).
      counted = (await waitForChunkDatabase(this.d, chunk, message)) === 0;
    }
    const attempts = (this.attemptsOf.get(chunk.chunkNo) ?? 0) + (counted ? 1 : 0);
    this.attemptsOf.set(chunk.chunkNo, attempts);
    const outages = (this.outagesOf.get(chunk.chunkNo) ?? 0) + (counted ? 0 : 1);
    this.outagesOf.set(chunk.chunkNo, outages);
    const before = d.attemptsBefore?.(chunk.chunkNo) ?? 0;
    const decision = decideRetry({
      failure,
      counted,
      attempts: attempts + before,
      outages,
      maxAttempts: d.attempts,
      backoffMs: d.backoffMs ?? 500,
      stopping: d.stop.requested !== undefined,
    });
    if (decision.action === 'fail') {
      d.onFailed?.(chunk);
      await d
        .recover()
        .then(() => d.recordFailure(chunk.chunkNo, message))
        .catch(() => undefined);
      throw err;
    }
    d.log.warn(
      { chunk: chunk.chunkNo, attempt: attempts, retry_in_ms: decision.waitMs, error: message, cause: (err as Error).message },
      `chunk ${chunk.chunkNo} failed (${message}); retrying`,
    );
    await new Promise((r) => setTimeout(r, decision.waitMs));
    this.recovering = true;
    if (counted) this.pendingFailure = { chunkNo: chunk.chunkNo, message };
  }
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
  return (await ChunkRunner.open(d, planned)).run();
}
