import type pg from 'pg';
import type { SourceRef } from '../db/copyReader.js';
import { connectAs } from '../db/pool.js';
import { quoteIdent, quoteQualified, withTransaction } from '../db/sql.js';
import { SqlState, sqlStateOf } from '../db/sqlstate.js';
import { UsageError } from '../errors.js';
import { IncrementalLedger } from '../ledger/incremental.js';
import type { Ledger, OnlyNewParams } from '../ledger/ledger.js';
import type { Logger } from '../log.js';
import type { LoadedModel } from '../model/load.js';

/**
 * `scorejob run --only-new` (README "New customers between monthly runs"). The customers to rescore are
 * those without a score in the base run (the model's published run when it starts: new customers, and
 * those it rejected) and, where the manifest names `source.updated_column`, those whose row changed since
 * the base run started. Before it plans, the run freezes them ({@link freezeOnlyNew}): in one snapshot it
 * copies their source rows into a table of its own and makes itself a layer (sql/013_layers.sql) over the
 * full run below the base run, hiding the customers it does not carry. Its chunks then read that frozen
 * table through the run's view of the source, so planning and every chunk read a few rows, not an
 * anti-join of the whole source with the whole base run; its snapshot, chunks, resume and ledger are a
 * normal run's, and it publishes as any run does.
 */
export async function prepareOnlyNew(c: pg.ClientBase, ledger: Ledger, model: LoadedModel): Promise<{ source: SourceRef; onlyNew: OnlyNewParams }> {
  const { name, version } = model.manifest;
  const base = await new IncrementalLedger(ledger).publishedRun(c, name);
  if (!base) throw new UsageError(`--only-new needs a published run of model ${name} to carry forward; run a full \`scorejob run\` first`);
  if (base.modelSha256 !== model.sha256) {
    throw new UsageError(
      `--only-new would mix two models: the published run ${base.runId} was scored by ${name} ${base.modelVersion} with other model files (sha256 ${base.modelSha256.slice(0, 12)}…, now ${model.sha256.slice(0, 12)}… ${version}); run a full \`scorejob run\``,
    );
  }
  const onlyNew: OnlyNewParams = { baseRunId: base.runId, since: base.startedAt.toISOString(), sourceTable: model.manifest.source.table, updatedColumn: model.manifest.source.updatedColumn ?? null };
  const source = await createOnlyNewView(c, ledger, onlyNew, model.manifest.source.key, model.dir);
  return { source, onlyNew };
}

function viewName(ledger: Ledger, p: OnlyNewParams): string {
  return `${ledger.schema}.only_new_source_${BigInt(p.baseRunId).toString()}`;
}

/** The run's frozen copy of the source rows it rescores: kept until the run succeeds (a resume reads it again). */
function frozenName(ledger: Ledger, runId: string): string {
  return `${ledger.schema}.only_new_rows_${BigInt(runId).toString()}`;
}

/**
 * Creates (or replaces) the run's view of the customers to rescore: at the start (the anti-join with the
 * base run, which the freeze reads once) and at each resume (the run's frozen rows, once frozen). It lives
 * only while the run does ({@link dropOnlyNewView}): a view on the source would stop its owner from
 * dropping or retyping the source's columns.
 */
export async function createOnlyNewView(c: pg.ClientBase, ledger: Ledger, p: OnlyNewParams, key: string, modelDir: string, runId?: string): Promise<SourceRef> {
  const view = viewName(ledger, p);
  if (runId !== undefined && (await c.query<{ t: string | null }>('SELECT to_regclass($1)::text AS t', [frozenName(ledger, runId)])).rows[0]?.t) {
    await c.query(`CREATE OR REPLACE VIEW ${quoteQualified(view)} AS SELECT * FROM ${quoteQualified(frozenName(ledger, runId))}`);
    return { table: view, key };
  }
  try {
    await c.query(`CREATE OR REPLACE VIEW ${quoteQualified(view)} AS SELECT s.* FROM ${quoteQualified(p.sourceTable)} s WHERE ${await rescoredCondition(c, ledger, p, key)}`);
  } catch (err) {
    if (sqlStateOf(err) === SqlState.undefinedColumn && p.updatedColumn !== null) {
      throw new UsageError(`source.updated_column "${p.updatedColumn}" of ${modelDir}/manifest.json is not a column of ${p.sourceTable}`, { cause: err });
    }
    throw err;
  }
  return { table: view, key };
}

