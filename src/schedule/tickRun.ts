import { setTimeout as sleep } from 'node:timers/promises';
import type { RunOptions } from '../config.js';
import type { Pool } from '../db/pool.js';
import { withSession } from '../db/session.js';
import { ExitCode, LockedError, NothingToDoError, NotResumableError, RunFailedError, ScorejobError, signalExitCode } from '../errors.js';
import { Ledger } from '../ledger/ledger.js';
import { runHolderState } from '../ledger/runLock.js';
import type { RunContext, RunResult } from '../run/runJob.js';
import { planTick, type TickFlags, type TickMode, type TickPlan } from './tickFlags.js';

/** `--join`: every process of a Kubernetes Job runs the same command; all but the coordinator join its run. */
export interface JoinOptions {
  /** How long a process that finds the lock taken waits for the coordinator's run to appear and end its planning, seconds. */
  waitS: number;
}

/**
 * `scorejob run [--if-due EXPR [--join]]`: what the tick's plan says (src/schedule/tickFlags.ts), with
 * `onResult` turning a run's result into the exit code. With --join, a process that loses the race for
 * the lock (75 without it) joins the winner's run as a worker, waits for it to be published (exit 0)
 * or to fail (1), and, when the coordinator is gone (killed, its node lost), plans again: the run is
 * then due and resumed by one of the processes, which the others join.
 */
export async function runForTick(
  ctx: RunContext,
  flags: TickFlags,
  opts: RunOptions,
  join: JoinOptions | undefined,
  mode: Pick<TickMode, 'notice'>,
  onResult: (r: RunResult) => number,
): Promise<number> {
  const waitMs = (join?.waitS ?? 0) * 1000;
  let deadline = Date.now() + waitMs;
  for (;;) {
    const plan = await planTick(ctx, flags, opts, { join: join !== undefined, notice: mode.notice });
    try {
      const code = await carryOut(ctx, plan, join, onResult);
      if (code !== undefined) return code;
      // Back from a run it worked on (its coordinator gone): the wait for the next one starts now.
      if (plan.action === 'join') deadline = Date.now() + waitMs;
    } catch (err) {
      // Another process of the Job won the race for the lock: plan again, to join its run.
      if (!(err instanceof LockedError) || join === undefined) throw err;
    }
    if (ctx.stop.requested) return signalExitCode(ctx.stop.requested);
    if (Date.now() > deadline)
      throw new LockedError(`another process holds the run lock and no run to join appeared within --wait ${join?.waitS} s; nothing was done, try later`);
    await sleep(1000);
  }
}

/** The plan's exit code, or undefined to plan again. */
async function carryOut(ctx: RunContext, plan: TickPlan, join: JoinOptions | undefined, onResult: (r: RunResult) => number): Promise<number | undefined> {
  const { startRun, resumeRun } = await import('../run/runJob.js');
  switch (plan.action) {
    case 'none':
      return ExitCode.ok;
    case 'wait':
      return undefined;
    case 'run':
      // A run for a tick; a plain `scorejob run` reports its gate to the person who ran it, not to the ticks.
      return onResult(plan.opts.dueCheck ? await announcingGate(ctx, () => startRun(ctx, plan.opts)) : await startRun(ctx, plan.opts));
    case 'resume':
      try {
        return onResult(await announcingGate(ctx, () => resumeRun(ctx, plan.runId, true)));
      } catch (err) {
        if (!(err instanceof NotResumableError)) throw err;
        ctx.log.warn({ run_id: plan.runId, reason: err.message }, `run ${plan.runId} cannot be resumed (${err.message}): starting a new run for the tick`);
        return onResult(await announcingGate(ctx, () => startRun(ctx, plan.opts)));
      }
    case 'join':
      return joinForTick(ctx, plan.runId, join?.waitS ?? 0);
  }
}

/**
 * A run a gate stopped fails (exit 1) with its one line: that line (cron's mail) is its announcement,
 * so the ticks after it stay quiet (see planDueTick).
 */
