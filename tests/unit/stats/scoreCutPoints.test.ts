import { describe, expect, it } from 'vitest';
import { ScoreHistogram } from '../../../src/stats/scoreCuts.js';

const bitsOf = (v: number) => new Uint32Array(Float32Array.of(v).buffer)[0] as number;
const valueOf = (bits: number) => new Float32Array(Uint32Array.of(bits).buffer)[0] as number;

/** A histogram, and the refinement of the bins its cut points read, fed every score (as the scan does). */
function cutsOf(scores: number[]): { h: ScoreHistogram; cuts: number[] } {
  const h = new ScoreHistogram();
  for (const s of scores) h.addBits(bitsOf(s));
  const refined = h.refinement();
  for (const s of scores) refined.add(bitsOf(s));
  return { h, cuts: h.cuts(refined) };
}

/** The cut points (src/stats/scoreCuts.ts) at their edges: which value ranges the scan fetches, the counts, a refinement short of scores. */
describe('score cut points at their edges', () => {
  it('the ranges fetched hold every score the cut points read, and only their bins: 0.5 and 0.75 are two ranges', () => {
    const { h } = cutsOf([0.5, 0.75]);
    // A bin is 4096 float32 values wide: 0.5's bin starts at 0.5 and ends 4096 values above it.
    expect(h.ranges().thresholds).toEqual([0.5, valueOf(bitsOf(0.5) + 4096), 0.75, valueOf(bitsOf(0.75) + 4096)]);
  });

  it('scores in adjacent bins make one range, not two', () => {
    const next = valueOf(bitsOf(0.5) + 4096);
    const { h, cuts } = cutsOf([0.5, next]);
    expect(h.ranges().thresholds).toEqual([0.5, valueOf(bitsOf(0.5) + 2 * 4096)]);
    expect(cuts[0]).toBeCloseTo(0.5 + 0.01 * (next - 0.5), 12);
  });

  it('counts what is added and taken out; the stored form holds only the bins with scores', () => {
    const h = new ScoreHistogram();
    for (const v of [0.1, 0.2, 0.2]) h.addBits(bitsOf(v));
    h.removeBits(bitsOf(0.2));
    expect(h.count).toBe(2);
    const sparse = h.toSparse();
    expect(sparse.counts).toEqual([1, 1]);
    expect(sparse.bins).toHaveLength(2);
    expect(ScoreHistogram.fromSparse([0], [3]).count).toBe(3); // bin 0 (the most negative floats) is a bin like any other
    expect(() => ScoreHistogram.fromSparse([-1], [1])).toThrow('a stored histogram bin out of range: -1');
  });

  it('a histogram without scores has no cut points (nothing to fetch)', () => {
    expect(() => new ScoreHistogram().ranges()).toThrow('no scores counted');
  });

  it('a refinement ignores scores outside its bins, and says when the scores read back are fewer than the histogram counted', () => {
    const h = new ScoreHistogram();
    for (const v of [0.5, 0.5, 0.5]) h.addBits(bitsOf(v));
    const refined = h.refinement();
    // 0.5's bin is its bits with the sign bit set, shifted right 12: 0xbf000.
    refined.add(bitsOf(0.9)); // outside: ignored
    refined.add(bitsOf(0.5));
    expect(() => h.cuts(refined)).toThrow("score rank 1 of bin 782336 is not among the 1 scores read back: the run's table differs from its chunks' scores");
    expect(() => refined.valueAt(12345, 0)).toThrow('score rank 0 of bin 12345 is not among the 0 scores read back');
  });
});
