import type pg from 'pg';
import type { Ledger } from '../ledger/ledger.js';
import { withClient } from '../db/sql.js';

/**
 * ANALYZE of the run's table on a connection of its own, started once every chunk is written, so that
 * it runs beside the run's statistics and cut points (a scan of the same table on the ledger
 * connection) instead of after them, in the publish. Readers need the statistics from the instant the
 * run is published; they are there, since publish awaits this first. The promise never rejects
 * unhandled: the caller awaits it (and a failure fails the run like a failed ANALYZE in publish would).
 */
export function analyzeEarly(pool: pg.Pool, ledger: Ledger, runId: string): Promise<void> {
  const done = withClient(pool, async (c) => {
    await ledger.storage.analyze(c, runId);
  });
  done.catch(() => undefined);
  return done;
}
