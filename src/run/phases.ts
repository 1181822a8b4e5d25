import type { ChunkRow } from '../ledger/types.js';
import { runFeatureMetrics } from '../features/reports.js';
import { RunObserver } from '../observe/observer.js';
import type { RunStatistics } from '../stats/runStats.js';
import { scoreChunks } from './chunkPhase.js';
import { recordFailure } from './failure.js';
import { planRun } from './planPhase.js';
import { publishOrDrop } from './publishPhase.js';
import { type ChunkTotals, type ExecuteDeps, type PlannedRun, type RunProgress, type RunResult } from './runState.js';
import { runStatistics, settleChunks } from './statisticsPhase.js';

export type { ExecuteDeps, RunResult };

/**
 * The run as a pipeline: plan, score the chunks, statistics and gates, publish (or, for a dry run, drop
 * the scores); its features' hooks at each step. The outcome is written to the ledger whatever happens:
 * a failure is recorded there in words before this throws.
 */
export async function executeRun(deps: ExecuteDeps): Promise<RunResult> {
  const started = performance.now();
  // The run row's sign of life for people (`runs`); whether the run is alive is the run lock's business.
  const heartbeat = setInterval(() => void deps.ledger.heartbeat(deps.client, deps.runId).catch(() => undefined), 15_000);
  heartbeat.unref();
  const observer = new RunObserver(deps.observe, deps.log, deps.model.plan);
  const progress: RunProgress = { stage: 'planning', scoredNow: 0, rejectedNow: 0 };
  try {
    const planned = await planRun(deps, progress);
    const histogram = await scoreChunks(deps, progress, observer, planned);
    const totals = await settleChunks(deps, progress);
    const statistics = await runStatistics(deps, progress, totals, histogram);
    const dropped = await publishOrDrop(deps, progress);
    const result = runResult(deps, { started, planned, totals, statistics, dropped, progress });
    await observer.finished(
      {
        model: deps.model.manifest.name,
        runId: deps.runId,
        status: 'succeeded',
        errorKind: null,
        published: !deps.params.dryRun,
        dryRun: deps.params.dryRun,
        psi: statistics.drift.psi,
        rowsScored: totals.scored,
        rowsRejected: totals.rejected,
      },
      () => deps.ledger.lastSuccessAt(deps.client, deps.model.manifest.name),
      () => runFeatureMetrics(deps.client, deps.ledger.schema, { runId: deps.runId, model: deps.model.manifest.name }),
    );
    return result;
  } catch (err) {
    throw await recordFailure(deps, progress, observer, err);
  } finally {
    await progress.analyzing?.catch(() => undefined);
    await progress.view?.close();
    observer.stopProgress();
    clearInterval(heartbeat);
  }
}

interface Finished {
  started: number;
  planned: PlannedRun;
  totals: ChunkTotals;
  statistics: RunStatistics;
  dropped: string[];
  progress: RunProgress;
}

/** The summary line's facts. */
function runResult(deps: ExecuteDeps, r: Finished): RunResult {
  const { params, model } = deps;
  const durationMs = performance.now() - r.started;
  const shared = params.workers !== undefined;
  const now = shared ? rowsOfChunks(r.totals.chunks, r.planned.pending) : { scored: r.progress.scoredNow, rejected: r.progress.rejectedNow };
  const carried = r.totals.carried;
  return {
    runId: deps.runId,
    status: 'succeeded',
    dryRun: params.dryRun,
    published: !params.dryRun,
    rowsScored: r.totals.scored,
    rowsRejected: r.totals.rejected,
    rowsScoredNow: now.scored,
    rowsRejectedNow: now.rejected,
    durationMs,
    rowsPerSecond: now.scored / Math.max(durationMs / 1000, 1e-9),
    ...(shared ? { workers: { count: params.workers, scoredHere: r.progress.scoredNow, rejectedHere: r.progress.rejectedNow } } : {}),
    backend: model.backend,
    modelName: model.manifest.name,
    modelVersion: model.manifest.version,
    stats: r.statistics.scores,
    psi: r.statistics.drift.psi,
    psiBaselineRunId: r.statistics.drift.baseline_run_id,
    timings: deps.timings.toJSON(),
    droppedRuns: r.dropped,
    ...(carried ? { carried } : {}),
  };
}

/** A shared run's chunks were scored by every worker: this invocation's rows are those of the chunks pending when it started. */
function rowsOfChunks(chunks: readonly ChunkRow[], pending: readonly { chunkNo: number }[]): { scored: number; rejected: number } {
  const pendingNos = new Set(pending.map((ch) => ch.chunkNo));
  const now = chunks.filter((ch) => pendingNos.has(ch.chunk_no));
  return { scored: now.reduce((a, ch) => a + (ch.rows_scored ?? 0), 0), rejected: now.reduce((a, ch) => a + (ch.rows_rejected ?? 0), 0) };
}
