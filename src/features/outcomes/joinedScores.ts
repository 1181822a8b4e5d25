import type pg from 'pg';
import { allocateBatch, type BoolColumn, type CategoryColumn, type Float8Column } from '../../columns.js';
import { readChunk } from '../../db/copyReader.js';
import { negative, positive, unknown, type ScoredOutcomes } from '../../stats/outcomeFigures.js';

/** How the rows of joinedScoresCopySql are read, and what a customer without an outcome counts as. */
export interface JoinedScoresRead {
  /** joinedScoresCopySql of the run. */
  sql: string;
  /** The run's band names: the band column is matched against them while decoding (no string per row). */
  bandNames: readonly string[];
  /** Rows expected (the arrays are sized for it; they grow if there are more). */
  expectedRows: number;
  /** A mature run whose manifest says `absent: negative`: a customer without an outcome is a negative. */
  absentIsNegative: boolean;
}

/**
 * Streams the run's scored customers with their outcomes by binary COPY into typed arrays: a million rows
 * are about 25 MB, and no object per row. A customer with several outcome rows in the window counts once.
 */
export async function readJoinedScores(c: pg.ClientBase, read: JoinedScoresRead): Promise<ScoredOutcomes> {
  const specs = [
    { name: 'score', kind: 'float8' as const },
    { name: 'band', kind: 'category' as const, categories: read.bandNames },
    { name: 'label', kind: 'bool' as const },
  ];
  const batch = await readChunk(c, read.sql, allocateBatch(specs, Math.max(1024, read.expectedRows)), ['float4', 'text', 'bool']);
  const [score, band, label] = batch.columns as [Float8Column, CategoryColumn, BoolColumn];
  const labels = new Uint8Array(batch.rows);
  for (let i = 0; i < batch.rows; i++) labels[i] = label.nulls[i] === 1 ? unknown : label.values[i]!;
  const bands = band.codes;
  for (let i = 0; i < batch.rows; i++) {
    if (band.nulls[i] === 1) bands[i] = -1;
    else if (bands[i] === -1) throw new Error(`a scored customer's band is none of the run's band names (${read.bandNames.join(', ')})`);
  }
  const joined = { rows: batch.rows, scores: score.values, labels, bands, bandNames: read.bandNames };
  joined.rows = oneRowPerCustomer(batch.keys, joined);
  if (read.absentIsNegative) for (let i = 0; i < joined.rows; i++) if (labels[i] === unknown) labels[i] = negative;
  return joined;
}

/**
 * Makes the rows of a customer with several outcome rows one, its outcome as bool_or of theirs (positive if
 * any is, else negative if any is, else none), keeping the arrays' other rows in order; returns the rows
 * left. The run has one score per customer, so a key that repeats is such a customer: found by one native
 * sort of a copy of the keys, compared as 32-bit halves (no BigInt per row); the rare repeats then cost a
 * BigInt per row.
 */
export function oneRowPerCustomer(keys: BigInt64Array, joined: ScoredOutcomes): number {
  const n = joined.rows;
  const sorted = keys.slice(0, n).sort();
  const halves = new Int32Array(sorted.buffer);
  let repeated: Set<bigint> | undefined;
  for (let i = 1; i < n; i++) if (halves[2 * i] === halves[2 * i - 2] && halves[2 * i + 1] === halves[2 * i - 1]) (repeated ??= new Set()).add(sorted[i]!);
  if (repeated === undefined) return n;
  const { scores, labels, bands } = joined;
  const kept = new Map<bigint, number>();
  let w = 0;
  for (let i = 0; i < n; i++) {
    const key = keys[i]!;
    const at = repeated.has(key) ? kept.get(key) : undefined;
    if (at !== undefined) {
      const a = labels[at]!;
      const b = labels[i]!;
      labels[at] = a === positive || b === positive ? positive : a === negative || b === negative ? negative : unknown;
      continue;
    }
    if (repeated.has(key)) kept.set(key, w);
    scores[w] = scores[i]!;
    labels[w] = labels[i]!;
    bands[w] = bands[i]!;
    w++;
  }
  return w;
}
