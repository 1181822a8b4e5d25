import type pg from 'pg';
import type { Config } from '../config.js';
import { describeDbError } from '../db/describeError.js';
import { isTransient } from '../db/sqlstate.js';
import { EmptySourceError, GateError, InterruptedError, LockLostError, RunFailedError, StoppedError } from '../errors.js';
import { withTransaction } from '../db/sql.js';
import type { Logger } from '../log.js';
import type { LoadedModel } from '../model/load.js';
import { combineSidecars, type ChunkLoopDeps, type StopSignal } from '../chunks/chunkLoop.js';
import { runChunks } from '../chunks/chunkRunner.js';
import { defaultOutageBudgetMs } from '../chunks/retryPolicy.js';
import type { Ledger, PlannedChunk, RunParams, RunStats } from '../ledger/ledger.js';
import type { ChunkRow } from '../ledger/types.js';
import { applyRetention, attachRunTable, dropRunLeftovers, publishRun, registerModel } from '../publish/publish.js';
import { classifyFailure, failureAdvice } from './advice.js';
import type { ScoreSummary } from '../stats/scoreStats.js';
import { SourceView } from './sourceView.js';
import { nullKeysProblem } from '../db/sourceColumns.js';
import { RunObserver, type ObserveDeps } from '../observe/observer.js';
import { psiGateBreach, rejectGateBreach, type RunStatistics } from '../stats/runStats.js';
import { computeRunStatistics } from '../publish/runStatistics.js';
import type { StageTimings } from '../observe/timings.js';
import { describeFewerReasons } from '../publish/reasonsLost.js';
import { runOnPublishCommand } from '../publish/onPublishCommand.js';
import type { Explainer } from '../model/explainer.js';
import { reasonsSidecar } from '../features/reasons/reasonsSidecar.js';
import { ensureReasonsTable } from '../ledger/reasonsTables.js';
import { freezeOnlyNew } from '../features/only-new/onlyNew.js';
import { dropFrozenRows } from '../ledger/runStorage.js';
import { ScoreHistogram } from '../stats/scoreCuts.js';
import { cutPointsFromHistogram, runBands } from '../publish/cutPoints.js';
import { runShared, sharedSource } from '../workers/sharedRun.js';
import { challengerStatistics, finishChallenger, withChallengerColumns, type Challenger } from '../features/challenger/challenger.js';
import { analyzeEarly } from '../publish/analyzeEarly.js';

/** What a finished run reports: the summary line's facts. */
export interface RunResult {
  runId: string;
  status: 'succeeded';
  dryRun: boolean;
  published: boolean;
  /** The run's totals (a resumed run: with the chunks done before). */
  rowsScored: number;
  rowsRejected: number;
  /** What this invocation scored and rejected (a resume: only the chunks it did). */
  rowsScoredNow: number;
  rowsRejectedNow: number;
  durationMs: number;
  /** This invocation's rows scored per second of its duration (a shared run: by every worker). */
  rowsPerSecond: number;
  /** A shared run (`--workers N`): the workers, and the rows this process scored itself (`rowsScoredNow` counts every worker's). */
  workers?: { count: number; scoredHere: number; rejectedHere: number };
  backend: string;
  modelName: string;
  modelVersion: string;
  stats: ScoreSummary;
  /** PSI of the scores against the previous published run (`psiBaselineRunId`); null without one. */
  psi: number | null;
  psiBaselineRunId: string | null;
  timings: Record<string, number>;
  /** Runs whose history retention dropped. */
  droppedRuns: string[];
  /** --only-new: the scores carried forward from `baseRunId` (absent on a full run). */
  carried?: { rows: number; baseRunId: string };
}

