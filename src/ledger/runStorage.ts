import type pg from 'pg';
import { quoteQualified } from '../db/sql.js';
import type { Ledger } from './ledger.js';

/** The run's frozen copy of the source rows it rescores: kept until its last chunk is done (a resume reads it again). */
export function frozenName(ledger: Ledger, runId: string): string {
  return `${ledger.schema}.only_new_rows_${BigInt(runId).toString()}`;
}

/** Drops a run's frozen rows (and a view left on them): its chunks are done, or its scores are dropped. */
export async function dropFrozenRows(c: pg.ClientBase, ledger: Ledger, runId: string): Promise<void> {
  await c.query(`DROP TABLE IF EXISTS ${quoteQualified(frozenName(ledger, runId))} CASCADE`);
}

