import { hostname } from 'node:os';
import type pg from 'pg';
import type { Config, RunOptions } from '../config.js';
import { describeDb } from '../config.js';
import type { SourceRef } from '../db/copyReader.js';
import { quoteQualified, withClient, withTransaction } from '../db/sql.js';
import { assertMigrated } from '../db/migrate.js';
import { checkConnection, createPool } from '../db/pool.js';
import { ResilientClient } from '../db/resilientClient.js';
import { EmptySourceError, LockedError, NotResumableError, NothingToDoError, UsageError } from '../errors.js';
import type { Logger } from '../log.js';
import { loadModel, type LoadedModel } from '../model/load.js';
import type { StopSignal } from '../chunks/chunkLoop.js';
import { checkDue, describeDue } from './due.js';
import { executeRun, type ExecuteDeps, type RunResult } from './phases.js';
import { Ledger, type RunParams } from '../ledger/ledger.js';
import { runHolderState, takeRunLock, type LockPurpose, type RunLock } from '../ledger/runLock.js';
import { applyRetention } from '../publish/publish.js';
import { checkPromotion } from '../publish/promotionGuard.js';

import { checkSource } from '../features/sourceCheck.js';
import { StageTimings } from '../observe/timings.js';
import { defaultLeaseS } from '../workers/workerCount.js';
import { explainerFor } from '../features/reasons/reasonsSetup.js';
import { createOnlyNewView, dropOnlyNewView, prepareOnlyNew } from '../features/only-new/onlyNew.js';
import { reasonsMethod } from '../model/explainer.js';
import { ScoreHistogram } from '../stats/scoreCuts.js';
import { createChallengerRun, loadChallenger, reloadChallenger } from '../features/challenger/challenger.js';

export type { RunResult };

export interface RunContext {
  config: Config;
  log: Logger;
  stop: StopSignal;
  /** Progress and metrics of this invocation (the CLI's `--progress-interval`, `--metrics-file`). */
  observe?: ExecuteDeps['observe'];
  /** `--outage-budget`, ms: how long the run waits for an unreachable database; default 60 s. */
  outageBudgetMs?: number | undefined;
}

/**
 * `scorejob run`: load and check the model (nothing written yet), take the run lock, plan the chunks,
 * record the run, score every chunk, publish. Throws a ScorejobError carrying the exit code.
 */
