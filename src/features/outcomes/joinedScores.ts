import type pg from 'pg';
import { allocateBatch, type BoolColumn, type Float8Column } from '../../columns.js';
import { readChunk } from '../../db/copyReader.js';
import { negative, unknown, type ScoredOutcomes } from '../../stats/outcomeFigures.js';
import { joinOutcomes } from './customerJoin.js';

/** How a run's scores and its window's outcome rows are read, and what a customer without an outcome counts as. */
export interface JoinedScoresRead {
  /** runScoresCopySql of the run. */
  scoresSql: string;
  /** windowOutcomesCopySql of the run's window. */
  outcomesSql: string;
  /** The run's bands: `names[k]` for `bounds[k-1] <= score < bounds[k]`; no bands without bounds. */
  bandNames: readonly string[];
  bandBounds: readonly number[] | null;
  /** Rows expected (the arrays are sized for it; they grow if there are more). */
  expectedRows: number;
  /** A mature run whose manifest says `absent: negative`: a customer without an outcome is a negative. */
  absentIsNegative: boolean;
}

/**
 * The run's scored customers with their outcomes, in typed arrays: its scores and its window's outcome rows
 * each streamed by binary COPY (no object per row; a million customers are about 30 MB), joined here by
 * customer (customerJoin.ts).
 */
export async function readJoinedScores(c: pg.ClientBase, read: JoinedScoresRead): Promise<ScoredOutcomes> {
  const capacity = Math.max(1024, read.expectedRows);
  const scored = await readChunk(c, read.scoresSql, allocateBatch([{ name: 'score', kind: 'float8' }], capacity), ['float4']);
  const outcomes = await readChunk(c, read.outcomesSql, allocateBatch([{ name: 'label', kind: 'bool' }], capacity), ['bool']);
  const label = outcomes.columns[0] as BoolColumn;
  const labels = joinOutcomes(scored.keys, scored.rows, { keys: outcomes.keys, rows: outcomes.rows, labels: label.values, nulls: label.nulls });
  if (read.absentIsNegative) for (let i = 0; i < scored.rows; i++) if (labels[i] === unknown) labels[i] = negative;
  const scores = (scored.columns[0] as Float8Column).values;
  return { rows: scored.rows, scores, labels, bands: bandsOf(scores, scored.rows, read), bandNames: read.bandNames };
}

/**
 * Each score's band index (-1: none), as customer_score_history computes its band:
 * `band_names[width_bucket(score::float8, band_bounds) + 1]`, the bucket being the number of bounds at or
 * below the score (a NaN above them all), and a bucket past the names no band.
 */
function bandsOf(scores: Float64Array, rows: number, read: JoinedScoresRead): Int32Array {
  const bands = new Int32Array(rows).fill(-1);
  const bounds = read.bandBounds;
  if (bounds === null) return bands;
  // A band is its name: two buckets of one name are one band.
  const band = read.bandNames.map((name) => read.bandNames.indexOf(name));
  for (let i = 0; i < rows; i++) {
    const score = scores[i]!;
    let k = 0;
    if (score !== score) k = bounds.length;
    else while (k < bounds.length && bounds[k]! <= score) k++;
    if (k < band.length) bands[i] = band[k]!;
  }
  return bands;
}
