import { describe, expect, it } from 'vitest';
import { allocateBatch } from '../../../src/columns.js';
import { binLayout, countBatch } from '../../../src/features/feature-drift/binCounter.js';
import { numericBin, type FeatureDistribution } from '../../../src/stats/featurePsi.js';

/** The per-chunk drift counter bins every value as PostgreSQL's width_bucket (and `model baseline`) does. */
describe('countBatch', () => {
  const numeric = (column: string, edges: number[]): FeatureDistribution => ({
    column,
    kind: 'numeric',
    edges,
    shares: new Array(edges.length + 1).fill(0),
    nullShare: 0,
  });

  it('puts each number in the bin numericBin gives (NaN and +Infinity last, NULL apart), for 1 to 20 edges', () => {
    const rows = 2000;
    for (const n of [1, 3, 9, 15, 16, 20]) {
      const edges = Array.from({ length: n }, (_, k) => k * 1.5 - 3);
      const d = numeric('x', edges);
      const batch = allocateBatch([{ name: 'x', kind: 'float8' }], rows);
      batch.rows = rows;
      const col = batch.columns[0]!;
      if (col.kind !== 'float8') throw new Error('float8');
      const special = [NaN, Infinity, -Infinity, ...edges];
      for (let r = 0; r < rows; r++) {
        col.values[r] = r < special.length ? special[r]! : Math.sin(r) * (n + 5);
        col.nulls[r] = r % 97 === 0 ? 1 : 0;
      }
      const layout = binLayout([d]);
      const counts = new Float64Array(layout.total);
      countBatch(batch, [d], layout, counts);
      const expected = new Array(n + 2).fill(0);
      for (let r = 0; r < rows; r++) {
        const v = col.values[r]!;
        expected[col.nulls[r] ? n + 1 : Number.isNaN(v) ? n : numericBin(v, edges)]++;
      }
      expect(Array.from(counts), `${n} edges`).toEqual(expected);
    }
  });

  it('counts categories by name (the baseline may order them otherwise), unknown ones as other, booleans as true/false', () => {
    const cat: FeatureDistribution = { column: 'c', kind: 'categorical', categories: ['b', 'a'], shares: [0, 0, 0], nullShare: 0 };
    const bool: FeatureDistribution = { column: 'f', kind: 'categorical', categories: ['true', 'false'], shares: [0, 0, 0], nullShare: 0 };
    const batch = allocateBatch(
      [
        { name: 'c', kind: 'category', categories: ['a', 'b', 'z'] },
        { name: 'f', kind: 'bool' },
      ],
      6,
    );
    batch.rows = 6;
    const [c, f] = batch.columns;
    if (c?.kind !== 'category' || f?.kind !== 'bool') throw new Error('kinds');
    c.codes.set([0, 1, 1, 2, -1, 0]);
    c.nulls.set([0, 0, 0, 0, 0, 1]);
    f.values.set([1, 1, 0, 0, 1, 0]);
    f.nulls.set([0, 0, 0, 0, 0, 1]);
    const layout = binLayout([cat, bool]);
    const counts = new Float64Array(layout.total);
    countBatch(batch, [cat, bool], layout, counts);
    // c: b=2, a=1, other (z and unknown)=2, NULL=1; f: true=3, false=2, other=0, NULL=1.
    expect(Array.from(counts)).toEqual([2, 1, 2, 1, 3, 2, 0, 1]);
  });
});
