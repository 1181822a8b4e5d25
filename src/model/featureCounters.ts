import type { ColumnBatch } from '../columns.js';
import type { FeatureCounters } from '../stats/featureStats.js';
import type { Feature } from './manifest.js';

/** What the counters read of a compiled feature plan (src/model/features.ts): the manifest feature of each column. */
export interface CountedPlan {
  readonly features: readonly { readonly feature: Feature }[];
}

/** Rows per block, as in the transform (src/model/features.ts): a block of rows stays in a core's cache. */
const rowBlock = 1024;

/** Per-feature counts of what a chunk's rows held (NULLs, values beyond training, unknown categories), for drift and input statistics. */
export function createFeatureCounters(plan: CountedPlan): FeatureCounters {
  const n = plan.features.length;
  return { rows: 0, nulls: new Float64Array(n), belowMin: new Float64Array(n), aboveMax: new Float64Array(n), unknownCategory: new Float64Array(n) };
}

/**
 * Adds `from` into `into` (e.g. a chunk's counters into the run's).
 * @internal exported for tests
 */
export function addFeatureCounters(into: FeatureCounters, from: FeatureCounters): void {
  into.rows += from.rows;
  for (let f = 0; f < into.nulls.length; f++) {
    into.nulls[f]! += from.nulls[f]!;
    into.belowMin[f]! += from.belowMin[f]!;
    into.aboveMax[f]! += from.aboveMax[f]!;
    into.unknownCategory[f]! += from.unknownCategory[f]!;
  }
}

/** Counts a decoded batch's NULLs, values outside the training range and unknown categories per feature into `c`. */
export function countFeatures(batch: ColumnBatch, plan: CountedPlan, c: FeatureCounters): void {
  const rows = batch.rows;
  c.rows += rows;
  for (let f = 0; f < plan.features.length; f++) {
    const column = batch.columns[f]!;
    const feature = plan.features[f]!.feature;
    const hasRange = feature.transform === 'standardize' || feature.transform === 'raw';
    const ranged = column.kind === 'float8' && hasRange && (feature.min !== undefined || feature.max !== undefined);
    const min = ranged && hasRange ? (feature.min ?? -Infinity) : -Infinity;
    const max = ranged && hasRange ? (feature.max ?? Infinity) : Infinity;
    let nulls = 0;
    let below = 0;
    let above = 0;
    let unknown = 0;
    for (let from = 0; from < rows; from += rowBlock) {
      const to = Math.min(rows, from + rowBlock);
      nulls += countSet(column.nulls, from, to);
      if (ranged && column.kind === 'float8') {
        below += countBelow(column.values, column.nulls, min, from, to);
        above += countAbove(column.values, column.nulls, max, from, to);
      } else if (column.kind === 'category') {
        unknown += countUnknown(column.codes, column.nulls, from, to);
      }
    }
    c.nulls[f]! += nulls;
    c.belowMin[f]! += below;
    c.aboveMax[f]! += above;
    c.unknownCategory[f]! += unknown;
  }
}

function countSet(flags: Uint8Array, from: number, to: number): number {
  let n = 0;
  for (let r = from; r < to; r++) n += flags[r]!;
  return n;
}

/** Finite non-NULL values below min. */
function countBelow(values: Float64Array, nulls: Uint8Array, min: number, from: number, to: number): number {
  let n = 0;
  for (let r = from; r < to; r++) {
    const v = values[r]!;
    n += nulls[r] === 0 && v < min && v !== -Infinity ? 1 : 0;
  }
  return n;
}

/** Finite non-NULL values above max. */
function countAbove(values: Float64Array, nulls: Uint8Array, max: number, from: number, to: number): number {
  let n = 0;
  for (let r = from; r < to; r++) {
    const v = values[r]!;
    n += nulls[r] === 0 && v > max && v !== Infinity ? 1 : 0;
  }
  return n;
}

/** Non-NULL values that matched no category. */
function countUnknown(codes: Int32Array, nulls: Uint8Array, from: number, to: number): number {
  let n = 0;
  for (let r = from; r < to; r++) n += nulls[r] === 0 && codes[r]! < 0 ? 1 : 0;
  return n;
}
