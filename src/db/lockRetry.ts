import type pg from 'pg';
import { withTransaction } from './sql.js';
import { SqlState, sqlStateOf } from './sqlstate.js';
import type { Logger } from '../log.js';

/**
 * Runs fn in a transaction that never waits long behind another lock on score_data (DDL, a
 * retention DETACH): it gives up after 5 s, waits, and tries again, up to six times.
 */
export async function withLockRetry(c: pg.ClientBase, log: Logger, what: string, fn: () => Promise<void>): Promise<void> {
  for (let attempt = 1; ; attempt++) {
    try {
      await withTransaction(c, async () => {
        await c.query(`SET LOCAL lock_timeout = '5s'`);
        await fn();
      });
      return;
    } catch (err) {
      if (sqlStateOf(err) !== SqlState.lockNotAvailable || attempt >= 6) throw err;
      log.warn({ attempt }, `${what} waited too long for a lock on score_data; trying again`);
      await new Promise((r) => setTimeout(r, 1000 * attempt));
    }
  }
}
