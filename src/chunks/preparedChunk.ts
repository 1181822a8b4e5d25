import type pg from 'pg';
import type { Reject } from '../model/features.js';
import type { ScoreStats } from '../stats/scoreStats.js';

/** A chunk scored and encoded, waiting for (or in) its write transaction. */
export interface PreparedChunk {
  chunkNo: number;
  rows: number;
  /** When this attempt began: written as the chunk's started_at, it is the attempt's token in the ledger. */
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

/** A write transaction in flight, on its own writer. */
export interface Writing {
  index: number;
  writer: number;
  prepared: PreparedChunk;
  promise: Promise<PreparedChunk>;
}

/**
 * Write transactions in flight at once. Two: the COPY into the run's keyed table is the longest stage
 * (its index build is server CPU), and with one writer the loop waited on it while a core idled.
 */
export const writerCount = 2;
