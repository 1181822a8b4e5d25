import { databaseOf, type Pool } from '../db/pool.js';
import { quoteIdent, quoteQualified, withClient, withTransaction } from '../db/sql.js';
import { UsageError } from '../errors.js';
import type { Logger } from '../log.js';
import { isHorizon } from '../model/outcomesManifest.js';
import { checkExisting } from './seed.js';

/** Options of `scorejob seed --outcomes`. */
export interface SeedOutcomesOptions {
  schema: string;
  /** The model whose published run's scores the outcomes are drawn from; default: the only published model. */
  modelName?: string | undefined;
  /** Table to create, `table` or `schema.table`. Default `customer_outcomes`. */
  table?: string | undefined;
  /** Events fall uniformly within this interval after the run's publication. Default `90 days`. */
  horizon?: string | undefined;
  /** Same seed, same outcomes. Default 1. */
  seed?: number | undefined;
  replace?: boolean | undefined;
  log?: Logger | undefined;
}

export interface SeedOutcomesResult {
  table: string;
  runId: string;
  rows: number;
  positives: number;
}

/**
 * Writes one outcome per customer of the model's published run, the label drawn with the customer's own
 * score as its probability: the scores are then calibrated by construction, so a sync must find an
 * expected calibration error near 0 and a realised AUC near the estimated one (tests/db/outcomes.test.ts).
 * The draws are hashes of (seed, customer), computed in the database: no score leaves it.
 */
export async function seedOutcomes(pool: Pool, opts: SeedOutcomesOptions): Promise<SeedOutcomesResult> {
  const table = opts.table ?? 'customer_outcomes';
  const horizon = opts.horizon ?? '90 days';
  const seed = opts.seed ?? 1;
  if (!isHorizon(horizon)) throw new UsageError(`--horizon: "${horizon}" is not a whole number and a unit (days, weeks, months, years), e.g. "90 days"`);
  const s = quoteIdent(opts.schema);
  return withClient(pool, (client) =>
    withTransaction(client, async () => {
      const runs = await client.query<{ model_name: string; run_id: string }>(
        `SELECT model_name, run_id::text FROM ${s}.published_run WHERE run_id IS NOT NULL AND ($1::text IS NULL OR model_name = $1) ORDER BY model_name`,
        [opts.modelName ?? null],
      );
      const run = runs.rows[0];
      if (run === undefined || runs.rows.length > 1) {
        const which =
          runs.rows.length > 1
            ? `several models are published (${runs.rows.map((r) => r.model_name).join(', ')}): name one with --model-name`
            : `no published run${opts.modelName === undefined ? '' : ` of model "${opts.modelName}"`} in database ${databaseOf(client)}: run \`scorejob run\` first`;
        throw new UsageError(`seed --outcomes draws each customer's outcome from its published score: ${which}`);
      }
      if (await checkExisting(client, table, opts.replace === true)) await client.query(`DROP TABLE ${quoteQualified(table)}`);
      const target = quoteQualified(table);
      await client.query(`CREATE TABLE ${target} (customer_id bigint NOT NULL, event_time timestamptz NOT NULL, label boolean NOT NULL)`);
      await client.query(
        `COMMENT ON TABLE ${target} IS ${client.escapeLiteral(`scorejob seed: outcomes of run ${run.run_id} (model ${run.model_name}) within ${horizon}, seed ${seed}`)}`,
      );
      // Two independent uniforms per customer from 52 bits of a seeded hash: one for the label, one for the time.
      const uniform = (salt: string) => `((hashtextextended(h.customer_id::text || '${salt}', $2) & 4503599627370495)::float8 / 4503599627370496)`;
      const inserted = await client.query<{ rows: string; positives: string }>(
        `WITH ins AS (
           INSERT INTO ${target} (customer_id, event_time, label)
           SELECT h.customer_id, r.published_at + $3::interval * (0.001 + 0.998 * ${uniform(':t')}), ${uniform(':y')} < h.score
             FROM ${s}.customer_score_history h JOIN ${s}.score_runs r ON r.run_id = h.run_id
            WHERE h.run_id = $1
           RETURNING label)
         SELECT count(*) AS rows, count(*) FILTER (WHERE label) AS positives FROM ins`,
        [run.run_id, seed, horizon],
      );
      await client.query(`ALTER TABLE ${target} ADD PRIMARY KEY (customer_id, event_time)`);
      await client.query(`ANALYZE ${target}`);
      const rows = Number(inserted.rows[0]?.rows ?? 0);
      const positives = Number(inserted.rows[0]?.positives ?? 0);
      opts.log?.info({ table, run_id: run.run_id, rows, positives }, `seeded ${rows} outcomes (${positives} positive) of run ${run.run_id} into ${table}`);
      return { table, runId: run.run_id, rows, positives };
    }),
  );
}