export async function startRun(ctx: RunContext, opts: RunOptions): Promise<RunResult> {
  // The challenger rides on every chunk loop of the run (a shared run's workers too), but not on an only-new run's carried scores.
  if (opts.challengerDir !== undefined && opts.onlyNew) {
    throw new UsageError('--challenger cannot be combined with --only-new: a challenger is compared over every customer, an only-new run scores a few; run the challenger with a full `scorejob run --challenger DIR`');
  }
  // A draft manifest (`model init`) is refused here unless the run is dry: a dry run publishes nothing.
  const model = await loadModel(opts.modelDir, { backend: opts.backend, allowDraft: opts.dryRun });
  const explainer = explainerFor(model, opts.reasons);
  const challengerModel = await withModelFreedOnError(model, () => (opts.challengerDir === undefined ? undefined : loadChallenger(opts.challengerDir, model, opts.backend, opts.dryRun)));
  // Debug: before the run exists there is no run_id to carry; the "started" line repeats these at info.
  ctx.log.debug({ model: model.manifest.name, model_version: model.manifest.version, backend: model.backend, model_sha256: model.sha256 }, `model ${model.manifest.name} ${model.manifest.version} loaded on the ${model.backend} backend`);
  const params: RunParams = {
    modelDir: opts.modelDir,
    chunkSize: opts.chunkSize,
    dryRun: opts.dryRun,
    keepRuns: opts.keepRuns,
    maxRejectRatio: opts.maxRejectRatio,
    maxPsi: opts.maxPsi ?? null,
    chunkAttempts: opts.chunkAttempts,
    backendChoice: opts.backend,
    source: { table: model.manifest.source.table, key: model.manifest.source.key },
    onPublishCommand: opts.onPublishCommand ?? null,
    // Only a shared run carries these: a default run's params (and behaviour) stay as before.
    ...(opts.workers !== undefined ? { workers: opts.workers, chunkLeaseS: opts.chunkLeaseS ?? defaultLeaseS } : {}),
    reasons: explainer ? { k: explainer.k, features: [...explainer.features], space: explainer.space, method: reasonsMethod } : null,
  };
  return withLockedLedger(ctx, model, 'run', challengerModel, async (session) => {
    const { ledger, client } = session;
    if (opts.dueCheck && opts.tickAt) {
      // --if-due looked before the lock; another host's whole run may have fit in between: look again.
      const due = await checkDue(client, ctx.config.schema, model.manifest.name, opts.dueCheck, new Date(), opts.tickAt);
      if (!due.due) throw new NothingToDoError(`not due any more: ${describeDue(due, opts.tickAt.toISOString())}; nothing to do`);
    }
    const runModel = { name: model.manifest.name, version: model.manifest.version, dir: opts.modelDir, sha256: model.sha256 };
    const replaces = await checkPromotion(client, ledger, runModel, { dryRun: opts.dryRun, replace: opts.replacePromoted === true, where: describeDb(ctx.config.db), log: ctx.log, command: 'run' });
    // The person's --replace-promoted holds for the run's resumes too, over the same promoted run only.
    if (replaces !== undefined) params.replacesPromotedRunId = replaces;
    if (!(await sourceHasRows(client, params.source))) {
      throw new EmptySourceError(params.source.table);
    }
    // --only-new: the run reads a view of the customers to rescore (src/features/only-new/onlyNew.ts); refused (exit 2) without a base run.
    if (opts.onlyNew) Object.assign(params, await prepareOnlyNew(client, ledger, model));
    // Tables of runs a later publish superseded, or beyond --keep-runs unpublished ones (publish.ts).
    await applyRetention(client, ledger, model.manifest.name, params.keepRuns, ctx.log);
    // The ledger row comes before the work: whatever happens from here on is recorded on it. It is
    // attached to the lock in the same transaction, so no one ever sees it running without a holder.
    const runId = await session.inTransaction(async (c) => {
      const id = await ledger.createRun(c, {
        trigger: opts.trigger,
        dryRun: opts.dryRun,
        modelName: model.manifest.name,
        modelVersion: model.manifest.version,
        modelSha256: model.sha256,
        backend: model.backend,
        params,
        tickAt: opts.tickAt,
        host: hostname(),
        pid: process.pid,
      });
      await session.lock.attachRun(c, id);
      if (params.onlyNew) await ledger.onlyNew.markOnlyNew(c, id, params.onlyNew.baseRunId);
      // The challenger's sibling run, in the same transaction: both rows exist, or neither.
      if (challengerModel) {
        params.challenger = await createChallengerRun(c, ledger, { runId: id, modelName: model.manifest.name, params, trigger: opts.trigger, dryRun: opts.dryRun, tickAt: opts.tickAt, host: hostname(), pid: process.pid }, challengerModel);
      }
      return id;
    });
    const log = ctx.log.child({ run_id: runId });
    log.info(
      { trigger: opts.trigger, dry_run: opts.dryRun, chunk_size: params.chunkSize, backend: model.backend, model: model.manifest.name, model_version: model.manifest.version, model_sha256: model.sha256, kind: params.onlyNew ? 'only_new' : 'full', base_run_id: params.onlyNew?.baseRunId },
      `run ${runId} started: model ${model.manifest.name} ${model.manifest.version} on the ${model.backend} backend${challengerModel && params.challenger ? ` with challenger ${challengerModel.manifest.name} ${challengerModel.manifest.version} (run ${params.challenger.runId})` : ''}${opts.dryRun ? ' (dry run: nothing will be published)' : ''}${params.onlyNew ? ` (only new customers; the others' scores carried forward from run ${params.onlyNew.baseRunId})` : ''}`,
    );
    const challenger = challengerModel && params.challenger ? { model: challengerModel, runId: params.challenger.runId, histogram: opts.dryRun ? undefined : new ScoreHistogram() } : undefined;
    return withOnlyNewView(session, params, log, () => executeRun(executeDeps(session, { log, stop: ctx.stop, observe: ctx.observe, outageBudgetMs: ctx.outageBudgetMs, model, runId, params, timings: new StageTimings(), explainer, challenger })));
  });
}

/** fn's model, or a refusal with the champion freed (loaded models hold backend memory). */
async function withModelFreedOnError<T>(model: LoadedModel, fn: () => Promise<T> | undefined): Promise<T | undefined> {
  try {
    return await fn();
  } catch (err) {
    model.dispose();
    throw err;
  }
}

/** Runs fn, then drops an only-new run's view of its source, however fn ended (src/features/only-new/onlyNew.ts). */
async function withOnlyNewView<T>(session: LockedSession, params: RunParams, log: Logger, fn: () => Promise<T>): Promise<T> {
  try {
    return await fn();
  } finally {
    if (params.onlyNew) await dropOnlyNewView(session.client, session.ledger, params.onlyNew, log);
  }
}

/**
 * `scorejob resume <id>`: continue a failed or interrupted run from its unfinished chunks with the same
 * parameters and the same model (its files' sha256 must match). `forTick`: a due tick resumes it
 * (src/schedule/tickRun.ts), racing other ticks and pods: a run another process resumed first is
 * "try later" (75) or, once it succeeded, nothing to do (0), not a usage error.
 */
export async function resumeRun(ctx: RunContext, runId: string, forTick = false): Promise<RunResult> {
  const done = (msg: string) => (forTick ? new NothingToDoError(msg) : new UsageError(msg));
  if (!/^\d{1,18}$/.test(runId)) throw new UsageError(`run id "${runId}" is not a run number (see \`scorejob runs\`)`);
  // Read the run first (without the lock) to know which model to load.
  const pool = createPool(ctx.config.db, 1);
  let params: RunParams;
  try {
    await checkConnection(pool, ctx.config.db);
    params = await withClient(pool, async (client) => {
      await assertMigrated(client, ctx.config.schema);
      const run = await new Ledger(ctx.config.schema).getRun(client, runId);
      if (!run) throw new UsageError(`there is no run ${runId} (see \`scorejob runs\`)`);
      if (run.status === 'succeeded') throw done(`run ${runId} already succeeded; there is nothing to resume`);
      if (run.params.championRunId) throw new UsageError(`run ${runId} is the challenger of run ${run.params.championRunId}; resume that run instead (\`scorejob resume ${run.params.championRunId}\`)`);
      // Still running for real only while a live lock holder works on it (grace included); otherwise
      // its process died, and taking the lock below marks it interrupted.
      if (run.status === 'running' && (await runHolderState(client, ctx.config.schema, runId)) === 'alive') {
        const msg = `run ${runId} is still running (pid ${run.pid} on ${run.host}); wait for it, or stop it first`;
        throw forTick ? new LockedError(msg) : new UsageError(msg);
      }
      return run.params;
    });
  } finally {
    await pool.end().catch(() => undefined);
  }
  const model = await loadModel(params.modelDir, { backend: params.backendChoice as RunOptions['backend'], allowDraft: params.dryRun });
  const explainer = explainerFor(model, params.reasons?.k);
  const recorded = params.challenger ?? undefined;
  const challengerModel = await withModelFreedOnError(model, () => (recorded ? reloadChallenger(recorded, model, params.backendChoice as RunOptions['backend'], { runId, dryRun: params.dryRun }) : undefined));
  return withLockedLedger(ctx, model, 'resume', challengerModel, async (session) => {
    const { ledger, client } = session;
    const run = await ledger.getRun(client, runId);
    if (!run) throw new UsageError(`there is no run ${runId}`);
    if (run.status === 'succeeded') throw done(`run ${runId} already succeeded; there is nothing to resume`);
    if (run.status === 'running') throw new UsageError(`run ${runId} is still running (pid ${run.pid} on ${run.host})`);
    if (run.model_sha256 !== model.sha256) {
      throw new NotResumableError(
        `the model files in ${params.modelDir} changed since run ${runId} started (sha256 ${model.sha256.slice(0, 12)}… now, ${run.model_sha256.slice(0, 12)}… then); start a new run with \`scorejob run\` instead`,
      );
    }
    const newer = await ledger.laterSucceededRun(client, runId, run.model_name);
    if (newer !== undefined && !run.dry_run) {
      throw new NotResumableError(`run ${runId} was superseded by run ${newer}, which succeeded later; start a new run instead`);
    }
    const table = await client.query(`SELECT to_regclass($1) AS t`, [ledger.runTable(runId)]);
    if (run.chunks_total !== null && table.rows[0]?.t === null) throw new NotResumableError(`the scores of run ${runId} are gone (its table was dropped); start a new run instead`);
    if (recorded && run.chunks_total !== null && !(await ledger.runTableState(client, recorded.runId)).exists) {
      throw new NotResumableError(`the challenger's scores of run ${runId} (run ${recorded.runId}) are gone (its table was dropped); start a new run instead`);
    }
    // A run started before a challenger was published by hand would undo the promotion when it publishes.
    const runModel = { name: model.manifest.name, version: model.manifest.version, dir: params.modelDir, sha256: model.sha256 };
    await checkPromotion(client, ledger, runModel, { dryRun: run.dry_run, replace: false, replaces: params.replacesPromotedRunId, where: describeDb(ctx.config.db), log: ctx.log, command: 'resume' });
    await session.inTransaction(async (c) => {
      await ledger.reopenRun(c, runId, hostname(), process.pid);
      // The challenger's run follows its champion's status: running again, in the same transaction.
      if (recorded) await ledger.reopenRun(c, recorded.runId, hostname(), process.pid);
      await session.lock.attachRun(c, runId);
    });
    const log = ctx.log.child({ run_id: runId });
    const chunks = await ledger.getChunks(client, runId);
    const left = chunks.filter((c) => c.status !== 'done').length;
    log.info({ trigger: 'resume', chunks_left: left, chunks: chunks.length }, `run ${runId} resumed: ${left} of ${chunks.length} chunks left`);
    if (params.onlyNew) await createOnlyNewView(client, ledger, params.onlyNew, params.source.key, params.modelDir, runId);
    const challenger = challengerModel && recorded ? { model: challengerModel, runId: recorded.runId, histogram: params.dryRun ? undefined : new ScoreHistogram() } : undefined;
    return withOnlyNewView(session, params, log, () => executeRun(executeDeps(session, { log, stop: ctx.stop, observe: ctx.observe, outageBudgetMs: ctx.outageBudgetMs, model, runId, params, timings: new StageTimings(), explainer, challenger })));
  });
}

/** A read-only database (default_transaction_read_only, a standby) is refused before anything is tried. */
async function assertWritable(client: pg.ClientBase, config: Config): Promise<void> {
  const { rows } = await client.query<{ ro: string }>(`SELECT current_setting('transaction_read_only') AS ro`);
  if (rows[0]?.ro === 'on') {
    throw new UsageError(`database ${describeDb(config.db)} is read-only (default_transaction_read_only is on, or it is a standby): scorejob needs to write its ledger and scores`);
  }
}

async function sourceHasRows(client: pg.ClientBase, source: SourceRef): Promise<boolean> {
  const { rows } = await client.query<{ any: boolean }>(`SELECT EXISTS (SELECT 1 FROM ${quoteQualified(source.table)}) AS any`);
  return rows[0]?.any === true;
}

/**
 * The session's parts for executeRun. `client` is a getter, not a copy: recover() replaces the ledger
 * connection after a connection loss, and every later ledger write must use the new one.
 */
function executeDeps(session: LockedSession, rest: Omit<ExecuteDeps, 'pool' | 'client' | 'ledger' | 'config' | 'recover' | 'fence'>): ExecuteDeps {
  return {
    ...rest,
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

/** A pool, the ledger connection, the run lock, and the ledger, for one run's life. */
export interface LockedSession {
  pool: pg.Pool;
  /** The ledger connection (a getter: a lost one is replaced, see recover). */
  readonly client: pg.PoolClient;
  ledger: Ledger;
  config: Config;
  lock: RunLock;
  /** After a connection loss: the lock must still be ours (else LockLostError) and the ledger connection up. */
  recover(): Promise<void>;
  /** fn in one transaction on the ledger connection. */
  inTransaction<T>(fn: (c: pg.PoolClient) => Promise<T>): Promise<T>;
}

/**
 * Opens the pool and the ledger connection, refuses an un-migrated database or a source that lacks
 * what the model needs, takes the run lock (or exits 75 naming the holder, 69 if it is stuck), marks
 * dead runs interrupted, runs fn, and releases everything in reverse order.
 */
async function withLockedLedger<T>(ctx: RunContext, model: LoadedModel, purpose: LockPurpose, challenger: LoadedModel | undefined, fn: (s: LockedSession) => Promise<T>): Promise<T> {
  const { config, log } = ctx;
  // ledger, lock, reader, two writers (chunkLoop.ts), one spare while a lost connection is being replaced,
  // and one for a shared run's claims and lease renewals (claimLoop.ts); a pool opens connections only as used.
  const pool = createPool(config.db, 7);
  let conn: ResilientClient | undefined;
  let lock: RunLock | undefined;
  try {
    await checkConnection(pool, config.db);
    conn = await ResilientClient.connect(pool, { role: 'ledger', log });
    const ledgerConn = conn;
    const client = ledgerConn.client;
    await assertMigrated(client, config.schema);
    await assertWritable(client, config);
    await checkSource(client, model);
    if (challenger) {
      await checkSource(client, challenger).catch((err: unknown) => {
        throw err instanceof UsageError ? new UsageError(`--challenger ${challenger.dir}: ${err.message}`, { cause: err }) : err;
      });
    }
    const ledger = new Ledger(config.schema);
    const dead: string[] = [];
    lock = await takeRunLock(pool, { schema: config.schema, modelName: model.manifest.name, purpose, log, where: describeDb(config.db), ledger, onDead: (ids) => dead.push(...ids) });
    const held = lock;
    for (const id of dead) {
      log.warn({ dead_run_id: id }, `run ${id} had stopped without a word; marked interrupted (resume it with \`scorejob resume ${id}\`)`);
    }
    const session: LockedSession = {
      pool,
      ledger,
      config,
      lock: held,
      get client() {
        return ledgerConn.client;
      },
      recover: async () => {
        await held.ensure();
        await ledgerConn.ensure();
      },
      inTransaction: (f) => withTransaction(ledgerConn.client, f),
    };
    return await fn(session);
  } finally {
    await lock?.release();
    await conn?.close();
    challenger?.dispose();
    model.dispose();
    await pool.end().catch(() => undefined);
  }
}
