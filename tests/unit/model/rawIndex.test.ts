import { describe, expect, it } from 'vitest';
import { allocateBatch } from '../../../src/columns.js';
import { UsageError } from '../../../src/errors.js';
import { allocateModelInput, compileFeatures, createFeatureCounters, transformBatch, type Reject } from '../../../src/model/features.js';
import { parseManifest, type Feature } from '../../../src/model/manifest.js';

const file = 'm/manifest.json';

function manifestWith(features: unknown[], output: Record<string, unknown> = { name: 's' }) {
  return { name: 'x', version: '1', features, output };
}

function refusal(fn: () => unknown): string {
  try {
    fn();
  } catch (err) {
    expect(err).toBeInstanceOf(UsageError);
    expect((err as Error).message).not.toContain('\n');
    return (err as Error).message;
  }
  throw new Error('accepted');
}

describe('manifest: raw, index, input, output.from', () => {
  it('accepts the new fields and keeps them', () => {
    const m = parseManifest(
      manifestWith(
        [
          { column: 'a', transform: 'raw', fill: 2.5, min: 0, max: 9, input: 'numeric' },
          { column: 'b', transform: 'index', categories: ['x', 'y'], unknown: 0, fill: 'y', input: 'b_id' },
          { column: 'c', transform: 'index', categories: ['x'], fill: 7, input: 'c_id' },
        ],
        { name: 's', from: 'churn', unit: 0 },
      ),
      file,
    );
    expect(m.features).toEqual([
      { column: 'a', transform: 'raw', fill: 2.5, min: 0, max: 9, input: 'numeric' },
      { column: 'b', transform: 'index', categories: ['x', 'y'], unknown: 0, fill: 'y', input: 'b_id' },
      { column: 'c', transform: 'index', categories: ['x'], fill: 7, input: 'c_id' },
    ]);
    expect(m.output.from).toBe('churn');
  });

  it.each([
    [
      'an index fill that is no category',
      { column: 'b', transform: 'index', categories: ['x'], fill: 'z' },
      'features[0].fill "z" must be one of categories (or a whole number id)',
    ],
    [
      'an unknown id beyond float32 integers',
      { column: 'b', transform: 'index', categories: ['x'], unknown: 2 ** 24 },
      'features[0].unknown must be a whole number from 0 to 16777215 (got 16777216)',
    ],
    ['a negative id', { column: 'b', transform: 'index', categories: ['x'], fill: -1 }, 'features[0].fill must be a whole number from 0 to 16777215 (got -1)'],
    ['a raw fill beyond float32', { column: 'a', transform: 'raw', fill: 1e300 }, "features[0].fill (1e+300) is beyond float32's range"],
    ['an empty input name', { column: 'a', transform: 'raw', input: '' }, 'features[0].input must not be empty'],
    [
      'a raw mean (not a raw field)',
      { column: 'a', transform: 'raw', mean: 1 },
      'features[0].mean is not a known field (expected column, transform, input, min, max, fill)',
    ],
  ])('refuses %s, naming the file and field', (_, feature, message) => {
    expect(refusal(() => parseManifest(manifestWith([feature]), file))).toBe(`${file}: ${message}`);
  });
});

describe('raw and index transforms', () => {
  const features: Feature[] = [
    { column: 'v', transform: 'raw', fill: -1 },
    { column: 'seg', transform: 'index', categories: ['a', 'b', 'c'] },
    { column: 'reg', transform: 'index', categories: ['n', 's'], unknown: 0, fill: 5 },
  ];
  const plan = compileFeatures({ features });

  it('feeds the value as stored, the category position, the unknown id and the NULL id; NULL without fill or a non-finite value rejects', () => {
    // rows: [key, v, seg code, reg code]; null = NULL, code -1 = unknown category
    const rows: [number, number | null, number | null, number | null][] = [
      [1, 3.25, 0, 1],
      [2, null, 2, -1],
      [3, 1e6, -1, null],
      [4, 1, null, 0],
      [5, Infinity, 0, 0],
      [6, 1e300, 0, 0],
    ];
    const batch = allocateBatch(plan.columns, rows.length);
    batch.rows = rows.length;
    rows.forEach((row, r) => {
      batch.keys[r] = BigInt(row[0]);
      batch.columns.forEach((col, f) => {
        const v = row[f + 1]!;
        col.nulls[r] = v === null ? 1 : 0;
        if (col.kind === 'float8') col.values[r] = v ?? 0;
        else if (col.kind === 'category') col.codes[r] = v ?? 0;
      });
    });
    const out = allocateModelInput(plan, rows.length);
    const rejects: Reject[] = [];
    const counters = createFeatureCounters(plan);
    const accepted = transformBatch(batch, plan, out, rejects, counters);
    expect(plan.width).toBe(3);
    expect(accepted).toBe(3);
    expect(Array.from(out.x.subarray(0, 9))).toEqual([3.25, 0, 1, -1, 2, 0, 1e6, 3, 5]);
    expect(rejects.map((r) => [Number(r.key), r.reason, r.column])).toEqual([
      [4, 'null_without_fill', 'seg'],
      [5, 'non_finite', 'v'],
      [6, 'non_finite', 'v'],
    ]);
    expect(Array.from(counters.unknownCategory)).toEqual([0, 1, 1]);
  });
});
