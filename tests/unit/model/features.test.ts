import { describe, expect, it } from 'vitest';
import { allocateBatch, type ColumnBatch } from '../../../src/columns.js';
import { addFeatureCounters, allocateModelInput, compileFeatures, createFeatureCounters, transformBatch, type Reject } from '../../../src/model/features.js';
import type { Feature } from '../../../src/model/manifest.js';

const features: Feature[] = [
  { column: 'tenure', transform: 'standardize', mean: 10, std: 4, min: 0, max: 100 },
  { column: 'spend', transform: 'standardize', mean: 0, std: 2, fill: 6 },
  { column: 'segment', transform: 'one_hot', categories: ['a', 'b', 'c'] },
  { column: 'region', transform: 'one_hot', categories: ['n', 's'], fill: 's' },
  { column: 'sub', transform: 'boolean' },
  { column: 'app', transform: 'boolean', fill: true },
];
const plan = compileFeatures({ features });

/** One row per entry: [key, tenure, spend, segment code, region code, sub, app]; null = NULL. */
type Row = [number, number | null, number | null, number | null, number | null, number | null, number | null];

function batchOf(rows: Row[], capacity = rows.length + 3): ColumnBatch {
  const batch = allocateBatch(plan.columns, capacity);
  batch.rows = rows.length;
  rows.forEach((row, r) => {
    batch.keys[r] = BigInt(row[0]);
    batch.columns.forEach((col, f) => {
      const v = row[f + 1]!;
      col.nulls[r] = v === null ? 1 : 0;
      if (col.kind === 'float8') col.values[r] = v ?? 0;
      else if (col.kind === 'bool') col.values[r] = v ?? 0;
      else col.codes[r] = v ?? 0;
    });
  });
  return batch;
}

function run(rows: Row[]) {
  const batch = batchOf(rows);
  const out = allocateModelInput(plan, batch.capacity);
  const rejects: Reject[] = [];
  const counters = createFeatureCounters(plan);
  const accepted = transformBatch(batch, plan, out, rejects, counters);
  const x = Array.from(out.x.subarray(0, accepted * plan.width));
  const matrix = Array.from({ length: accepted }, (_, r) => x.slice(r * plan.width, (r + 1) * plan.width));
  return { accepted, matrix, keys: Array.from(out.keys.subarray(0, accepted)), rejects, counters };
}

describe('compileFeatures', () => {
  it('gives one input per number or boolean and one per category, and one column spec per feature', () => {
    expect(plan.width).toBe(1 + 1 + 3 + 2 + 1 + 1);
    expect(plan.features.map((p) => [p.offset, p.inputs])).toEqual([
      [0, 1],
      [1, 1],
      [2, 3],
      [5, 2],
      [7, 1],
      [8, 1],
    ]);
    expect(plan.columns).toEqual([
      { name: 'tenure', kind: 'float8' },
      { name: 'spend', kind: 'float8' },
      { name: 'segment', kind: 'category', categories: ['a', 'b', 'c'] },
      { name: 'region', kind: 'category', categories: ['n', 's'] },
      { name: 'sub', kind: 'bool' },
      { name: 'app', kind: 'bool' },
    ]);
  });
});

