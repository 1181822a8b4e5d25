import type pg from 'pg';
import { withLockRetry } from '../db/lockRetry.js';
import { quoteIdent, quoteQualified } from '../db/sql.js';
import type { Logger } from '../log.js';
import type { RunTables } from './runTables.js';

/** A run's score table as the catalog has it. */
export interface RunTableState {
  exists: boolean;
  /** Attached to score_data (a partition readers' plans know). */
  attached: boolean;
  hasKey: boolean;
}

/**
 * A run's storage: the only code that creates, keys, attaches, analyzes, detaches and drops a run's
 * tables (its score table, its reasons table, an only-new run's frozen rows) and answers whether they
 * exist. Each run's tables are named after its id; the SQL names them through RunTables' quoting.
 * Built once per session by the Ledger (`ledger.storage`).
 */
export class RunStorage {
  constructor(private readonly tables: RunTables) {}

  /** Whether a relation exists: the one place `to_regclass` is asked. */
  async exists(c: pg.ClientBase | pg.Pool, relation: string): Promise<boolean> {
    const { rows } = await c.query<{ t: string | null }>('SELECT to_regclass($1)::text AS t', [relation]);
    return rows[0]?.t !== null && rows[0]?.t !== undefined;
  }

  /** Creates the run's score table, with its primary key, in the caller's transaction. */
  async createScoreTable(c: pg.ClientBase, runId: string): Promise<void> {
    // run_id defaults to this run and is checked, so COPY sends two columns and ATTACH needs no validation scan.
    const id = BigInt(runId).toString();
    const table = this.tables.runTable(runId);
    await c.query(
      `CREATE TABLE ${table} (LIKE ${this.scoreData} INCLUDING DEFAULTS,
         CONSTRAINT "score_data_${id}_run" CHECK (run_id = ${id}),
         CONSTRAINT "score_data_${id}_pkey" PRIMARY KEY (run_id, customer_id))`,
    );
    await c.query(`ALTER TABLE ${table} ALTER COLUMN run_id SET DEFAULT ${id}`);
  }

  /** The score table unless it exists (an only-new run created its own when it froze what it rescores). */
  async ensureScoreTable(c: pg.ClientBase, runId: string): Promise<void> {
    if (!(await this.exists(c, this.tables.runTable(runId)))) await this.createScoreTable(c, runId);
  }

  /** Whether the run's score table exists, is attached to score_data, and has its primary key. */
  async state(c: pg.ClientBase, runId: string): Promise<RunTableState> {
    const { rows } = await c.query<{ exists: boolean; attached: boolean; has_key: boolean }>(
      `SELECT to_regclass($1) IS NOT NULL AS exists,
              EXISTS (SELECT 1 FROM pg_inherits WHERE inhrelid = to_regclass($1) AND inhparent = to_regclass($2)) AS attached,
              EXISTS (SELECT 1 FROM pg_constraint WHERE conrelid = to_regclass($1) AND contype = 'p') AS has_key`,
      [this.tables.runTable(runId), this.scoreData],
    );
    const r = rows[0] as { exists: boolean; attached: boolean; has_key: boolean };
    return { exists: r.exists, attached: r.attached, hasKey: r.has_key };
  }

  /** Builds the primary key of a score table that lacks one (a duplicate source key fails it). */
  async addKey(c: pg.ClientBase, runId: string): Promise<void> {
    await c.query(`ALTER TABLE ${this.tables.runTable(runId)} ADD CONSTRAINT "score_data_${BigInt(runId).toString()}_pkey" PRIMARY KEY (run_id, customer_id)`);
  }

  /** ATTACH the run's score table to score_data, in the caller's transaction (src/publish/publish.ts says why at plan time). */
  async attach(c: pg.ClientBase, runId: string): Promise<void> {
    await c.query(`ALTER TABLE ${this.scoreData} ATTACH PARTITION ${this.tables.runTable(runId)} FOR VALUES IN (${BigInt(runId).toString()})`);
  }

  /** Planner statistics of the run's score table: readers need them from the instant it is published. */
  async analyze(c: pg.ClientBase, runId: string): Promise<void> {
    await c.query(`ANALYZE ${this.tables.runTable(runId)}`);
  }

