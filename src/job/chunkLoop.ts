import type pg from 'pg';
import { allocateBatch, type ColumnBatch, type ColumnSpec } from '../columns.js';
import { chunkCopySql, readChunk, sourceWireTypes, type SourceRef } from '../db/copyReader.js';
import { copyScores, encodeScores } from '../db/copyWriter.js';
import { describeDbError } from '../db/describeError.js';
import { connectAs } from '../db/pool.js';
import { withTransaction } from '../db/sql.js';
import { inSnapshotSql, snapshotError } from '../db/snapshot.js';
import { waitForDatabase } from '../db/waitForDatabase.js';
import { ChunkCountError, ModelError, OutageError, RunFailedError } from '../errors.js';
import type { Logger } from '../log.js';
import type { ModelInput, Reject } from '../model/features.js';
import { keepFiniteScores, type Scorer } from '../model/scorer.js';
import type { Ledger, PlannedChunk } from '../ledger/ledger.js';
import { accumulate, emptyStats, type ScoreStats } from '../stats/scoreStats.js';
import type { StageTimings } from '../observe/timings.js';
import { decideRetry, failureClass } from './retryPolicy.js';

/** The outage budget when none is given (README "Configuration", `--outage-budget`). */
export const defaultOutageBudgetMs = 60_000;

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
  /**
   * The outage budget, ms (`--outage-budget`): how long the loop waits for an unreachable database before
   * it fails the run. Waiting does not use up the chunk's attempts.
   */
  outageBudgetMs?: number;
  /** Told when the loop starts waiting for the database (the outage's start) and when it stops (undefined). */
  onWaiting?(since: number | undefined): void;
  /** The chunk whose failure fails the run, just before the loop throws (for the run's advice: its key range). */
  onFailed?(chunk: PlannedChunk): void;
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
  /** Each chunk's counted failed attempts in this loop, whatever stage failed (read, score, write, commit). */
  const attemptsOf = new Map<number, number>();
  /** After a failure: reconnect, settle the in-doubt commits, record the failure, before the next chunk. */
  let recovering = false;
  /** The last counted failure, recorded on its chunk once the ledger connection is back. */
  let pendingFailure: { chunkNo: number; message: string } | undefined;
  /**
   * Chunks whose write failed (by index): the COMMIT may have reached the server, and only the reply been
   * lost. The ledger settles them (score_chunks.status, and started_at as this attempt's token) before any
   * is written again.
   */
  const inDoubt = new Map<number, PreparedChunk>();

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
  let writing: { index: number; writer: number; slot: number; prepared: PreparedChunk; promise: Promise<PreparedChunk> }[] = [];
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

  /** Reconnects after a failure; settles the in-doubt commits from the ledger; records the failure; takes a lost snapshot again. */
  const recoverConnections = async (i: number): Promise<void> => {
    // Inside the loop's try: a server still restarting is one more failure, handled as any.
    await d.recover();
    reader ??= await connect(d.pool, 'reader');
    for (let k = 0; k < writerCount; k++) writers[k] ??= await connect(d.pool, 'writer');
    if (recovering) {
      for (const [index, p] of inDoubt) {
        const done = await d.ledger.doneChunk(writers[0] as pg.PoolClient, d.runId, p.chunkNo);
        if (!done) continue;
        committedAhead.add(index);
        // This attempt's commit landed (its start is the chunk's token): its scores count here. Another's (a shared run's worker that took it over): only its counts.
        if (done.startedAt.getTime() === p.startedAt.getTime()) finished(p);
        else d.onChunkDone?.({ chunkNo: p.chunkNo, scored: done.scored, rejected: done.rejected });
        d.log.info({ chunk: p.chunkNo }, `chunk ${p.chunkNo} was committed although its reply was lost: not written again`);
      }
      inDoubt.clear();
      const failed = pendingFailure;
      pendingFailure = undefined;
      if (failed && !chunks.some((c, k) => c.chunkNo === failed.chunkNo && committedAhead.has(k))) await d.recordFailure(failed.chunkNo, failed.message);
      recovering = false;
    }
    const recounted = await d.view.ensure(reader, chunks.slice(i));
    recounted?.forEach((c, k) => ((chunks[i + k] as PlannedChunk).rows = c.rows));
  };

  /**
   * After a failure: every write in flight settles (done, its chunk counts; failed, its commit is in
   * doubt until the ledger says); returns the error to judge (the lowest failed write's) and where to
   * start again (the lowest failed chunk), and closes the connections, which may be mid-COPY.
   */
  const settleAfterFailure = async (thrown: unknown): Promise<{ err: unknown; failedAt: number | undefined }> => {
    let err = thrown;
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
        continue;
      }
      inDoubt.set(w.index, w.prepared);
      if (failedAt === undefined) {
        failedAt = w.index;
        err = outcome.e;
      }
    }
    if (prefetch) await prefetch.promise.catch(() => undefined);
    prefetch = undefined;
    reader?.release(true);
    reader = undefined;
    writers.forEach((w, n) => {
      w?.release(true);
      writers[n] = undefined;
    });
    return { err, failedAt };
  };

  /**
   * Decides, after a failure of chunk `chunk`, whether to try it again (returns once it is time) or to fail
   * the run (throws). An unreachable database is waited for within the outage budget without using up the
   * chunk's attempts; a failure while the database answers counts as one of the chunk's attempts.
   */
  const afterFailure = async (chunk: PlannedChunk, err: unknown): Promise<void> => {
    const message = describeDbError(err);
    const failure = failureClass(err);
    let counted = failure !== 'connection';
    if (failure === 'connection' && !d.stop.requested) {
      const budgetMs = d.outageBudgetMs ?? defaultOutageBudgetMs;
      const probe = async () => {
        await d.recover();
        const c = await connect(d.pool, 'writer');
        c.release();
      };
      const waited = await waitForDatabase(probe, { budgetMs, onWaiting: (since) => onWaiting(chunk, since, message), stopping: () => d.stop.requested !== undefined }).catch((e: unknown) => {
        d.onFailed?.(chunk);
        throw failureClass(e) === 'connection' ? new OutageError(budgetMs / 1000, e) : e;
      });
      // The database answered at once: the connection loss was this chunk's own (its backend ended).
      counted = waited === 0;
    }
    const attempts = (attemptsOf.get(chunk.chunkNo) ?? 0) + (counted ? 1 : 0);
    attemptsOf.set(chunk.chunkNo, attempts);
    const decision = decideRetry({ failure, counted, attempts: attempts + (d.attemptsBefore?.(chunk.chunkNo) ?? 0), maxAttempts: d.attempts, backoffMs: d.backoffMs ?? 500, stopping: d.stop.requested !== undefined });
    if (decision.action === 'fail') {
      d.onFailed?.(chunk);
      await d.recover().then(() => d.recordFailure(chunk.chunkNo, message)).catch(() => undefined);
      throw err;
    }
    d.log.warn({ chunk: chunk.chunkNo, attempt: attempts, retry_in_ms: decision.waitMs, error: message, cause: (err as Error).message }, `chunk ${chunk.chunkNo} failed (${message}); retrying`);
    await new Promise((r) => setTimeout(r, decision.waitMs));
    recovering = true;
    if (counted) pendingFailure = { chunkNo: chunk.chunkNo, message };
  };
  const onWaiting = (chunk: PlannedChunk, since: number | undefined, message: string): void => {
    if (since !== undefined) d.log.warn({ chunk: chunk.chunkNo, error: message, outage_budget_s: (d.outageBudgetMs ?? defaultOutageBudgetMs) / 1000 }, `the database is unreachable (${message}); waiting for it (chunk ${chunk.chunkNo})`);
    else d.log.info({ chunk: chunk.chunkNo }, 'the database is back');
    d.onWaiting?.(since);
  };

  // Chunk i is scored while the writes of chunks i-1 and i-2 run, each in its own transaction on its own
  // connection (and chunk i+1 is read): the client's CPU (transform, predict) overlaps the server's, and
  // the server's COPY into the keyed table, the longest stage, runs on two of its backends. Each chunk
  // still commits whole or not at all; after a failure every write in flight settles, and the retry
  // starts from the lowest chunk that failed, skipping those that committed (in-doubt ones included).
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
        if (recovering || !reader || writers.some((w) => !w)) await recoverConnections(i);
        if (i >= chunks.length) {
          await drainAll();
          continue;
        }
        if (committedAhead.delete(i)) {
          i++;
          continue;
        }
        const prepared = await prepare(i);
        if (writing.length >= writerCount) await drainOne();
        const k = writers.findIndex((_, n) => !writing.some((w) => w.writer === n));
        const promise = write(prepared, writers[k] as pg.PoolClient);
        promise.catch(() => undefined); // awaited by drainOne (or the catch below); never an unhandled rejection
        writing.push({ index: i, writer: k, slot: prepared.slot, prepared, promise });
        i++;
      } catch (thrown) {
        const { err, failedAt } = await settleAfterFailure(thrown);
        if (failedAt !== undefined) i = failedAt;
        // A failure after the last chunk was handed off (reconnecting to drain): it is the last chunk's.
        const chunk = chunks[Math.min(i, chunks.length - 1)];
        if (!chunk) throw err;
        await afterFailure(chunk, err);
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
