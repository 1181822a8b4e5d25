import type pg from 'pg';
import type { ColumnBatch, ColumnSpec } from '../columns.js';
import type { SourceRef } from '../db/copyReader.js';
import type { Logger } from '../log.js';
import type { ModelInput, Reject } from '../model/features.js';
import type { Scorer } from '../model/scorer.js';
import type { Ledger, PlannedChunk } from '../ledger/ledger.js';
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
  /**
   * The outage budget, ms (`--outage-budget`): how long the loop waits for an unreachable database before
   * it fails the run. Waiting does not use up the chunk's attempts.
   */
  outageBudgetMs?: number;
  /** Told when the loop starts waiting for the database (the outage's start) and when it stops (undefined). */
  onWaiting?(since: number | undefined): void;
  /** The chunk whose failure fails the run, just before the loop throws (for the run's advice: its key range). */
  onFailed?(chunk: PlannedChunk): void;
  /** More output per chunk (a run feature's, src/features/feature.ts `chunkRead`), written in the chunk's transaction: exactly once with its scores. */
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
   * transforms the columns itself (a second model's).
   */
  prepare(x: Float32Array, rows: number, scores: Float32Array, batch: ColumnBatch): Promise<void>;
  /**
   * Once the non-finite scores are out (`keys[0..accepted)` are the rows kept, in order): encodes what
   * `prepare` computed into a buffer of the chunk's own (the next chunk is prepared while this one is
   * written) and returns its write, run in the chunk's transaction (chunk `chunkNo`).
   */
  seal(keys: BigInt64Array, accepted: number, chunkNo: number): (c: pg.ClientBase) => Promise<void>;
}