async function announcingGate(ctx: RunContext, fn: () => Promise<RunResult>): Promise<RunResult> {
  try {
    return await fn();
  } catch (err) {
    if (err instanceof RunFailedError && err.runId !== undefined) await markAnnounced(ctx, err.runId);
    throw err;
  }
}

async function markAnnounced(ctx: RunContext, runId: string): Promise<void> {
  try {
    await withSession(ctx.config, { connections: 1, requires: 'reachable' }, async ({ client }) => {
      const ledger = new Ledger(ctx.config.schema);
      if ((await ledger.getRun(client, runId))?.error_kind === 'gate') await ledger.announceWaiting(client, runId);
    });
  } catch {
    // the database is away: the next tick announces it instead
  }
}

/**
 * Joins the tick's run as a worker (a shared run; an unshared one is only waited for), then waits for
 * its end: 0 once published, 1 if it failed, undefined when its coordinator is gone (plan again).
 */
async function joinForTick(ctx: RunContext, runId: string, waitS: number): Promise<number | undefined> {
  // The pool, not a held connection: a connection lost during the wait is replaced at the next look.
  return withSession(ctx.config, { connections: 1, requires: 'reachable', client: false }, async ({ pool }) => {
    const ledger = new Ledger(ctx.config.schema);
    const shared = (await ledger.getRun(pool, runId))?.params.workers !== undefined;
    if (shared && (await joinable(ctx, pool, ledger, runId, waitS))) {
      const { joinRun } = await import('../workers/worker.js');
      const r = await joinRun(ctx, { runId, waitS: 10, modelDir: undefined, backend: undefined }).catch((err: unknown) => {
        // It ended (or never got going) meanwhile, or this worker's part failed (a chunk given up, the
        // coordinator's snapshot gone with it): the run's own end, below, decides the exit code.
        if (err instanceof NothingToDoError) return undefined;
        if (!(err instanceof RunFailedError) && !(err instanceof ScorejobError && err.exitCode === ExitCode.runFailed)) throw err;
        ctx.log.warn({ run_id: runId, err: err.message }, `this worker's part of run ${runId} ended: ${err.message}; waiting for the run's end`);
        return undefined;
      });
      if (r?.outcome === 'stopped' && ctx.stop.requested) return signalExitCode(ctx.stop.requested);
      if (r)
        ctx.log.info(
          { outcome: r.outcome, chunks: r.chunks, rows_scored: r.rowsScored, rows_rejected: r.rowsRejected },
          `worker part of run ${runId} done: ${r.chunks} chunk(s), ${r.rowsScored} scored; waiting for the run's end`,
        );
    }
    for (;;) {
      const run = await ledger.getRun(pool, runId);
      if (run?.status === 'succeeded') {
        ctx.log.info({ run_id: runId, status: run.status }, `run ${runId} was published; this process is done`);
        return ExitCode.ok;
      }
      if (run?.status === 'failed') throw new RunFailedError(`run ${runId} failed: ${run.error ?? 'see `scorejob runs show ' + runId + '`'}`, runId);
      if (!run || run.status !== 'running' || (await runHolderState(pool, ctx.config.schema, runId)) === 'none') {
        ctx.log.warn({ run_id: runId, status: run?.status }, `run ${runId} lost its coordinator; planning the tick again (its run is resumed)`);
        return undefined;
      }
      if (ctx.stop.requested) return signalExitCode(ctx.stop.requested);
      await sleep(1000);
    }
  });
}

/**
 * Waits until the run can be joined (planned, its coordinator alive): false when it ended, lost its
 * coordinator, or did not get there within `waitS` (the caller then only watches for its end).
 */
async function joinable(ctx: RunContext, pool: Pool, ledger: Ledger, runId: string, waitS: number): Promise<boolean> {
  const deadline = Date.now() + waitS * 1000;
  for (;;) {
    const run = await ledger.getRun(pool, runId);
    if (!run || run.status !== 'running') return false;
    const holder = await runHolderState(pool, ctx.config.schema, runId);
    if (holder === 'none') return false;
    if (run.chunks_total !== null && holder === 'alive') return true;
    if (Date.now() > deadline || ctx.stop.requested) return false;
    await sleep(500);
  }
}
