import type pg from 'pg';
import { inSnapshot } from '../../db/snapshot.js';
import { InputCheckError } from '../../errors.js';
import type { Logger } from '../../log.js';
import type { InputChecks } from '../../model/manifestInputs.js';
import { checkAssertion, checkNullRates, checkRowCount, describeFailures, skipped, type Baseline, type CheckResult } from './evaluate.js';
import { countNulls, countRows, lastPublishedFullRun, runAssertion } from './measure.js';
import { recordChecks } from './recordChecks.js';
import type { SkippedCheck } from './skipChecks.js';

/** What the checks read of the run (structurally: the run's deps satisfy it). */
export interface InputCheckRun {
  pool: pg.Pool;
  /** The ledger connection (where the results are recorded). */
  readonly client: pg.ClientBase;
  config: { schema: string };
  runId: string;
  params: { source: { table: string }; skipChecks?: SkippedCheck[] | undefined; onlyNew?: unknown };
  model: { manifest: { name: string; checks?: InputChecks | undefined; features: readonly { column: string }[] } };
  log: Logger;
}

/**
 * The manifest's input checks, in the run's snapshot, before the run plans its chunks (so before its
 * score table exists). Every result is recorded on the run (run_input_checks); a failed check that was
 * not skipped throws {@link InputCheckError} (the run fails, kind input_check). The row count comes
 * first, from a count(*) in the snapshot (an index-only scan where the visibility map allows), and fails
 * at once: a third of the source missing is refused before the NULL scan and the plan's pass over the keys.
 * An only-new run compares nothing with a full run: it runs the assertions only.
 */
export async function runInputChecks(run: InputCheckRun, snapshotId: string): Promise<void> {
  const checks = run.model.manifest.checks;
  if (checks === undefined) return;
  const skips = new Map((run.params.skipChecks ?? []).map((s) => [s.name, s.reason]));
  const onlyNew = run.params.onlyNew !== undefined && run.params.onlyNew !== null;
  const results = await withSnapshot(run, snapshotId, async (c) => {
    const out: CheckResult[] = [];
    const baseline =
      onlyNew || (!checks.rowCount && !checks.nullRate)
        ? undefined
        : await lastPublishedFullRun(run.client, run.config.schema, run.model.manifest.name, run.runId);
    const skip = (name: string) => (skips.has(name) ? skipped(name, skips.get(name)!) : undefined);
    if (checks.rowCount && !onlyNew)
      out.push(skip('row_count') ?? checkRowCount(await countRows(c, run.params.source.table), baseline, checks.rowCount.maxChange));
    if (out.some((r) => r.outcome === 'failed')) return out;
    if (checks.nullRate && !onlyNew) out.push(skip('null_rate') ?? (await nullRates(c, run, baseline, checks.nullRate.maxChangePp)));
    for (const a of checks.assertions) out.push(skip(a.name) ?? (await assertion(c, a.name, a.sql)));
    return out;
  });
  await recordChecks(run.client, run.config.schema, run.runId, results);
  const failed = results.filter((r) => r.outcome === 'failed');
  run.log[failed.length > 0 ? 'warn' : 'info'](
    { input_checks: results.map((r) => ({ name: r.name, outcome: r.outcome, detail: r.detail })) },
    `input checks: ${results.map((r) => `${r.name} ${r.outcome} (${r.detail})`).join('; ')}`,
  );
  if (failed.length > 0)
    throw new InputCheckError(
      describeFailures(failed),
      failed.map((f) => f.name),
    );
}

async function withSnapshot<T>(run: InputCheckRun, snapshotId: string, fn: (c: pg.ClientBase) => Promise<T>): Promise<T> {
  const c = await run.pool.connect();
  try {
    return await inSnapshot(c, snapshotId, () => fn(c));
  } finally {
    c.release();
  }
}

async function nullRates(c: pg.ClientBase, run: InputCheckRun, baseline: Baseline | undefined, maxChangePp: number): Promise<CheckResult> {
  const columns = run.model.manifest.features.map((f) => f.column);
  const counted = await countNulls(c, run.params.source.table, columns);
  return checkNullRates(counted.rows, counted.nulls, baseline, maxChangePp);
}

/** An assertion whose query fails is a failed check naming the error (a savepoint keeps the snapshot's transaction usable). */
async function assertion(c: pg.ClientBase, name: string, sql: string): Promise<CheckResult> {
  await c.query('SAVEPOINT assertion');
  try {
    const { offending, keys } = await runAssertion(c, sql);
    await c.query('RELEASE SAVEPOINT assertion');
    return checkAssertion(name, offending, keys);
  } catch (err) {
    await c.query('ROLLBACK TO SAVEPOINT assertion');
    return { name, outcome: 'failed', detail: `its query failed: ${(err as Error).message}`, figures: { error: (err as Error).message } };
  }
}
