import type pg from 'pg';
import { RunFailedError } from '../errors.js';
import { SqlState, sqlStateOf } from '../db/sqlstate.js';
import type { Logger } from '../log.js';
import type { Ledger } from './ledger.js';

/**
 * Makes a finished run what readers see, in one short transaction:
 * build the run table's primary key first (readers don't see that table yet, so no one waits),
 * then ATTACH it to score_data (SHARE UPDATE EXCLUSIVE on the parent: readers are not blocked)
 * and move the published_run pointer. A reader's statement sees the old pointer or the new one,
 * never a mix (guarantee 1). No rename swap: that would take ACCESS EXCLUSIVE and queue behind readers.
 */
export async function publishRun(c: pg.ClientBase, ledger: Ledger, runId: string, stats: unknown, log: Logger, fence?: (c: pg.ClientBase) => Promise<void>): Promise<void> {
  const table = ledger.runTable(runId);
  const id = BigInt(runId).toString();
  try {
    // A resume after a crash during publish finds the key already built.
    const built = await c.query(`SELECT 1 FROM pg_constraint WHERE conrelid = to_regclass($1) AND contype = 'p'`, [table]);
    if (built.rowCount === 0) await c.query(`ALTER TABLE ${table} ADD CONSTRAINT "score_data_${id}_pkey" PRIMARY KEY (run_id, customer_id)`);
  } catch (err) {
    if (sqlStateOf(err) === SqlState.uniqueViolation) {
      const detail = (err as { detail?: string }).detail ?? '';
      throw new RunFailedError(`the source key is not unique, so a customer was scored twice (${detail.replace(/\s+/g, ' ')}); fix the source key`, runId, { cause: err });
    }
    throw err;
  }
  await c.query(`ANALYZE ${table}`);
  for (let attempt = 1; ; attempt++) {
    try {
      await c.query('BEGIN');
      // Never wait long behind another DDL on score_data: give up, wait, and try again.
      await c.query(`SET LOCAL lock_timeout = '5s'`);
      await c.query(`ALTER TABLE ${ledger.s}.score_data ATTACH PARTITION ${table} FOR VALUES IN (${id})`);
      await c.query(`UPDATE ${ledger.s}.published_run SET run_id = $1, published_at = now()`, [runId]);
      await c.query(
        `UPDATE ${ledger.s}.score_runs SET status = 'succeeded', finished_at = now(), heartbeat_at = now(), published_at = now(),
                error = NULL, error_kind = NULL, stats = $2 WHERE run_id = $1`,
        [runId, JSON.stringify(stats)],
      );
      // The run lock must still be ours (src/run/lock.ts): never publish after another process took it over.
      await fence?.(c);
      await c.query('COMMIT');
      return;
    } catch (err) {
      await c.query('ROLLBACK').catch(() => undefined);
      if (sqlStateOf(err) !== SqlState.lockNotAvailable || attempt >= 6) throw err;
      log.warn({ attempt }, 'publish waited too long for a lock on score_data; trying again');
      await new Promise((r) => setTimeout(r, 1000 * attempt));
    }
  }
}

/**
 * Keeps the newest `keep` published runs in history (guarantee 4): older partitions are detached
 * CONCURRENTLY (readers never blocked) and dropped whole. Best effort: a failure is logged, and the
 * next run finishes the job.
 */
export async function applyRetention(c: pg.ClientBase, ledger: Ledger, keep: number, log: Logger): Promise<string[]> {
  const { rows } = await c.query<{ run_id: string; pending: boolean }>(
    `SELECT r.run_id, i.inhdetachpending AS pending
       FROM pg_inherits i
       JOIN pg_class p ON p.oid = i.inhparent
       JOIN pg_namespace n ON n.oid = p.relnamespace
       JOIN pg_class ch ON ch.oid = i.inhrelid
       JOIN ${ledger.s}.score_runs r ON ch.relname = 'score_data_' || r.run_id
      WHERE n.nspname = $1 AND p.relname = 'score_data'
        AND r.run_id <> COALESCE((SELECT run_id FROM ${ledger.s}.published_run), -1)
      ORDER BY r.run_id DESC`,
    [ledger.schema],
  );
  // The published run is always kept and counts as one of `keep`.
  const dropped: string[] = [];
  for (const row of rows.slice(Math.max(0, keep - 1))) {
    const table = ledger.runTable(row.run_id);
    try {
      await c.query(`SET lock_timeout = '10s'`);
      await c.query(`ALTER TABLE ${ledger.s}.score_data DETACH PARTITION ${table} ${row.pending ? 'FINALIZE' : 'CONCURRENTLY'}`);
      await c.query(`DROP TABLE ${table}`);
      dropped.push(row.run_id);
    } catch (err) {
      log.warn({ dropped_run: row.run_id, err: (err as Error).message }, `could not drop the history of run ${row.run_id} yet; the next run will try again`);
    } finally {
      await c.query(`RESET lock_timeout`).catch(() => undefined);
    }
  }
  return dropped;
}
