import { hostname } from 'node:os';
import type pg from 'pg';
import type { Config, RunOptions } from '../config.js';
import { describeDb } from '../config.js';
import { quoteQualified, type SourceRef } from '../db/copyReader.js';
import { assertMigrated } from '../db/migrate.js';
import { checkConnection, createPool } from '../db/pool.js';
import { LockedError, NothingToDoError, RunFailedError, UsageError } from '../errors.js';
import type { Logger } from '../log.js';
import { loadModel, type LoadedModel } from '../model/load.js';
import type { StopSignal } from './chunkLoop.js';
import { checkDue, describeDue } from './due.js';
import { executeRun, type ExecuteDeps, type RunResult } from './execute.js';
import { Ledger, type RunParams } from './ledger.js';
import { releaseRunLock, runLockHolderPid, tryRunLock } from './lock.js';
import { applyRetention } from './publish.js';

import { checkSource } from './sourceCheck.js';
import { StageTimings } from './timings.js';

export type { RunResult };

export interface RunContext {
  config: Config;
  log: Logger;
  stop: StopSignal;
  /** Progress and metrics of this invocation (the CLI's `--progress-interval`, `--metrics-file`). */
  observe?: ExecuteDeps['observe'];
}

/**
 * `scorejob run`: load and check the model (nothing written yet), take the run lock, plan the chunks,
 * record the run, score every chunk, publish. Throws a ScorejobError carrying the exit code.
 */
