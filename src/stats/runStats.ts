import { formatPercent } from '../format.js';
import type { FeaturesSummary } from './featureStats.js';
import type { Drift } from './psi.js';
import type { ScoreSummary } from './scoreStats.js';

/** A run's statistics, as computed from its chunks (src/publish/runStatistics.ts); stored in `score_runs.stats` with more (RunStats, src/ledger/types.ts). */
export interface RunStatistics {
  scores: ScoreSummary;
  /** Null for runs whose chunks predate feature counters. */
  features: FeaturesSummary | null;
  drift: Drift;
}

/**
 * The reject gate's complaint (`rejected 1.20% of rows (12 of 1000), over the limit of 1.00% (--max-reject-ratio)`),
 * or undefined when the rejects are within the limit. Shared by a run's gates and the publish of a run made as part of another.
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

/** What a run's publish gates look at: its counts and drift, its limits, and where its rejects are kept. */
export interface RunGateInput {
  scored: number;
  rejected: number;
  drift: Drift;
  maxRejectRatio: number;
  maxPsi: number | null | undefined;
  /** The ledger's schema and the run: named in the refusal's pointer to its rejects. */
  schema: string;
  runId: string;
}

/**
 * The publish gates of a run, in order: too many rejects, scores drifted too far from the previous
 * published run, or no score at all (publishing would empty customer_scores, whatever
 * --max-reject-ratio allows). The refusal's words, or undefined when the run may publish.
 */
export function runGateRefusal(g: RunGateInput): string | undefined {
  const rejectBreach = rejectGateBreach(g.scored, g.rejected, g.maxRejectRatio);
  if (rejectBreach) return `${rejectBreach}; the scores are kept unpublished: see ${g.schema}.score_rejects for run ${g.runId}`;
  const psiBreach = psiGateBreach(g.drift, g.maxPsi);
  if (psiBreach) return `${psiBreach}; the scores are kept unpublished for inspection (\`scorejob runs show ${g.runId}\`)`;
  if (g.scored === 0)
    return `no customer could be scored (${g.rejected} rejected: see ${g.schema}.score_rejects for run ${g.runId}); publishing would empty customer_scores`;
  return undefined;
}
