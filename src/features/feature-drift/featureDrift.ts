import {
  binLabels,
  featurePsi,
  rankByPsi,
  sharesOf,
  type FeatureDistribution,
  type FeatureDistributionShares,
  type FeatureDriftSummary,
} from '../../stats/featurePsi.js';
import { populationStabilityIndex } from '../../stats/psi.js';
import type { BinLayout } from './binCounter.js';

/** One feature's drift in a run, as stored (run_feature_drift) and summarised on the run. */
export interface FeatureDriftRow {
  feature_no: number;
  feature: string;
  kind: FeatureDistribution['kind'];
  counts: number[];
  /** Against the model's baseline (DIR/baseline.json); null when no row was counted. */
  psi_baseline: number | null;
  /** Against the previous published run's merged counts; null without one counted on the same baseline. */
  psi_previous: number | null;
  previous_run_id: string | null;
}

/** Each feature's PSI from the run's merged counts, against the baseline and the previous run's counts. */
export function featureDriftRows(
  features: readonly FeatureDistribution[],
  layout: BinLayout,
  merged: readonly number[],
  previous: { runId: string | null; counts: Map<number, number[]> },
): FeatureDriftRow[] {
  return features.map((d, i) => {
    const start = layout.offsets[i]!;
    const counts = merged.slice(start, start + d.shares.length + 1);
    const prev = previous.counts.get(i);
    return {
      feature_no: i,
      feature: d.column,
      kind: d.kind,
      counts,
      psi_baseline: featurePsi(d, counts),
      psi_previous: prev ? populationStabilityIndex(prev, counts) : null,
      previous_run_id: prev ? previous.runId : null,
    };
  });
}

export function driftSummary(rows: readonly FeatureDriftRow[], baselineSha256: string, previousRunId: string | null): FeatureDriftSummary {
  const ranked = rankByPsi(rows.map((r) => ({ feature: r.feature, psi: r.psi_baseline, psi_previous: r.psi_previous })));
  return {
    baseline_sha256: baselineSha256,
    previous_run_id: rows.some((r) => r.previous_run_id !== null) ? previousRunId : null,
    features: ranked.map((r) => ({ feature: r.feature, psi_baseline: r.psi, psi_previous: r.psi_previous })),
  };
}

/** How many of the top movers keep their distributions on the run (the report draws them beside the baseline). */
export const topMoversShown = 5;

/** The top movers' shares per bin beside the baseline's and the previous run's (the rows ranked by PSI against the baseline). */
export function topDistributions(
  rows: readonly FeatureDriftRow[],
  features: readonly FeatureDistribution[],
  previous: Map<number, number[]>,
  n = topMoversShown,
): FeatureDistributionShares[] {
  const ranked = rankByPsi(rows.map((r) => ({ row: r, psi: r.psi_baseline }))).slice(0, n);
  return ranked.flatMap(({ row }) => {
    const d = features[row.feature_no];
    if (!d) return [];
    const prev = previous.get(row.feature_no);
    return [
      { feature: row.feature, bins: binLabels(d), baseline: [...d.shares, d.nullShare], run: sharesOf(row.counts), previous: prev ? sharesOf(prev) : null },
    ];
  });
}

/**
 * The `--max-feature-psi` gate: the features whose PSI against the baseline or against the previous
 * published run exceeds the limit, the largest first, in one line; undefined when none does.
 */
export function featurePsiGateBreach(summary: FeatureDriftSummary, max: number | null | undefined): string | undefined {
  if (max === null || max === undefined) return undefined;
  const over = summary.features
    .map((f) => ({ f, worst: Math.max(f.psi_baseline ?? -1, f.psi_previous ?? -1) }))
    .filter((x) => x.worst > max)
    .sort((a, b) => b.worst - a.worst);
  if (over.length === 0) return undefined;
  const named = over.map(
    ({ f }) =>
      `${f.feature} (PSI ${fmt(f.psi_baseline)} vs baseline${f.psi_previous !== null ? `, ${fmt(f.psi_previous)} vs run ${summary.previous_run_id}` : ''})`,
  );
  return `${over.length} feature(s) drifted over the limit of ${max} (--max-feature-psi): ${named.join(', ')}`;
}

const fmt = (v: number | null) => (v === null ? '—' : v.toFixed(4));
