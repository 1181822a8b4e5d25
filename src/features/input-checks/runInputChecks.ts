import type pg from 'pg';
import { inSnapshot } from '../../db/snapshot.js';
import { InputCheckError } from '../../errors.js';
import type { Logger } from '../../log.js';
import type { InputChecks } from '../../model/manifestInputs.js';
import { checkAssertion, checkNullRates, checkRowCount, describeFailures, skipped, type CheckResult } from './evaluate.js';
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
 * The manifest's input checks, in the run's snapshot, while the run plans its chunks (before the plan is recorded or its
 * score table exists). Every result is recorded on the run (run_input_checks); a failed check that was
 * not skipped throws {@link InputCheckError} (the run fails, kind input_check). The source is read at
 * most twice, at the same time on two connections in the snapshot: one aggregate scan gives the row count
 * and every feature's NULLs (a count(*) alone when the NULL rates are not checked), and the assertions run
 * one after another on the other connection. A failed row count is the only result then (a third of
 * the source missing says everything). An only-new run compares nothing with a full run: it runs the
 * assertions only.
 */
export async function runInputChecks(run: InputCheckRun, snapshotId: string): Promise<void> {
  const checks = run.model.manifest.checks;
  if (checks === undefined) return;
  const results = await measureChecks(run, checks, snapshotId);
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

/** Every check's result, in the manifest's order: row_count, null_rate, the assertions. */
async function measureChecks(run: InputCheckRun, checks: InputChecks, snapshotId: string): Promise<CheckResult[]> {
  const skips = new Map((run.params.skipChecks ?? []).map((s) => [s.name, s.reason]));
  const skip = (name: string) => (skips.has(name) ? skipped(name, skips.get(name)!) : undefined);
  const onlyNew = run.params.onlyNew !== undefined && run.params.onlyNew !== null;
  const rowCount = checks.rowCount && !onlyNew ? checks.rowCount : undefined;
  const nullRate = checks.nullRate && !onlyNew ? checks.nullRate : undefined;
  const countRowsNow = rowCount !== undefined && !skips.has('row_count');
  const countNullsNow = nullRate !== undefined && !skips.has('null_rate');
  const asserted = checks.assertions.filter((a) => !skips.has(a.name));
  const [baseline, counted, assertions] = await Promise.all([
    rowCount || nullRate ? lastPublishedFullRun(run.client, run.config.schema, run.model.manifest.name, run.runId) : undefined,
    countRowsNow || countNullsNow ? withSnapshot(run, snapshotId, (c) => countSource(c, run, countNullsNow)) : undefined,
    asserted.length > 0 ? withSnapshot(run, snapshotId, (c) => runAssertions(c, asserted)) : new Map<string, CheckResult>(),
  ]);
  const out: CheckResult[] = [];
  if (rowCount) out.push(skip('row_count') ?? checkRowCount(counted!.rows, baseline, rowCount.maxChange));
  if (out.some((r) => r.outcome === 'failed')) return out;
  if (nullRate) out.push(skip('null_rate') ?? checkNullRates(counted!.rows, counted!.nulls, baseline, nullRate.maxChangePp));
  for (const a of checks.assertions) out.push(skip(a.name) ?? assertions.get(a.name)!);
  return out;
}

/** The source's rows, and each feature's NULLs when `nulls` (one scan). */
async function countSource(c: pg.ClientBase, run: InputCheckRun, nulls: boolean): Promise<{ rows: number; nulls: Map<string, number> }> {
  const table = run.params.source.table;
  if (!nulls) return { rows: await countRows(c, table), nulls: new Map() };
  return countNulls(
    c,
    table,
    run.model.manifest.features.map((f) => f.column),
  );
}

async function runAssertions(c: pg.ClientBase, asserted: readonly { name: string; sql: string }[]): Promise<Map<string, CheckResult>> {
  const out = new Map<string, CheckResult>();
  for (const a of asserted) out.set(a.name, await assertion(c, a.name, a.sql));
  return out;
}

async function withSnapshot<T>(run: InputCheckRun, snapshotId: string, fn: (c: pg.ClientBase) => Promise<T>): Promise<T> {
  const c = await run.pool.connect();
  try {
    return await inSnapshot(c, snapshotId, () => fn(c));
  } finally {
    c.release();
  }
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
