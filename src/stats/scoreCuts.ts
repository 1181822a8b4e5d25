/**
 * The run's 99 percentile cut points, exactly as `percentile_cont(i / 100.0) WITHIN GROUP (ORDER BY score)`
 * computes them (docs/downstream.md), without sorting the run's table: a histogram of the
 * scores' float32 bit patterns is counted as the chunks commit (fixed size, whatever the table's), which
 * names the few narrow value ranges holding the ranks the cut points need; one scan streams back only
 * the scores in those ranges, counted at full float32 resolution (fixed size again), and each rank's
 * value is read off the counts. At 5M rows the sort cost 2.5-4 s; the scan a few hundred ms. No I/O here.
 */

/** High bits of the order-preserving key that pick a bin: 2^20 bins (4 MB), each 4096 float32 values wide. */
const binBits = 20;
const lowBits = 32 - binBits;

/** The percentiles, as the SQL computes them (`i / 100.0` to float8 is the nearest double to i/100, as here). */
export const cutFractions: readonly number[] = Array.from({ length: 99 }, (_, k) => (k + 1) / 100);

const f32 = new Float32Array(1);
const u32 = new Uint32Array(f32.buffer);

/** The histogram bin of a score's float32 bits; -0 counts as +0 (the database compares them equal). */
function binOf(bits: number): number {
  return orderKey(bits === 0x80000000 ? 0 : bits) >>> lowBits;
}

/** A float32's bit pattern mapped so that unsigned order is numeric order (negatives flipped). */
function orderKey(bits: number): number {
  return (bits & 0x80000000 ? ~bits : bits | 0x80000000) >>> 0;
}

/** The float32 whose order key is `key` (the inverse of orderKey). */
function fromOrderKey(key: number): number {
  u32[0] = key & 0x80000000 ? key & 0x7fffffff : ~key >>> 0;
  return f32[0] as number;
}

/** The ranks (0-based, in ascending order of score) each cut point reads, and how it interpolates. */
interface CutRank {
  first: number;
  second: number;
  proportion: number;
}

/** As PostgreSQL's percentile_cont: rows floor and ceil of p * (n - 1), interpolated linearly. */
function cutRanks(n: number): CutRank[] {
  return cutFractions.map((p) => {
    const pos = p * (n - 1);
    return { first: Math.floor(pos), second: Math.ceil(pos), proportion: pos - Math.floor(pos) };
  });
}

/** Value ranges [lo, hi) of float scores: what the scan fetches. `lo`/`hi` are float32 values (hi may be Infinity). */
export interface ScoreRanges {
  /** Ascending, strictly: lo0, hi0, lo1, hi1, … (a score is in a range when width_bucket over these is odd). */
  thresholds: number[];
}

/**
 * Counts every committed chunk's scores, then turns the scores of the bins it names into the cut points.
 * `count` must equal the run's rows scored for the cut points to be the run's (a resumed run's earlier
 * chunks were counted by another process: it sorts in SQL instead).
 */
export class ScoreHistogram {
  private readonly bins = new Uint32Array(1 << binBits);
  count = 0;

  /** The first `rows` scores (finite: rejects were compacted away). The per-row loop allocates nothing. */
  add(scores: Float32Array, rows: number): void {
    const bits = new Uint32Array(scores.buffer, scores.byteOffset, rows);
    const bins = this.bins;
    for (let i = 0; i < rows; i++) {
      let b = bits[i] as number;
      // -0 counts as +0: the database compares them equal, so the scan finds it in +0's range.
      if (b === 0x80000000) b = 0;
      bins[(b & 0x80000000 ? ~b : b | 0x80000000) >>> lowBits]!++;
    }
    this.count += rows;
  }

  /** One score's float32 bits (as read from the wire, src/db/copyFloat4.ts). */
  addBits(bits: number): void {
    this.bins[binOf(bits)]!++;
    this.count++;
  }

  /** Takes one score (its float32 bits) out again: one the histogram counted, or the counts are wrong. */
  removeBits(bits: number): void {
    const bin = binOf(bits);
    if (this.bins[bin] === 0) throw new Error('removing a score the histogram did not count');
    this.bins[bin]!--;
    this.count--;
  }