export interface ExecuteDeps {
  pool: pg.Pool;
  client: pg.PoolClient;
  ledger: Ledger;
  config: Config;
  recover(): Promise<void>;
  /** Checked in every writing transaction just before COMMIT: the run lock is still ours (src/ledger/runLock.ts). */
  fence(c: pg.ClientBase): Promise<void>;
  log: Logger;
  stop: StopSignal;
  model: LoadedModel;
  runId: string;
  params: RunParams;
  timings: StageTimings;
  /** Progress line / log lines and the metrics file (the CLI's choices); none when absent. */
  observe?: ObserveDeps | undefined;
  /** `--reasons K`: explains every scored row; its reasons are written with the scores (src/features/reasons/reasonsSidecar.ts). */
  explainer?: Explainer | undefined;
  /** `--challenger DIR`: a second model scoring the same chunks into its sibling run (src/features/challenger/challenger.ts). */
  challenger?: Challenger | undefined;
  /** `--outage-budget`, ms: how long the chunks and the ledger wait for an unreachable database; default 60 s. */
  outageBudgetMs?: number | undefined;
}

/**
 * Scores the run's unfinished chunks, checks the gates, publishes (or, for a dry run, drops the scores),
 * and writes the outcome to the ledger whatever happens. The ledger is the truth: a failure is recorded
 * there in words before this throws.
 */
