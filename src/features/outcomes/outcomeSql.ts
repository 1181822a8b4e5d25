import { quoteIdent, quoteLiteral, quoteQualified } from '../../db/sql.js';
import type { ManifestOutcomes } from '../../model/outcomesManifest.js';

/**
 * The SQL of `scorejob outcomes sync`, one run at a time. Parameters: $1 run_id, $2 as_of, $3 horizon.
 * The run's window is (published_at, least(published_at + horizon, as_of)]: an outcome counts for a run
 * when it happened after the run's scores were published, within the horizon, and by as_of.
 */

/** The manifest's outcomes as rows (customer_id bigint, event_at timestamptz, label boolean); names quoted here. */
export function outcomeRowsSql(o: ManifestOutcomes): string {
  const from = o.table !== undefined ? quoteQualified(o.table) : `(${o.query ?? ''}) q`;
  return `SELECT ${quoteIdent(o.key)}::bigint AS customer_id, ${quoteIdent(o.eventTime)}::timestamptz AS event_at, ${quoteIdent(o.label)}::boolean AS label FROM ${from}`;
}

/**
 * A run's scores: its history once published; a run scored beside a published run in the same pass
 * (champion_run_id) and never published itself is read from its own table, so both models are judged on
 * the same customers and the same outcomes. `run`: the run id as SQL (a parameter or a literal).
 */
function runScoresSql(s: string, run: string): string {
  return `(SELECT customer_id, score FROM ${s}.customer_score_history WHERE run_id = ${run}
           UNION ALL
           SELECT d.customer_id, d.score
             FROM ${s}.score_data d JOIN ${s}.score_runs r ON r.run_id = d.run_id
            WHERE d.run_id = ${run} AND r.published_at IS NULL AND r.champion_run_id IS NOT NULL)`;
}

function windowSql(schema: string): string {
  const s = quoteIdent(schema);
  return `SELECT p.at AS opened, least(p.at + $3::interval, $2::timestamptz) AS closed,
                  $2::timestamptz >= p.at + $3::interval AS mature,
                  least(1, greatest(0, extract(epoch FROM $2::timestamptz - p.at)
                                       / extract(epoch FROM (p.at + $3::interval) - p.at)))::float8 AS maturity
             FROM ${s}.score_runs r
             LEFT JOIN ${s}.score_runs beside ON beside.run_id = r.champion_run_id,
             LATERAL (SELECT COALESCE(r.published_at, beside.published_at) AS at) p
            WHERE r.run_id = $1`;
}

/**
 * What a run's figures are computed from, cheaply (one pass over the outcomes, none over the scores): the
 * count and a checksum of the outcome rows in its window, and whether it is mature. Each row's hash chains
 * its key, time and label through the integer and float hash functions: about 3× faster than hashing the
 * row as text (formatting a timestamptz is the slow part), and the same in every session time zone
 * (`date_part('epoch', …)` of a timestamptz does not depend on it). Equal to the stored
 * signature: nothing new matured for the run, and its figures stand.
 */
export function signatureSql(schema: string, rows: string): string {
  return `WITH run AS (${windowSql(schema)})
    SELECT run.maturity, run.mature, ${utcText('run.opened')} AS opened, ${utcText('run.closed')} AS closed,
           (SELECT count(*) || ':' || COALESCE(sum(hashint8extended(src.customer_id, hashfloat8extended(date_part('epoch', src.event_at), src.label::int))), 0)
              FROM (${rows}) src WHERE src.event_at > run.opened AND src.event_at <= run.closed) || ':' || run.mature AS signature
      FROM run`;
}

/** A timestamptz as ISO 8601 text in UTC to the microsecond: read back exactly whatever the session's DateStyle and TimeZone. */
function utcText(expr: string): string {
  return `to_char(${expr} AT TIME ZONE 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS.US"Z"')`;
}

// The figures' two statements. The server only reads: the run's scores and the window's outcome rows, each
// by one sequential scan, streamed by binary COPY; the job joins them by customer (customerJoin.ts), sorts
// and sums (stats/outcomeFigures.ts). Joining (a hash of every outcome row), grouping by customer and
// computing the bands there cost the server more than the reads themselves.
// COPY takes no bind parameters: the run id is written from a bigint and the window's bounds are text the
// database gave (signatureSql); identifiers went through quoteIdent where they entered.

/** Each scored customer of the run (its history, carried rows of a layered run included): `customer_id int8, score float4`. */
export function runScoresCopySql(schema: string, runId: string): string {
  const run = `'${BigInt(runId).toString()}'::int8`;
  return `COPY (SELECT h.customer_id::int8, h.score::float4 FROM ${runScoresSql(quoteIdent(schema), run)} h) TO STDOUT (FORMAT binary)`;
}

/** The outcome rows in the run's window: `customer_id int8, label boolean`, several for a customer perhaps. */
export function windowOutcomesCopySql(rows: string, w: { opened: string; closed: string }): string {
  return `COPY (SELECT src.customer_id, src.label FROM (${rows}) src
                 WHERE src.customer_id IS NOT NULL AND src.event_at > ${quoteLiteral(w.opened)}::timestamptz AND src.event_at <= ${quoteLiteral(w.closed)}::timestamptz
  ) TO STDOUT (FORMAT binary)`;
}
