import type { Config } from '../config.js';
import { UsageError } from '../errors.js';
import type { Logger } from '../log.js';
import { Ledger } from '../ledger/ledger.js';
import { Publications, type PublishedEvent } from '../ledger/publications.js';
import { runOnPublishCommand } from './onPublishCommand.js';
import { withModelLock } from './modelLock.js';
import { publishedBy } from './publish.js';
import { withLockRetry } from '../db/lockRetry.js';
import { describeFewerReasons } from './reasonsLost.js';

export interface RollbackOptions {
  /** The run to put back; default: the newest kept run of the model published before the current one. */
  runId?: string | undefined;
  /** Which model, when the schema has several and no run is named. */
  modelName?: string | undefined;
  /** Recorded on the publication (published_runs.reason). */
  reason?: string | undefined;
  /** Run after the commit (see onPublishCommand.ts). */
  onPublishCommand?: string | undefined;
}

/**
 * `scorejob rollback [RUN_ID]`: points the model's customer_scores at an earlier kept, succeeded run, in
 * one short transaction and without rescoring (its table is still attached to score_data, so readers'
 * plans already know it). Takes the model's run lock like a publish (exit 75 if a run holds it), records
 * the rollback in score_publications and sends `scorejob_published`, in the pointer's transaction.
 * Every refusal is a UsageError (exit 2) in one line.
 */
export async function rollback(ctx: { config: Config; log: Logger }, opts: RollbackOptions): Promise<PublishedEvent> {
  if (opts.runId !== undefined && !/^\d{1,18}$/.test(opts.runId)) throw new UsageError(`run id "${opts.runId}" is not a run number (see \`scorejob runs\`)`);
  const { config } = ctx;
  const publications = new Ledger(config.schema).publications;
  return withModelLock(
    ctx,
    'rollback',
    (client, ledger) => whichModel(client, ledger, publications, opts),
    async ({ client, lock, modelName }) => {
      // Under the lock: what is published now, and the target, read again.
      const current = await publications.currentRun(client, modelName);
      const target =
        opts.runId ??
        (current === undefined ? await retiredRun(client, publications, modelName) : await publications.previousKeptRun(client, modelName, current));
      if (target === undefined)
        throw new UsageError(
          `model ${modelName} has no kept run published before run ${current} (see \`scorejob runs --model-name ${modelName}\`); name one with \`scorejob rollback <run-id>\``,
        );
      await checkTarget(client, publications, target, modelName, current);
      const log = ctx.log.child({ run_id: target, model: modelName });
      let event: PublishedEvent | undefined;
      // No attach settle or wait for older readers (publishRun): the run's table has been attached since
      // it was planned, and readers' plans have had its partition ever since.
      await withLockRetry(client, log, 'rolling back', async () => {
        event = await publications.movePointer(client, target, 'rollback', publishedBy(opts.reason));
        await lock.fence(client);
      });
      const done = event as PublishedEvent;
      log.warn(
        { rollback: true, from_run_id: current, by: publishedBy().osUser, reason: opts.reason ?? null, rows: done.rows },
        `rolled back: ${config.schema}.customer_scores (model_name = '${modelName}') shows run ${target} again (${done.rows} customers, model ${modelName} ${done.model_version}) instead of ${current === undefined ? 'none (the model was retired)' : `run ${current}`}`,
      );
      const fewer = await publications.fewerReasons(client, modelName);
      if (fewer) log.warn({ rows_with_reasons: fewer.now, previous_rows_with_reasons: fewer.before }, describeFewerReasons(config.schema, target, fewer));
      await runOnPublishCommand(opts.onPublishCommand, done, log);
      return done;
    },
  );
}

/** The model to roll back: the named run's, else --model-name (published or retired), else the schema's only published model. */
async function whichModel(client: import('pg').ClientBase, ledger: Ledger, publications: Publications, opts: RollbackOptions): Promise<string> {
  if (opts.runId !== undefined) {
    const run = await ledger.getRun(client, opts.runId);
    if (!run) throw new UsageError(`there is no run ${opts.runId} (see \`scorejob runs\`)`);
    if (opts.modelName !== undefined && opts.modelName !== run.model_name)
      throw new UsageError(`run ${opts.runId} is a run of model ${run.model_name}, not of ${opts.modelName} (--model-name)`);
    return run.model_name;
  }
  const models = await publications.publishedModels(client);
  if (opts.modelName !== undefined) {
    const retired = (await publications.lastPublication(client, opts.modelName))?.kind === 'retire';
    if (!models.includes(opts.modelName) && !retired)
      throw new UsageError(
        `model ${opts.modelName} (--model-name) has no published run in schema ${ledger.schema}${models.length ? ` (published: ${models.join(', ')})` : ''}`,
      );
    return opts.modelName;
  }
  if (models.length === 0) throw new UsageError(`schema ${ledger.schema} has no published run: there is nothing to roll back`);
  if (models.length > 1)
    throw new UsageError(`schema ${ledger.schema} publishes several models (${models.join(', ')}): name one with --model-name, or name the run`);
  return models[0] as string;
}

/**
 * A retired model (`model retire`) has no current run: rolling it back puts the run it retired back (the
 * retire's publication names it), which publishes the model again. Otherwise there is nothing to roll back.
 */
async function retiredRun(client: import('pg').ClientBase, publications: Publications, modelName: string): Promise<string> {
  const last = await publications.lastPublication(client, modelName);
  if (last?.kind !== 'retire') throw new UsageError(`model ${modelName} has no published run: there is nothing to roll back`);
  return last.run_id;
}

/** Every reason a run cannot be put back, each a usage error (exit 2). */
async function checkTarget(
  client: import('pg').ClientBase,
  publications: Publications,
  runId: string,
  modelName: string,
  current: string | undefined,
): Promise<void> {
  const run = await publications.candidate(client, runId);
  if (!run) throw new UsageError(`there is no run ${runId} (see \`scorejob runs\`)`);
  if (run.model_name !== modelName) throw new UsageError(`run ${runId} is a run of model ${run.model_name}, not of ${modelName}`);
  if (runId === current) throw new UsageError(`run ${runId} is already published (model ${modelName}); there is nothing to do`);
  if (run.dry_run) throw new UsageError(`run ${runId} was a dry run: its scores were never meant to be published`);
  if (run.status !== 'succeeded' || run.published_at === null) {
    throw new UsageError(
      `run ${runId} is ${run.status === 'succeeded' ? 'not published' : run.status}: only a run that succeeded and was published can be put back (see \`scorejob runs show ${runId}\`)`,
    );
  }
  if (!run.kept) throw new UsageError(`run ${runId} is not kept: retention dropped its scores (--keep-runs); start a new run instead`);
}