  /** Drops a score table never attached (a dry run's), if there is one. */
  async dropScoreTable(c: pg.ClientBase, runId: string): Promise<void> {
    await c.query(`DROP TABLE IF EXISTS ${this.tables.runTable(runId)}`);
  }

  /**
   * Detaches (CONCURRENTLY, so readers are never blocked; FINALIZE for a detach an earlier attempt left
   * pending) and drops the run's score table. Outside a transaction.
   */
  async detachAndDrop(c: pg.ClientBase, runId: string, how: { attached: boolean; pending: boolean }): Promise<void> {
    const table = this.tables.runTable(runId);
    if (how.attached) await c.query(`ALTER TABLE ${this.scoreData} DETACH PARTITION ${table} ${how.pending ? 'FINALIZE' : 'CONCURRENTLY'}`);
    await c.query(`DROP TABLE ${table}`);
  }

  /** The run's reasons table (`--reasons K`, sql/010_analyst.sql): it lives and dies with its scores' table. */
  reasonsTable(runId: string): string {
    return `${quoteIdent(this.tables.schema)}."score_reasons_${BigInt(runId).toString()}"`;
  }

  /**
   * Creates the run's reasons table (idempotent: a resume finds it) and, when `attach`, attaches it to
   * score_reasons while it is still empty (its CHECK makes the attach scan-free), before any chunk is
   * scored: like the scores, readers' plans know it before the pointer can name the run.
   */
  async ensureReasonsTable(c: pg.ClientBase, runId: string, attach: boolean, log: Logger): Promise<void> {
    const id = BigInt(runId).toString();
    const table = this.reasonsTable(runId);
    await c.query(
      `CREATE TABLE IF NOT EXISTS ${table} (LIKE ${this.scoreReasons} INCLUDING DEFAULTS,
         CONSTRAINT "score_reasons_${id}_run" CHECK (run_id = ${id}),
         CONSTRAINT "score_reasons_${id}_pkey" PRIMARY KEY (run_id, customer_id))`,
    );
    await c.query(`ALTER TABLE ${table} ALTER COLUMN run_id SET DEFAULT ${id}`);
    if (!attach || (await this.reasonsAttached(c, runId))) return;
    await withLockRetry(c, log, 'attaching the run reasons table', async () => {
      await c.query(`ALTER TABLE ${this.scoreReasons} ATTACH PARTITION ${table} FOR VALUES IN (${id})`);
    });
  }

  /** Drops the run's reasons table if there is one: detached CONCURRENTLY first (readers never blocked). Outside a transaction. */
  async dropReasonsTable(c: pg.ClientBase, runId: string): Promise<void> {
    const table = this.reasonsTable(runId);
    if (!(await this.exists(c, table))) return;
    if (await this.reasonsAttached(c, runId)) await c.query(`ALTER TABLE ${this.scoreReasons} DETACH PARTITION ${table} CONCURRENTLY`);
    await c.query(`DROP TABLE ${table}`);
  }

  /** An only-new run's frozen copy of the source rows it rescores: kept until its last chunk is done (a resume reads it again). */
  frozenRows(runId: string): string {
    return `${this.tables.schema}.only_new_rows_${BigInt(runId).toString()}`;
  }

  /** Drops a run's frozen rows (and a view left on them): its chunks are done, or its scores are dropped. */
  async dropFrozenRows(c: pg.ClientBase, runId: string): Promise<void> {
    await c.query(`DROP TABLE IF EXISTS ${quoteQualified(this.frozenRows(runId))} CASCADE`);
  }

  private get scoreData(): string {
    return `${quoteIdent(this.tables.schema)}.score_data`;
  }

  private get scoreReasons(): string {
    return `${quoteIdent(this.tables.schema)}.score_reasons`;
  }

  private async reasonsAttached(c: pg.ClientBase, runId: string): Promise<boolean> {
    const { rows } = await c.query<{ attached: boolean }>(
      `SELECT EXISTS (SELECT 1 FROM pg_inherits WHERE inhrelid = to_regclass($1) AND inhparent = to_regclass($2)) AS attached`,
      [this.reasonsTable(runId), this.scoreReasons],
    );
    return rows[0]?.attached === true;
  }
}
