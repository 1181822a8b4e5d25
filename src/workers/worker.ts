import type pg from 'pg';
import type { BackendChoice, Config } from '../config.js';
import { withSession } from '../db/session.js';
import { NothingToDoError, SnapshotLostError, UsageError } from '../errors.js';
import type { ChunkClaims } from '../ledger/chunkClaims.js';
import { Ledger, type PlannedChunk, type RunRow } from '../ledger/ledger.js';
import { runHolderState } from '../ledger/runLock.js';
import type { Logger } from '../log.js';
import { loadModel, type LoadedModel } from '../model/load.js';
import { RunObserver } from '../observe/observer.js';
import { StageTimings } from '../observe/timings.js';
import type { ChunkSource, StopSignal } from '../chunks/chunkLoop.js';
import { describeFeatures, disposeFeatures, makeFeatures, partOfAnother, type ChunkRead, type JoinScope, type RunFeature } from '../features/index.js';
import { frozenRunSpec } from '../ledger/runSpec.js';
import { runClaimed, thisWorker, type ClaimOutcome } from './claimLoop.js';
import { defaultLeaseS } from './workerCount.js';

export interface WorkOptions {
  /** The run to join; undefined: the newest shared run that is running. */
  runId: string | undefined;
  /** Without a run to join: how long to wait for one, seconds. */
  waitS: number;
  /** The model files; undefined: the run's own model directory. */
  modelDir: string | undefined;
  /** Model directories of the run's features given on this worker's command line, by feature name; one not given: the directory recorded on the run. */
  modelDirs?: Readonly<Record<string, string | undefined>> | undefined;
  backend: BackendChoice | undefined;
}

export interface WorkResult {
  runId: string;
  outcome: ClaimOutcome;
  chunks: number;
  rowsScored: number;
  rowsRejected: number;
  durationMs: number;
  timings: Record<string, number>;
}

/**
 * `scorejob work`: joins a shared run (one started with `--workers`) from any machine and scores its
 * chunks until none is left. It reads each chunk in the run's snapshot, which the coordinator holds
 * open: once the coordinator is gone (its run lock has no live holder), the snapshot is gone too, and
 * the worker stops cleanly (exit 0) with its claim given back; `scorejob resume` makes a new coordinator,
 * and workers started again join it.
 */
export async function joinRun(ctx: WorkContext, opts: WorkOptions): Promise<WorkResult> {
  const { config } = ctx;
  const ledger = new Ledger(config.schema);
  const claims = ledger.claims;
  const run = await lookUpRun(ctx, claims, ledger, opts);
  const leaseMs = (run.params.chunkLeaseS ?? defaultLeaseS) * 1000;
  const log = ctx.log.child({ run_id: run.run_id, worker_pid: process.pid });
  const backend = opts.backend ?? (run.params.backendChoice as BackendChoice);
  const model = await loadModel(opts.modelDir ?? run.params.modelDir, { backend, allowDraft: run.dry_run });
  let features: readonly RunFeature[] = [];
  try {
    checkRunModel(model, run, opts);
    // reader, two writers (chunkLoop.ts), the claims and their leases, and one spare. A worker that stalls
    // (paused, swapped out) inside its chunk's transaction would keep the chunk's row locked, and no one
    // could take the chunk over: the server ends such a transaction after the lease. The look-up proved
    // the database reachable and migrated.
    const frame = { connections: 5, idleInTransactionTimeoutMs: leaseMs, requires: 'nothing', client: false } as const;
    return await withSession(config, frame, async ({ pool }) => {
      // The run's params say the rest: each of its features joins as the run's own process did.
      const join: JoinScope = { run, model, ledger, lookup: pool, backend, modelDirs: opts.modelDirs ?? {} };
      features = await makeFeatures((d) => d.forWorker?.(join));
      return await scoreClaims({ ctx, pool, claims, ledger, run, leaseMs, log, model, features });
    });
  } finally {
    disposeFeatures(features);
    model.dispose();
  }
}

type WorkContext = { config: Config; log: Logger; stop: StopSignal; outageBudgetMs?: number | undefined };

/** Finds the run to join on a connection of its own, closed before the work starts; its params frozen. */
async function lookUpRun(ctx: WorkContext, claims: ChunkClaims, ledger: Ledger, opts: WorkOptions): Promise<RunRow> {
  const { config } = ctx;
  return withSession(config, { connections: 1, client: false }, async ({ pool }) => {
    const run = await findRun({ pool, claims, ledger, schema: config.schema }, opts, ctx);
    return { ...run, params: frozenRunSpec(run.params) };
  });
}

/** The model files must be the run's own: a worker never scores a run with another model. */
function checkRunModel(model: LoadedModel, run: RunRow, opts: WorkOptions): void {
  if (model.sha256 === run.model_sha256) return;
  throw new UsageError(
    `the model files in ${opts.modelDir ?? run.params.modelDir} are not run ${run.run_id}'s (sha256 ${model.sha256.slice(0, 12)}… here, ${run.model_sha256.slice(0, 12)}… in the run): give \`--model\` the run's model`,
  );
}

interface ScoreClaimsArgs {
  ctx: WorkContext;
  pool: pg.Pool;
  claims: ChunkClaims;
  ledger: Ledger;
  run: RunRow;
  leaseMs: number;
  log: Logger;
  model: LoadedModel;
  features: readonly RunFeature[];
}

