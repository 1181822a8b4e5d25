import { keySqlType, type KeyType } from '../../keyColumn.js';
import type pg from 'pg';
import type { SourceRef } from '../../db/copyReader.js';
import { connectAs } from '../../db/pool.js';
import { quoteIdent, quoteQualified, withTransaction } from '../../db/sql.js';
import { SqlState, sqlStateOf } from '../../db/sqlstate.js';
import { UsageError } from '../../errors.js';
import type { Ledger, OnlyNewParams } from '../../ledger/ledger.js';
import type { Logger } from '../../log.js';
import type { LoadedModel } from '../../model/load.js';
import type { RunScope } from '../feature.js';

/**
 * `scorejob run --only-new` (docs/analysts.md "Only the new customers between monthly runs"). The customers to rescore are
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
  const base = await ledger.onlyNew.publishedRun(c, name);
  if (!base) throw new UsageError(`--only-new needs a published run of model ${name} to carry forward; run a full \`scorejob run\` first`);
  if (base.modelSha256 !== model.sha256) {
    throw new UsageError(
      `--only-new would mix two models: the published run ${base.runId} was scored by ${name} ${base.modelVersion} with other model files (sha256 ${base.modelSha256.slice(0, 12)}…, now ${model.sha256.slice(0, 12)}… ${version}); run a full \`scorejob run\``,
    );
  }
  const onlyNew: OnlyNewParams = {
    baseRunId: base.runId,
    since: base.startedAt.toISOString(),
    sourceTable: model.manifest.source.table,
    updatedColumn: model.manifest.source.updatedColumn ?? null,
  };
  const source = await createOnlyNewView(c, ledger, { p: onlyNew, key: model.manifest.source.key, modelDir: model.dir });
  return { source, onlyNew };
}

function viewName(ledger: Ledger, p: OnlyNewParams): string {
  return `${ledger.schema}.only_new_source_${BigInt(p.baseRunId).toString()}`;
}

/** Which view of the source: the run's (after its freeze, `runId`: on its frozen rows) for its base run. */
export interface OnlyNewView {
  p: OnlyNewParams;
  /** The source's key column. */
  key: string;
  /** Named in the refusal of a bad `source.updated_column`. */
  modelDir: string;
  runId?: string | undefined;
}

/**
 * Creates (or replaces) the run's view of its source: the source itself until the run has frozen what it
 * rescores, the frozen rows after (at each resume too). It lives only while the run does
 * ({@link dropOnlyNewView}): a view on the source would stop its owner from dropping or retyping the
 * source's columns.
 */
export async function createOnlyNewView(c: pg.ClientBase, ledger: Ledger, of: OnlyNewView): Promise<SourceRef> {
  const { p, key, modelDir, runId } = of;
  const view = viewName(ledger, p);
  if (runId !== undefined && (await ledger.storage.exists(c, ledger.storage.frozenRows(runId)))) {
    await c.query(`CREATE OR REPLACE VIEW ${quoteQualified(view)} AS SELECT * FROM ${quoteQualified(ledger.storage.frozenRows(runId))}`);
    return { table: view, key };
  }
  if (p.updatedColumn !== null) {
    await c.query(`SELECT s.${quoteIdent(p.updatedColumn)} FROM ${quoteQualified(p.sourceTable)} s LIMIT 0`).catch((err: unknown) => {
      if (sqlStateOf(err) === SqlState.undefinedColumn)
        throw new UsageError(`source.updated_column "${p.updatedColumn}" of ${modelDir}/manifest.json is not a column of ${p.sourceTable}`, { cause: err });
      throw err;
    });
  }
  await c.query(`CREATE OR REPLACE VIEW ${quoteQualified(view)} AS SELECT s.* FROM ${quoteQualified(p.sourceTable)} s`);
  return { table: view, key };
}

/**
 * Drops the run's view once the run has ended, however it ended (best effort: a resume creates it again).
 * Its frozen rows go when its last chunk is done (executeRun), or with its scores (retention).
 */
export async function dropOnlyNewView(c: pg.ClientBase, ledger: Ledger, p: OnlyNewParams, log: Logger): Promise<void> {
  await c
    .query(`DROP VIEW IF EXISTS ${quoteQualified(viewName(ledger, p))}`)
    .catch((err: unknown) => log.warn({ err: (err as Error).message }, `could not drop the view ${viewName(ledger, p)}`));
}