export async function executeRun(deps: ExecuteDeps): Promise<RunResult> {
  const { ledger, runId, params, log, model } = deps;
  const started = performance.now();
  // The run row's sign of life for people (`runs`); whether the run is alive is the run lock's business.
  const heartbeat = setInterval(() => void ledger.heartbeat(deps.client, runId).catch(() => undefined), 15_000);
  heartbeat.unref();
  const observer = new RunObserver(deps.observe, log, model.plan);
  let runStats: RunStats | undefined;
  /** The challenger's statistics once computed: recorded on its run whatever the champion's outcome. */
  let challengerStats: RunStats | undefined;
  /** Where the run is, for the ledger's words when it fails: planning, chunk N, statistics, publish. */
  let stage = 'planning';
  let scoredNow = 0;
  let rejectedNow = 0;
  /** The run's total once its chunks are done: with none scored, no advice may be to publish. */
  let scoredTotal: number | undefined;
  let view: SourceView | undefined;
  /** The chunk whose failure failed the run (its key range goes into the advice). */
  let failedChunk: PlannedChunk | undefined;
  /** The run table's ANALYZE, running beside the statistics (analyzeEarly.ts). */
  let analyzing: Promise<void> | undefined;
  try {
    // --only-new: what the run rescores is frozen and the rest carried from the base run, in one snapshot, before it plans (src/features/only-new/onlyNew.ts).
    const t0 = performance.now();
    const carried = params.onlyNew ? await freezeOnlyNew(deps.pool, ledger, runId, params.onlyNew, params.source.key, deps.fence, log) : 0;
    if (params.onlyNew) deps.timings.add('plan', performance.now() - t0);
    view = await SourceView.open({ pool: deps.pool, ledger, ledgerClient: () => deps.client, runId, source: params.source, log });
    const sourceRows = await ensurePlanned(deps, view);
    if (!params.dryRun) {
      await registerModel(deps.client, ledger, model.manifest.name, log);
      await attachRunTable(deps.client, ledger, runId, log);
      // The challenger's table too: attached, it is never named by a pointer until `publish --challenger`.
      if (deps.challenger) await attachRunTable(deps.client, ledger, deps.challenger.runId, log);
    }
    if (deps.explainer) await ensureReasonsTable(deps.client, ledger, runId, !params.dryRun, log);
    const chunks = await ledger.getChunks(deps.client, runId);
    const pending = await ledger.pendingChunks(deps.client, runId);
    let done = chunks.length - pending.length;
    // The loop does the pending chunks in order: the one in flight is the first not reported done.
    let inFlight = 0;
    stage = pending[0] ? `chunk ${pending[0].chunkNo}` : 'statistics';
    observer.begin(chunks, params.chunkSize, sourceRows);
    // The percentile cut points' histogram (fixed size): counted as chunks commit, it spares a sort of the run's table.
    const histogram = params.dryRun ? undefined : new ScoreHistogram();
    // With a challenger, each chunk is read once with both models' columns: the champion's first (its transform sees only those).
    const read = withChallengerColumns(model, observer.transform, deps.challenger, ledger);
    const loop: ChunkLoopDeps = {
      pool: deps.pool,
      view: params.workers === undefined ? view : sharedSource(view, () => ledger.pendingChunks(deps.client, runId)),
      ledger,
      runId,
      source: params.source,
      columns: read.columns,
      transform: read.transform,
      chunkStats: observer.chunkStats,
      scorer: model.scorer,
      chunkSize: params.chunkSize,
      attempts: params.chunkAttempts,
      stop: deps.stop,
      log,
      timings: deps.timings,
      recordFailure: (chunkNo, message) => ledger.recordChunkFailure(deps.client, runId, chunkNo, message),
      recover: deps.recover,
      fence: deps.fence,
      sidecar: combineSidecars([deps.explainer && reasonsSidecar(deps.explainer, ledger, runId), read.sidecar]),
      onScoresCommitted: (scores, rows) => histogram?.add(scores, rows),
      outageBudgetMs: deps.outageBudgetMs,
      onWaiting: (since) => observer.waiting(since),
      onFailed: (chunk) => {
        failedChunk = chunk;
        stage = `chunk ${chunk.chunkNo}`;
      },
      onChunkDone: ({ chunkNo, scored, rejected }) => {
        done++;
        // Debug on a terminal, where the live progress line says it (and log lines would tear it); info in logs, where cron and tests follow the chunks.
        log[observer.chunkLogLevel]({ chunk: chunkNo, scored, rejected, chunks_done: done, chunks_total: chunks.length }, `chunk ${chunkNo} done (${done}/${chunks.length})`);
        observer.chunkDone(scored, rejected);
        scoredNow += scored;
        rejectedNow += rejected;
        const next = pending[++inFlight];
        if (next) stage = `chunk ${next.chunkNo}`;
      },
    };
    // A run started with --workers shares its chunks by claim with its local and remote workers (sharedRun.ts).
    const completed = params.workers === undefined ? await runChunks(loop, pending) : await runShared(loop, { config: deps.config, params, modelDir: params.modelDir });
    observer.stopProgress();
    await view.close(); // every chunk is read: let VACUUM past the snapshot before the gates and the publish
    if (!completed || deps.stop.requested) throw stopped(deps.stop, runId);
    // The ledger connection sat idle through the chunks: if it was lost meanwhile, it is back now.
    await deps.recover();
    analyzing = params.dryRun ? undefined : analyzeEarly(deps.pool, ledger, runId);
    stage = 'statistics';

    const run = await ledger.getRun(deps.client, runId);
    const scored = Number(run?.rows_scored ?? 0);
    scoredTotal = scored;
    const rejected = Number(run?.rows_rejected ?? 0);
    const finalChunks = await ledger.getChunks(deps.client, runId);
    // The ledger, not this process's memory, says what is done: a commit the server lost (a crash of a
    // server without synchronous commit) leaves its chunk pending, and such a run must not publish.
    const notDone = finalChunks.filter((c) => c.status !== 'done').map((c) => c.chunk_no);
    if (notDone.length > 0) {
      throw new RunFailedError(`${notDone.length} chunk(s) are not done in the ledger (first: chunk ${notDone[0]}) although this process scored them: the server lost their commits`, runId);
    }
    // Every chunk is done: the run's frozen copy of the rows it rescored (source data) is not needed any more.
    if (params.onlyNew) await dropFrozenRows(deps.client, ledger, runId);
    let t = performance.now();
    const statistics = await computeRunStatistics(deps.client, ledger, runId, model.plan, finalChunks);
    const stats = statistics.scores;
    // Stored on the run before the gates, so a run a gate stopped can be inspected (`runs show`).
    runStats = { ...statistics, timings_ms: deps.timings.toJSON() };
    // Percentile cut points and bands, on the run before its gates (a run published by force has them too).
    if (!params.dryRun && scored + carried > 0) {
      const cuts = await cutPointsFromHistogram(deps.client, ledger, runId, histogram, scored + carried);
      await ledger.publications.recordRanks(deps.client, runId, runBands(model.manifest.output.bands), cuts?.cuts);
      // A full run keeps its histogram: the percentiles of the --only-new layers that will lie on it start from it.
      if (cuts && !params.onlyNew) await ledger.onlyNew.recordHistogram(deps.client, runId, cuts.histogram.toSparse());
    }
    // The challenger's statistics and its comparison with these scores (over the deciles just recorded), on the run before its gates.
    const challenged = deps.challenger && (await challengerStatistics(deps.client, ledger, runId, model, deps.challenger, params.dryRun));
    // Beside the comparison, both models' drift from the same baseline: what `publish --challenger` gates on.
    if (challenged) runStats.challenger = { ...challenged.comparison, drift: { baseline_run_id: statistics.drift.baseline_run_id, champion_psi: statistics.drift.psi, challenger_psi: challenged.stats?.drift?.psi ?? null } };
    challengerStats = challenged?.stats;
    deps.timings.add('statistics', performance.now() - t);
    checkGates(deps, scored + carried, rejected, statistics.drift);
    stage = 'publish';
    t = performance.now();
    let dropped: string[] = [];
    // Succeeded before the champion publishes: a publish that fails marks it failed again (catch below), and resume reopens it.
    if (deps.challenger) {
      if (params.dryRun) await deps.client.query(`DROP TABLE IF EXISTS ${ledger.runTable(deps.challenger.runId)}`);
      await finishChallenger(deps.client, ledger, deps.challenger.runId, runId, { status: 'succeeded', stats: challenged?.stats });
    }
    if (params.dryRun) {
      await deps.client.query(`DROP TABLE IF EXISTS ${ledger.runTable(runId)}`);
      await dropRunLeftovers(deps.client, ledger, runId);
      await ledger.finishRun(deps.client, runId, 'succeeded', { stats: runStats });
    } else {
      await analyzing;
      const event = await publishRun(deps.client, ledger, runId, runStats, log, { fence: deps.fence, analyzed: analyzing !== undefined });
      await warnFewerReasons(deps.client, ledger, runId, model.manifest.name, log);
      await runOnPublishCommand(params.onPublishCommand ?? undefined, event, log);
      dropped = await applyRetention(deps.client, ledger, model.manifest.name, params.keepRuns, log);
    }
    deps.timings.add('publish', performance.now() - t);
    const durationMs = performance.now() - started;
    await observer.finished(
      { model: model.manifest.name, runId, status: 'succeeded', errorKind: null, published: !params.dryRun, dryRun: params.dryRun, psi: statistics.drift.psi, rowsScored: scored, rowsRejected: rejected },
      () => ledger.lastSuccessAt(deps.client, model.manifest.name),
    );
    const allNow = params.workers === undefined ? { scored: scoredNow, rejected: rejectedNow } : rowsOfChunks(finalChunks, pending);
    return {
      runId,
      status: 'succeeded',
      dryRun: params.dryRun,
      published: !params.dryRun,
      rowsScored: scored,
      rowsRejected: rejected,
      rowsScoredNow: allNow.scored,
      rowsRejectedNow: allNow.rejected,
      durationMs,
      rowsPerSecond: allNow.scored / Math.max(durationMs / 1000, 1e-9),
      ...(params.workers === undefined ? {} : { workers: { count: params.workers, scoredHere: scoredNow, rejectedHere: rejectedNow } }),
      backend: model.backend,
      modelName: model.manifest.name,
      modelVersion: model.manifest.version,
      stats,
      psi: statistics.drift.psi,
      psiBaselineRunId: statistics.drift.baseline_run_id,
      timings: deps.timings.toJSON(),
      droppedRuns: dropped,
      ...(params.onlyNew ? { carried: { rows: carried, baseRunId: params.onlyNew.baseRunId } } : {}),
    };
  } catch (err) {
    const failure = await classifyFailure(err, { client: deps.client, model, config: deps.config, runId, stage, failedChunk });
    await recordOutcome(deps, async () => {
      await ledger.finishRun(deps.client, runId, failure.status, { error: failure.message, errorKind: failure.kind, stats: runStats });
      if (deps.challenger) await finishChallenger(deps.client, ledger, deps.challenger.runId, runId, { status: failure.status, error: failure.message, errorKind: failure.kind, stats: challengerStats });
    });
    await observer.finished({ model: model.manifest.name, runId, status: failure.status, errorKind: failure.kind, published: false, dryRun: params.dryRun, psi: runStats?.drift?.psi ?? null }, () => ledger.lastSuccessAt(deps.client, model.manifest.name));
    // Logged here, with the run's fields, in the words thrown (advice included); the CLI does not log it again.
    if (failure.status === 'interrupted' && deps.stop.requested) {
      const interrupted = new InterruptedError(`run ${runId} interrupted by ${deps.stop.requested}; resume it with \`scorejob resume ${runId}\``, deps.stop.requested);
      log.warn({ status: 'interrupted' }, interrupted.message);
      interrupted.loggedAt = 'warn';
      throw interrupted;
    }
    const failed = new RunFailedError(`run ${runId} failed: ${failure.message}; ${failureAdvice(failure, runId, scoredTotal, params.dryRun)}`, runId, { cause: err });
    log.error({ status: failure.status, error_kind: failure.kind, error: failure.message, stage, exit_code: failed.exitCode }, failed.message);
    failed.loggedAt = 'error';
    throw failed;
  } finally {
    await analyzing?.catch(() => undefined);
    await view?.close();
    observer.stopProgress();
    clearInterval(heartbeat);
  }
}

