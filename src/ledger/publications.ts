import type pg from 'pg';
import { quoteIdent } from '../db/sql.js';
import { OnlyNewLedger } from './onlyNewLedger.js';
import type { RunTables } from './runTables.js';

import {
  publishedChannel,
  type PublicationKind,
  type PublishedBy,
  type PublishedEvent,
  type RetiredEvent,
  type LastPublication,
  type RollbackCandidate,
  type RunBands,
  type FewerReasons,
  type Promotion,
  type PublicationRow,
} from './publicationTypes.js';

export { publishedChannel };
export type {
  PublicationKind,
  PublishedBy,
  PublishedEvent,
  RetiredEvent,
  LastPublication,
  RollbackCandidate,
  RunBands,
  FewerReasons,
  Promotion,
  PublicationRow,
};

export class Publications {
  /** The schema, quoted once. */
  private readonly s: string;

  /** Where a layered run's carried scores are (its layer). */
  private readonly layers: OnlyNewLedger;

  constructor(private readonly ledger: RunTables) {
    this.s = quoteIdent(ledger.schema);
    this.layers = new OnlyNewLedger(ledger);
  }

  /**
   * Moves the model's pointer to the run, records the publication and sends `scorejob_published`, all
   * in the caller's transaction: the notification is delivered at COMMIT, so a listener never hears of
   * scores it cannot read yet, and a rolled-back publish says nothing.
   */
  async movePointer(c: pg.ClientBase, runId: string, kind: Exclude<PublicationKind, 'retire'>, by: PublishedBy): Promise<PublishedEvent> {
    const s = this.s;
    const { rows } = await c.query<{ model_name: string; previous_run_id: string | null }>(
      `INSERT INTO ${s}.published_run (model_name, run_id, published_at, previous_run_id)
       SELECT model_name, run_id, now(), NULL FROM ${s}.score_runs WHERE run_id = $1
       ON CONFLICT (model_name) DO UPDATE SET run_id = EXCLUDED.run_id, published_at = EXCLUDED.published_at,
              previous_run_id = CASE WHEN published_run.run_id = EXCLUDED.run_id THEN published_run.previous_run_id ELSE published_run.run_id END
       RETURNING model_name, previous_run_id::text`,
      [runId],
    );
    const moved = rows[0];
    if (!moved) throw new Error(`run ${runId} is not in ${this.ledger.schema}.score_runs`);
    const { compare, under } = await this.compareRun(c, runId, moved.model_name, moved.previous_run_id, kind);
    await c.query(`UPDATE ${s}.published_run SET compare_run_id = $2 WHERE model_name = $1`, [moved.model_name, compare]);
    const withReasons = await this.rowsWithReasons(c, moved.model_name);
    const { rows: events } = await c.query<{ event: PublishedEvent }>(
      `WITH q AS (
         INSERT INTO ${s}.score_publications (model_name, run_id, kind, from_run_id, os_user, host, pid, reason, forced, compare_run_id, rows_published, rows_with_reasons, under_run_id)
         SELECT $2, $1, $3, $4, $5, $6, $7, $8, $10, $11, r.rows_scored + r.rows_carried, $12, $13 FROM ${s}.score_runs r WHERE r.run_id = $1
         RETURNING published_at)
       SELECT json_build_object('schema', $9::text, 'model_name', r.model_name, 'model_version', r.model_version,
                'run_id', r.run_id::text, 'previous_run_id', $4::text, 'rows', r.rows_scored + r.rows_carried, 'published_at', q.published_at,
                'kind', $3::text, 'rollback', $3::text = 'rollback') AS event
         FROM ${s}.score_runs r, q WHERE r.run_id = $1`,
      [
        runId,
        moved.model_name,
        kind,
        moved.previous_run_id,
        by.osUser,
        by.host,
        by.pid,
        by.reason ?? null,
        this.ledger.schema,
        by.forced === true,
        compare,
        withReasons,
        under,
      ],
    );
    const event = (events[0] as { event: PublishedEvent }).event;
    await c.query('SELECT pg_notify($1, $2)', [publishedChannel, JSON.stringify(event)]);
    return event;
  }

