import { describe, expect, it } from 'vitest';
import { ScoreHistogram } from '../../../src/stats/scoreCuts.js';

const bitsOf = (v: number) => new Uint32Array(Float32Array.of(v).buffer)[0] as number;

/** The stored form of a full run's histogram (sql/013 score_histograms), and what a layer does with it. */
describe('ScoreHistogram, sparse and by single scores', () => {
  it('survives toSparse/fromSparse, and adding then removing scores gives back the same bins', () => {
    const scores = Float32Array.from({ length: 5000 }, (_, i) => 1 / (1 + Math.exp(-((i % 97) - 48) / 9)));
    const h = new ScoreHistogram();
    h.add(scores, scores.length);
    const sparse = h.toSparse();
    expect(sparse.bins.length).toBeGreaterThan(10);
    expect(sparse.counts.reduce((a, b) => a + b, 0)).toBe(5000);
    const back = ScoreHistogram.fromSparse(sparse.bins, sparse.counts);
    expect(back.count).toBe(5000);
    expect(back.toSparse()).toEqual(sparse);
    for (const v of [0.5, -0, 0, 0.25]) back.addBits(bitsOf(v));
    for (const v of [0.5, 0, 0, 0.25]) back.removeBits(bitsOf(v)); // -0 counts as +0
    expect(back.toSparse()).toEqual(sparse);
    expect(back.ranges()).toEqual(h.ranges());
  });

  it('refuses to remove a score it never counted, and a stored form that does not fit', () => {
    const h = new ScoreHistogram();
    h.addBits(bitsOf(0.5));
    expect(() => h.removeBits(bitsOf(0.75))).toThrow(/did not count/);
    expect(() => ScoreHistogram.fromSparse([1, 2], [1])).toThrow(/unequal/);
    expect(() => ScoreHistogram.fromSparse([1 << 20], [1])).toThrow(/out of range/);
  });
});
