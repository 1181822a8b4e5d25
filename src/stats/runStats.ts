import type pg from 'pg';
import { formatPercent } from '../report/format.js';
import type { FeaturePlan } from '../model/features.js';
import { chunkFeatureCounts, mergeFeatureCounts, summarizeFeatures, type FeatureCounts, type FeaturesSummary } from './featureStats.js';
import type { ChunkRow, Ledger } from '../ledger/ledger.js';
import { drift, type Drift } from './psi.js';
import { mergeStats, summarize, type ScoreStats, type ScoreSummary } from './scoreStats.js';

/** A run's statistics, as computed from its chunks; stored in `score_runs.stats` with more (RunStats, src/ledger/types.ts). */
export interface RunStatistics {
  scores: ScoreSummary;
  /** Null for runs whose chunks predate feature counters. */
  features: FeaturesSummary | null;
  drift: Drift;
}

/**
 * Merges every chunk's statistics (all chunks, also those a failed attempt of the run committed
 * before a resume) and compares the scores with the previous published run. No pass over the scores.
 */
export async function computeRunStatistics(c: pg.ClientBase, ledger: Ledger, runId: string, plan: FeaturePlan, chunks: readonly ChunkRow[]): Promise<RunStatistics> {
  const scores = summarize(mergeStats(chunks.map((ch) => ch.stats).filter((s): s is ScoreStats => s !== null)));
  const counts = chunks.map((ch) => chunkFeatureCounts(ch.stats));
  const complete = counts.every((x): x is FeatureCounts => x !== undefined);
  const merged = complete ? mergeFeatureCounts(counts) : undefined;
  const previous = await ledger.previousPublishedRun(c, runId);
  return {
    scores,
    features: merged ? summarizeFeatures(plan, merged) : null,
    drift: drift(previous?.run_id ?? null, previous?.stats?.scores?.histogram, scores.histogram),
  };
}

/**
 * The reject gate's complaint (`rejected 1.20% of rows (12 of 1000), over the limit of 1.00% (--max-reject-ratio)`),
 * or undefined when the rejects are within the limit. Shared by a run's gates and `publish --challenger`.
 */
export function rejectGateBreach(scored: number, rejected: number, maxRatio: number): string | undefined {
  const total = scored + rejected;
  const ratio = total === 0 ? 0 : rejected / total;
  if (ratio <= maxRatio) return undefined;
  // A small ratio keeps a third decimal so that it does not read as 0.00%.
  const percent = (r: number) => formatPercent(r, r < 0.001 ? 3 : 2);
  return `rejected ${percent(ratio)} of rows (${rejected} of ${total}), over the limit of ${percent(maxRatio)} (--max-reject-ratio)`;
}

/**
 * The PSI gate's complaint, or undefined when the run passes: no limit, no previous published run, or
 * a PSI within the limit. A PSI that cannot be computed while there is a previous published run fails
 * the gate: the gate cannot tell that the scores did not drift.
 */
export function psiGateBreach(d: Drift, maxPsi: number | null | undefined): string | undefined {
  if (maxPsi === null || maxPsi === undefined || d.baseline_run_id === null) return undefined;
  if (d.psi === null) {
    return `the PSI of the scores against run ${d.baseline_run_id}'s cannot be computed (${d.unavailable ?? 'the histograms cannot be compared'}), so the scores cannot pass the limit of ${maxPsi} (--max-psi)`;
  }
  if (d.psi <= maxPsi) return undefined;
  return `the scores drifted from run ${d.baseline_run_id}'s: PSI ${d.psi.toFixed(4)}, over the limit of ${maxPsi} (--max-psi)`;
}
