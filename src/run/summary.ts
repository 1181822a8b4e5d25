import type { Logger } from '../log.js';
import type { RunResult } from './runJob.js';

/** The run's closing paragraph: one log line with every figure as a field. */
export function logRunSummary(log: Logger, schema: string, r: RunResult): void {
  const rate = Math.round(r.rowsPerSecond);
  const what = r.dryRun ? 'dry run (nothing published)' : `published to ${schema}.customer_scores`;
  log.info(
    {
      run_id: r.runId,
      status: r.status,
      rows_scored: r.rowsScored,
      rows_rejected: r.rowsRejected,
      duration_ms: Math.round(r.durationMs),
      rows_per_second: rate,
      backend: r.backend,
      model: r.modelName,
      model_version: r.modelVersion,
      dry_run: r.dryRun,
      score_mean: r.stats.mean,
      psi: r.psi,
      psi_baseline_run_id: r.psiBaselineRunId,
      timings_ms: r.timings,
      dropped_runs: r.droppedRuns,
    },
    `run ${r.runId} succeeded: scored ${r.rowsScored} customers (${r.rowsRejected} rejected) in ${(r.durationMs / 1000).toFixed(1)} s, ` +
      `${rate} rows/s, with model ${r.modelName} ${r.modelVersion} on the ${r.backend} backend; ${what}`,
  );
}
