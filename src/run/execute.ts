import type pg from 'pg';
import type { Config } from '../config.js';
import { describeDbError } from '../db/describeError.js';
import { SqlState, sqlStateOf, isTransient } from '../db/sqlstate.js';
import { InterruptedError, RunFailedError, ScorejobError } from '../errors.js';
import type { Logger } from '../log.js';
import type { LoadedModel } from '../model/load.js';
import { runChunks, type StopSignal } from './chunkLoop.js';
import type { ErrorKind, Ledger, RunParams } from './ledger.js';
import { applyRetention, publishRun } from './publish.js';
import type { ScoreSummary } from './scoreStats.js';
import { explainSourceFailure } from './sourceCheck.js';
import { ChunkCountError, SourceView } from './sourceView.js';
import { nullKeysProblem } from '../db/sourceColumns.js';
import { SnapshotLostError } from '../db/snapshot.js';
import { lastSuccessAt } from './metrics.js';
import { RunObserver, type ObserveDeps } from './observer.js';
import { computeRunStatistics, psiGateBreach, type RunStatistics } from './runStats.js';
import type { StageTimings } from './timings.js';

/** What a finished run reports: the summary line's facts. */
export interface RunResult {
  runId: string;
  status: 'succeeded';
  dryRun: boolean;
  published: boolean;
  rowsScored: number;
  rowsRejected: number;
  durationMs: number;
  rowsPerSecond: number;
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
}

export interface ExecuteDeps {
  pool: pg.Pool;
  client: pg.PoolClient;
  ledger: Ledger;
  config: Config;
  recover(): Promise<void>;
  log: Logger;
  stop: StopSignal;
  model: LoadedModel;
  runId: string;
  params: RunParams;
  timings: StageTimings;
  /** Progress line / log lines and the metrics file (the CLI's choices); none when absent. */
  observe?: ObserveDeps | undefined;
}

/**
 * Scores the run's unfinished chunks, checks the gates, publishes (or, for a dry run, drops the scores),
 * and writes the outcome to the ledger whatever happens. The ledger is the truth: a failure is recorded
 * there in words before this throws.
 */
