import { GateError, RunFailedError } from '../errors.js';
import type { StatisticsScope } from '../features/index.js';
import type { RunStats } from '../ledger/ledger.js';
import { analyzeEarly } from '../publish/analyzeEarly.js';
import { cutPointsFromHistogram, runBands } from '../publish/cutPoints.js';
import { computeRunStatistics } from '../publish/runStatistics.js';
import { runGateRefusal, type RunStatistics } from '../stats/runStats.js';
import type { ScoreHistogram } from '../stats/scoreCuts.js';
import { carriedOf, type ChunkTotals, type ExecuteDeps, type RunProgress } from './runState.js';

/**
 * Once the chunk loop returned: the ledger, not this process's memory, says what is done. A commit the
 * server lost (a crash of a server without synchronous commit) leaves its chunk pending, and such a run
 * must not publish. The run table's ANALYZE starts here, beside the statistics.
 */
export async function settleChunks(deps: ExecuteDeps, progress: RunProgress): Promise<ChunkTotals> {
  const { ledger, runId, params } = deps;
  // The ledger connection sat idle through the chunks: if it was lost meanwhile, it is back now.
  await deps.recover();
  progress.analyzing = params.dryRun ? undefined : analyzeEarly(deps.pool, ledger, runId);
  progress.stage = 'statistics';
  const run = await ledger.getRun(deps.client, runId);
  const scored = Number(run?.rows_scored ?? 0);
  progress.scoredTotal = scored;
  const chunks = await ledger.getChunks(deps.client, runId);
  const notDone = chunks.filter((c) => c.status !== 'done').map((c) => c.chunk_no);
  if (notDone.length > 0) {
    throw new RunFailedError(
      `${notDone.length} chunk(s) are not done in the ledger (first: chunk ${notDone[0]}) although this process scored them: the server lost their commits`,
      runId,
    );
  }
  for (const f of deps.features) await f.chunksDone?.(deps);
  return { scored, rejected: Number(run?.rows_rejected ?? 0), chunks, carried: carriedOf(deps.features) };
}

/**
 * The run's statistics, percentile cut points and bands and the features' parts, stored on the run
 * before its gates (a run a gate stopped can be inspected; one published by force has its ranks), then
 * the gates (runGateRefusal: a GateError with its words).
 */
export async function runStatistics(
  deps: ExecuteDeps,
  progress: RunProgress,
  totals: ChunkTotals,
  histogram: ScoreHistogram | undefined,
): Promise<RunStatistics> {
  const { ledger, runId, params, model } = deps;
  const t = performance.now();
  const statistics = await computeRunStatistics({ client: deps.client, ledger, runId, plan: model.plan, chunks: totals.chunks });
  const stats: RunStats = { ...statistics, timings_ms: deps.timings.toJSON() };
  progress.runStats = stats;
  const all = totals.scored + (totals.carried?.rows ?? 0);
  if (!params.dryRun && all > 0) {
    const cuts = await cutPointsFromHistogram({ client: deps.client, ledger, runId, histogram, total: all });
    await ledger.publications.recordRanks(deps.client, runId, runBands(model.manifest.output.bands), cuts?.cuts);
    if (cuts) for (const f of deps.features) await f.ranked?.(deps, cuts.histogram);
  }
  // A scope that reads the session through deps (its ledger connection is a getter), with the statistics beside it.
  const scope = Object.create(deps, { statistics: { value: statistics }, stats: { value: stats } }) as StatisticsScope;
  for (const f of deps.features) await f.statistics?.(scope);
  deps.timings.add('statistics', performance.now() - t);
  // The publish gates (src/stats/runStats.ts), on what was just stored.
  const { drift } = statistics;
  const refusal = runGateRefusal({
    scored: all,
    rejected: totals.rejected,
    drift,
    maxRejectRatio: params.maxRejectRatio,
    maxPsi: params.maxPsi,
    schema: ledger.schema,
    runId,
  });
  if (refusal) throw new GateError(refusal);
  if (params.maxPsi != null && drift.baseline_run_id === null)
    deps.log.info({ max_psi: params.maxPsi }, 'no previous published run to compare the scores with: the PSI gate does not apply');
  return statistics;
}
