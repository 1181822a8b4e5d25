import { hostname } from 'node:os';
import type { Config, RunOptions } from '../config.js';
import { describeDb } from '../config.js';
import { sourceHasRows } from '../db/sourceColumns.js';
import { withSession } from '../db/session.js';
import { EmptySourceError, LockedError, NotResumableError, NothingToDoError, UsageError } from '../errors.js';
import { describeFeatures, makeFeatures, partOfAnother, type RunFeature } from '../features/index.js';
import type { Logger } from '../log.js';
import { loadModel, type LoadedModel } from '../model/load.js';
import type { StopSignal } from '../chunks/chunkLoop.js';
import { checkDue, describeDue } from './due.js';
import { executeRun, type ExecuteDeps, type RunResult } from './phases.js';
import { Ledger, type RunParams } from '../ledger/ledger.js';
import { frozenRunSpec } from '../ledger/runSpec.js';
import { runHolderState } from '../ledger/runLock.js';
import { applyRetention } from '../ledger/retention.js';
import { checkPromotion } from '../publish/promotionGuard.js';
import { StageTimings } from '../observe/timings.js';
import { withLockedLedger, type LockedSession } from './lockedSession.js';
import { checkRunKeyType } from './keyTypeCheck.js';
import { runSpec } from './runSpec.js';

export type { RunResult };
export type { LockedSession };

export interface RunContext {
  config: Config;
  log: Logger;
  stop: StopSignal;
  /** Progress and metrics of this invocation (the CLI's `--progress-interval`, `--metrics-file`). */
  observe?: ExecuteDeps['observe'];
  /** `--outage-budget`, ms: how long the run waits for an unreachable database; default 60 s. */
  outageBudgetMs?: number | undefined;
  /**
   * How old the run's attach must be before it publishes, ms (default 1 s, src/publish/publish.ts): the wait is
   * for readers planned around the attach; callers that know no reader runs beside them shorten it.
   */
  publishSettleMs?: number | undefined;
}

/**
 * `scorejob run`: load and check the model and the run's features (nothing written yet), take the run
 * lock, build the run's frozen specification, record the run, then plan, score every chunk and publish
 * (executeRun). Throws a ScorejobError carrying the exit code.
 */
export async function startRun(ctx: RunContext, opts: RunOptions): Promise<RunResult> {
  // A draft manifest (`model init`) is refused here unless the run is dry: a dry run publishes nothing.
  const model = await loadModel(opts.modelDir, { backend: opts.backend, allowDraft: opts.dryRun });
  const features = await freedOnError(model, () => makeFeatures((d) => d.forStart?.(opts, model, ctx)));
  // Debug: before the run exists there is no run_id to carry; the "started" line repeats these at info.
  ctx.log.debug(
    { model: model.manifest.name, model_version: model.manifest.version, backend: model.backend, model_sha256: model.sha256 },
    `model ${model.manifest.name} ${model.manifest.version} loaded on the ${model.backend} backend`,
  );
  return withLockedLedger(ctx, { model, features, purpose: 'run' }, async (session) => {
    const { ledger, client } = session;
    if (opts.dueCheck && opts.tickAt) {
      // --if-due looked before the lock; another host's whole run may have fit in between: look again.
      const due = await checkDue(client, ctx.config.schema, model.manifest.name, opts.dueCheck, new Date(), opts.tickAt);
      if (!due.due) throw new NothingToDoError(`not due any more: ${describeDue(due, opts.tickAt.toISOString())}; nothing to do`);
    }
    const runModel = { name: model.manifest.name, version: model.manifest.version, dir: opts.modelDir, sha256: model.sha256 };
    // The person's --replace-promoted holds for the run's resumes too, over the same promoted run only.
    const replacesPromotedRunId = await checkPromotion(client, ledger, runModel, {
      dryRun: opts.dryRun,
      replace: opts.replacePromoted === true,
      where: describeDb(ctx.config.db),
      log: ctx.log,
      command: 'run',
    });
    const source = { table: model.manifest.source.table, key: model.manifest.source.key };
    if (!(await sourceHasRows(client, source))) throw new EmptySourceError(source.table);
    const keyType = await checkRunKeyType(client, ctx.config.schema, source, opts, model.manifest.name);
    const featureParts: Partial<RunParams>[] = [];
    for (const f of features) if (f.spec) featureParts.push(await f.spec(client, ledger));
    const params = runSpec(opts, model, { replacesPromotedRunId, featureParts, keyType });
    // Tables of runs a later publish superseded, or beyond --keep-runs unpublished ones (publish.ts).
    await applyRetention({ client, ledger, modelName: model.manifest.name, keep: params.keepRuns, log: ctx.log });
    const runId = await createRun(session, { opts, model, params, features });
    const log = ctx.log.child({ run_id: runId });
    const said = describeFeatures(features);
    log.info(
      {
        trigger: opts.trigger,
        dry_run: opts.dryRun,
        chunk_size: params.chunkSize,
        backend: model.backend,
        model: model.manifest.name,
        model_version: model.manifest.version,
        model_sha256: model.sha256,
        ...said.fields,
      },
      `run ${runId} started: model ${model.manifest.name} ${model.manifest.version} on the ${model.backend} backend${said.words}${opts.dryRun ? ' (dry run: nothing will be published)' : ''}`,
    );
    return runToEnd(session, executeDeps(session, { ctx, log, model, runId, params, features }));
  });
}