/**
 * Records a failed run's outcome, waiting out a database outage (up to the outage budget, trying every second
 * or two), so that a run that failed because the server went away is still recorded `failed`, with its
 * reason, rather than left `running`. Never writes once the run lock was taken over (another process
 * owns the ledger of this run now).
 */
async function recordOutcome(deps: ExecuteDeps, write: () => Promise<void>): Promise<void> {
  const budgetMs = deps.outageBudgetMs ?? defaultOutageBudgetMs;
  const deadline = Date.now() + budgetMs;
  for (let attempt = 1; ; attempt++) {
    try {
      await deps.recover();
      await write();
      return;
    } catch (e) {
      if (e instanceof LockLostError) {
        deps.log.error({ err: e.message }, 'the outcome is not recorded: the run lock was taken over, and the process that took it marked this run');
        return;
      }
      if (!isTransient(e) || Date.now() >= deadline) {
        deps.log.error({ err: describeDbError(e) }, 'could not record the outcome in the ledger; the next run (or `scorejob runs`) will mark this run interrupted');
        return;
      }
      if (attempt === 1) deps.log.warn({ err: describeDbError(e) }, `cannot reach the ledger to record the outcome (${describeDbError(e)}); retrying for up to ${budgetMs / 1000} s (--outage-budget)`);
      await new Promise((r) => setTimeout(r, Math.min(2000, 250 * 2 ** attempt)));
    }
  }
}

