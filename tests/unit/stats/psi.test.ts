import { describe, expect, it } from 'vitest';
import { coarsen, drift, histogramPsi, populationStabilityIndex, psiEpsilon } from '../../../src/stats/psi.js';
import { psiGateBreach } from '../../../src/stats/runStats.js';
import { accumulate, emptyStats } from '../../../src/stats/scoreStats.js';

function statsOf(scores: number[]) {
  const s = emptyStats();
  accumulate(s, Float32Array.from(scores), scores.length);
  return s;
}

describe('population stability index', () => {
  it('of a distribution against itself is 0', () => {
    expect(populationStabilityIndex([5, 10, 0, 85], [5, 10, 0, 85])).toBe(0);
    // Only the shares matter, not the totals.
    expect(populationStabilityIndex([5, 10, 0, 85], [50, 100, 0, 850])).toBeCloseTo(0, 15);
  });

  it('of a shifted distribution matches the hand-computed value', () => {
    // shares e = (.5, .3, .2), a = (.4, .3, .3):
    // (.4 − .5)·ln(.4/.5) + 0 + (.3 − .2)·ln(.3/.2) = .1·0.2231435513 + .1·0.4054651081 = 0.0628608659
    expect(populationStabilityIndex([50, 30, 20], [40, 30, 30])).toBeCloseTo(0.0628608659, 9);
  });

  it('counts an empty bin as epsilon, so the index stays finite', () => {
    // e = (1, 0 → 1e-4), a = (.9, .1): (−.1)·ln(.9) + (.1 − 1e-4)·ln(.1 / 1e-4) = 0.0105360516 + 0.6900847524
    expect(psiEpsilon).toBe(1e-4);
    expect(populationStabilityIndex([100, 0], [90, 10])).toBeCloseTo(0.700620804, 9);
  });

  it('is null when a side is empty or the bins differ', () => {
    expect(populationStabilityIndex([0, 0], [1, 2])).toBeNull();
    expect(populationStabilityIndex([1, 2], [1, 2, 3])).toBeNull();
  });

  it('merges the 100 fine bins ten by ten, folding scores outside the range into the edge bins', () => {
    const s = statsOf([0.001, 0.099, 0.1, 0.55, 0.999, 1]);
    s.histogram.below = 2;
    s.histogram.above = 3;
    expect(coarsen(s.histogram)).toEqual([2 + 2, 1, 0, 0, 0, 1, 0, 0, 0, 2 + 3]);
    expect(coarsen(s.histogram, 7)).toBeUndefined();
  });

  it('of two score histograms: 0 against itself, the hand-computed value against a shifted one', () => {
    const a = statsOf([...Array(100).fill(0.05), ...Array(100).fill(0.15)]);
    const b = statsOf([...Array(100).fill(0.15), ...Array(100).fill(0.25)]);
    expect(histogramPsi(a.histogram, a.histogram)).toBe(0);
    // coarse shares: a = (.5, .5, 0, …), b = (0, .5, .5, 0, …); empty bins are 1e-4 on both sides (terms 0):
    // (1e-4 − .5)·ln(1e-4/.5) + 0 + (.5 − 1e-4)·ln(.5/1e-4) = 2 · .4999 · ln 5000 = 8.5154897528
    expect(histogramPsi(a.histogram, b.histogram)).toBeCloseTo(8.5154897528, 9);
  });

  it('has no value without a baseline, or with histograms of another range', () => {
    const a = statsOf([0.2]);
    expect(drift(null, undefined, a.histogram)).toEqual({ psi: null, baseline_run_id: null, bins: 10, epsilon: 1e-4 });
    const other = emptyStats(0, 2);
    expect(histogramPsi(other.histogram, a.histogram)).toBeNull();
  });

  it('says why it has no value when there is a baseline: no histogram, other bins, no scores on either side', () => {
    const a = statsOf([0.2, 0.4]);
    expect(drift('4', undefined, a.histogram)).toMatchObject({ psi: null, baseline_run_id: '4', unavailable: 'run 4 has no score histogram' });
    expect(drift('4', emptyStats(0, 2).histogram, a.histogram).unavailable).toBe('the histograms of run 4 and this run have different bins');
    expect(drift('4', a.histogram, emptyStats().histogram).unavailable).toBe('this run has no scores');
    expect(drift('4', emptyStats().histogram, a.histogram).unavailable).toBe('run 4 has no scores');
    expect(drift('4', a.histogram, a.histogram)).toEqual({ psi: 0, baseline_run_id: '4', bins: 10, epsilon: 1e-4 });
  });
});

describe('the PSI gate', () => {
  const a = statsOf([0.2, 0.4]);
  it('passes without a limit or without a previous published run', () => {
    expect(psiGateBreach(drift('4', undefined, a.histogram), undefined)).toBeUndefined();
    expect(psiGateBreach(drift(null, undefined, a.histogram), 0.1)).toBeUndefined();
  });
  it('fails when the PSI cannot be computed although there is a previous published run', () => {
    expect(psiGateBreach(drift('4', a.histogram, emptyStats().histogram), 0.1)).toBe(
      "the PSI of the scores against run 4's cannot be computed (this run has no scores), so the scores cannot pass the limit of 0.1 (--max-psi)",
    );
  });
  it('fails over the limit, passes at it', () => {
    const b = statsOf([0.2, 0.9]);
    const d = drift('4', a.histogram, b.histogram);
    expect(psiGateBreach(d, d.psi! - 1e-9)).toMatch(/drifted from run 4's: PSI/);
    expect(psiGateBreach(d, d.psi)).toBeUndefined();
  });
});