/** Scores the chunks this worker claims until the claim loop ends; counts what it did. */
async function scoreClaims(a: ScoreClaimsArgs): Promise<WorkResult> {
  const { ctx, pool, claims, ledger, run, log, model } = a;
  const observer = new RunObserver(undefined, log, model.plan);
  let read: ChunkRead = { columns: model.plan.columns, transform: observer.transform, sidecar: undefined };
  for (const f of a.features) if (f.chunkRead) read = f.chunkRead(read, { ledger, runId: run.run_id, model, role: 'worker' });
  const timings = new StageTimings();
  const view = new LedgerSnapshot(pool, claims, ctx.config.schema, run.run_id);
  await view.refresh([]);
  const done = { chunks: 0, scored: 0, rejected: 0 };
  const started = performance.now();
  const said = describeFeatures(a.features);
  log.info(
    { model: model.manifest.name, backend: model.backend, ...said.fields },
    `joined run ${run.run_id} as a worker (pid ${process.pid}): model ${model.manifest.name} ${model.manifest.version} on the ${model.backend} backend${said.words}`,
  );
  const outcome = await runClaimed({
    pool,
    view,
    ledger,
    claims,
    schema: ctx.config.schema,
    runId: run.run_id,
    worker: thisWorker(),
    leaseMs: a.leaseMs,
    role: 'worker',
    source: run.params.source,
    ...read,
    chunkStats: observer.chunkStats,
    scorer: model.scorer,
    chunkSize: run.params.chunkSize,
    attempts: run.params.chunkAttempts,
    outageBudgetMs: ctx.outageBudgetMs,
    stop: ctx.stop,
    log,
    timings,
    recover: async () => undefined,
    onChunkDone: ({ chunkNo, scored, rejected }) => {
      done.chunks++;
      done.scored += scored;
      done.rejected += rejected;
      log.info({ chunk: chunkNo, scored, rejected }, `chunk ${chunkNo} done`);
    },
  });
  const durationMs = performance.now() - started;
  return { runId: run.run_id, outcome, chunks: done.chunks, rowsScored: done.scored, rowsRejected: done.rejected, durationMs, timings: timings.toJSON() };
}

/** The run to join: the one named, or the newest shared run that is running (waiting up to --wait for one). */
async function findRun(
  on: { pool: pg.Pool; claims: ChunkClaims; ledger: Ledger; schema: string },
  opts: WorkOptions,
  ctx: { log: Logger; stop: StopSignal },
): Promise<RunRow> {
  const { pool, claims, ledger, schema } = on;
  if (opts.runId !== undefined && !/^\d{1,18}$/.test(opts.runId)) throw new UsageError(`--run "${opts.runId}" is not a run number (see \`scorejob runs\`)`);
  const deadline = Date.now() + opts.waitS * 1000;
  let said = false;
  for (;;) {
    const id = opts.runId ?? (await claims.joinableRun(pool));
    const run = id === undefined ? undefined : await ledger.getRun(pool, id);
    if (opts.runId !== undefined) {
      if (!run) throw new UsageError(`there is no run ${opts.runId} (see \`scorejob runs\`)`);
      // A run a feature made as part of another is scored by that run's workers.
      const other = partOfAnother({ runId: run.run_id, params: run.params }, 'work');
      if (other !== undefined) throw new UsageError(other);
      if (run.params.workers === undefined) throw new UsageError(`run ${run.run_id} was not started with --workers: only its own process scores it`);
      if (run.status !== 'running' && run.status !== 'interrupted' && run.status !== 'failed')
        throw new NothingToDoError(`run ${run.run_id} is ${run.status}; nothing to do`);
    }
    if (run && run.status === 'running' && run.chunks_total !== null && (await runHolderState(pool, schema, run.run_id)) === 'alive') return run;
    if (Date.now() >= deadline || ctx.stop.requested) {
      throw new NothingToDoError(
        opts.runId !== undefined
          ? `run ${opts.runId} is not running (waited ${opts.waitS} s); nothing to do`
          : `no shared run is running (waited ${opts.waitS} s); nothing to do`,
      );
    }
    if (!said)
      ctx.log.info(
        { wait_s: opts.waitS },
        opts.runId !== undefined
          ? `run ${opts.runId} is not running yet; waiting up to ${opts.waitS} s`
          : `no shared run is running; waiting up to ${opts.waitS} s for one`,
      );
    said = true;
    await new Promise((r) => setTimeout(r, Math.min(2000, Math.max(0, deadline - Date.now()))));
  }
}

/**
 * A worker's view of the run's snapshot: the id the coordinator recorded on the run. When a read finds it
 * gone, the coordinator either took a new one (and counted the pending chunks in it: the worker takes the
 * new id and counts) or died (the claim loop stops the worker).
 */
class LedgerSnapshot implements ChunkSource {
  private id = '';

  constructor(
    private readonly pool: pg.Pool,
    private readonly claims: ChunkClaims,
    private readonly schema: string,
    private readonly runId: string,
  ) {}

  get snapshotId(): string {
    return this.id;
  }

  async refresh(pending: readonly PlannedChunk[]): Promise<Map<number, number | undefined>> {
    const { snapshot, rows } = await this.claims.snapshotAndRows(
      this.pool,
      this.runId,
      pending.map((c) => c.chunkNo),
    );
    this.id = snapshot ?? '';
    return rows;
  }

  async ensure(_client: pg.ClientBase, pending: readonly PlannedChunk[]): Promise<readonly PlannedChunk[] | undefined> {
    const before = this.id;
    const rows = await this.refresh(pending);
    if (this.id !== before) return pending.map((c) => ({ ...c, rows: rows.get(c.chunkNo) }));
    if ((await runHolderState(this.pool, this.schema, this.runId)) !== 'alive') {
      throw new SnapshotLostError(`the run's snapshot of the source (${this.id}) is gone with its coordinator`);
    }
    return undefined;
  }
}
