import type pg from 'pg';
import { quoteIdent } from '../db/sql.js';
import type { Logger } from '../log.js';
import type { Ledger } from './ledger.js';
import { withLockRetry } from '../db/lockRetry.js';

// Apart from the sidecar (reasons.ts), which loads TF.js: publish and retention drop these tables, and
// `scorejob publish` or `rollback` must not pay for a model backend they never use.

/**
 * The reasons of a run (`--reasons K`): the only code that touches score_reasons and its per-run tables
 * (sql/010_analyst.sql). A run's table lives and dies with its scores' table.
 */
export function reasonsTable(ledger: Ledger, runId: string): string {
  return `${quoteIdent(ledger.schema)}."score_reasons_${BigInt(runId).toString()}"`;
}

/**
 * Creates the run's reasons table (idempotent: a resume finds it) and, unless the run is dry, attaches
 * it to score_reasons while it is still empty (its CHECK makes the attach scan-free), before any chunk
 * is scored: like the scores, readers' plans know it before the pointer can name the run.
 */
export async function ensureReasonsTable(c: pg.ClientBase, ledger: Ledger, runId: string, attach: boolean, log: Logger): Promise<void> {
  const id = BigInt(runId).toString();
  const table = reasonsTable(ledger, runId);
  const parent = `${quoteIdent(ledger.schema)}.score_reasons`;
  await c.query(
    `CREATE TABLE IF NOT EXISTS ${table} (LIKE ${parent} INCLUDING DEFAULTS,
       CONSTRAINT "score_reasons_${id}_run" CHECK (run_id = ${id}),
       CONSTRAINT "score_reasons_${id}_pkey" PRIMARY KEY (run_id, customer_id))`,
  );
  await c.query(`ALTER TABLE ${table} ALTER COLUMN run_id SET DEFAULT ${id}`);
  if (!attach || (await reasonsAttached(c, ledger, runId))) return;
  await withLockRetry(c, log, 'attaching the run reasons table', async () => {
    await c.query(`ALTER TABLE ${parent} ATTACH PARTITION ${table} FOR VALUES IN (${id})`);
  });
}

async function reasonsAttached(c: pg.ClientBase, ledger: Ledger, runId: string): Promise<boolean> {
  const { rows } = await c.query<{ attached: boolean }>(
    `SELECT EXISTS (SELECT 1 FROM pg_inherits WHERE inhrelid = to_regclass($1) AND inhparent = to_regclass($2)) AS attached`,
    [reasonsTable(ledger, runId), `${quoteIdent(ledger.schema)}.score_reasons`],
  );
  return rows[0]?.attached === true;
}

/**
 * Drops the run's reasons table if there is one (called wherever the run's scores are dropped):
 * detached CONCURRENTLY first, so readers of customer_score_reasons are never blocked. Outside a transaction.
 */
export async function dropReasonsTable(c: pg.ClientBase, ledger: Ledger, runId: string): Promise<void> {
  const table = reasonsTable(ledger, runId);
  const { rows } = await c.query<{ t: string | null }>(`SELECT to_regclass($1)::text AS t`, [table]);
  if (rows[0]?.t === null || rows[0]?.t === undefined) return;
  if (await reasonsAttached(c, ledger, runId)) await c.query(`ALTER TABLE ${quoteIdent(ledger.schema)}.score_reasons DETACH PARTITION ${table} CONCURRENTLY`);
  await c.query(`DROP TABLE ${table}`);
}
