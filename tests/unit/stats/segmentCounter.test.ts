import { describe, expect, it } from 'vitest';
import { allocateBatch } from '../../../src/columns.js';
import { binsAt, rejectsAt, rowsAt, SegmentCounter, segmentLayout, sumAt } from '../../../src/features/segments/segmentCounter.js';
import { gateMinRows, segmentPsiGateBreach, segmentRows } from '../../../src/features/segments/segmentDrift.js';

/** A batch of one segment column (region: north, south) plus a column the counter ignores. */
function batchOf(regions: (0 | 1 | -1 | null)[]) {
  const batch = allocateBatch(
    [
      { name: 'x', kind: 'float8' },
      { name: 'region', kind: 'category', categories: ['north', 'south'] },
    ],
    16,
  );
  batch.rows = regions.length;
  regions.forEach((r, i) => {
    batch.keys[i] = BigInt(100 + i);
    const col = batch.columns[1]!;
    if (col.kind !== 'category') throw new Error('category');
    col.nulls[i] = r === null ? 1 : 0;
    col.codes[i] = r ?? 0;
  });
  return batch;
}

describe('SegmentCounter', () => {
  const layout = segmentLayout([{ column: 'region', values: ['north', 'south'] }], [0.5]);
  const slot = (v: number) => v * layout.stride;

  it('counts rows, rejects (of the transform and non-finite scores), score sums, PSI bins and bands per value, NULL and other', () => {
    // Rows 0..5: north, south, NULL, unknown (other), north (rejected by the transform), south.
    const batch = batchOf([0, 1, null, -1, 0, 1]);
    const keys = BigInt64Array.of(100n, 101n, 102n, 103n, 105n);
    const counter = new SegmentCounter(layout, [1]);
    counter.rowsAccepted(batch, keys, 5);
    counter.addScores(batch, Float32Array.of(0.05, 0.95, 0.5, 0.25, Number.NaN), 5);
    const c = counter.counts;
    expect([c[slot(0) + rowsAt], c[slot(0) + rejectsAt], c[slot(0) + sumAt]]).toEqual([1, 1, Math.fround(0.05)]);
    expect(c[slot(0) + binsAt]).toBe(1);
    // South: one scored (0.95: the last bin, the high band), one NaN score (a reject).
    expect([c[slot(1) + rowsAt], c[slot(1) + rejectsAt], c[slot(1) + binsAt + 9], c[slot(1) + binsAt + 10 + 1]]).toEqual([1, 1, 1, 1]);
    // NULL: 0.5 is in bin 5 and the high band (bands hold below <= score).
    expect([c[slot(2) + rowsAt], c[slot(2) + binsAt + 5], c[slot(2) + binsAt + 10 + 1]]).toEqual([1, 1, 1]);
    // Other: 0.25 in bin 2 and the low band.
    expect([c[slot(3) + rowsAt], c[slot(3) + binsAt + 2], c[slot(3) + binsAt + 10]]).toEqual([1, 1, 1]);
    // The next chunk starts from zero.
    counter.rowsAccepted(batchOf([0]), BigInt64Array.of(100n), 1);
    expect(c.reduce((s, v) => s + v, 0)).toBe(0);
  });

  it("counts from a feature's column whose categories hold the segment's values in another order: the rest are other", () => {
    // The segment's values (most rows first) are south, north; the feature's categories north, south, east.
    const own = segmentLayout([{ column: 'region', values: ['south', 'north'] }], []);
    const batch = allocateBatch([{ name: 'region', kind: 'category', categories: ['north', 'south', 'east'] }], 8);
    const col = batch.columns[0]!;
    if (col.kind !== 'category') throw new Error('category');
    // north, south, east (a category that is no segment value), unknown, NULL, north.
    col.codes.set([0, 1, 2, -1, 0, 0]);
    col.nulls.set([0, 0, 0, 0, 1, 0]);
    batch.rows = 6;
    const counter = new SegmentCounter(own, [0]);
    counter.rowsAccepted(batch, batch.keys.subarray(0, 6), 6);
    counter.addScores(batch, Float32Array.of(0.1, 0.2, 0.3, 0.4, 0.5, 0.6), 6);
    const rows = (v: number) => counter.counts[v * own.stride + rowsAt];
    // Slots: south, north, NULL, other.
    expect([rows(0), rows(1), rows(2), rows(3)]).toEqual([1, 2, 1, 2]);
    expect(counter.counts[1 * own.stride + sumAt]).toBeCloseTo(0.7, 6);
  });

  it('the gate names a segment over the limit with enough rows in both runs, and never a small one', () => {
    const merged = new Float64Array(layout.total);
    const fill = (v: number, rows: number, bin: number) => {
      merged[slot(v) + rowsAt] = rows;
      merged[slot(v) + binsAt + bin] = rows;
      merged[slot(v) + binsAt + 10] = rows;
    };
    fill(0, gateMinRows, 9);
    fill(1, gateMinRows - 1, 9);
    const bins = (bin: number) => Array.from({ length: 10 }, (_, i) => (i === bin ? 5000 : 0));
    const previous = new Map([
      ['region\u0000value\u0000north', { rows_scored: 5000, share: 0.5, score_bins: bins(0) }],
      ['region\u0000value\u0000south', { rows_scored: 5000, share: 0.5, score_bins: bins(0) }],
    ]);
    const rows = segmentRows(layout, merged, ['low', 'high'], previous);
    expect(rows.map((r) => r.psi_previous! > 1)).toEqual([true, true]);
    expect(rows[0]!.band_shares).toEqual({ low: 1, high: 0 });
    expect(segmentPsiGateBreach(rows, '7', 0.25)).toMatch(
      /^1 segment\(s\) drifted over the limit of 0\.25 \(--max-segment-psi\): region=north \(PSI \d+\.\d{4} vs run 7, 1,000 rows\)$/,
    );
    expect(segmentPsiGateBreach(rows, '7', null)).toBeUndefined();
  });
});