/**
 * Plans the run's chunks in the run's snapshot unless a plan is recorded. Planned here (not before the run
 * row) so that a failed plan is recorded on the run, and a resume of a run that died while planning plans
 * again. A resume of a planned run counts its unfinished chunks again in its new snapshot: they read the
 * source as of the resume. Returns the source's row count when it planned now.
 */
async function ensurePlanned(deps: ExecuteDeps, view: SourceView): Promise<number | undefined> {
  const { ledger, runId, params, log } = deps;
  const run = await ledger.getRun(deps.client, runId);
  if (run?.chunks_total !== null && run?.chunks_total !== undefined) {
    await view.recount(await ledger.pendingChunks(deps.client, runId));
    return undefined;
  }
  const t0 = performance.now();
  const plan = await view.plan(params.chunkSize);
  // The start-up check refused NULL keys; these appeared since (in the run's snapshot): still no row goes unaccounted for.
  if (plan.nullKeys > 0) throw new RunFailedError(nullKeysProblem(params.source.table, params.source.key, plan.nullKeys), runId);
  // An --only-new run with no new customer still publishes: every score is carried forward.
  if (plan.rows === 0 && !params.onlyNew) throw new EmptySourceError(params.source.table, runId);
  await withTransaction(deps.client, async (c) => {
    await ledger.recordPlan(c, runId, plan.chunks);
    await ledger.recordChunkRows(c, runId, plan.chunks);
    // The challenger's run has the same chunks (and its own table), in the same transaction: each chunk commits for both.
    if (deps.challenger) {
      await ledger.recordPlan(c, deps.challenger.runId, plan.chunks);
      await ledger.recordChunkRows(c, deps.challenger.runId, plan.chunks);
    }
  });
  deps.timings.add('plan', performance.now() - t0);
  log.info({ chunks: plan.chunks.length, source_rows: plan.rows }, `run ${runId} planned: ${plan.rows} customers in ${plan.chunks.length} chunks`);
  return plan.rows;
}

