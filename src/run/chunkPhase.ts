import { runChunks } from '../chunks/chunkRunner.js';
import type { ChunkLoopDeps, StopSignal } from '../chunks/chunkLoop.js';
import { StoppedError } from '../errors.js';
import type { ChunkRead } from '../features/index.js';
import type { RunObserver } from '../observe/observer.js';
import { ScoreHistogram } from '../stats/scoreCuts.js';
import { runShared, sharedSource } from '../workers/sharedRun.js';
import type { ExecuteDeps, PlannedRun, RunProgress } from './runState.js';

/**
 * Scores the run's pending chunks, in order in this process or, for a run started with --workers, by
 * claim with its local and remote workers (sharedRun.ts). Returns the histogram of the scores it
 * committed (none for a dry run), from which the percentile cut points come without a sort.
 */
export async function scoreChunks(deps: ExecuteDeps, progress: RunProgress, observer: RunObserver, planned: PlannedRun): Promise<ScoreHistogram | undefined> {
  const { ledger, runId, params } = deps;
  const { chunks, pending, view } = planned;
  // What each chunk reads and what is done once it is: the run's parts, made before the loop starts.
  const read = chunkRead(deps, observer);
  const onChunkDone = chunkCounter(deps, progress, observer, planned);
  progress.stage = pending[0] ? `chunk ${pending[0].chunkNo}` : 'statistics';
  observer.begin(chunks, params.chunkSize, planned.sourceRows);
  // Fixed size, counted as chunks commit: it spares a sort of the run's table.
  const histogram = params.dryRun ? undefined : new ScoreHistogram();
  const loop: ChunkLoopDeps = {
    pool: deps.pool,
    view: params.workers === undefined ? view : sharedSource(view, () => ledger.pendingChunks(deps.client, runId)),
    ledger,
    runId,
    source: params.source,
    ...read,
    chunkStats: observer.chunkStats,
    scorer: deps.model.scorer,
    chunkSize: params.chunkSize,
    attempts: params.chunkAttempts,
    stop: deps.stop,
    log: deps.log,
    timings: deps.timings,
    recordFailure: (chunkNo, message) => ledger.recordChunkFailure(deps.client, runId, chunkNo, message),
    recover: () => deps.recover(),
    fence: (c) => deps.fence(c),
    onScoresCommitted: (scores, rows) => histogram?.add(scores, rows),
    outageBudgetMs: deps.outageBudgetMs,
    onWaiting: (since) => observer.waiting(since),
    onFailed: (chunk) => {
      progress.failedChunk = chunk;
      progress.stage = `chunk ${chunk.chunkNo}`;
    },
    onChunkDone,
  };
  const completed =
    params.workers === undefined ? await runChunks(loop, pending) : await runShared(loop, { config: deps.config, params, modelDir: params.modelDir });
  observer.stopProgress();
  await view.close(); // every chunk is read: let VACUUM past the snapshot before the gates and the publish
  if (!completed || deps.stop.requested) throw stopped(deps.stop, runId);
  return histogram;
}

/** The champion's columns and transform, wrapped by each feature in turn (more columns, a sidecar). */
function chunkRead(deps: ExecuteDeps, observer: RunObserver): ChunkRead {
  let read: ChunkRead = { columns: deps.model.plan.columns, transform: observer.transform, sidecar: undefined };
  for (const f of deps.features) if (f.chunkRead) read = f.chunkRead(read, { ledger: deps.ledger, runId: deps.runId, model: deps.model, role: 'run' });
  return read;
}

/** Counts and reports each chunk done; the loop does the pending chunks in order: the one in flight is the first not reported done. */
function chunkCounter(deps: ExecuteDeps, progress: RunProgress, observer: RunObserver, planned: PlannedRun): NonNullable<ChunkLoopDeps['onChunkDone']> {
  const { chunks, pending } = planned;
  let done = chunks.length - pending.length;
  let inFlight = 0;
  return ({ chunkNo, scored, rejected }) => {
    done++;
    // Debug on a terminal, where the live progress line says it (and log lines would tear it); info in logs, where cron and tests follow the chunks.
    deps.log[observer.chunkLogLevel](
      { chunk: chunkNo, scored, rejected, chunks_done: done, chunks_total: chunks.length },
      `chunk ${chunkNo} done (${done}/${chunks.length})`,
    );
    observer.chunkDone(scored, rejected);
    progress.scoredNow += scored;
    progress.rejectedNow += rejected;
    const next = pending[++inFlight];
    if (next) progress.stage = `chunk ${next.chunkNo}`;
  };
}

function stopped(stop: StopSignal, runId: string): StoppedError {
  return new StoppedError(`run ${runId} interrupted by ${stop.requested ?? 'a signal'}`);
}
