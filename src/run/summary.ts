import type { Logger } from '../log.js';
import type { RunResult } from './runJob.js';
import { formatSeconds } from '../format.js';

/**
 * The run's closing paragraph: one log line with every figure as a field. `rows_scored` and
 * `rows_rejected` are the run's totals; `rows_scored_now`, `rows_rejected_now` and `rows_per_second`
 * are this invocation's (they differ after a resume).
 */
export function logRunSummary(log: Logger, schema: string, r: RunResult): void {
  const rate = Math.round(r.rowsPerSecond);
  // What this invocation did, and its rate; a resume that took over done chunks also gives the run's totals.
  const tookOver = r.rowsScoredNow !== r.rowsScored || r.rowsRejectedNow !== r.rowsRejected;
  const scored = tookOver
    ? `${r.rowsScoredNow} customers now (${r.rowsScored} in all, ${r.rowsRejected} rejected)`
    : `${r.rowsScored} customers (${r.rowsRejected} rejected)`;
  // A shared run: the figures are every worker's; this process's share is said as such.
  const shared = r.workers ? ` with ${r.workers.count} workers (this process scored ${r.workers.scoredHere})` : '';
  const what = r.dryRun ? 'dry run (nothing published)' : `published to ${schema}.customer_scores`;
  // --only-new: the customers it did not score are there too, carried forward.
  const carried = r.carried ? `, ${r.carried.rows} scores carried forward from run ${r.carried.baseRunId}` : '';
  log.info(
    {
      run_id: r.runId,
      status: r.status,
      rows_scored: r.rowsScored,
      rows_rejected: r.rowsRejected,
      rows_scored_now: r.rowsScoredNow,
      rows_rejected_now: r.rowsRejectedNow,
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
      rows_carried: r.carried?.rows,
      workers: r.workers?.count,
      rows_scored_here: r.workers?.scoredHere,
    },
    `run ${r.runId} succeeded: scored ${scored}${shared} in ${formatSeconds(r.durationMs)}, ` +
      `${rate} rows/s, with model ${r.modelName} ${r.modelVersion} on the ${r.backend} backend${carried}; ${what}`,
  );
}