  /**
   * The run customer_score_changes compares with (docs/downstream-semantics.md): what readers saw before,
   * except for an only-new layer published over what readers saw, which keeps "since last month": the run
   * readers saw before the full run it lies on was last made current from something other than that run
   * or a layer on it. Republishing the same run keeps its comparison. Whether a run lies on a full run is
   * read from the publications (under_run_id), which outlive the layers retention drops. Also returns the
   * full run this run lies on, recorded on its publication.
   */
  private async compareRun(
    c: pg.ClientBase,
    runId: string,
    model: string,
    from: string | null,
    kind: PublicationKind,
  ): Promise<{ compare: string | null; under: string | null }> {
    const s = this.s;
    // Runs before this publication's row is written: the latest publication is the one this replaces.
    const { rows } = await c.query<{ same: boolean; compare: string | null; under: string | null }>(
      `SELECT EXISTS (SELECT 1 FROM ${s}.score_publications q WHERE q.model_name = $2 AND q.run_id = $1
                                  AND q.publication_id = (SELECT max(publication_id) FROM ${s}.score_publications WHERE model_name = $2) AND q.kind <> 'retire') AS same,
              (SELECT q.compare_run_id::text FROM ${s}.score_publications q WHERE q.model_name = $2 ORDER BY q.publication_id DESC LIMIT 1) AS compare,
              (SELECT l.under_run_id::text FROM ${s}.score_layers l WHERE l.run_id = $1) AS under`,
      [runId, model],
    );
    const r = rows[0]!;
    if (r.same) return { compare: r.compare, under: r.under };
    // A rollback, or a feature's publish of a sibling run (any kind but publish, force and retire), is compared with the run it replaces.
    if (r.under === null || (kind !== 'publish' && kind !== 'force' && kind !== 'retire')) return { compare: from, under: r.under };
    const { rows: before } = await c.query<{ from_run_id: string | null }>(
      `SELECT q.from_run_id::text FROM ${s}.score_publications q
        WHERE q.model_name = $2 AND q.run_id = $1 AND q.kind <> 'retire'
          AND (q.from_run_id IS NULL OR (q.from_run_id <> $1 AND NOT EXISTS (SELECT 1 FROM ${s}.score_publications y WHERE y.run_id = q.from_run_id AND y.under_run_id = $1)))
        ORDER BY q.publication_id DESC LIMIT 1`,
      [r.under, model],
    );
    return { compare: before.length === 0 ? from : (before[0] as { from_run_id: string | null }).from_run_id, under: r.under };
  }

  /** The model's last publication left fewer customers with reasons than the one before it: how many, and which run had more. */
  async fewerReasons(c: pg.ClientBase, model: string): Promise<FewerReasons | undefined> {
    const { rows } = await c.query<{ now: string | null; before: string | null; from_run_id: string | null }>(
      `SELECT q.rows_with_reasons::text AS now, b.rows_with_reasons::text AS before, b.run_id::text AS from_run_id
         FROM ${this.s}.score_publications q
         JOIN LATERAL (SELECT rows_with_reasons, run_id FROM ${this.s}.score_publications b WHERE b.model_name = q.model_name AND b.publication_id < q.publication_id
                        ORDER BY b.publication_id DESC LIMIT 1) b ON true
        WHERE q.model_name = $1 ORDER BY q.publication_id DESC LIMIT 1`,
      [model],
    );
    const r = rows[0];
    if (!r || r.now === null || r.before === null || Number(r.now) >= Number(r.before)) return undefined;
    return { now: Number(r.now), before: Number(r.before), fromRunId: r.from_run_id as string };
  }

  /**
   * Customers with reasons in customer_score_reasons for the model now (its pointer already moved): counted
   * on score_reasons as the view reads it (the run's own, those copied from an earlier layer, those carried
   * from the full run below), without unnesting every reason. Each count names its run as a parameter: planned
   * with the value, the partitions are pruned before they are locked, so a partition another process holds
   * (a frozen run's table under ACCESS EXCLUSIVE) never makes the publish wait.
   */
  async rowsWithReasons(c: pg.ClientBase, model: string): Promise<number> {
    const s = this.s;
    const { rows } = await c.query<{ run_id: string; under: string | null }>(
      `SELECT p.run_id::text AS run_id, l.under_run_id::text AS under
         FROM ${s}.published_run p LEFT JOIN ${s}.score_layers l ON l.run_id = p.run_id WHERE p.model_name = $1`,
      [model],
    );
    const run = rows[0];
    if (!run) return 0;
    const count = async (sql: string, params: string[]): Promise<number> => Number((await c.query<{ n: string }>(sql, params)).rows[0]?.n ?? 0);
    let n = await count(`SELECT count(*)::text AS n FROM ${s}.score_reasons r WHERE r.run_id = $1`, [run.run_id]);
    const { rows: sources } = await c.query<{ id: string }>(
      `SELECT DISTINCT d.scored_run_id::text AS id FROM ${s}.score_data d WHERE d.run_id = $1 AND d.scored_run_id IS NOT NULL`,
      [run.run_id],
    );
    for (const { id } of sources) {
      n += await count(
        `SELECT count(*)::text AS n FROM ${s}.score_data d JOIN ${s}.score_reasons r ON r.run_id = $2 AND r.customer_id = d.customer_id
          WHERE d.run_id = $1 AND d.scored_run_id = $2`,
        [run.run_id, id],
      );
    }
    if (run.under !== null) {
      n += await count(
        `SELECT count(*)::text AS n FROM ${s}.score_reasons r
          WHERE r.run_id = $1 AND NOT EXISTS (SELECT 1 FROM ${s}.score_layer_hidden h WHERE h.run_id = $2 AND h.customer_id = r.customer_id)`,
        [run.under, run.run_id],
      );
    }
    return n;
  }

