import type { ScoreStats } from './scoreStats.js';

type Histogram = ScoreStats['histogram'];

/** Bins the PSI is computed over: the 100 fine bins of the score histogram merged ten by ten (deciles of the range). */
export const psiBins = 10;

/**
 * Stands in for the share of an empty bin, so that ln(p/q) stays finite.
 * @internal exported for tests
 */
export const psiEpsilon = 1e-4;

/**
 * Merges a histogram's bins into `bins` equal coarse bins, folding the scores below the range into the
 * first and those above it into the last (scores are probabilities, so there are none in practice).
 * Returns undefined when the fine bins do not divide evenly.
 */
export function coarsen(h: Histogram, bins = psiBins): number[] | undefined {
  const fine = h.bins.length;
  if (bins < 1 || fine % bins !== 0) return undefined;
  const group = fine / bins;
  const out = new Array<number>(bins).fill(0);
  h.bins.forEach((v, i) => (out[Math.floor(i / group)]! += v));
  out[0]! += h.below;
  out[bins - 1]! += h.above;
  return out;
}

/**
 * Population stability index of `actual` against `expected`, two count vectors over the same bins:
 *
 *   PSI = Σᵢ (aᵢ − eᵢ) · ln(aᵢ / eᵢ)
 *
 * where aᵢ and eᵢ are the shares of bin i (count / total), each raised to at least `epsilon` so that
 * an empty bin contributes a large but finite term. 0 means the same distribution; by the usual rule
 * of thumb below 0.1 is stable, 0.1–0.25 a moderate shift, above 0.25 a major one.
 * Returns null when either side is empty or the bin counts differ.
 * @internal exported for tests
 */
export function populationStabilityIndex(expected: readonly number[], actual: readonly number[], epsilon = psiEpsilon): number | null {
  if (expected.length !== actual.length || expected.length === 0) return null;
  const e = expected.reduce((s, v) => s + v, 0);
  const a = actual.reduce((s, v) => s + v, 0);
  if (e <= 0 || a <= 0) return null;
  let psi = 0;
  for (let i = 0; i < expected.length; i++) {
    const p = Math.max(actual[i]! / a, epsilon);
    const q = Math.max(expected[i]! / e, epsilon);
    psi += (p - q) * Math.log(p / q);
  }
  return psi;
}

/** The drift of a run's scores against a baseline run, as stored on the run and shown by `runs show`. */
export interface Drift {
  /** Null when there is no baseline or the histograms cannot be compared. */
  psi: number | null;
  /** The previous published run the scores are compared with. */
  baseline_run_id: string | null;
  bins: number;
  epsilon: number;
  /** Why the PSI is null although there is a baseline; absent otherwise. */
  unavailable?: string;
}

/**
 * PSI of two score histograms, merged to {@link psiBins} bins; they must cover the same range.
 * @internal exported for tests
 */
export function histogramPsi(baseline: Histogram | null | undefined, current: Histogram): number | null {
  if (!baseline || baseline.lo !== current.lo || baseline.hi !== current.hi) return null;
  const e = coarsen(baseline);
  const a = coarsen(current);
  return e && a ? populationStabilityIndex(e, a) : null;
}

/** Why {@link histogramPsi} of these two is null, in words; undefined when it is not. */
export function psiUnavailable(baselineRunId: string, baseline: Histogram | null | undefined, current: Histogram): string | undefined {
  if (!baseline) return `run ${baselineRunId} has no score histogram`;
  if (baseline.lo !== current.lo || baseline.hi !== current.hi || !coarsen(baseline) || !coarsen(current))
    return `the histograms of run ${baselineRunId} and this run have different bins`;
  const total = (h: Histogram) => h.bins.reduce((s, v) => s + v, 0) + h.below + h.above;
  if (total(current) === 0) return 'this run has no scores';
  if (total(baseline) === 0) return `run ${baselineRunId} has no scores`;
  return undefined;
}

export function drift(baselineRunId: string | null, baseline: Histogram | null | undefined, current: Histogram): Drift {
  const d: Drift = { psi: null, baseline_run_id: baselineRunId, bins: psiBins, epsilon: psiEpsilon };
  if (baselineRunId === null) return d;
  d.psi = histogramPsi(baseline, current);
  if (d.psi === null) d.unavailable = psiUnavailable(baselineRunId, baseline, current) ?? 'the histograms cannot be compared';
  return d;
}
