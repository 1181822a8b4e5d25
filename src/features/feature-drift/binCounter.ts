import type { ColumnBatch, RawColumn } from '../../columns.js';
import { binCount, numericBin, type FeatureDistribution } from '../../stats/featurePsi.js';

/** Where each baseline feature's bins start in one flat counts array, and how many there are in all. */
export interface BinLayout {
  readonly offsets: readonly number[];
  readonly total: number;
}

export function binLayout(features: readonly FeatureDistribution[]): BinLayout {
  const offsets: number[] = [];
  let total = 0;
  for (const f of features) {
    offsets.push(total);
    total += binCount(f);
  }
  return { offsets, total };
}

/**
 * Adds a chunk's raw column values (every row read, rejected ones too: the baseline counts the table's
 * rows as stored) into `counts`, laid out by `layout`. Runs over typed arrays with no allocation per row.
 * A feature whose column is missing or arrives in another kind than its baseline counts nothing (its PSI is
 * then undefined rather than wrong).
 */
export function countBatch(batch: ColumnBatch, features: readonly FeatureDistribution[], layout: BinLayout, counts: Float64Array): void {
  for (let f = 0; f < features.length; f++) {
    const d = features[f]!;
    const col = batch.columns.find((c) => c.name === d.column);
    if (col) countColumn(col, d, batch.rows, counts, layout.offsets[f]!);
  }
}

function countColumn(col: RawColumn, d: FeatureDistribution, rows: number, counts: Float64Array, at: number): void {
  const nullBin = at + binCount(d) - 1;
  if (d.kind === 'numeric') {
    if (col.kind !== 'float8') return;
    if (d.edges.length > 15) return countNumericWide(col.values, col.nulls, d.edges, rows, counts, at, nullBin);
    return countNumeric(col.values, col.nulls, d.edges, rows, counts, at, nullBin);
  }
  const other = at + d.categories.length;
  if (col.kind === 'bool') {
    const t = d.categories.indexOf('true');
    const f = d.categories.indexOf('false');
    // Each kind's loop is a function of its own: one array type per loop, so each stays monomorphic.
    return countCodes(col.values, col.nulls, Int32Array.of(f < 0 ? other : at + f, t < 0 ? other : at + t), other, nullBin, rows, counts);
  }
  if (col.kind !== 'category') return;
  // The reader's codes index the manifest's categories; the baseline's may be ordered differently (or older).
  const toBin = Int32Array.from(col.categories, (c) => {
    const i = d.categories.indexOf(c);
    return i < 0 ? other : at + i;
  });
  countCodes(col.codes, col.nulls, toBin, other, nullBin, rows, counts);
}

/**
 * Numbers into at most 16 bins: edges padded to 15 with +Infinity, a fixed four-step, branchless search
 * (shifts, no mispredicted branch per row).
 */
function countNumeric(
  values: Float64Array,
  nulls: Uint8Array,
  edges: readonly number[],
  rows: number,
  counts: Float64Array,
  at: number,
  nullBin: number,
): void {
  const e = new Float64Array(15).fill(Infinity);
  e.set(edges);
  const n = edges.length;
  const e7 = e[7]!;
  for (let r = 0; r < rows; r++) {
    const v = values[r]!;
    let i = +(e7 <= v) << 3;
    i += +(e[i + 3]! <= v) << 2;
    i += +(e[i + 1]! <= v) << 1;
    i += +(e[i]! <= v);
    // NaN compares false everywhere, but PostgreSQL's width_bucket puts it (and +Infinity) in the last bin.
    if (i > n || v !== v) i = n;
    counts[nulls[r] ? nullBin : at + i]! += 1;
  }
}

/** Codes (a category's, or a boolean's 0 and 1) into bins through `toBin`; a negative code is "other". */
function countCodes(
  codes: Int32Array | Uint8Array,
  nulls: Uint8Array,
  toBin: Int32Array,
  other: number,
  nullBin: number,
  rows: number,
  counts: Float64Array,
): void {
  for (let r = 0; r < rows; r++) {
    const code = codes[r]!;
    counts[nulls[r] ? nullBin : code < 0 ? other : toBin[code]!]! += 1;
  }
}

/** More edges than the fast path takes (a baseline written by hand): a binary search per row. */
function countNumericWide(
  values: Float64Array,
  nulls: Uint8Array,
  edges: readonly number[],
  rows: number,
  counts: Float64Array,
  at: number,
  nullBin: number,
): void {
  for (let r = 0; r < rows; r++) {
    const v = values[r]!;
    counts[nulls[r] ? nullBin : at + (v !== v ? edges.length : numericBin(v, edges))]! += 1;
  }
}