/**
 * Drops the run's view once the run has ended, however it ended (best effort: a resume creates it again),
 * and its frozen rows once it has succeeded.
 */
export async function dropOnlyNewView(c: pg.ClientBase, ledger: Ledger, p: OnlyNewParams, log: Logger, succeededRunId?: string): Promise<void> {
  await c.query(`DROP VIEW IF EXISTS ${quoteQualified(viewName(ledger, p))}`).catch((err: unknown) => log.warn({ err: (err as Error).message }, `could not drop the view ${viewName(ledger, p)}`));
  if (succeededRunId !== undefined) await dropFrozenRows(c, ledger, succeededRunId).catch((err: unknown) => log.warn({ err: (err as Error).message }, `could not drop the table ${frozenName(ledger, succeededRunId)}`));
}

/** Drops a run's frozen rows (and a view left on them): the run succeeded, or its scores are dropped. */
export async function dropFrozenRows(c: pg.ClientBase, ledger: Ledger, runId: string): Promise<void> {
  await c.query(`DROP TABLE IF EXISTS ${quoteQualified(frozenName(ledger, runId))} CASCADE`);
}

/** Whether source row `s` is rescored: no score in the base run (read through its layer), or (with an updated column) changed since it started. */
async function rescoredCondition(c: pg.ClientBase, ledger: Ledger, p: OnlyNewParams, key: string): Promise<string> {
  const data = `${quoteIdent(ledger.schema)}.score_data`;
  const k = `s.${quoteIdent(key)}`;
  const base = BigInt(p.baseRunId).toString();
  const layer = await new IncrementalLedger(ledger).layerOf(c, p.baseRunId);
  // Two anti-joins (never an OR of them, which the planner runs row by row): not among the base run's own rows, nor among those it carries.
  let notInBase = `NOT EXISTS (SELECT 1 FROM ${data} b WHERE b.run_id = ${base} AND b.customer_id = ${k})`;
  if (layer) {
    notInBase +=
      ` AND NOT EXISTS (SELECT 1 FROM ${data} u WHERE u.run_id = ${BigInt(layer.underRunId).toString()} AND u.customer_id = ${k}` +
      ` AND NOT EXISTS (SELECT 1 FROM ${quoteIdent(ledger.schema)}.score_layer_hidden h WHERE h.run_id = ${base} AND h.customer_id = u.customer_id))`;
  }
  if (p.updatedColumn === null) return notInBase;
  return `(${notInBase}) OR s.${quoteIdent(p.updatedColumn)} > ${c.escapeLiteral(p.since)}::timestamptz`;
}

/**
 * Freezes what the run rescores and carries, in one snapshot of its own (one transaction, all or nothing,
 * skipped when a resume finds it done), before the run plans:
 * - the source rows of the customers to rescore are copied (read once through the run's view) into the
 *   run's frozen table, which the view then reads: the run's chunks score exactly these rows;
 * - the run's score table is created; when the base run is itself a layer, its own rows (few: what it
 *   rescored) of the customers carried are copied into it, each keeping the run that computed it
 *   (scored_run_id);
 * - the customers of the run below that are not carried (no longer in the source, changed since the base
 *   run started, hidden by the base run) go into score_layer_hidden, and score_layers records the layer
 *   and the number of scores carried: exactly the complement of the frozen rows, and no deleted customer.
 * On a connection of its own (the ledger connection's heartbeat must not land in the snapshot's
 * transaction). Returns the number of carried scores.
 */