/**
 * The ledger row comes before the work: whatever happens from here on is recorded on it. It is attached
 * to the lock, and the features' rows (a sibling run) are written, in the same transaction:
 * no one ever sees it running without a holder, and its parts exist with it or not at all.
 */
async function createRun(
  session: LockedSession,
  run: { opts: RunOptions; model: LoadedModel; params: Readonly<RunParams>; features: readonly RunFeature[] },
): Promise<string> {
  const { opts, model, params } = run;
  return session.inTransaction(async (c) => {
    const at = { trigger: opts.trigger, tickAt: opts.tickAt, host: hostname(), pid: process.pid };
    const runId = await session.ledger.createRun(c, {
      ...at,
      dryRun: opts.dryRun,
      modelName: model.manifest.name,
      modelVersion: model.manifest.version,
      modelSha256: model.sha256,
      backend: model.backend,
      params,
    });
    await session.lock.attachRun(c, runId);
    for (const f of run.features) await f.created?.(c, { ...at, ledger: session.ledger, runId, params, modelName: model.manifest.name });
    return runId;
  });
}

/** fn's result, or its refusal with the model freed (a loaded model holds backend memory). */
async function freedOnError<T>(model: LoadedModel, fn: () => Promise<T>): Promise<T> {
  try {
    return await fn();
  } catch (err) {
    model.dispose();
    throw err;
  }
}

/** Executes the run, then tells its features it ended, however it ended (a view of the source goes). */
async function runToEnd(session: LockedSession, deps: ExecuteDeps): Promise<RunResult> {
  try {
    return await executeRun(deps);
  } finally {
    for (const f of deps.features) await f.ended?.(deps);
  }
}

/**
 * `scorejob resume <id>`: continue a failed or interrupted run from its unfinished chunks with the same
 * parameters and the same model (its files' sha256 must match). `forTick`: a due tick resumes it
 * (src/schedule/tickRun.ts), racing other ticks and pods: a run another process resumed first is
 * "try later" (75) or, once it succeeded, nothing to do (0), not a usage error.
 */
