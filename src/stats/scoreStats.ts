/**
 * Score statistics computed while streaming: moments, extremes and a fixed-bin histogram, per chunk,
 * merged into the run's statistics at the end (no second pass over the scores).
 */
export interface ScoreStats {
  count: number;
  sum: number;
  sumSquares: number;
  min: number | null;
  max: number | null;
  /** Histogram over [lo, hi) in `bins.length` equal bins; scores outside land in below/above. */
  histogram: { lo: number; hi: number; bins: number[]; below: number; above: number };
}

/** Bins of the score histogram: scores are probabilities, so [0, 1] in 100 bins (quantiles to within 0.01). */
export const histogramBins = 100;

export function emptyStats(lo = 0, hi = 1, bins = histogramBins): ScoreStats {
  return { count: 0, sum: 0, sumSquares: 0, min: null, max: null, histogram: { lo, hi, bins: new Array<number>(bins).fill(0), below: 0, above: 0 } };
}

// What scorePass accumulates: sum, sum of squares, min, max, below, above; and the bin counts (zeroed again once folded in).
const pass = new Float64Array(6);
const initialPass = Float64Array.of(0, 0, Infinity, -Infinity, 0, 0);
let passBins = new Float64Array(histogramBins);

/** Adds scores[0..rows) to stats. */
export function accumulate(stats: ScoreStats, scores: Float32Array, rows: number): void {
  const h = stats.histogram;
  if (passBins.length !== h.bins.length) passBins = new Float64Array(h.bins.length);
  pass.set(initialPass);
  // Blocks of rows: scorePass is called often enough to be optimized as a function, and runs on from where the last block left off.
  for (let from = 0; from < rows; from += 1024) scorePass(scores, from, Math.min(rows, from + 1024), h.lo, h.hi, passBins, pass);
  for (let b = 0; b < passBins.length; b++) h.bins[b] = (h.bins[b] as number) + (passBins[b] as number);
  passBins.fill(0);
  stats.count += rows;
  stats.sum += pass[0] as number;
  stats.sumSquares += pass[1] as number;
  if (rows > 0) {
    stats.min = Math.min(stats.min ?? Infinity, pass[2] as number);
    stats.max = Math.max(stats.max ?? -Infinity, pass[3] as number);
  }
  h.below += pass[4] as number;
  h.above += pass[5] as number;
}

/**
 * The loop that runs once per scored row, alone in a function of typed arrays and numbers: V8 keeps it
 * optimized (the same loop over the stats object's properties deoptimized on every chunk and boxed every sum).
 */
function scorePass(scores: Float32Array, from: number, to: number, lo: number, hi: number, bins: Float64Array, acc: Float64Array): void {
  const n = bins.length;
  const width = (hi - lo) / n;
  let sum = acc[0]!;
  let sumSquares = acc[1]!;
  let min = acc[2]!;
  let max = acc[3]!;
  let below = acc[4]!;
  let above = acc[5]!;
  for (let i = from; i < to; i++) {
    const s = scores[i]!;
    sum += s;
    sumSquares += s * s;
    if (s < min) min = s;
    if (s > max) max = s;
    if (s < lo) below++;
    else if (s > hi) above++;
    else bins[Math.min(n - 1, Math.floor((s - lo) / width))]!++;
  }
  acc[0] = sum;
  acc[1] = sumSquares;
  acc[2] = min;
  acc[3] = max;
  acc[4] = below;
  acc[5] = above;
}

/** Merges chunk statistics (same histogram layout). */
export function mergeStats(parts: readonly ScoreStats[]): ScoreStats {
  const first = parts[0];
  const out = first ? emptyStats(first.histogram.lo, first.histogram.hi, first.histogram.bins.length) : emptyStats();
  for (const p of parts) {
    out.count += p.count;
    // A chunk recorded with a NaN sum (stored as JSON null by a scorejob that let NaN scores through) poisons the moments, not hides them as 0.
    out.sum += typeof p.sum === 'number' ? p.sum : Number.NaN;
    out.sumSquares += typeof p.sumSquares === 'number' ? p.sumSquares : Number.NaN;
    if (p.min !== null) out.min = out.min === null ? p.min : Math.min(out.min, p.min);
    if (p.max !== null) out.max = out.max === null ? p.max : Math.max(out.max, p.max);
    out.histogram.below += p.histogram.below;
    out.histogram.above += p.histogram.above;
    p.histogram.bins.forEach((v, i) => (out.histogram.bins[i] = (out.histogram.bins[i] as number) + v));
  }
  return out;
}

/** The summary stored on the run row and shown by `scorejob runs show`. */
export interface ScoreSummary {
  count: number;
  mean: number | null;
  std: number | null;
  min: number | null;
  max: number | null;
  /** Quantiles read off the histogram (upper edge of the bin where the rank falls: within one bin). */
  quantiles: Record<string, number | null>;
  histogram: ScoreStats['histogram'];
}

export const quantileLevels = [0.01, 0.05, 0.25, 0.5, 0.75, 0.95, 0.99];

export function summarize(stats: ScoreStats): ScoreSummary {
  const n = stats.count;
  // No mean or std rather than a wrong one: none without scores, none from non-finite sums.
  const mean = n > 0 && Number.isFinite(stats.sum) ? stats.sum / n : null;
  const variance = mean !== null && Number.isFinite(stats.sumSquares) ? Math.max(0, stats.sumSquares / n - mean * mean) : null;
  const quantiles: Record<string, number | null> = {};
  for (const q of quantileLevels) quantiles[`p${Math.round(q * 100)}`] = histogramQuantile(stats, q);
  return { count: n, mean, std: variance === null ? null : Math.sqrt(variance), min: stats.min, max: stats.max, quantiles, histogram: stats.histogram };
}

function histogramQuantile(stats: ScoreStats, q: number): number | null {
  if (stats.count === 0) return null;
  const h = stats.histogram;
  const rank = q * stats.count;
  let seen = h.below;
  if (seen >= rank) return stats.min;
  const width = (h.hi - h.lo) / h.bins.length;
  for (let b = 0; b < h.bins.length; b++) {
    seen += h.bins[b] as number;
    if (seen >= rank) return Math.min(h.lo + (b + 1) * width, stats.max ?? Infinity);
  }
  return stats.max;
}
