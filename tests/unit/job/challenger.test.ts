import { describe, expect, it } from 'vitest';
import { allocateBatch, type ColumnSpec } from '../../../src/columns.js';
import { firstColumns, unionColumns } from '../../../src/features/challenger/challenger.js';
import { compareScores } from '../../../src/features/challenger/comparison.js';

describe('the columns a chunk is read with when a challenger rides along', () => {
  const champion: ColumnSpec[] = [
    { name: 'tenure_months', kind: 'float8' },
    { name: 'segment', kind: 'category', categories: ['consumer', 'smb'] },
  ];

  it("keeps the champion's columns first and in order, shares a column read the same way, and adds the others", () => {
    const challenger: ColumnSpec[] = [
      { name: 'has_app', kind: 'bool' },
      { name: 'tenure_months', kind: 'float8' },
      { name: 'segment', kind: 'category', categories: ['consumer', 'smb', 'enterprise'] },
    ];
    const { columns, challengerIndex } = unionColumns(champion, challenger);
    expect(columns.slice(0, 2)).toEqual(champion);
    // The same column with other categories is read twice: each model matches its own category list.
    expect(columns.slice(2)).toEqual([challenger[0], challenger[2]]);
    expect(challengerIndex).toEqual([2, 0, 3]);
    const batch = allocateBatch(columns, 4);
    expect(firstColumns(batch, 2).columns.map((c) => c.name)).toEqual(['tenure_months', 'segment']);
    expect(firstColumns(batch, 2).keys).toBe(batch.keys);
  });

  it('reads nothing more for a challenger with the same columns', () => {
    expect(unionColumns(champion, champion)).toEqual({ columns: champion, challengerIndex: [0, 1] });
  });
});

describe('the comparison from its counts', () => {
  const run = { run_id: '7', model_name: 'm', model_version: '2' };

  it('an identical distribution has PSI 0, and the overlap is the share of the top decile kept', () => {
    const deciles = [10, 10, 10, 10, 10, 10, 10, 10, 10, 10];
    const c = compareScores(run, {
      both: 100,
      correlation: 1,
      top: 10,
      topOverlap: 7,
      championDeciles: deciles,
      challengerDeciles: deciles,
      bandChanges: null,
    });
    expect(c).toEqual({ ...run, customers: 100, correlation: 1, psi: 0, top_decile_overlap: 0.7, band_changes: null });
  });

  it('nobody scored by both: no correlation, PSI or overlap', () => {
    const zero = new Array<number>(10).fill(0);
    expect(
      compareScores(run, { both: 0, correlation: null, top: 0, topOverlap: 0, championDeciles: zero, challengerDeciles: zero, bandChanges: 0 }),
    ).toMatchObject({ correlation: null, psi: null, top_decile_overlap: null, band_changes: 0 });
  });
});
