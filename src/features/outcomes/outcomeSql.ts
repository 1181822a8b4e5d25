import { quoteIdent, quoteQualified } from '../../db/sql.js';
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
 * A run's scores with their bands: its history once published; a run scored beside a published run in the
 * same pass (champion_run_id) and never published itself is read from its own table, so both models are
 * judged on the same customers and the same outcomes.
 */
function runScoresSql(s: string): string {
  return `(SELECT customer_id, score, band FROM ${s}.customer_score_history WHERE run_id = $1
           UNION ALL
           SELECT d.customer_id, d.score, r.band_names[width_bucket(d.score::float8, r.band_bounds) + 1]
             FROM ${s}.score_data d JOIN ${s}.score_runs r ON r.run_id = d.run_id
            WHERE d.run_id = $1 AND r.published_at IS NULL AND r.champion_run_id IS NOT NULL)`;
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
    SELECT run.maturity, run.mature,
           (SELECT count(*) || ':' || COALESCE(sum(hashint8extended(src.customer_id, hashfloat8extended(date_part('epoch', src.event_at), src.label::int))), 0)
              FROM (${rows}) src WHERE src.event_at > run.opened AND src.event_at <= run.closed) || ':' || run.mature AS signature
      FROM run`;
}

/**
 * Every figure of one run, per band and for the whole run (band NULL), in one statement: the run's scores
 * (its history, carried rows of a layered run included) are joined to its matured outcomes and grouped by
 * score, so the server holds one row per distinct score, sorted once, and the client gets a row per band.
 * $4: a customer without an outcome in a mature run is a negative (manifest outcomes.absent).
 *
 * Over the scores in increasing order: m_before is the customers with an outcome scored lower, so a group's
 * mean rank is m_before + (m + 1) / 2 (ties share it) and AUC = (R+ - P(P+1)/2) / (P N); KS is the largest
 * gap of the cumulative positive and negative shares; q_before is the expected negatives scored lower, for
 * the expected AUC (stats/classification.ts expectedAuc, the same sums). Bands are score intervals, so a
 * band's running sums are the run's minus those of the bands below it: one sort serves every segment
 * (bands_overlap says if that ever stopped being true, and the sync refuses the figures).
 */
export function figuresSql(schema: string, rows: string): string {
  const s = quoteIdent(schema);
  const clamp = 'least(greatest(p, 1e-15), 1 - 1e-15)';
  return `WITH run AS (${windowSql(schema)}),
  o AS (
    SELECT src.customer_id, bool_or(src.label) AS label
      FROM (${rows}) src, run
     WHERE src.event_at > run.opened AND src.event_at <= run.closed
     GROUP BY src.customer_id),
  j AS (
    SELECT h.band, h.score::float8 AS p,
           CASE WHEN o.label IS NOT NULL THEN o.label::int WHEN $4::boolean AND (SELECT mature FROM run) THEN 0 END AS y
      FROM ${runScoresSql(s)} h LEFT JOIN o ON o.customer_id = h.customer_id),
  g AS (
    SELECT p, min(band) AS band, count(*)::float8 AS n, count(y)::float8 AS m, COALESCE(sum(y), 0)::float8 AS pos
      FROM j GROUP BY p),
  w AS MATERIALIZED (
    SELECT g.*, sum(m) OVER upto - m AS m_before, sum(pos) OVER upto AS pos_cum, sum(m - pos) OVER upto AS neg_cum,
           sum(n * (1 - p)) OVER upto - n * (1 - p) AS q_before
      FROM g WINDOW upto AS (ORDER BY p ROWS UNBOUNDED PRECEDING)),
  bands AS MATERIALIZED (
    SELECT b.*, sum(m_b) OVER lower - m_b AS m_off, sum(pos_b) OVER lower - pos_b AS pos_off,
           sum(m_b - pos_b) OVER lower - (m_b - pos_b) AS neg_off, sum(q_b) OVER lower - q_b AS q_off, lag(hi) OVER lower AS prev_hi
      FROM (SELECT band, min(p) AS lo, max(p) AS hi, sum(m) AS m_b, sum(pos) AS pos_b, sum(n * (1 - p)) AS q_b
              FROM g WHERE band IS NOT NULL GROUP BY band) b
    WINDOW lower AS (ORDER BY lo ROWS UNBOUNDED PRECEDING)),
  totals AS (SELECT sum(m) AS m_total, sum(pos) AS pos_total FROM w),
  seg AS (
    SELECT true AS whole, NULL::text AS band, w.p, w.n, w.m, w.pos, w.m_before, w.pos_cum, w.neg_cum, w.q_before, t.m_total, t.pos_total
      FROM w, totals t
    UNION ALL
    SELECT false, w.band, w.p, w.n, w.m, w.pos, w.m_before - b.m_off, w.pos_cum - b.pos_off, w.neg_cum - b.neg_off, w.q_before - b.q_off, b.m_b, b.pos_b
      FROM w JOIN bands b ON b.band = w.band),
  -- Per segment and decile first (one hash aggregate; every term is a sum or a max, so they compose), then
  -- per segment with the deciles as arrays.
  parts AS (
    SELECT whole, band, least(9, floor(m_before * 10 / NULLIF(m_total, 0)))::int AS d,
           sum(n) AS n, sum(m) AS m, sum(pos) AS pos, sum(m * p) AS mp, max(pos_total) AS pos_total, max(m_total) AS m_total,
           sum(pos * (m_before + (m + 1) / 2)) AS rank_sum,
           max(abs(pos_cum / NULLIF(pos_total, 0) - neg_cum / NULLIF(m_total - pos_total, 0))) AS ks,
           sum(pos * (1 - p) ^ 2 + (m - pos) * p ^ 2) AS brier_sum,
           -sum(pos * ln(${clamp}) + (m - pos) * ln(1 - ${clamp})) AS log_loss_sum,
           sum(n * p) AS np, sum(n * (1 - p)) AS nq, sum(n * p * (1 - p)) AS npq, sum(n * p * (q_before + n * (1 - p) / 2)) AS concordant
      FROM seg GROUP BY whole, band, d),
  figures AS (
    SELECT whole, band, sum(n) AS customers, sum(m) AS with_outcome, sum(pos) AS positives,
           (sum(rank_sum) - max(pos_total) * (max(pos_total) + 1) / 2) / NULLIF(max(pos_total) * (max(m_total) - max(pos_total)), 0) AS auc,
           max(ks) AS ks, sum(brier_sum) / NULLIF(max(m_total), 0) AS brier, sum(log_loss_sum) / NULLIF(max(m_total), 0) AS log_loss,
           sum(np) / sum(n) AS expected_positive_rate,
           (sum(concordant) - sum(npq) / 2) / NULLIF(sum(np) * sum(nq) - sum(npq), 0) AS estimated_auc,
           array_agg(m::bigint ORDER BY d) FILTER (WHERE m > 0) AS decile_customers,
           array_agg(mp / m ORDER BY d) FILTER (WHERE m > 0) AS decile_predicted,
           array_agg(pos / m ORDER BY d) FILTER (WHERE m > 0) AS decile_observed
      FROM parts GROUP BY whole, band),
  roc AS (
    -- Both rates fall as the threshold rises: a bucket's point at its highest score is its minimum of each.
    SELECT array_agg(fpr ORDER BY fpr, tpr) AS roc_fpr, array_agg(tpr ORDER BY fpr, tpr) AS roc_tpr
      FROM (SELECT min((m_total - pos_total - neg_cum) / (m_total - pos_total)) AS fpr, min((pos_total - pos_cum) / pos_total) AS tpr
              FROM w, totals t WHERE pos_total > 0 AND m_total > pos_total
             GROUP BY floor((m_before + m) * 50 / m_total)) x)
  SELECT f.band, f.whole, f.customers::bigint, f.with_outcome::bigint, f.positives::bigint, f.auc, f.ks, f.brier, f.log_loss,
         f.expected_positive_rate, f.estimated_auc, f.decile_customers, f.decile_predicted, f.decile_observed,
         CASE WHEN f.whole THEN (SELECT roc_fpr FROM roc) END AS roc_fpr, CASE WHEN f.whole THEN (SELECT roc_tpr FROM roc) END AS roc_tpr,
         (SELECT COALESCE(bool_or(lo <= prev_hi), false) FROM bands) AS bands_overlap
    FROM figures f
   ORDER BY f.whole DESC, f.band`;
}