export async function resumeRun(ctx: RunContext, runId: string, forTick = false): Promise<RunResult> {
  if (!/^\d{1,18}$/.test(runId)) throw new UsageError(`run id "${runId}" is not a run number (see \`scorejob runs\`)`);
  const params = await readResumable(ctx, runId, forTick);
  const model = await loadModel(params.modelDir, { backend: params.backendChoice as RunOptions['backend'], allowDraft: params.dryRun });
  const features = await freedOnError(model, () => makeFeatures((d) => d.forResume?.(params, model, runId)));
  return withLockedLedger(ctx, { model, features, purpose: 'resume' }, async (session) => {
    const { ledger, client } = session;
    const run = await ledger.getRun(client, runId);
    if (!run) throw new UsageError(`there is no run ${runId}`);
    if (run.status === 'succeeded') throw nothingLeft(runId, forTick);
    if (run.status === 'running') throw new UsageError(`run ${runId} is still running (pid ${run.pid} on ${run.host})`);
    if (run.model_sha256 !== model.sha256) {
      throw new NotResumableError(
        `the model files in ${params.modelDir} changed since run ${runId} started (sha256 ${model.sha256.slice(0, 12)}… now, ${run.model_sha256.slice(0, 12)}… then); start a new run with \`scorejob run\` instead`,
      );
    }
    const newer = await ledger.laterSucceededRun(client, runId, run.model_name);
    if (newer !== undefined && !run.dry_run)
      throw new NotResumableError(`run ${runId} was superseded by run ${newer}, which succeeded later; start a new run instead`);
    if (run.chunks_total !== null && !(await ledger.storage.state(client, runId)).exists)
      throw new NotResumableError(`the scores of run ${runId} are gone (its table was dropped); start a new run instead`);
    for (const f of features) await f.resumable?.(client, ledger, run);
    // A run started before another model's run was promoted by hand would undo the promotion when it publishes.
    const runModel = { name: model.manifest.name, version: model.manifest.version, dir: params.modelDir, sha256: model.sha256 };
    await checkPromotion(client, ledger, runModel, {
      dryRun: run.dry_run,
      replace: false,
      replaces: params.replacesPromotedRunId,
      where: describeDb(ctx.config.db),
      log: ctx.log,
      command: 'resume',
    });
    await session.inTransaction(async (c) => {
      await ledger.reopenRun(c, runId, hostname(), process.pid);
      for (const f of features) await f.reopened?.(c, { ledger, runId, host: hostname(), pid: process.pid });
      await session.lock.attachRun(c, runId);
    });
    const log = ctx.log.child({ run_id: runId });
    const chunks = await ledger.getChunks(client, runId);
    const left = chunks.filter((c) => c.status !== 'done').length;
    log.info({ trigger: 'resume', chunks_left: left, chunks: chunks.length }, `run ${runId} resumed: ${left} of ${chunks.length} chunks left`);
    const deps = executeDeps(session, { ctx, log, model, runId, params, features });
    for (const f of features) await f.resumed?.(deps);
    return runToEnd(session, deps);
  });
}

function nothingLeft(runId: string, forTick: boolean): Error {
  const msg = `run ${runId} already succeeded; there is nothing to resume`;
  return forTick ? new NothingToDoError(msg) : new UsageError(msg);
}

/** Reads the run to resume first (without the lock, on a connection of its own) to know which model to load. */
async function readResumable(ctx: RunContext, runId: string, forTick: boolean): Promise<Readonly<RunParams>> {
  return withSession(ctx.config, { connections: 1 }, async ({ client }) => {
    const run = await new Ledger(ctx.config.schema).getRun(client, runId);
    if (!run) throw new UsageError(`there is no run ${runId} (see \`scorejob runs\`)`);
    if (run.status === 'succeeded') throw nothingLeft(runId, forTick);
    const other = partOfAnother({ runId, params: run.params }, 'resume');
    if (other !== undefined) throw new UsageError(other);
    // Still running for real only while a live lock holder works on it (grace included); otherwise
    // its process died, and taking the lock below marks it interrupted.
    if (run.status === 'running' && (await runHolderState(client, ctx.config.schema, runId)) === 'alive') {
      const msg = `run ${runId} is still running (pid ${run.pid} on ${run.host}); wait for it, or stop it first`;
      throw forTick ? new LockedError(msg) : new UsageError(msg);
    }
    return frozenRunSpec(run.params);
  });
}

/**
 * The session's parts for executeRun. `client` is a getter, not a copy: recover() replaces the ledger
 * connection after a connection loss, and every later ledger write must use the new one.
 */
function executeDeps(
  session: LockedSession,
  run: { ctx: RunContext; log: Logger; model: LoadedModel; runId: string; params: Readonly<RunParams>; features: readonly RunFeature[] },
): ExecuteDeps {
  const { ctx } = run;
  return {
    log: run.log,
    model: run.model,
    runId: run.runId,
    params: run.params,
    features: run.features,
    stop: ctx.stop,
    observe: ctx.observe,
    outageBudgetMs: ctx.outageBudgetMs,
    publishSettleMs: ctx.publishSettleMs,
    timings: new StageTimings(),
    pool: session.pool,
    ledger: session.ledger,
    config: session.config,
    recover: () => session.recover(),
    fence: (c) => session.lock.fence(c),
    get client() {
      return session.client;
    },
  };
}
