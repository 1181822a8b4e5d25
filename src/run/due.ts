import type pg from 'pg';
import { previousTick, type CronSpec } from '../cronTicks.js';
import { Ledger, type TickRun } from '../ledger/ledger.js';
import { modelLockName, runLockHeld } from '../ledger/runLock.js';

export type { TickRun };

/**
 * Whether the latest tick still needs a run:
 * - `done`: a succeeded run covers it; nothing to do.
 * - `in-progress`: a run covering it is `running` and a process holds the run lock.
 * - `waiting`: the last covering run was stopped by a publish gate: it waits for a person (review, then
 *   `publish --force`, or fix the data and start a run by hand); a tick does not retry it.
 * - `due`: no covering run succeeded (none ran, the last one failed or was interrupted, or a
 *   `running` row has lost its process: nobody holds the lock, and the next run marks it interrupted).
 *   With `run` set, that run is the one to resume (src/schedule/tickRun.ts); without, a new run starts.
 * - `no-tick`: the expression has not fired in the last 30 years.
 */
export type DueDecision =
  | { due: false; reason: 'no-tick'; tick: undefined }
  | { due: false; reason: 'done' | 'in-progress' | 'waiting'; tick: Date; run: TickRun }
  | { due: true; reason: 'never-ran' | 'failed' | 'interrupted' | 'stale'; tick: Date; run: TickRun | undefined };

/**
 * A run is for a tick when it was started for that tick (`tick_at` equal to it: a scheduler whose
 * clock runs ahead of the database's still matches) or started at or after the tick, whatever its
 * trigger (a manual rescoring after the 1st of the month serves that month). Dry runs publish
 * nothing and serve no tick.
 * @internal exported for tests
 */
export function runCoversTick(run: TickRun, tick: Date): boolean {
  if (run.dry_run) return false;
  if (run.tick_at !== null && run.tick_at.getTime() === tick.getTime()) return true;
  return run.started_at.getTime() >= tick.getTime();
}

/**
 * The decision from the tick and the ledger's rows (any rows: those not for the tick are ignored). Pure.
 * @internal exported for tests
 */
export function decideDue(tick: Date | undefined, runs: readonly TickRun[], lockHeld: boolean): DueDecision {
  if (tick === undefined) return { due: false, reason: 'no-tick', tick: undefined };
  const covering = runs.filter((r) => runCoversTick(r, tick)).sort((a, b) => Number(BigInt(b.run_id) - BigInt(a.run_id)));
  const succeeded = covering.find((r) => r.status === 'succeeded');
  if (succeeded) return { due: false, reason: 'done', tick, run: succeeded };
  const running = covering.find((r) => r.status === 'running');
  if (running && lockHeld) return { due: false, reason: 'in-progress', tick, run: running };
  const last = covering[0];
  if (last === undefined) return { due: true, reason: 'never-ran', tick, run: undefined };
  if (last.status === 'failed' && last.error_kind === 'gate') return { due: false, reason: 'waiting', tick, run: last };
  const reason = last.status === 'running' ? 'stale' : last.status === 'interrupted' ? 'interrupted' : 'failed';
  return { due: true, reason, tick, run: last };
}

/** The latest tick at or before `now`, and whether it still needs a run, from the ledger. */
export async function checkDue(
  client: pg.ClientBase,
  schema: string,
  modelName: string,
  spec: CronSpec,
  now: Date,
  tick = previousTick(spec, now),
): Promise<DueDecision> {
  if (tick === undefined) return decideDue(undefined, [], false);
  const rows = await new Ledger(schema).runsForTick(client, modelName, tick);
  const lockHeld = await runLockHeld(client, schema, modelLockName(modelName));
  return decideDue(tick, rows, lockHeld);
}

/** One line for a log or an error: why the tick does or does not need a run. */
export function describeDue(d: DueDecision, tickText: string): string {
  switch (d.reason) {
    case 'no-tick':
      return 'the expression has not fired in the last 30 years';
    case 'done':
      return `tick ${tickText} already has succeeded run ${d.run.run_id} (${d.run.trigger}, started ${d.run.started_at.toISOString()})`;
    case 'in-progress':
      return `run ${d.run.run_id} for tick ${tickText} is in progress (pid ${d.run.pid} on ${d.run.host})`;
    case 'waiting':
      return `run ${d.run.run_id} for tick ${tickText} was stopped by a publish gate and waits for a person: review it (\`scorejob runs show ${d.run.run_id}\`), then \`scorejob publish ${d.run.run_id} --force\`, or fix the data and start a run by hand; ticks of this period do not retry it`;
    case 'never-ran':
      return `tick ${tickText} has no run`;
    case 'failed':
      return `the last run for tick ${tickText}, run ${d.run?.run_id}, failed`;
    case 'interrupted':
      return `the last run for tick ${tickText}, run ${d.run?.run_id}, was interrupted`;
    case 'stale':
      return `run ${d.run?.run_id} for tick ${tickText} is marked running but its process is gone`;
  }
}