/**
 * Freezes what the run rescores and carries, in one snapshot of its own (one transaction, all or nothing,
 * skipped when a resume finds it done), before the run plans. The customers to rescore: those the base
 * run has no score for (new, or rejected by it), and with an updated column those changed since it
 * started. One pass compares the source's keys with the table of the full run below the base run (a
 * merge of two key orders where both have an index); everything else is done on the few keys it finds:
 * - the source rows of the customers to rescore are copied into the run's frozen table, which the run's
 *   view then reads: the run's chunks score exactly these rows;
 * - the run's score table is created; when the base run is itself a layer, its own rows (few: what it
 *   rescored) of the customers carried are copied into it, each keeping the run that computed it
 *   (scored_run_id);
 * - the customers of the run below that are not carried (no longer in the source, rescored, or hidden by
 *   the base run) go into score_layer_hidden, and score_layers records the layer and the number of scores
 *   carried: exactly the complement of the frozen rows among the source's customers.
 * On a connection of its own (the ledger connection's heartbeat must not land in the snapshot's
 * transaction). Returns the number of carried scores.
 */
export async function freezeOnlyNew(s: RunScope, p: OnlyNewParams): Promise<number> {
  const { pool, ledger, runId, log } = s;
  const t0 = performance.now();
  const incremental = ledger.onlyNew;
  const c = await connectAs(pool, 'carry');
  // A connection an error left mid-transaction is destroyed, not returned to the pool.
  let clean = false;
  try {
    const done = await incremental.layerOf(c, runId);
    if (done) {
      clean = true;
      return done.rowsCarried;
    }
    if ((await ledger.storage.state(c, runId)).exists) {
      // Planned by a scorejob before schema version 13, which copied every carried score in its snapshot.
      throw new UsageError(
        `run ${runId} was started by an earlier version of scorejob and cannot be resumed by this one; start a new run with \`scorejob run --only-new\``,
      );
    }
    const baseLayer = await incremental.layerOf(c, p.baseRunId);
    const n = freezeNames(ledger, {
      runId,
      p,
      key: s.params.source.key,
      keyType: s.params.source.keyType ?? 'int8',
      under: BigInt(baseLayer?.underRunId ?? p.baseRunId).toString(),
      baseIsLayer: baseLayer !== undefined,
    });
    const { carried, rescored } = await withTransaction(c, () => freezeInSnapshot(c, ledger, p, n));
    await c.query(`ANALYZE ${n.frozen}`);
    await c.query(`CREATE OR REPLACE VIEW ${n.view} AS SELECT * FROM ${n.frozen}`);
    await withTransaction(c, async () => {
      await incremental.recordCarried(c, runId, carried);
      await s.fence(c);
    });
    log.info(
      { rows_carried: carried, rows_to_score: rescored, base_run_id: p.baseRunId, under_run_id: n.under, ms: Math.round(performance.now() - t0) },
      `carried ${carried} scores forward from run ${p.baseRunId}; ${rescored} customers to score`,
    );
    clean = true;
    return carried;
  } finally {
    c.release(!clean);
  }
}

/** The quoted names and run numbers the freezing SQL is made of. */
interface FreezeNames {
  schema: string;
  frozen: string;
  view: string;
  source: string;
  /** The source's key column. */
  k: string;
  /** The key's SQL type (src/keyColumn.ts): the type of the keys compared with customer_id. */
  keySql: string;
  id: string;
  base: string;
  /** The full run below the base run (the base run itself when it is not a layer). */
  under: string;
  /** Whether the base run is itself a layer. */
  baseIsLayer: boolean;
}

function freezeNames(ledger: Ledger, of: { runId: string; p: OnlyNewParams; key: string; keyType: KeyType; under: string; baseIsLayer: boolean }): FreezeNames {
  const { runId, p, key, under, baseIsLayer } = of;
  return {
    schema: quoteIdent(ledger.schema),
    frozen: quoteQualified(ledger.storage.frozenRows(runId)),
    view: quoteQualified(viewName(ledger, p)),
    source: quoteQualified(p.sourceTable),
    k: quoteIdent(key),
    keySql: keySqlType[of.keyType],
    id: BigInt(runId).toString(),
    base: BigInt(p.baseRunId).toString(),
    under,
    baseIsLayer,
  };
}

