-- scorejob schema, version 10: for analysts (issue 19). Reasons per score (`scorejob run --reasons K`)
-- and incremental runs (`scorejob run --only-new`).

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
  ADD COLUMN base_run_id bigint REFERENCES :SCHEMA.score_runs (run_id);

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
