-- scorejob schema, version 10: for analysts (issue 19). Reasons per score (`scorejob run --reasons K`)
-- and incremental runs (`scorejob run --only-new`).

-- Readers wait for this transaction instead of deadlocking with it (as in 007): a reader locks the view
-- first and the tables behind it next, so this takes every view first, before any table.
LOCK TABLE :SCHEMA.customer_scores, :SCHEMA.customer_score_history, :SCHEMA.customer_score_changes,
           :SCHEMA.published_runs, :SCHEMA.customer_score_rejects IN ACCESS EXCLUSIVE MODE;

-- Reasons: for each scored customer of a run, the K manifest features that moved its score most from
-- the baseline, with their signed contributions (src/model/explainer.ts says how they are computed).
-- One row per customer: features[i] is a 1-based index into the run's params->'reasons'->'features',
-- contributions[i] its contribution, largest |contribution| first. Partitioned by run like score_data:
-- a run's table (score_reasons_<run_id>) is written in the same chunk transactions as its scores,
-- attached when it is created (empty: no scan), and dropped whenever the run's scores are dropped.
CREATE TABLE :SCHEMA.score_reasons (
  run_id         bigint NOT NULL,
  customer_id    bigint NOT NULL,
  features       smallint[] NOT NULL,
  contributions  real[] NOT NULL,
  PRIMARY KEY (run_id, customer_id)
) PARTITION BY LIST (run_id);

-- Incremental runs: a `full` run scores every customer; an `only_new` run scores the customers its base
-- run (the run published when it started) did not have or whose row changed since, and carries the
-- base run's scores of the others forward in the database.
ALTER TABLE :SCHEMA.score_runs
  ADD COLUMN kind text NOT NULL DEFAULT 'full' CHECK (kind IN ('full', 'only_new')),
  ADD COLUMN base_run_id bigint REFERENCES :SCHEMA.score_runs (run_id),
  ADD COLUMN rows_carried bigint NOT NULL DEFAULT 0;

