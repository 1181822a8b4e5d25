import type pg from 'pg';
import { describeDb, type Config } from '../config.js';
import { withSession } from '../db/session.js';
import { Ledger, type Queryable } from '../ledger/ledger.js';
import { takeRunLock, type LockPurpose, type RunLock } from '../ledger/runLock.js';
import type { Logger } from '../log.js';
import { UsageError } from '../errors.js';

/** What a command that moves a model's pointer holds while it does: its connection, the ledger, the model's lock. */
export interface ModelLockSession {
  client: pg.PoolClient;
  ledger: Ledger;
  lock: RunLock;
  /** The model whose lock is held (what `modelOf` named). */
  modelName: string;
}

/**
 * The frame of `publish --force`, a feature's publish of its sibling run, `rollback` and `model retire`: a pool of three
 * connections (see below), the schema checked as migrated, then the lock of the model `modelOf` names
 * (read before the lock: `fn` reads what it acts on again under it), held for `fn` and released however it
 * ends (exit 75 when a run of the model holds it). Everything closed after.
 */
export async function withModelLock<T>(
  ctx: { config: Config; log: Logger },
  purpose: LockPurpose,
  modelOf: (client: pg.PoolClient, ledger: Ledger) => Promise<string>,
  fn: (s: ModelLockSession) => Promise<T>,
): Promise<T> {
  const { config } = ctx;
  // Three: the command's connection, the lock's own, and one for naming a holder when the lock is held
  // (its query for the stuck rule would otherwise wait out the pool's 15 s connection timeout).
  return withSession(config, { connections: 3 }, async (s) => {
    const { client, pool } = s;
    const ledger = new Ledger(config.schema);
    const modelName = await modelOf(client, ledger);
    const lock = await takeRunLock(pool, { schema: config.schema, modelName, purpose, log: ctx.log, where: describeDb(config.db), ledger });
    s.defer(() => lock.release());
    return fn({ client, ledger, lock, modelName });
  });
}

/** `modelOf` for a command on a run: the run's model (exit 2 when there is no such run). */
export function modelOfRun(runId: string): (client: Queryable, ledger: Ledger) => Promise<string> {
  return async (client, ledger) => {
    const run = await ledger.getRun(client, runId);
    if (!run) throw new UsageError(`there is no run ${runId} (see \`scorejob runs\`)`);
    return run.model_name;
  };
}