  /**
   * Takes the model out of customer_scores: deletes its pointer row (every reader view finds the model's
   * run through it, sql/015_retire.sql), records a publication of kind 'retire' on the run taken out and
   * sends `scorejob_published`, all in the caller's transaction (the notification is delivered at COMMIT).
   * Undefined when the model has no pointer (already retired, or never published).
   */
  async retire(c: pg.ClientBase, modelName: string, by: PublishedBy): Promise<RetiredEvent | undefined> {
    const s = this.s;
    const { rows } = await c.query<{ event: RetiredEvent }>(
      `WITH p AS (DELETE FROM ${s}.published_run WHERE model_name = $1 RETURNING model_name, run_id),
            q AS (INSERT INTO ${s}.score_publications (model_name, run_id, kind, from_run_id, os_user, host, pid, reason, rows_published, rows_with_reasons)
                  SELECT model_name, run_id, 'retire', run_id, $2, $3, $4, $5, 0, 0 FROM p RETURNING run_id, published_at)
       SELECT json_build_object('schema', $6::text, 'model_name', r.model_name, 'model_version', r.model_version,
                'run_id', NULL, 'previous_run_id', r.run_id::text, 'rows', 0, 'published_at', q.published_at,
                'kind', 'retire', 'rollback', false) AS event
         FROM q JOIN ${s}.score_runs r ON r.run_id = q.run_id`,
      [modelName, by.osUser, by.host, by.pid, by.reason ?? null, this.ledger.schema],
    );
    const event = rows[0]?.event;
    if (event) await c.query('SELECT pg_notify($1, $2)', [publishedChannel, JSON.stringify(event)]);
    return event;
  }

  /** The model's latest publication, if it ever had one: a retire says it is retired. */
  async lastPublication(c: pg.ClientBase, modelName: string): Promise<LastPublication | undefined> {
    const { rows } = await c.query<LastPublication>(
      `SELECT run_id::text, kind, published_at, COALESCE(os_user, db_user) AS by FROM ${this.s}.score_publications
        WHERE model_name = $1 ORDER BY publication_id DESC LIMIT 1`,
      [modelName],
    );
    return rows[0];
  }

  /** The rows customer_scores shows for the model now (one scan of its published partition). */
  async publishedRows(c: pg.ClientBase, modelName: string): Promise<number> {
    const { rows } = await c.query<{ n: string }>(`SELECT count(*)::text AS n FROM ${this.s}.customer_scores WHERE model_name = $1`, [modelName]);
    return Number(rows[0]?.n ?? 0);
  }

  /** The run a model's customer_scores shows now, if any. */
  async currentRun(c: pg.ClientBase, modelName: string): Promise<string | undefined> {
    const { rows } = await c.query<{ run_id: string }>(`SELECT run_id::text FROM ${this.s}.published_run WHERE model_name = $1`, [modelName]);
    return rows[0]?.run_id;
  }

  /**
   * The sibling run customer_scores shows now for the model, if its pointer names a run made as part of
   * another (put there by hand by a feature's publish, or a rollback to such a run); undefined otherwise.
   * The manifest name is read from the stored params of the run it is part of, under the sibling's kind (a feature
   * stores its sibling's parameters under the kind it gives the sibling run, src/ledger/types.ts RunParams).
   */
  async currentPromotion(c: pg.ClientBase, modelName: string): Promise<Promotion | undefined> {
    const { rows } = await c.query<Promotion>(
      `SELECT r.run_id::text, r.champion_run_id::text, r.kind, COALESCE(ch.params->(r.kind)->>'name', r.model_name) AS manifest_name,
              r.model_version, r.model_sha256, r.params->>'modelDir' AS model_dir, q.published_at, COALESCE(q.os_user, q.db_user) AS by
         FROM ${this.s}.published_run p
         JOIN ${this.s}.score_runs r ON r.run_id = p.run_id
         LEFT JOIN ${this.s}.score_runs ch ON ch.run_id = r.champion_run_id
         JOIN LATERAL (SELECT published_at, os_user, db_user FROM ${this.s}.score_publications l
                        WHERE l.model_name = p.model_name ORDER BY l.publication_id DESC LIMIT 1) q ON true
        WHERE p.model_name = $1 AND r.champion_run_id IS NOT NULL`,
      [modelName],
    );
    return rows[0];
  }

