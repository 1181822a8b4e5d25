import { describe, expect, it } from 'vitest';
import { featurePsi, numericBin, rankByPsi, type NumericDistribution } from '../../../src/stats/featurePsi.js';

const deciles: NumericDistribution = { column: 'x', kind: 'numeric', edges: [1, 2, 3, 4, 5, 6, 7, 8, 9], shares: new Array(10).fill(0.1), nullShare: 0 };

describe('per-feature PSI', () => {
  it('numericBin counts the edges at or below the value, as width_bucket does', () => {
    expect(numericBin(0.5, deciles.edges)).toBe(0);
    expect(numericBin(1, deciles.edges)).toBe(1);
    expect(numericBin(8.99, deciles.edges)).toBe(8);
    expect(numericBin(9, deciles.edges)).toBe(9);
    expect(numericBin(100, [])).toBe(0);
  });

  it('the same distribution has PSI 0; a shift of one bin is over 0.1; NULLs that were not there count', () => {
    expect(featurePsi(deciles, [...new Array(10).fill(100), 0])).toBeCloseTo(0, 10);
    // Every value one bin up: the first bin empties, the last holds two bins' worth.
    expect(featurePsi(deciles, [0, ...new Array(8).fill(100), 200, 0])).toBeGreaterThan(0.1);
    expect(featurePsi(deciles, [...new Array(10).fill(90), 100])).toBeGreaterThan(0.1);
    expect(featurePsi(deciles, [1, 2, 3])).toBeNull();
  });

  it('ranks features by PSI, largest first, those without one last', () => {
    expect(rankByPsi([{ psi: 0.01 }, { psi: null }, { psi: 0.3 }]).map((f) => f.psi)).toEqual([0.3, 0.01, null]);
  });
});