export async function startRun(ctx: RunContext, opts: RunOptions): Promise<RunResult> {
  const model = await loadModel(opts.modelDir, { backend: opts.backend });
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
  };
  return withLockedLedger(ctx, model, async (session) => {
    const { ledger, client } = session;
    if (opts.dueCheck && opts.tickAt) {
      // --if-due looked before the lock; another host's whole run may have fit in between: look again.
      const due = await checkDue(client, ctx.config.schema, opts.dueCheck, new Date(), opts.tickAt);
      if (!due.due) throw new NothingToDoError(`not due any more: ${describeDue(due, opts.tickAt.toISOString())}; nothing to do`);
    }
    if (!(await sourceHasRows(client, params.source))) {
      throw new UsageError(`source ${params.source.table} has no rows: nothing to score (the published scores are unchanged)`);
    }
    // Tables of runs a later publish superseded, or beyond --keep-runs unpublished ones (publish.ts).
    await applyRetention(client, ledger, params.keepRuns, ctx.log);
    // The ledger row comes before the work: whatever happens from here on is recorded on it.
    const runId = await ledger.createRun(client, {
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
    const log = ctx.log.child({ run_id: runId });
    log.info(
      { trigger: opts.trigger, dry_run: opts.dryRun, chunk_size: params.chunkSize, backend: model.backend, model: model.manifest.name, model_version: model.manifest.version, model_sha256: model.sha256 },
      `run ${runId} started: model ${model.manifest.name} ${model.manifest.version} on the ${model.backend} backend${opts.dryRun ? ' (dry run: nothing will be published)' : ''}`,
    );
    return executeRun(executeDeps(session, { log, stop: ctx.stop, observe: ctx.observe, model, runId, params, timings: new StageTimings() }));
  });
}

/**
 * `scorejob resume <id>`: continue a failed or interrupted run from its unfinished chunks with the same
 * parameters and the same model (its files' sha256 must match).
 */
export async function resumeRun(ctx: RunContext, runId: string): Promise<RunResult> {
  if (!/^\d{1,18}$/.test(runId)) throw new UsageError(`run id "${runId}" is not a run number (see \`scorejob runs\`)`);
  // Read the run first (without the lock) to know which model to load.
  const pool = createPool(ctx.config.db, 1);
  let params: RunParams;
  try {
    await checkConnection(pool, ctx.config.db);
    const client = await pool.connect();
    try {
      await assertMigrated(client, ctx.config.schema);
      const run = await new Ledger((n) => client.escapeIdentifier(n), ctx.config.schema).getRun(client, runId);
      if (!run) throw new UsageError(`there is no run ${runId} (see \`scorejob runs\`)`);
      if (run.status === 'succeeded') throw new UsageError(`run ${runId} already succeeded; there is nothing to resume`);
      if (run.status === 'running') {
        // Still running for real only if someone holds the run lock; otherwise its process died.
        if (!(await tryRunLock(client, ctx.config.schema))) throw new UsageError(`run ${runId} is still running (pid ${run.pid} on ${run.host}); wait for it, or stop it first`);
        await releaseRunLock(client, ctx.config.schema);
      }
      params = run.params;
    } finally {
      client.release();
    }
  } finally {
    await pool.end().catch(() => undefined);
  }
  const model = await loadModel(params.modelDir, { backend: params.backendChoice as RunOptions['backend'] });
  return withLockedLedger(ctx, model, async (session) => {
    const { ledger, client } = session;
    const run = await ledger.getRun(client, runId);
    if (!run) throw new UsageError(`there is no run ${runId}`);
    if (run.status === 'succeeded') throw new UsageError(`run ${runId} already succeeded; there is nothing to resume`);
    if (run.status === 'running') throw new UsageError(`run ${runId} is still running (pid ${run.pid} on ${run.host})`);
    if (run.model_sha256 !== model.sha256) {
      throw new UsageError(
        `the model files in ${params.modelDir} changed since run ${runId} started (sha256 ${model.sha256.slice(0, 12)}… now, ${run.model_sha256.slice(0, 12)}… then); start a new run with \`scorejob run\` instead`,
      );
    }
    const newer = await client.query<{ run_id: string }>(`SELECT run_id FROM ${ledger.s}.score_runs WHERE run_id > $1 AND status = 'succeeded' AND NOT dry_run LIMIT 1`, [runId]);
    if (newer.rows[0] && !run.dry_run) {
      throw new UsageError(`run ${runId} was superseded by run ${newer.rows[0].run_id}, which succeeded later; start a new run instead`);
    }
    const table = await client.query(`SELECT to_regclass($1) AS t`, [ledger.runTable(runId)]);
    if (run.chunks_total !== null && table.rows[0]?.t === null) throw new UsageError(`the scores of run ${runId} are gone (its table was dropped); start a new run instead`);
    await ledger.reopenRun(client, runId, hostname(), process.pid);
    const log = ctx.log.child({ run_id: runId });
    const chunks = await ledger.getChunks(client, runId);
    const left = chunks.filter((c) => c.status !== 'done').length;
    log.info({ trigger: 'resume', chunks_left: left, chunks: chunks.length }, `run ${runId} resumed: ${left} of ${chunks.length} chunks left`);
    return executeRun(executeDeps(session, { log, stop: ctx.stop, observe: ctx.observe, model, runId, params, timings: new StageTimings() }));
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
  const { rows } = await client.query<{ any: boolean }>(`SELECT EXISTS (SELECT 1 FROM ${quoteQualified(client, source.table)}) AS any`);
  return rows[0]?.any === true;
}

/**
 * The session's parts for executeRun. `client` is a getter, not a copy: recover() replaces the ledger
 * connection after a connection loss, and every later ledger write must use the new one.
 */
function executeDeps(session: LockedSession, rest: Omit<ExecuteDeps, 'pool' | 'client' | 'ledger' | 'config' | 'recover'>): ExecuteDeps {
  return {
    ...rest,
    pool: session.pool,
    ledger: session.ledger,
    config: session.config,
    recover: () => session.recover(),
    get client() {
      return session.client;
    },
  };
}

/** A pool, the ledger connection holding the run lock, and the ledger, for one run's life. */
export interface LockedSession {
  pool: pg.Pool;
  client: pg.PoolClient;
  ledger: Ledger;
  config: Config;
  /** Reconnects the ledger connection and takes the lock again after a connection loss. */
  recover(): Promise<void>;
}

/**
 * Opens the pool and the ledger connection, refuses an un-migrated database or a source that lacks
 * what the model needs, takes the run lock (or exits 75 naming the holder), marks dead runs
 * interrupted, runs fn, and releases everything in reverse order.
 */
async function withLockedLedger<T>(ctx: RunContext, model: LoadedModel, fn: (s: LockedSession) => Promise<T>): Promise<T> {
  const { config, log } = ctx;
  const pool = createPool(config.db, 4);
  let client: pg.PoolClient | undefined;
  let locked = false;
  try {
    await checkConnection(pool, config.db);
    client = await pool.connect();
    await client.query(`SET application_name = 'scorejob ledger'`);
    await assertMigrated(client, config.schema);
    await assertWritable(client, config);
    await checkSource(client, model);
    const ledger = new Ledger((n) => (client as pg.PoolClient).escapeIdentifier(n), config.schema);
    locked = await tryRunLock(client, config.schema);
    if (!locked) {
      const holder = await ledger.runningRun(client);
      const pid = await runLockHolderPid(client, config.schema);
      const who = holder ? `run ${holder.run_id} (pid ${holder.pid} on ${holder.host}, started ${holder.started_at.toISOString()})` : `another scorejob (database backend pid ${pid ?? '?'})`;
      log.warn({ holder_run_id: holder?.run_id, holder_host: holder?.host, holder_pid: holder?.pid }, `another run holds the lock: ${who}`);
      throw new LockedError(`another run holds the lock on ${describeDb(config.db)} schema "${config.schema}": ${who}; nothing was done, try later`);
    }
    for (const dead of await ledger.markDeadRuns(client)) {
      log.warn({ dead_run_id: dead }, `run ${dead} had stopped without a word; marked interrupted (resume it with \`scorejob resume ${dead}\`)`);
    }
    const session: LockedSession = {
      pool,
      client,
      ledger,
      config,
      recover: async () => {
        try {
          await session.client.query('SELECT 1');
          return;
        } catch {
          // the ledger connection is gone, and the lock with it
        }
        session.client.release(true);
        client = undefined;
        const fresh = await pool.connect();
        await fresh.query(`SET application_name = 'scorejob ledger'`);
        session.client = fresh;
        client = fresh;
        if (!(await tryRunLock(fresh, config.schema))) {
          locked = false;
          throw new RunFailedError('lost the connection holding the run lock, and another process took the lock meanwhile');
        }
      },
    };
    return await fn(session);
  } finally {
    if (client) {
      if (locked) await releaseRunLock(client, config.schema).catch(() => undefined);
      client.release();
    }
    model.dispose();
    await pool.end().catch(() => undefined);
  }
}