  /** The run of every model that customer_scores shows now. */
  async currentRuns(c: pg.ClientBase): Promise<string[]> {
    const { rows } = await c.query<{ run_id: string }>(`SELECT run_id::text FROM ${this.s}.published_run`);
    return rows.map((r) => r.run_id);
  }

  /** The models with a published run. */
  async publishedModels(c: pg.ClientBase): Promise<string[]> {
    const { rows } = await c.query<{ model_name: string }>(`SELECT model_name FROM ${this.s}.published_run ORDER BY model_name`);
    return rows.map((r) => r.model_name);
  }

  /** `rollback` with no run: the newest published run of the model older than the current one whose scores are kept. */
  async previousKeptRun(c: pg.ClientBase, modelName: string, currentRunId: string): Promise<string | undefined> {
    const { rows } = await c.query<{ run_id: string }>(
      `SELECT r.run_id::text FROM ${this.s}.score_runs r
        WHERE r.model_name = $1 AND r.run_id < $2 AND r.published_at IS NOT NULL AND r.status = 'succeeded' AND NOT r.dry_run
          AND EXISTS (SELECT 1 FROM pg_inherits i WHERE i.inhparent = to_regclass($3) AND i.inhrelid = to_regclass($4 || r.run_id))
        ORDER BY r.run_id DESC LIMIT 1`,
      [modelName, currentRunId, `${this.s}.score_data`, `${this.s}.score_data_`],
    );
    return rows[0]?.run_id;
  }

  async candidate(c: pg.ClientBase, runId: string): Promise<RollbackCandidate | undefined> {
    const { rows } = await c.query<RollbackCandidate>(
      `SELECT r.run_id::text, r.model_name, r.model_version, r.status, r.dry_run, r.published_at, r.rows_scored::text,
              EXISTS (SELECT 1 FROM pg_inherits i WHERE i.inhparent = to_regclass($2) AND i.inhrelid = to_regclass($3)) AS kept
         FROM ${this.s}.score_runs r WHERE r.run_id = $1`,
      [runId, `${this.s}.score_data`, this.ledger.runTable(runId)],
    );
    return rows[0];
  }

  /**
   * The run's 99 percentile cut points, in one pass (a sort) over the run's own table, and the manifest's
   * bands, stored on the run before its gates so that a run published later by force has them too.
   */
  async recordRanks(c: pg.ClientBase, runId: string, bands: RunBands | undefined, cuts?: readonly number[]): Promise<void> {
    // With `cuts` (computed from the chunks' scores, src/stats/scoreCuts.ts: the same figures) the sort is skipped.
    const sorted = cuts
      ? 'NULL'
      : `(SELECT percentile_cont((SELECT array_agg(i / 100.0) FROM generate_series(1, 99) i)) WITHIN GROUP (ORDER BY score) FROM ${await this.scores(c, runId)})`;
    await c.query(
      `UPDATE ${this.s}.score_runs SET band_bounds = $2, band_names = $3, score_cuts = COALESCE($4::float8[], ${sorted})
        WHERE run_id = $1`,
      [runId, bands?.bounds ?? null, bands?.names ?? null, cuts ?? null],
    );
  }

  /** The run's scores as a subquery, through its layer if it is one (RunTables.runScores). */
  private async scores(c: pg.ClientBase, runId: string): Promise<string> {
    return this.ledger.runScores(runId, (await this.layers.layerOf(c, runId))?.underRunId);
  }

  /** Cut points for a run that has none (scored before schema version 7): `publish --force` of an old gated run. */
  async ensureCuts(c: pg.ClientBase, runId: string): Promise<void> {
    await c.query(
      `UPDATE ${this.s}.score_runs SET
              score_cuts = (SELECT percentile_cont((SELECT array_agg(i / 100.0) FROM generate_series(1, 99) i)) WITHIN GROUP (ORDER BY score)
                              FROM ${await this.scores(c, runId)})
        WHERE run_id = $1 AND score_cuts IS NULL`,
      [runId],
    );
  }

  /** The publications of these runs (`scorejob runs`), oldest first. */
  async forRuns(c: pg.ClientBase, runIds: readonly string[]): Promise<PublicationRow[]> {
    if (runIds.length === 0) return [];
    const { rows } = await c.query<PublicationRow>(
      `SELECT run_id::text, kind, from_run_id::text, published_at, COALESCE(os_user, db_user) AS by, reason, forced
         FROM ${this.s}.score_publications WHERE run_id = ANY($1::bigint[]) ORDER BY publication_id`,
      [runIds],
    );
    return rows;
  }
}
