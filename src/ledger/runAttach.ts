import type pg from 'pg';
import { SqlState, sqlStateOf } from '../db/sqlstate.js';
import { withLockRetry } from '../db/lockRetry.js';
import { RunFailedError } from '../errors.js';
import type { Logger } from '../log.js';
import type { Ledger } from './ledger.js';

/**
 * Attaches the run's table to score_data before any of its chunks is scored, and long before it is
 * published, so that a reader sees the previous complete run or the new one, never a mix or nothing
 * (docs/architecture.md "Complete or nothing"). A reader's statement is planned with the partitions that exist then and
 * executed with a newer snapshot; had the attach and the pointer moved in one transaction, a statement
 * planned just before that commit and executed just after it would follow the new pointer to a
 * partition its plan lacks, and see no rows. Attached at plan time, the partition is in every plan by
 * the time the pointer can name it; customer_scores prunes it away until then, and
 * customer_score_history shows published runs only. Idempotent: a resume (or a run planned before this
 * rule) attaches a table that is not attached yet, building its primary key first if it lacks one.
 */
export async function attachRunTable(c: pg.ClientBase, ledger: Ledger, runId: string, log: Logger): Promise<void> {
  const state = await ledger.storage.state(c, runId);
  if (!state.exists || state.attached) return;
  if (!state.hasKey) {
    try {
      await ledger.storage.addKey(c, runId);
    } catch (err) {
      throw duplicateKeyError(err, runId) ?? err;
    }
  }
  await withLockRetry(c, log, 'attaching the run table to score_data', () => ledger.storage.attach(c, runId));
  await ledger.markAttached(c, runId);
}

/**
 * Registers the run's model in this schema (its first non-dry run does), which adds the model's branch
 * to customer_scores (sql/006_models.sql). Done when the run starts, long before its publish, for the
 * same reason the run's table is attached then: a reader's plan must know the branch before the
 * pointer names the model's run. Replacing the view waits for its readers, at most 5 s at a time.
 */
export async function registerModel(c: pg.ClientBase, ledger: Ledger, modelName: string, log: Logger): Promise<void> {
  if (await ledger.modelRegistered(c, modelName)) return;
  await withLockRetry(c, log, `registering model ${modelName}`, async () => {
    if (await ledger.registerModel(c, modelName)) await ledger.refreshScoreViews(c);
  });
  log.info(
    { model: modelName },
    `model ${modelName} registered in schema ${ledger.schema}: customer_scores now has its rows once it publishes (WHERE model_name = '${modelName}')`,
  );
}

/** A unique violation on the run's key, in words: the source key is not unique. */
export function duplicateKeyError(err: unknown, runId: string): RunFailedError | undefined {
  if (sqlStateOf(err) !== SqlState.uniqueViolation) return undefined;
  const detail = ((err as { detail?: string }).detail ?? '').replace(/\s+/g, ' ');
  return new RunFailedError(`the source key is not unique, so a customer was scored twice (${detail}); fix the source key`, runId, { cause: err });
}