-- A carried score keeps the run that computed it: scored_run_id (NULL: this partition's run scored it).
-- Nullable without a default: adding it rewrites nothing. Run tables not attached (a dry or very old
-- run) get it too, so that a later attach finds the parent's columns.
ALTER TABLE :SCHEMA.score_data ADD COLUMN scored_run_id bigint;
DO $$
DECLARE t record;
BEGIN
  FOR t IN SELECT c.oid::regclass AS name FROM pg_class c
            WHERE c.relnamespace = to_regnamespace(':SCHEMA') AND c.relkind = 'r' AND c.relname ~ '^score_data_[0-9]+$'
              AND NOT EXISTS (SELECT 1 FROM pg_inherits i WHERE i.inhrelid = c.oid)
  LOOP
    EXECUTE format('ALTER TABLE %s ADD COLUMN IF NOT EXISTS scored_run_id bigint', t.name);
  END LOOP;
END $$;

-- For readers: the reasons of each model's published run, one row per customer and reason.
CREATE VIEW :SCHEMA.customer_score_reasons AS
SELECT s.customer_id,
       u.rank::integer AS rank,
       r.params -> 'reasons' -> 'features' ->> (u.feature - 1) AS feature,
       u.contribution,
       r.params -> 'reasons' ->> 'space' AS measured_in,
       s.run_id,
       p.model_name
FROM :SCHEMA.published_run p
JOIN :SCHEMA.score_runs r ON r.run_id = p.run_id
JOIN :SCHEMA.score_reasons s ON s.run_id = p.run_id
CROSS JOIN LATERAL unnest(s.features, s.contributions) WITH ORDINALITY AS u(feature, contribution, rank);

COMMENT ON VIEW :SCHEMA.customer_score_reasons IS 'Why each customer of each model''s published run scored what it did: the features that moved the score most from an average customer (run with scorejob run --reasons K). Empty for a run without reasons.';
COMMENT ON COLUMN :SCHEMA.customer_score_reasons.rank IS '1 = the feature with the largest |contribution|.';
COMMENT ON COLUMN :SCHEMA.customer_score_reasons.feature IS 'The manifest feature (its source column); a one-hot group is one feature.';
COMMENT ON COLUMN :SCHEMA.customer_score_reasons.contribution IS 'Signed: > 0 pushed the score up. Gradient x (input - baseline) on the transformed inputs, in the unit of measured_in.';
COMMENT ON COLUMN :SCHEMA.customer_score_reasons.measured_in IS 'logit: log-odds of a sigmoid output (contributions add up to about logit(score) - logit(baseline score)); score: the score itself.';
COMMENT ON COLUMN :SCHEMA.score_runs.kind IS 'full: every customer scored; only_new: new and changed customers scored, the others carried forward from base_run_id.';
COMMENT ON COLUMN :SCHEMA.score_runs.base_run_id IS 'only_new runs: the published run whose scores were carried forward.';

/*
 * customer_scores as in version 7, except that a score an only_new run carried forward shows the run that
 * computed it (run_id) and when that run finished (scored_at): readers see which customers were
 * rescored. The partition (d.run_id) still selects the published run, so pruning is unchanged.
 */
CREATE OR REPLACE FUNCTION :SCHEMA.refresh_score_views() RETURNS void LANGUAGE plpgsql
  SET search_path = :SCHEMA
AS $fn$
DECLARE
  target text := current_schema();
  scores text;
  changes text;
BEGIN
  SELECT string_agg(format(
           'SELECT d.customer_id, d.score, r.model_version, COALESCE(d.scored_run_id, d.run_id) AS run_id,'
           ' COALESCE(o.finished_at, r.finished_at) AS scored_at, %1$L::text AS model_name,'
           ' width_bucket(d.score::float8, r.score_cuts) + 1 AS percentile,'
           ' r.band_names[width_bucket(d.score::float8, r.band_bounds) + 1] AS band'
           ' FROM %2$I.score_data d JOIN %2$I.score_runs r ON r.run_id = d.run_id'
           ' LEFT JOIN %2$I.score_runs o ON o.run_id = d.scored_run_id'
           ' WHERE d.run_id = (SELECT p.run_id FROM %2$I.published_run p WHERE p.model_name = %1$L)',
           m.model_name, target), ' UNION ALL ' ORDER BY m.model_name),
         string_agg(format(
           'SELECT d.customer_id, d.score, o.score AS previous_score, d.score - o.score AS delta, o.customer_id IS NULL AS is_new,'
           ' width_bucket(d.score::float8, r.score_cuts) + 1 AS percentile,'
           ' width_bucket(o.score::float8, ro.score_cuts) + 1 AS previous_percentile,'
           ' r.band_names[width_bucket(d.score::float8, r.band_bounds) + 1] AS band,'
           ' ro.band_names[width_bucket(o.score::float8, ro.band_bounds) + 1] AS previous_band,'
           ' d.run_id, ro.run_id AS previous_run_id, %1$L::text AS model_name, r.model_version, ro.model_version AS previous_model_version'
           ' FROM %2$I.score_data d JOIN %2$I.score_runs r ON r.run_id = d.run_id'
           ' LEFT JOIN %2$I.score_runs ro ON ro.run_id = (SELECT p.previous_run_id FROM %2$I.published_run p WHERE p.model_name = %1$L)'
           ' LEFT JOIN %2$I.score_data o ON o.run_id = (SELECT p.previous_run_id FROM %2$I.published_run p WHERE p.model_name = %1$L)'
           '  AND o.customer_id = d.customer_id'
           ' WHERE d.run_id = (SELECT p.run_id FROM %2$I.published_run p WHERE p.model_name = %1$L)',
           m.model_name, target), ' UNION ALL ' ORDER BY m.model_name)
    INTO scores, changes
    FROM (SELECT model_name FROM models) m;
  IF scores IS NULL THEN
    scores := format('SELECT d.customer_id, d.score, r.model_version, d.run_id, r.finished_at AS scored_at, NULL::text AS model_name,'
                     ' NULL::integer AS percentile, NULL::text AS band'
                     ' FROM %1$I.score_data d JOIN %1$I.score_runs r ON r.run_id = d.run_id WHERE false', target);
    changes := format('SELECT d.customer_id, d.score, d.score AS previous_score, d.score AS delta, NULL::boolean AS is_new,'
                      ' NULL::integer AS percentile, NULL::integer AS previous_percentile, NULL::text AS band, NULL::text AS previous_band,'
                      ' d.run_id, NULL::bigint AS previous_run_id, NULL::text AS model_name, r.model_version, r.model_version AS previous_model_version'
                      ' FROM %1$I.score_data d JOIN %1$I.score_runs r ON r.run_id = d.run_id WHERE false', target);
  END IF;
  EXECUTE format('CREATE OR REPLACE VIEW %I.customer_scores AS %s', target, scores);
  EXECUTE format('CREATE OR REPLACE VIEW %I.customer_score_changes AS %s', target, changes);
END
$fn$;
REVOKE ALL ON FUNCTION :SCHEMA.refresh_score_views() FROM PUBLIC;
SELECT :SCHEMA.refresh_score_views();
