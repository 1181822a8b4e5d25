import { populationStabilityIndex } from './psi.js';

/**
 * A feature's training distribution (`scorejob model baseline`, DIR/baseline.json), in bins a run can
 * count into without sorting: numbers by quantile edges, categories by name. NULL is a bin of its own
 * (a feature that starts arriving NULL has drifted). Shares sum to 1 with `nullShare`.
 */
export type FeatureDistribution = NumericDistribution | CategoricalDistribution;

export interface NumericDistribution {
  column: string;
  kind: 'numeric';
  /** Strictly increasing cut points; bin i holds edges[i-1] <= x < edges[i] (bin 0 below edges[0], the last at or above the last edge). */
  edges: number[];
  /** edges.length + 1 shares of the non-NULL values, over all rows. */
  shares: number[];
  nullShare: number;
}

export interface CategoricalDistribution {
  column: string;
  kind: 'categorical';
  /** The categories in the manifest's order (booleans: "true", "false"). */
  categories: string[];
  /** One share per category, then one for every other value. */
  shares: number[];
  nullShare: number;
}

/** The bin of a number among `edges` (what PostgreSQL's width_bucket(x, edges) gives): how many edges are <= x. */
export function numericBin(x: number, edges: readonly number[]): number {
  let lo = 0;
  let hi = edges.length;
  while (lo < hi) {
    const mid = (lo + hi) >>> 1;
    if (edges[mid]! <= x) lo = mid + 1;
    else hi = mid;
  }
  return lo;
}

/** How many bins a distribution's counts have: its shares, then the NULL bin. */
export function binCount(d: FeatureDistribution): number {
  return d.shares.length + 1;
}

/**
 * PSI of counts over a distribution's bins (its shares, then NULL last) against that distribution;
 * null when no row was counted or the bins differ. Below 0.1 is usually read as stable.
 */
export function featurePsi(d: FeatureDistribution, counts: readonly number[]): number | null {
  if (counts.length !== binCount(d)) return null;
  return populationStabilityIndex([...d.shares, d.nullShare], counts);
}

/** Features by PSI, largest first (the top movers); features without a PSI last. */
export function rankByPsi<T extends { psi: number | null }>(features: readonly T[]): T[] {
  return [...features].sort((a, b) => (b.psi ?? -1) - (a.psi ?? -1));
}

/** `score_runs.stats.feature_drift` (src/features/feature-drift): every feature's PSI, the top movers first. */
export interface FeatureDriftSummary {
  /** The baseline.json the bins come from. */
  baseline_sha256: string;
  /** The published run compared with; null: none counted on the same baseline. */
  previous_run_id: string | null;
  features: { feature: string; psi_baseline: number | null; psi_previous: number | null }[];
  /** The top movers' distributions (shares per bin, NULL last) beside the baseline's and the previous run's, for the report. */
  distributions?: FeatureDistributionShares[];
}

/** One feature's shares per bin: the baseline's, the run's and the previous published run's (null without one). */
export interface FeatureDistributionShares {
  feature: string;
  /** One label per bin: `< 1.5`, `1.5 – 3`, `≥ 3`, a category, `other`, then `NULL`. */
  bins: string[];
  baseline: number[];
  run: number[];
  previous: number[] | null;
}

/** The bins' labels of a distribution, NULL last. */
export function binLabels(d: FeatureDistribution): string[] {
  const g = (x: number) => String(Number(x.toPrecision(4)));
  if (d.kind === 'categorical') return [...d.categories, 'other', 'NULL'];
  const e = d.edges;
  if (e.length === 0) return ['all values', 'NULL'];
  return [`< ${g(e[0]!)}`, ...e.slice(1).map((hi, i) => `${g(e[i]!)} – ${g(hi)}`), `≥ ${g(e[e.length - 1]!)}`, 'NULL'];
}

/** Counts as shares of their total (all zero when nothing was counted). */
export function sharesOf(counts: readonly number[]): number[] {
  const total = counts.reduce((a, b) => a + b, 0);
  return counts.map((n) => (total === 0 ? 0 : n / total));
}
