import type pg from 'pg';
import { defaults, describeDb, type Config } from '../config.js';
import { NothingToDoError, UsageError } from '../errors.js';
import type { Ledger } from '../ledger/ledger.js';
import { Publications, type RetiredEvent } from '../ledger/publications.js';
import type { Logger } from '../log.js';
import { withModelLock } from './modelLock.js';
import { runOnPublishCommand } from './onPublishCommand.js';
import { publishedBy } from './publish.js';
import { withLockRetry } from '../db/lockRetry.js';

export interface RetireOptions {
  /** The model to take out of customer_scores (the manifest's `name`). */
  modelName: string;
  /** The model's name again: without it, or with another name, nothing is done (exit 2). */
  confirm?: string | undefined;
  /** Recorded on the publication (published_runs.reason). */
  reason?: string | undefined;
  /** Run after the commit (see onPublishCommand.ts). */
  onPublishCommand?: string | undefined;
}

export interface Retired {
  event: RetiredEvent;
  /** The rows that left customer_scores. */
  rows: number;
}

/**
 * `scorejob model retire NAME --confirm NAME`: takes the model's rows out of customer_scores and every
 * reader view, in one short transaction under the model's run lock (exit 75 while a run of it holds the
 * lock): the pointer row goes, a publication of kind 'retire' is recorded and `scorejob_published` sent.
 * Nothing is dropped: the kept runs stay in customer_score_history until the model's next run applies
 * its retention, and that run publishes the model again. Without the confirmation, an unknown model:
 * exit 2, nothing written; nothing published (already retired): NothingToDoError (exit 0).
 */
export async function retireModel(ctx: { config: Config; log: Logger }, opts: RetireOptions): Promise<Retired> {
  const { config } = ctx;
  return withModelLock(
    ctx,
    'retire',
    (client, ledger) => checkRetire(client, ledger, config, opts),
    async ({ client, ledger, lock, modelName }) => {
      const publications = ledger.publications;
      const log = ctx.log.child({ model: modelName });
      const rows = await publications.publishedRows(client, modelName);
      let event: RetiredEvent | undefined;
      await withLockRetry(client, log, 'retiring', async () => {
        event = await publications.retire(client, modelName, publishedBy(opts.reason));
        await lock.fence(client);
      });
      // No pointer left to delete: another retire got there between the check and the lock.
      if (event === undefined) throw await nothingToRetire(client, publications, config, modelName);
      const done: RetiredEvent = event;
      log.warn(
        { retire: true, run_id: done.previous_run_id, rows, by: publishedBy().osUser, reason: opts.reason ?? null },
        `retired model ${modelName} on ${describeDb(config.db)}: its ${rows} rows (run ${done.previous_run_id}) left ${config.schema}.customer_scores and the reader views; ` +
          `customer_score_history keeps its kept runs. The model's next \`scorejob run\` (cron, schedule) publishes it again; \`${command(config, ['rollback', '--model-name', modelName])}\` puts run ${done.previous_run_id} back`,
      );
      await runOnPublishCommand(opts.onPublishCommand, done, log);
      return { event: done, rows };
    },
  );
}

/** Before the lock: the model exists, is published, and the command names it twice; else nothing is written. */
async function checkRetire(client: pg.PoolClient, ledger: Ledger, config: Config, opts: RetireOptions): Promise<string> {
  const name = opts.modelName;
  const models = await ledger.registeredModels(client);
  if (!models.includes(name)) {
    throw new UsageError(
      `there is no model ${name} in schema ${config.schema} on ${describeDb(config.db)} (${models.length > 0 ? `its models: ${models.join(', ')}` : 'no model has run in it yet'})`,
    );
  }
  const publications = ledger.publications;
  const current = await publications.currentRun(client, name);
  if (current === undefined) throw await nothingToRetire(client, publications, config, name);
  if (opts.confirm === name) return name;
  const rows = await publications.publishedRows(client, name);
  const why = opts.confirm === undefined ? 'not confirmed' : `--confirm names ${opts.confirm}, not ${name}`;
  throw new UsageError(
    `${why}, nothing done: retiring model ${name} takes its ${rows} rows (run ${current}) out of ${config.schema}.customer_scores and the reader views on ${describeDb(config.db)}; ` +
      `to do it: ${command(config, ['model', 'retire', name, '--confirm', name])}`,
  );
}

/** Exit 0 with a line: the model shows no rows, because it was retired (when, by whom) or never published. */
async function nothingToRetire(client: pg.PoolClient, publications: Publications, config: Config, name: string): Promise<NothingToDoError> {
  const last = await publications.lastPublication(client, name);
  const where = `${config.schema}.customer_scores on ${describeDb(config.db)}`;
  if (last?.kind === 'retire') {
    return new NothingToDoError(
      `model ${name} is already retired (run ${last.run_id} left ${where} at ${last.published_at.toISOString()}, by ${last.by}); nothing to do`,
    );
  }
  return new NothingToDoError(`model ${name} has no published run: ${where} shows none of its rows; nothing to do`);
}

/** A scorejob command line a person can paste: the schema when it is not the default, words shell-quoted where needed. */
export function command(config: Pick<Config, 'schema'>, args: readonly string[]): string {
  const words = ['scorejob', ...(config.schema === defaults.schema ? [] : ['--schema', config.schema]), ...args];
  return words.map((w) => (/^[\w@%+=:,./-]+$/.test(w) ? w : `'${w.replaceAll("'", `'\\''`)}'`)).join(' ');
}