/**
 * The publish gates: too many rejects, no score at all (publishing would empty customer_scores,
 * whatever --max-reject-ratio allows), or scores drifted too far from the previous published run.
 */
function checkGates(deps: ExecuteDeps, scored: number, rejected: number, drift: RunStatistics['drift']): void {
  const { params, runId, ledger, log } = deps;
  const rejectBreach = rejectGateBreach(scored, rejected, params.maxRejectRatio);
  if (rejectBreach) throw new GateError(`${rejectBreach}; the scores are kept unpublished: see ${ledger.schema}.score_rejects for run ${runId}`);
  const psiBreach = psiGateBreach(drift, params.maxPsi);
  if (psiBreach) throw new GateError(`${psiBreach}; the scores are kept unpublished for inspection (\`scorejob runs show ${runId}\`)`);
  if (scored === 0) throw new GateError(`no customer could be scored (${rejected} rejected: see ${ledger.schema}.score_rejects for run ${runId}); publishing would empty customer_scores`);
  if (params.maxPsi != null && drift.baseline_run_id === null) log.info({ max_psi: params.maxPsi }, 'no previous published run to compare the scores with: the PSI gate does not apply');
}

function stopped(stop: StopSignal, runId: string): StoppedError {
  return new StoppedError(`run ${runId} interrupted by ${stop.requested ?? 'a signal'}`);
}

/** A shared run's chunks were scored by every worker: this invocation's rows are those of the chunks pending when it started. */
function rowsOfChunks(chunks: readonly ChunkRow[], pending: readonly { chunkNo: number }[]): { scored: number; rejected: number } {
  const pendingNos = new Set(pending.map((ch) => ch.chunkNo));
  const now = chunks.filter((ch) => pendingNos.has(ch.chunk_no));
  return { scored: now.reduce((a, ch) => a + (ch.rows_scored ?? 0), 0), rejected: now.reduce((a, ch) => a + (ch.rows_rejected ?? 0), 0) };
}

/** A run that leaves readers fewer customers with reasons than the run it replaced says so (published_runs.fewer_reasons). */
async function warnFewerReasons(c: pg.ClientBase, ledger: Ledger, runId: string, model: string, log: Logger): Promise<void> {
  const fewer = await ledger.publications.fewerReasons(c, model);
  if (fewer) log.warn({ rows_with_reasons: fewer.now, previous_rows_with_reasons: fewer.before }, describeFewerReasons(ledger.schema, runId, fewer));
}
