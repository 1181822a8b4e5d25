import { describe, expect, it } from 'vitest';
import { aucRankSum, brierScore, expectedAuc, expectedCalibrationError, ksStatistic, logLoss, topBinLift } from '../../../src/stats/classification.js';

/** Every positive-negative pair, ties counting half: the definition the rank sum shortcuts. */
function aucByPairs(s: number[], y: number[]): number {
  let win = 0;
  let pairs = 0;
  for (let i = 0; i < s.length; i++)
    for (let j = 0; j < s.length; j++) {
      if (y[i] !== 1 || y[j] !== 0) continue;
      pairs++;
      win += s[i]! > s[j]! ? 1 : s[i] === s[j] ? 0.5 : 0;
    }
  return win / pairs;
}

function lcg(seed: number): () => number {
  let x = seed;
  return () => (x = (x * 1664525 + 1013904223) >>> 0) / 2 ** 32;
}

describe('classification statistics', () => {
  it('AUC by rank sum equals the pair count, ties included', () => {
    const s = [0.1, 0.4, 0.35, 0.8, 0.4, 0.4, 0.1];
    const y = [0, 0, 1, 1, 1, 0, 1];
    expect(aucRankSum(s, y)).toBeCloseTo(aucByPairs(s, y), 12);
    expect(aucRankSum([0.1, 0.4, 0.35, 0.8], [0, 0, 1, 1])).toBeCloseTo(0.75, 12);
  });

  it('KS is the largest gap of the two score distributions', () => {
    expect(ksStatistic([0.1, 0.2, 0.3, 0.4], [0, 0, 1, 1])).toBe(1);
    expect(ksStatistic([0.1, 0.2, 0.3, 0.4], [0, 1, 0, 1])).toBeCloseTo(0.5, 12);
    expect(ksStatistic([0.5, 0.5], [0, 1])).toBe(0);
  });

  it('Brier and log loss by hand', () => {
    expect(brierScore([0.2, 0.9], [0, 1])).toBeCloseTo((0.04 + 0.01) / 2, 12);
    expect(logLoss([0.2, 0.9], [0, 1])).toBeCloseTo(-(Math.log(0.8) + Math.log(0.9)) / 2, 12);
    expect(logLoss([0], [1])).toBeCloseTo(-Math.log(1e-15), 6);
  });

  it('ECE and top-decile lift from bins', () => {
    const bins = [
      { customers: 100, predicted: 0.1, observed: 0.2 },
      { customers: 300, predicted: 0.5, observed: 0.4 },
    ];
    expect(expectedCalibrationError(bins)).toBeCloseTo((100 * 0.1 + 300 * 0.1) / 400, 12);
    expect(topBinLift(bins)).toBeCloseTo(0.4 / ((20 + 120) / 400), 12);
    expect(expectedCalibrationError([])).toBeNaN();
  });

  it('expected AUC equals the ratio of expected pair counts, and the realised AUC of outcomes drawn from the scores', () => {
    const p = [0.1, 0.5, 0.5, 0.9, 0.3];
    let num = 0;
    let den = 0;
    for (let i = 0; i < p.length; i++)
      for (let j = 0; j < p.length; j++) {
        if (i === j) continue;
        const w = p[i]! * (1 - p[j]!);
        den += w;
        num += w * (p[i]! > p[j]! ? 1 : p[i] === p[j] ? 0.5 : 0);
      }
    expect(expectedAuc(p)).toBeCloseTo(num / den, 12);

    const rand = lcg(7);
    const scores = Array.from({ length: 50_000 }, () => rand() ** 2);
    const labels = scores.map((s) => (rand() < s ? 1 : 0));
    expect(Math.abs(aucRankSum(scores, labels) - expectedAuc(scores))).toBeLessThan(0.01);
  });
});