/** The freeze's one transaction, in one snapshot: the frozen rows, the run's table, its layer. */
async function freezeInSnapshot(c: pg.ClientBase, ledger: Ledger, p: OnlyNewParams, n: FreezeNames): Promise<{ carried: number; rescored: number }> {
  const { schema, frozen, view, k, id, under } = n;
  const runId = id;
  await c.query('SET TRANSACTION ISOLATION LEVEL REPEATABLE READ');
  // The source's keys against the run below: each row has one side only (new to it, or gone from the source).
  await c.query(
    `CREATE TEMP TABLE only_new_diff ON COMMIT DROP AS
     SELECT s.${k}::${n.keySql} AS source_key, u.customer_id AS under_key
       FROM (SELECT customer_id FROM ${schema}.score_data WHERE run_id = ${under} ORDER BY customer_id) u
       FULL JOIN ${n.source} s ON u.customer_id = s.${k}
      WHERE (s.${k} IS NULL) <> (u.customer_id IS NULL)`,
  );
  await c.query('ANALYZE only_new_diff');
  const newKeys = await createKeysToRescore(c, p, n);
  const rows = await c.query(`CREATE TABLE ${frozen} AS SELECT * FROM ${view} v WHERE v.${k} IN (SELECT source_key FROM only_new_keys)`);
  await c.query(`CREATE INDEX ON ${frozen} (${k})`);
  await ledger.storage.createScoreTable(c, runId);
  const fromBase = n.baseIsLayer ? await copyBaseLayerScores(c, ledger, runId, n) : 0;
  // Gone from the source, or rescored and below (not new to it), or hidden by the base run.
  const hidden = await c.query(
    `INSERT INTO ${schema}.score_layer_hidden (run_id, customer_id)
     SELECT ${id}, under_key FROM only_new_diff WHERE source_key IS NULL
      UNION SELECT ${id}, source_key FROM (SELECT source_key FROM only_new_keys EXCEPT ${newKeys}) r` +
      (n.baseIsLayer ? ` UNION SELECT ${id}, customer_id FROM ${schema}.score_layer_hidden WHERE run_id = ${n.base}` : ''),
  );
  const below = await c.query<{ n: string }>(`SELECT count(*)::text AS n FROM ${schema}.score_data WHERE run_id = ${under}`);
  const carried = fromBase + Number(below.rows[0]?.n ?? 0) - (hidden.rowCount ?? 0);
  await c.query(`INSERT INTO ${schema}.score_layers (run_id, under_run_id, rows_carried) VALUES ($1, $2, $3)`, [runId, under, carried]);
  return { carried, rescored: rows.rowCount ?? 0 };
}

/**
 * Creates only_new_keys, the keys to rescore: new to the run below, or hidden by the base run (still in
 * the source), unless the base run scored them itself; and those changed since the base run started.
 * Returns the query of the keys new to the run below.
 */
async function createKeysToRescore(c: pg.ClientBase, p: OnlyNewParams, n: FreezeNames): Promise<string> {
  const { schema, source, k, base } = n;
  const newKeys = `SELECT source_key FROM only_new_diff WHERE under_key IS NULL`;
  let keys = newKeys;
  if (n.baseIsLayer) {
    keys =
      `(${newKeys} UNION SELECT h.customer_id FROM ${schema}.score_layer_hidden h WHERE h.run_id = ${base} AND EXISTS (SELECT 1 FROM ${source} s WHERE s.${k} = h.customer_id))` +
      ` EXCEPT SELECT customer_id FROM ${schema}.score_data WHERE run_id = ${base}`;
  }
  if (p.updatedColumn !== null) keys = `(${keys}) UNION SELECT s.${k}::${n.keySql} FROM ${source} s WHERE s.${quoteIdent(p.updatedColumn)} > $1::timestamptz`;
  await c.query(`CREATE TEMP TABLE only_new_keys ON COMMIT DROP AS ${keys}`, p.updatedColumn === null ? [] : [p.since]);
  await c.query('ANALYZE only_new_keys');
  return newKeys;
}

/** When the base run is a layer: its own rows (few: what it rescored) of the customers carried, each keeping the run that computed it. */
async function copyBaseLayerScores(c: pg.ClientBase, ledger: Ledger, runId: string, n: FreezeNames): Promise<number> {
  const r = await c.query(
    `INSERT INTO ${ledger.runTable(runId)} (customer_id, score, scored_run_id)
     SELECT b.customer_id, b.score, COALESCE(b.scored_run_id, b.run_id) FROM ${n.schema}.score_data b
      WHERE b.run_id = ${n.base} AND EXISTS (SELECT 1 FROM ${n.source} s WHERE s.${n.k} = b.customer_id)
        AND b.customer_id NOT IN (SELECT source_key FROM only_new_keys)`,
  );
  return r.rowCount ?? 0;
}