  /** The non-empty bins and their counts, ascending (a few tens of thousands for a run's scores): stored with a full run. */
  toSparse(): { bins: number[]; counts: number[] } {
    const bins: number[] = [];
    const counts: number[] = [];
    for (let i = 0; i < this.bins.length; i++) {
      const n = this.bins[i] as number;
      if (n > 0) {
        bins.push(i);
        counts.push(n);
      }
    }
    return { bins, counts };
  }

  /** A histogram from {@link toSparse}'s arrays. */
  static fromSparse(bins: readonly number[], counts: readonly number[]): ScoreHistogram {
    const h = new ScoreHistogram();
    if (bins.length !== counts.length) throw new Error('a stored histogram with unequal arrays');
    for (let i = 0; i < bins.length; i++) {
      const bin = bins[i] as number;
      if (!(bin >= 0 && bin < h.bins.length)) throw new Error(`a stored histogram bin out of range: ${bin}`);
      h.bins[bin] = counts[i] as number;
      h.count += counts[i] as number;
    }
    return h;
  }

  /** The bins holding the ranks the cut points read, as value ranges (adjacent bins merged). */
  ranges(): ScoreRanges {
    const thresholds: number[] = [];
    for (const bin of [...new Set(this.locate().map((l) => l.bin))]) {
      const lo = fromOrderKey((bin << lowBits) >>> 0);
      const hi = bin + 1 < 1 << binBits ? fromOrderKey(((bin + 1) << lowBits) >>> 0) : Infinity;
      if (thresholds.length > 0 && thresholds[thresholds.length - 1] === lo) thresholds[thresholds.length - 1] = hi;
      else thresholds.push(lo, hi);
    }
    return { thresholds };
  }

  /**
   * Counters at full float32 resolution for the bins ranges() names (4096 values each: fixed size, at
   * most 198 bins), to be fed every score inside ranges() as its float32 bits.
   */
  refinement(): BinRefinement {
    return new BinRefinement(new Set(this.locate().map((l) => l.bin)));
  }

  /** The 99 cut points, as percentile_cont computes them: lo + proportion * (hi - lo) in double precision. */
  cuts(refined: BinRefinement): number[] {
    const located = this.locate();
    const valueAt = (k: number): number => {
      const { bin, below, rank } = located[k] as Located;
      return refined.valueAt(bin, rank - below);
    };
    return cutRanks(this.count).map((r, i) => {
      const a = valueAt(2 * i);
      return r.second === r.first ? a : a + r.proportion * (valueAt(2 * i + 1) - a);
    });
  }

  /** For each cut point's first and second rank (in that order): its bin and the scores in lower bins; one sweep. */
  private locate(): Located[] {
    const wanted = cutRanks(this.count).flatMap((r) => [r.first, r.second]);
    if (this.count === 0) throw new Error('no scores counted');
    const order = wanted.map((rank, k) => ({ rank, k })).sort((x, y) => x.rank - y.rank);
    const out: Located[] = new Array<Located>(wanted.length);
    let bin = 0;
    let below = 0;
    for (const { rank, k } of order) {
      while (below + (this.bins[bin] as number) <= rank) below += this.bins[bin++] as number;
      out[k] = { rank, bin, below };
    }
    return out;
  }
}

/** Exact counts of each float32 value inside a few bins of a {@link ScoreHistogram}. */
export class BinRefinement {
  private readonly counts = new Map<number, Uint32Array>();

  constructor(bins: Set<number>) {
    for (const b of bins) this.counts.set(b, new Uint32Array(1 << lowBits));
  }

  /** One score's float32 bits (as read from the wire); scores outside the bins are ignored. */
  add(bits: number): void {
    const key = orderKey(bits === 0x80000000 ? 0 : bits);
    const c = this.counts.get(key >>> lowBits);
    if (c) c[key & ((1 << lowBits) - 1)]!++;
  }

  /** The score of rank `rank` (0-based) among those in `bin`. */
  valueAt(bin: number, rank: number): number {
    const c = this.counts.get(bin);
    let seen = 0;
    if (c) {
      for (let low = 0; low < c.length; low++) {
        seen += c[low] as number;
        if (seen > rank) return fromOrderKey(((bin << lowBits) | low) >>> 0);
      }
    }
    throw new Error(`score rank ${rank} of bin ${bin} is not among the ${seen} scores read back: the run's table differs from its chunks' scores`);
  }
}

interface Located {
  rank: number;
  bin: number;
  /** Scores in the bins below `bin`. */
  below: number;
}
