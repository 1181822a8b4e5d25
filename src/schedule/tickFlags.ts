import type { Config, RunOptions } from '../config.js';
import { checkCronExpression, checkTimezone, formatTick, previousTick, type CronSpec } from '../cronTicks.js';
import { withSession } from '../db/session.js';
import { LockedError, UsageError } from '../errors.js';
import { Ledger } from '../ledger/ledger.js';
import { modelLockName, runLockHeld } from '../ledger/runLock.js';
import type { Logger } from '../log.js';
import { checkModelDirectory } from './scheduler.js';
import { checkDue, describeDue, type DueDecision } from '../run/due.js';

/**
 * What a tick does (`scorejob run --if-due EXPR`, the scheduler's child, every pod of the CronJob):
 * - `none`: nothing (the tick's run succeeded, or waits for a person after a gate): exit 0;
 * - `run`: a new run, for the tick when `opts.tickAt` is set;
 * - `resume`: the tick's failed or interrupted run, `runId`, from its first unfinished chunk;
 * - `join` (with --join): the tick's run is in progress elsewhere: join it as a worker;
 * - `wait` (with --join): the tick is due and another process holds the lock but has not recorded
 *   its run yet (pods started at the same moment): look again shortly.
 */
export type TickPlan =
  | { action: 'none' }
  | { action: 'run'; opts: RunOptions }
  | { action: 'resume'; runId: string; opts: RunOptions }
  | { action: 'join'; runId: string }
  | { action: 'wait' };

/** How a tick reports: `join` makes a run in progress a run to join (not 75); `notice` gets the one line cron mails. */
export interface TickMode {
  join: boolean;
  notice: (line: string) => void;
}

/**
 * The plan for a tick from the ledger. The tick is the latest one at or before now, or `tickAt` when
 * given (the scheduler's child plans the tick it was started for). A run in progress for the tick
 * throws {@link LockedError} (75, "try later") unless the mode joins it. A run a gate stopped is
 * announced once (the first tick stamps it and hands `notice` its line; later ticks only log it).
 */
export async function planDueTick(
  ctx: { config: Config; log: Logger },
  modelName: string,
  spec: CronSpec,
  tickAt: Date | undefined,
  mode: TickMode,
  now = new Date(),
): Promise<TickPlan | { action: 'due'; run: string | undefined; tick: Date }> {
  const tick = tickAt ?? previousTick(spec, now);
  const zone = spec.timezone ?? 'system time zone';
  if (tick === undefined) {
    ctx.log.info({ if_due: spec.expression, timezone: spec.timezone }, `not due: "${spec.expression}" has not fired in the last 30 years; nothing to do`);
    return { action: 'none' };
  }
  const tickText = formatTick(tick, spec.timezone);
  return withSession(ctx.config, { connections: 1 }, async ({ client }) => {
    const d = await checkDue(client, ctx.config.schema, modelName, spec, now, tick);
    const fields = {
      if_due: spec.expression,
      timezone: spec.timezone,
      tick_at: tick.toISOString(),
      due: d.due,
      reason: d.reason,
      run_id_for_tick: 'run' in d ? d.run?.run_id : undefined,
    };
    const why = describeDue(d, tickText);
    if (d.reason === 'in-progress') {
      if (!mode.join) throw new LockedError(`${why}; nothing was done, try later`);
      ctx.log.info(fields, `${why}; joining it as a worker (--join)`);
      return { action: 'join', runId: d.run.run_id };
    }
    if (d.reason === 'waiting') {
      const first = await new Ledger(ctx.config.schema).announceWaiting(client, d.run.run_id);
      ctx.log[first ? 'warn' : 'info']({ ...fields, run_id: d.run.run_id, announced: first ? 'now' : 'before' }, `not retried: ${why}`);
      if (first) mode.notice(why);
      return { action: 'none' };
    }
    if (!d.due) {
      ctx.log.info(fields, `not due: ${why} ("${spec.expression}", ${zone}); nothing to do`);
      return { action: 'none' };
    }
    if (mode.join && (await runLockHeld(client, ctx.config.schema, modelLockName(modelName)))) {
      ctx.log.debug(fields, `due, and another process holds the lock: waiting for its run to appear, to join it`);
      return { action: 'wait' };
    }
    ctx.log.info(fields, `due: ${why} ("${spec.expression}", ${zone}); ${dueAction(d)}`);
    return { action: 'due', run: d.run?.run_id, tick };
  });
}

function dueAction(d: DueDecision & { due: true }): string {
  return d.run === undefined ? 'starting a run for it' : `resuming run ${d.run.run_id} from its first unfinished chunk`;
}

/** `--tick-at`: an ISO 8601 instant with a zone (what the scheduler passes its child). */
export function parseTickAt(value: string, flag = '--tick-at'): Date {
  const ms = Date.parse(value);
  if (!/^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}(:\d{2}(\.\d+)?)?(Z|[+-]\d{2}:?\d{2})$/.test(value) || Number.isNaN(ms)) {
    throw new UsageError(`${flag}: "${value}" is not an ISO 8601 instant with a zone, e.g. 2026-12-01T02:30:00Z`);
  }
  return new Date(ms);
}

/** The flags of `scorejob run` that tie a run to a tick. */
export interface TickFlags {
  ifDue?: string | undefined;
  timezone?: string | undefined;
  tickAt?: string | undefined;
  join?: boolean | undefined;
}

/** The flags checked (exit 2 before anything is written): the schedule, or undefined for a plain run; and the tick given. */
export function checkTickFlags(flags: TickFlags): { spec: CronSpec | undefined; tickAt: Date | undefined } {
  const tickAt = flags.tickAt === undefined ? undefined : parseTickAt(flags.tickAt);
  if (flags.ifDue === undefined) {
    if (flags.timezone !== undefined) throw new UsageError(`--timezone: "${flags.timezone}" only applies with --if-due`);
    if (flags.join) throw new UsageError('--join only applies with --if-due EXPR (the tick whose run the processes share)');
    return { spec: undefined, tickAt };
  }
  checkCronExpression(flags.ifDue, '--if-due');
  const timezone = flags.timezone === undefined ? undefined : checkTimezone(flags.timezone, '--timezone');
  return { spec: { expression: flags.ifDue, timezone }, tickAt };
}

/**
 * Applies `--tick-at`, `--if-due` and `--timezone` to a run's options: what this tick does. Due per
 * model: another model's run for the tick does not make this one's.
 */
export async function planTick(ctx: { config: Config; log: Logger }, flags: TickFlags, opts: RunOptions, mode: TickMode): Promise<TickPlan> {
  const { spec, tickAt } = checkTickFlags(flags);
  if (spec === undefined) return { action: 'run', opts: tickAt === undefined ? opts : Object.freeze({ ...opts, tickAt }) };
  const modelName = await checkModelDirectory(opts.modelDir, '--model');
  const plan = await planDueTick(ctx, modelName, spec, tickAt, mode);
  if (plan.action !== 'due') return plan;
  const forTick = Object.freeze({ ...opts, tickAt: plan.tick, dueCheck: spec });
  return plan.run === undefined ? { action: 'run', opts: forTick } : { action: 'resume', runId: plan.run, opts: forTick };
}