export async function executeRun(d: ExecuteDeps): Promise<RunResult> {
  const { ledger, runId, params, log, model } = d;
  const started = performance.now();
  const heartbeat = setInterval(() => void ledger.heartbeat(d.client, runId).catch(() => undefined), 15_000);
  heartbeat.unref();
  const observer = new RunObserver(d.observe, log, model.plan);
  let runStats: Record<string, unknown> | undefined;
  let view: SourceView | undefined;
  try {
    view = await SourceView.open({ pool: d.pool, ledger, ledgerClient: () => d.client, runId, source: params.source, log });
    const sourceRows = await ensurePlanned(d, view);
    const chunks = await ledger.getChunks(d.client, runId);
    const pending = await ledger.pendingChunks(d.client, runId);
    let done = chunks.length - pending.length;
    observer.begin(chunks, params.chunkSize, sourceRows);
    const completed = await runChunks(
      {
        pool: d.pool,
        view,
        ledger,
        runId,
        source: params.source,
        columns: model.plan.columns,
        transform: observer.transform,
        chunkStats: observer.chunkStats,
        scorer: model.scorer,
        chunkSize: params.chunkSize,
        attempts: params.chunkAttempts,
        stop: d.stop,
        log,
        timings: d.timings,
        recordFailure: (chunkNo, message) => ledger.recordChunkFailure(d.client, runId, chunkNo, message),
        recover: d.recover,
        onChunkDone: ({ chunkNo, scored, rejected }) => {
          done++;
          // Debug on a terminal, where the live progress line says it (and log lines would tear it); info in logs, where cron and tests follow the chunks.
          log[observer.chunkLogLevel]({ chunk: chunkNo, scored, rejected, chunks_done: done, chunks_total: chunks.length }, `chunk ${chunkNo} done (${done}/${chunks.length})`);
          observer.chunkDone(scored, rejected);
        },
      },
      pending,
    );
    observer.stopProgress();
    await view.close(); // every chunk is read: let VACUUM past the snapshot before the gates and the publish
    if (!completed || d.stop.requested) throw stopped(d.stop, runId);

    const run = await ledger.getRun(d.client, runId);
    const scored = Number(run?.rows_scored ?? 0);
    const rejected = Number(run?.rows_rejected ?? 0);
    const finalChunks = await ledger.getChunks(d.client, runId);
    const statistics = await computeRunStatistics(d.client, ledger, runId, model.plan, finalChunks);
    const stats = statistics.scores;
    // Stored on the run before the gates, so a run a gate stopped can be inspected (`runs show`).
    runStats = { ...statistics, timings_ms: d.timings.toJSON() };
    checkGates(d, scored, rejected, statistics.drift);
    let t = performance.now();
    let dropped: string[] = [];
    if (params.dryRun) {
      await d.client.query(`DROP TABLE IF EXISTS ${ledger.runTable(runId)}`);
      await ledger.finishRun(d.client, runId, 'succeeded', { stats: runStats });
    } else {
      await publishRun(d.client, ledger, runId, runStats, log);
      dropped = await applyRetention(d.client, ledger, params.keepRuns, log);
    }
    d.timings.add('publish', performance.now() - t);
    const durationMs = performance.now() - started;
    await observer.finished(
      { runId, status: 'succeeded', errorKind: null, published: !params.dryRun, dryRun: params.dryRun, psi: statistics.drift.psi, rowsScored: scored, rowsRejected: rejected },
      () => lastSuccessAt(d.client, ledger),
    );
    return {
      runId,
      status: 'succeeded',
      dryRun: params.dryRun,
      published: !params.dryRun,
      rowsScored: scored,
      rowsRejected: rejected,
      durationMs,
      rowsPerSecond: scored / Math.max(durationMs / 1000, 1e-9),
      backend: model.backend,
      modelName: model.manifest.name,
      modelVersion: model.manifest.version,
      stats,
      psi: statistics.drift.psi,
      psiBaselineRunId: statistics.drift.baseline_run_id,
      timings: d.timings.toJSON(),
      droppedRuns: dropped,
    };
  } catch (err) {
    const failure = await classify(err, d);
    await d
      .recover()
      .then(() => ledger.finishRun(d.client, runId, failure.status, { error: failure.message, errorKind: failure.kind, stats: runStats }))
      .catch((e: unknown) => log.error({ err: describeDbError(e) }, 'could not record the outcome in the ledger; the next run will mark this run interrupted'));
    const drift = runStats?.drift as { psi: number | null } | undefined;
    await observer.finished({ runId, status: failure.status, errorKind: failure.kind, published: false, dryRun: params.dryRun, psi: drift?.psi ?? null }, () => lastSuccessAt(d.client, ledger));
    if (failure.status === 'interrupted' && d.stop.requested) {
      log.warn({ status: 'interrupted' }, `run ${runId} interrupted by ${d.stop.requested}; resume it with \`scorejob resume ${runId}\``);
      throw new InterruptedError(`run ${runId} interrupted by ${d.stop.requested}; resume it with \`scorejob resume ${runId}\``, d.stop.requested);
    }
    log.error({ status: failure.status, error_kind: failure.kind, error: failure.message }, `run ${runId} failed: ${failure.message}`);
    throw new RunFailedError(`run ${runId} failed: ${failure.message}; ${failure.kind === 'gate' ? 'after review, `scorejob publish ' + runId + ' --force` publishes these scores (`scorejob resume ' + runId + '` re-checks the gate)' : 'resume it with `scorejob resume ' + runId + '`'}`, runId, { cause: err });
  } finally {
    await view?.close();
    observer.stopProgress();
    clearInterval(heartbeat);
  }
}

/**
 * Plans the run's chunks in the run's snapshot unless a plan is recorded. Planned here (not before the run
 * row) so that a failed plan is recorded on the run, and a resume of a run that died while planning plans
 * again. A resume of a planned run counts its unfinished chunks again in its new snapshot: they read the
 * source as of the resume. Returns the source's row count when it planned now.
 */
