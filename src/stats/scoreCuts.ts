/**
 * The run's 99 percentile cut points, exactly as `percentile_cont(i / 100.0) WITHIN GROUP (ORDER BY score)`
 * computes them (README "The downstream contract"), without sorting the run's table: a histogram of the
 * scores' float32 bit patterns is counted as the chunks commit (fixed size, whatever the table's), which
 * names the few narrow value ranges holding the ranks the cut points need; one scan fetches only the
 * scores in those ranges, and the ranks are read off them sorted. At 5M rows the sort cost 2.5-4 s; the
 * scan costs a few hundred ms. Pure functions and one class, no I/O.
 */

/** High bits of the order-preserving key that pick a bin: 2^20 bins (4 MB), each 4096 float32 values wide. */
const binBits = 20;
const lowBits = 32 - binBits;

/** The percentiles, as the SQL computes them (`i / 100.0` to float8 is the nearest double to i/100, as here). */
export const cutFractions: readonly number[] = Array.from({ length: 99 }, (_, k) => (k + 1) / 100);

const f32 = new Float32Array(1);
const u32 = new Uint32Array(f32.buffer);

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
   * The 99 cut points from the scores inside ranges() (all of them, in any order), as percentile_cont
   * computes them: lo + proportion * (hi - lo) in double precision.
   */
  cuts(inRanges: ArrayLike<number>): number[] {
    const sorted = Float32Array.from(inRanges).sort();
    // Where each fetched bin starts in `sorted`: bins are in value order, so one pass finds them all.
    const startOf = new Map<number, number>();
    for (let i = 0; i < sorted.length; i++) {
      const v = sorted[i] as number;
      const bin = orderKey(bitsOf(v === 0 ? 0 : v)) >>> lowBits;
      if (!startOf.has(bin)) startOf.set(bin, i);
    }
    const located = this.locate();
    const valueAt = (k: number): number => {
      const { bin, below, rank } = located[k] as Located;
      const v = sorted[(startOf.get(bin) ?? NaN) + rank - below];
      if (v === undefined) throw new Error(`score rank ${rank} is not among the ${sorted.length} scores fetched`);
      return v;
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

interface Located {
  rank: number;
  bin: number;
  /** Scores in the bins below `bin`. */
  below: number;
}

function bitsOf(v: number): number {
  f32[0] = v;
  return u32[0] as number;
}
