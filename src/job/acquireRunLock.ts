import type pg from 'pg';
import { describeDb, type Config } from '../config.js';
import type { Logger } from '../log.js';
import type { Ledger } from '../ledger/ledger.js';
import { modelLockName, takeRunLock, type LockPurpose, type RunLock } from './runLock.js';

/**
 * "Take the lock or throw", for every command that writes (run, resume, publish --force): the run
 * lock with the ledger's rule for a stuck holder, and the runs of dead holders marked interrupted in
 * the same transaction (reported through `onDead`).
 */
export function acquireRunLock(
  pool: pg.Pool,
  config: Config,
  log: Logger,
  purpose: LockPurpose,
  ledger: Ledger,
  modelName: string,
  onDead: (runIds: string[]) => void = () => undefined,
): Promise<RunLock> {
  return takeRunLock(pool, {
    // One writer per model: two models run at once, the same model twice does not (exit 75).
    name: modelLockName(modelName),
    schema: config.schema,
    purpose,
    log,
    where: describeDb(config.db),
    normalRunMs: (c) => ledger.longestRecentRunMs(c, modelName),
    onAcquired: async (c) => onDead(await ledger.markDeadRuns(c)),
  });
}