describe('transformBatch', () => {
  it('standardizes, one-hot encodes and maps booleans to 1/0', () => {
    const { accepted, matrix, keys, rejects } = run([
      [1, 14, 2, 0, 1, 1, 0],
      [2, 6, -4, 2, 0, 0, 1],
    ]);
    expect(accepted).toBe(2);
    expect(rejects).toEqual([]);
    expect(keys).toEqual([1n, 2n]);
    expect(matrix).toEqual([
      [1, 1, 1, 0, 0, 0, 1, 1, 0],
      [-1, -2, 0, 0, 1, 1, 0, 0, 1],
    ]);
  });

  it('feeds an unknown category as all zeros, without rejecting the row', () => {
    const { matrix, rejects } = run([[1, 10, 0, -1, -1, 0, 0]]);
    expect(rejects).toEqual([]);
    expect(matrix[0]!.slice(2, 7)).toEqual([0, 0, 0, 0, 0]);
  });

  it('replaces NULL with the fill value before the transform', () => {
    const { matrix, rejects } = run([[1, 10, null, 1, null, 0, null]]);
    expect(rejects).toEqual([]);
    expect(matrix[0]).toEqual([0, 3, 0, 1, 0, 0, 1, 0, 1]);
  });

  it('rejects a NULL in a feature without fill, naming the first such column', () => {
    const { accepted, rejects } = run([[5, null, 0, null, 0, 0, 0]]);
    expect(accepted).toBe(0);
    expect(rejects).toEqual([{ key: 5n, reason: 'null_without_fill', column: 'tenure', value: null }]);
    expect(run([[6, 1, 0, 0, 0, null, 0]]).rejects).toEqual([{ key: 6n, reason: 'null_without_fill', column: 'sub', value: null }]);
  });

  it('rejects NaN and ±Infinity in a standardize column', () => {
    const { accepted, rejects } = run([
      [1, Number.NaN, 0, 0, 0, 0, 0],
      [2, 1, Number.POSITIVE_INFINITY, 0, 0, 0, 0],
      [3, Number.NEGATIVE_INFINITY, 0, 0, 0, 0, 0],
    ]);
    expect(accepted).toBe(0);
    expect(rejects).toEqual([
      { key: 1n, reason: 'non_finite', column: 'tenure', value: 'NaN' },
      { key: 2n, reason: 'non_finite', column: 'spend', value: 'Infinity' },
      { key: 3n, reason: 'non_finite', column: 'tenure', value: '-Infinity' },
    ]);
  });

  it('rejects finite values whose model input overflows float32 (what the model receives), naming the column and value', () => {
    // tenure's input is (v - 10) / 4, spend's v / 2; float32 ends at 3.4e38. 1e300, -1e300 and 1e45 are finite doubles
    // but ±Infinity as float32 inputs; 1e38 gives 2.5e37 (kept); 1e39 as spend gives 5e38 (rejected).
    const { accepted, rejects, keys } = run([
      [1, 1e300, 0, 0, 0, 0, 0],
      [2, 1, -1e300, 0, 0, 0, 0],
      [3, 1e45, 0, 0, 0, 0, 0],
      [4, 1e38, 0, 0, 0, 0, 0],
      [5, 1, 1e39, 0, 0, 0, 0],
      [6, 1, 0, 0, 0, 0, 0],
    ]);
    expect(rejects).toEqual([
      { key: 1n, reason: 'non_finite', column: 'tenure', value: '1e+300' },
      { key: 2n, reason: 'non_finite', column: 'spend', value: '-1e+300' },
      { key: 3n, reason: 'non_finite', column: 'tenure', value: '1e+45' },
      { key: 5n, reason: 'non_finite', column: 'spend', value: '1e+39' },
    ]);
    expect(accepted).toBe(2);
    expect(keys).toEqual([4n, 6n]);
  });

  it('compacts accepted rows so that keys and input rows stay aligned', () => {
    const rows: Row[] = [];
    for (let k = 0; k < 50; k++) rows.push([1000 + k, k % 7 === 0 ? null : k, k % 11 === 0 ? Number.NaN : 0, k % 3, 0, k % 2, 1]);
    const { accepted, matrix, keys, rejects } = run(rows);
    const kept = rows.filter((r) => r[1] !== null && !Number.isNaN(r[2]));
    expect(accepted).toBe(kept.length);
    expect(rejects.map((r) => r.key)).toEqual(rows.filter((r) => !kept.includes(r)).map((r) => BigInt(r[0])));
    expect(keys).toEqual(kept.map((r) => BigInt(r[0])));
    kept.forEach((row, j) => {
      expect(matrix[j]![0]).toBe((row[1]! - 10) / 4);
      expect(matrix[j]!.slice(2, 5)).toEqual([0, 1, 2].map((c) => (c === row[3] ? 1 : 0)));
      expect(matrix[j]![7]).toBe(row[5]);
    });
  });

  it('counts NULLs, values outside the training range and unknown categories', () => {
    const { counters } = run([
      [1, -1, null, -1, null, 0, null],
      [2, 101, 0, 0, 0, 0, 0],
      [3, 50, 0, -1, -1, 0, 0],
      [4, null, 0, 0, 0, 0, 0],
    ]);
    expect(counters.rows).toBe(4);
    expect(Array.from(counters.nulls)).toEqual([1, 1, 0, 1, 0, 1]);
    expect(Array.from(counters.belowMin)).toEqual([1, 0, 0, 0, 0, 0]);
    expect(Array.from(counters.aboveMax)).toEqual([1, 0, 0, 0, 0, 0]);
    expect(Array.from(counters.unknownCategory)).toEqual([0, 0, 2, 1, 0, 0]);
    const total = createFeatureCounters(plan);
    addFeatureCounters(total, counters);
    addFeatureCounters(total, counters);
    expect(total.rows).toBe(8);
    expect(Array.from(total.unknownCategory)).toEqual([0, 0, 4, 2, 0, 0]);
  });

  it('reuses its buffers across batches of different sizes', () => {
    expect(
      run([
        [1, Number.NaN, 0, 0, 0, 0, 0],
        [2, 10, 0, 0, 0, 0, 0],
      ]).keys,
    ).toEqual([2n]);
    const big: Row[] = Array.from({ length: 300 }, (_, k) => [k, 10, 0, 0, 0, 0, 0] as Row);
    expect(run(big).accepted).toBe(300);
    expect(run([[7, 10, 0, 0, 0, 0, 0]]).keys).toEqual([7n]);
  });

  it('refuses a batch whose columns do not match the plan', () => {
    const other = compileFeatures({ features: [{ column: 'tenure', transform: 'boolean' }] });
    const batch = allocateBatch(other.columns, 4);
    expect(() => transformBatch(batch, plan, allocateModelInput(plan, 4), [])).toThrow(/batch has 1 columns, the feature plan 6/);
  });
});
