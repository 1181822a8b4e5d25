import type { Config, RunOptions } from '../config.js';
import { checkCronExpression, checkTimezone, formatTick, previousTick, type CronSpec } from './cronTicks.js';
import { assertMigrated } from '../db/migrate.js';
import { checkConnection, createPool } from '../db/pool.js';
import { LockedError, UsageError } from '../errors.js';
import type { Logger } from '../log.js';
import { checkModelDirectory } from './scheduler.js';
import { withClient } from '../db/sql.js';
import { checkDue, describeDue } from './due.js';

/**
 * `scorejob run --if-due EXPR`: the tick the run is for, or undefined when that tick already has a
 * succeeded run (the caller exits 0 without running). The tick is the latest one at or before now,
 * or `tickAt` when given (the scheduler's child checks the tick it was started for). A run in
 * progress for the tick throws {@link LockedError} (75, "try later"), as the lock would.
 */
export async function tickIfDue(ctx: { config: Config; log: Logger }, modelName: string, spec: CronSpec, tickAt: Date | undefined, now = new Date()): Promise<Date | undefined> {
  const tick = tickAt ?? previousTick(spec, now);
  const zone = spec.timezone ?? 'system time zone';
  if (tick === undefined) {
    ctx.log.info({ if_due: spec.expression, timezone: spec.timezone }, `not due: "${spec.expression}" has not fired in the last 30 years; nothing to do`);
    return undefined;
  }
  const tickText = formatTick(tick, spec.timezone);
  const pool = createPool(ctx.config.db, 1);
  try {
    await checkConnection(pool, ctx.config.db);
    return await withClient(pool, async (client) => {
      await assertMigrated(client, ctx.config.schema);
      const d = await checkDue(client, ctx.config.schema, modelName, spec, now, tick);
      const fields = { if_due: spec.expression, timezone: spec.timezone, tick_at: tick.toISOString(), due: d.due, reason: d.reason, run_id_for_tick: 'run' in d ? d.run?.run_id : undefined };
      if (d.reason === 'in-progress') throw new LockedError(`${describeDue(d, tickText)}; nothing was done, try later`);
      if (!d.due) {
        ctx.log.info(fields, `not due: ${describeDue(d, tickText)} ("${spec.expression}", ${zone}); nothing to do`);
        return undefined;
      }
      ctx.log.info(fields, `due: ${describeDue(d, tickText)} ("${spec.expression}", ${zone}); starting a run for it`);
      return tick;
    });
  } finally {
    await pool.end().catch(() => undefined);
  }
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
}

/**
 * Applies `--tick-at`, `--if-due` and `--timezone` to a run's options: the options to run with
 * (`tickAt` set when the run is for a tick), or undefined when `--if-due` finds nothing to do.
 */
export async function applyTickFlags(ctx: { config: Config; log: Logger }, flags: TickFlags, opts: RunOptions): Promise<RunOptions | undefined> {
  const tickAt = flags.tickAt === undefined ? undefined : parseTickAt(flags.tickAt);
  if (flags.ifDue === undefined) {
    if (flags.timezone !== undefined) throw new UsageError(`--timezone: "${flags.timezone}" only applies with --if-due`);
    return tickAt === undefined ? opts : Object.freeze({ ...opts, tickAt });
  }
  checkCronExpression(flags.ifDue, '--if-due');
  const timezone = flags.timezone === undefined ? undefined : checkTimezone(flags.timezone, '--timezone');
  const spec = { expression: flags.ifDue, timezone };
  // Due per model: another model's run for the tick does not make this one's.
  const modelName = await checkModelDirectory(opts.modelDir, '--model');
  const tick = await tickIfDue(ctx, modelName, spec, tickAt);
  return tick === undefined ? undefined : Object.freeze({ ...opts, tickAt: tick, dueCheck: spec });
}