async function ensurePlanned(d: ExecuteDeps, view: SourceView): Promise<number | undefined> {
  const { ledger, runId, params, log } = d;
  const run = await ledger.getRun(d.client, runId);
  if (run?.chunks_total !== null && run?.chunks_total !== undefined) {
    await view.recount(await ledger.pendingChunks(d.client, runId));
    return undefined;
  }
  const t0 = performance.now();
  const plan = await view.plan(params.chunkSize);
  // The start-up check refused NULL keys; these appeared since (in the run's snapshot): still no row goes unaccounted for.
  if (plan.nullKeys > 0) throw new RunFailedError(nullKeysProblem(params.source.table, params.source.key, plan.nullKeys), runId);
  if (plan.rows === 0) throw new RunFailedError(`source ${params.source.table} has no rows: nothing to score (the published scores are unchanged)`, runId);
  await d.client.query('BEGIN');
  try {
    await ledger.recordPlan(d.client, runId, plan.chunks);
    await ledger.recordChunkRows(d.client, runId, plan.chunks);
    await d.client.query('COMMIT');
  } catch (err) {
    await d.client.query('ROLLBACK').catch(() => undefined);
    throw err;
  }
  d.timings.add('plan', performance.now() - t0);
  log.info({ chunks: plan.chunks.length, source_rows: plan.rows }, `run ${runId} planned: ${plan.rows} customers in ${plan.chunks.length} chunks`);
  return plan.rows;
}

/** The publish gates: too many rejects, or scores drifted too far from the previous published run. */
function checkGates(d: ExecuteDeps, scored: number, rejected: number, drift: RunStatistics['drift']): void {
  const { params, runId, ledger, log } = d;
  const total = scored + rejected;
  const ratio = total === 0 ? 0 : rejected / total;
  if (ratio > params.maxRejectRatio) {
    throw new GateError(
      `rejected ${formatPercent(ratio)} of rows (${rejected} of ${total}), over the limit of ${formatPercent(params.maxRejectRatio)} (--max-reject-ratio); ` +
        `the scores are kept unpublished: see ${ledger.schema}.score_rejects for run ${runId}`,
    );
  }
  const psiBreach = psiGateBreach(drift, params.maxPsi);
  if (psiBreach) throw new GateError(`${psiBreach}; the scores are kept unpublished for inspection (\`scorejob runs show ${runId}\`)`);
  if (params.maxPsi != null && drift.psi === null) log.info({ max_psi: params.maxPsi }, 'no previous published run to compare the scores with: the PSI gate does not apply');
}

class GateError extends Error {}

class StoppedError extends Error {}

function stopped(stop: StopSignal, runId: string): StoppedError {
  return new StoppedError(`run ${runId} interrupted by ${stop.requested ?? 'a signal'}`);
}

function formatPercent(r: number): string {
  return `${(r * 100).toFixed(r < 0.001 ? 3 : 2)}%`;
}

/** The ledger's words for a failure: the root cause in one line, and its kind. */
async function classify(err: unknown, d: ExecuteDeps): Promise<{ status: 'failed' | 'interrupted'; kind: ErrorKind; message: string }> {
  if (err instanceof StoppedError) return { status: 'interrupted', kind: 'interrupted', message: err.message };
  if (err instanceof GateError) return { status: 'failed', kind: 'gate', message: err.message };
  if (err instanceof ChunkCountError) {
    // A rewrite that also broke a column the model reads (ALTER … TYPE text): the column is the thing to fix.
    const explained = await explainSourceFailure(d.client, d.model).catch(() => undefined);
    return { status: 'failed', kind: 'data', message: explained ?? err.message };
  }
  if (err instanceof ScorejobError) return { status: 'failed', kind: 'data', message: err.message };
  if (err instanceof SnapshotLostError) return { status: 'failed', kind: 'database', message: err.message };
  const state = sqlStateOf(err);
  if (isTransient(err)) return { status: 'failed', kind: 'database', message: describeDbError(err, d.config.db) };
  if (state === SqlState.insufficientPrivilege) return { status: 'failed', kind: 'database', message: `permission denied: ${describeDbError(err)}` };
  if (state !== undefined && (state.startsWith('22') || state.startsWith('42'))) {
    // The source changed under the run (a column dropped or retyped): say which, in the model's terms.
    const explained = await explainSourceFailure(d.client, d.model).catch(() => undefined);
    return { status: 'failed', kind: 'data', message: explained ?? describeDbError(err) };
  }
  if (state !== undefined) return { status: 'failed', kind: 'database', message: describeDbError(err, d.config.db) };
  return { status: 'failed', kind: 'internal', message: err instanceof Error ? err.message : String(err) };
}