export async function freezeOnlyNew(pool: pg.Pool, ledger: Ledger, runId: string, p: OnlyNewParams, key: string, fence: (c: pg.ClientBase) => Promise<void>, log: Logger): Promise<number> {
  const t0 = performance.now();
  const incremental = new IncrementalLedger(ledger);
  const schema = quoteIdent(ledger.schema);
  const frozen = quoteQualified(frozenName(ledger, runId));
  const k = quoteIdent(key);
  const unchanged = (alias: string) =>
    `EXISTS (SELECT 1 FROM ${quoteQualified(p.sourceTable)} s WHERE s.${k} = ${alias}.customer_id` +
    (p.updatedColumn === null ? '' : ` AND (s.${quoteIdent(p.updatedColumn)} IS NULL OR s.${quoteIdent(p.updatedColumn)} <= $2::timestamptz)`) +
    ')';
  const c = await connectAs(pool, 'carry');
  // A connection an error left mid-transaction is destroyed, not returned to the pool.
  let clean = false;
  try {
    const done = await incremental.layerOf(c, runId);
    if (done) {
      clean = true;
      return done.rowsCarried;
    }
    if ((await ledger.runTableState(c, runId)).exists) {
      // Planned by a scorejob before schema version 13, which copied every carried score in its snapshot.
      throw new UsageError(`run ${runId} was started by an earlier version of scorejob and cannot be resumed by this one; start a new run with \`scorejob run --only-new\``);
    }
    const baseLayer = await incremental.layerOf(c, p.baseRunId);
    const under = baseLayer?.underRunId ?? p.baseRunId;
    const values = (...v: string[]) => (p.updatedColumn === null ? v : [...v, p.since]);
    let carried = 0;
    let rescored = 0;
    await withTransaction(c, async () => {
      await c.query('SET TRANSACTION ISOLATION LEVEL REPEATABLE READ');
      const rows = await c.query(`CREATE TABLE ${frozen} AS SELECT * FROM ${quoteQualified(viewName(ledger, p))}`);
      rescored = rows.rowCount ?? 0;
      await c.query(`CREATE INDEX ON ${frozen} (${k})`);
      await ledger.createRunTable(c, runId);
      let fromBase = 0;
      if (baseLayer) {
        const r = await c.query(
          `INSERT INTO ${ledger.runTable(runId)} (customer_id, score, scored_run_id)
           SELECT b.customer_id, b.score, COALESCE(b.scored_run_id, b.run_id) FROM ${schema}.score_data b WHERE b.run_id = $1 AND ${unchanged('b')}`,
          values(p.baseRunId),
        );
        fromBase = r.rowCount ?? 0;
      }
      // A semi-join on the source: a source that repeats a key hides nobody twice.
      const hidden = await c.query(
        `INSERT INTO ${schema}.score_layer_hidden (run_id, customer_id)
         SELECT ${BigInt(runId).toString()}, u.customer_id FROM ${schema}.score_data u
          WHERE u.run_id = $1 AND (NOT ${unchanged('u')}${baseLayer ? ` OR EXISTS (SELECT 1 FROM ${schema}.score_layer_hidden h WHERE h.run_id = ${BigInt(p.baseRunId).toString()} AND h.customer_id = u.customer_id)` : ''})`,
        values(under),
      );
      const below = await c.query<{ n: string }>(`SELECT count(*)::text AS n FROM ${schema}.score_data WHERE run_id = $1`, [under]);
      carried = fromBase + Number(below.rows[0]?.n ?? 0) - (hidden.rowCount ?? 0);
      await c.query(`INSERT INTO ${schema}.score_layers (run_id, under_run_id, rows_carried) VALUES ($1, $2, $3)`, [runId, under, carried]);
    });
    await c.query(`ANALYZE ${frozen}`);
    await c.query(`CREATE OR REPLACE VIEW ${quoteQualified(viewName(ledger, p))} AS SELECT * FROM ${frozen}`);
    await withTransaction(c, async () => {
      await incremental.recordCarried(c, runId, carried);
      await fence(c);
    });
    log.info(
      { rows_carried: carried, rows_to_score: rescored, base_run_id: p.baseRunId, under_run_id: under, ms: Math.round(performance.now() - t0) },
      `carried ${carried} scores forward from run ${p.baseRunId}; ${rescored} customers to score`,
    );
    clean = true;
    return carried;
  } finally {
    c.release(!clean);
  }
}
