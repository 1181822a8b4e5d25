-- scorejob schema, version 18: outcomes joined to the scores they followed (docs/outcomes.md).
-- `scorejob outcomes sync` fills these tables; nothing else writes them. A run's rows go with the run
-- (ON DELETE CASCADE); retention dropping a run's scores keeps its figures.

-- One row per run synced: against what, how mature, and what the figures were computed from.
CREATE TABLE :SCHEMA.outcome_syncs (
  run_id          bigint PRIMARY KEY REFERENCES :SCHEMA.score_runs (run_id) ON DELETE CASCADE,
  model_name      text NOT NULL,
  published_at    timestamptz NOT NULL,
  horizon         interval NOT NULL,
  as_of           timestamptz NOT NULL,
  -- Share of the horizon elapsed at as_of, 0 to 1; mature = 1.
  maturity        float8 NOT NULL CHECK (maturity BETWEEN 0 AND 1),
  -- Count and checksum of the outcome rows that counted, with maturity: equal on the next sync, nothing changed.
  signature       text NOT NULL,
  synced_at       timestamptz NOT NULL DEFAULT now(),
  -- The ROC curve of the whole run (false and true positive rates, from (0,0) to (1,1)), for the report.
  roc_fpr         float8[],
  roc_tpr         float8[]
);

-- Realised figures per run and band (band NULL: the whole run), replaced as outcomes mature.
CREATE TABLE :SCHEMA.outcome_performance (
  run_id           bigint NOT NULL REFERENCES :SCHEMA.outcome_syncs (run_id) ON DELETE CASCADE,
  band             text,
  model_name       text NOT NULL,
  customers        bigint NOT NULL,
  with_outcome     bigint NOT NULL,
  positives        bigint NOT NULL,
  coverage         float8,
  auc              float8,
  gini             float8,
  ks               float8,
  brier            float8,
  log_loss         float8,
  top_decile_lift  float8,
  ece              float8,
  -- Per score decile of the customers with an outcome, lowest first: customers, mean score, observed rate.
  decile_customers bigint[],
  decile_predicted float8[],
  decile_observed  float8[]
);
CREATE UNIQUE INDEX outcome_performance_run_band_idx ON :SCHEMA.outcome_performance (run_id, COALESCE(band, ''));

-- Estimated figures per run and band from the scores alone (scores read as calibrated probabilities):
-- computed once per run, the first time it is synced.
CREATE TABLE :SCHEMA.outcome_estimates (
  run_id                  bigint NOT NULL REFERENCES :SCHEMA.score_runs (run_id) ON DELETE CASCADE,
  band                    text,
  model_name              text NOT NULL,
  customers               bigint NOT NULL,
  expected_positive_rate  float8,
  estimated_auc           float8,
  computed_at             timestamptz NOT NULL DEFAULT now()
);
CREATE UNIQUE INDEX outcome_estimates_run_band_idx ON :SCHEMA.outcome_estimates (run_id, COALESCE(band, ''));

-- For readers: realised beside estimated, one row per run, model and band.
CREATE VIEW :SCHEMA.model_performance AS
SELECT e.run_id,
       e.model_name,
       e.band,
       r.model_version,
       s.published_at,
       s.horizon,
       s.as_of,
       s.maturity,
       s.maturity = 1 AS mature,
       e.customers,
       p.with_outcome,
       p.positives,
       p.coverage,
       p.auc,
       p.gini,
       p.ks,
       p.brier,
       p.log_loss,
       p.top_decile_lift,
       p.ece AS calibration_error,
       p.positives::float8 / NULLIF(p.with_outcome, 0) AS positive_rate,
       e.estimated_auc,
       e.expected_positive_rate,
       p.decile_predicted,
       p.decile_observed,
       CASE WHEN e.band IS NULL THEN s.roc_fpr END AS roc_fpr,
       CASE WHEN e.band IS NULL THEN s.roc_tpr END AS roc_tpr,
       s.synced_at
FROM :SCHEMA.outcome_estimates e
JOIN :SCHEMA.outcome_syncs s ON s.run_id = e.run_id
JOIN :SCHEMA.score_runs r ON r.run_id = e.run_id
LEFT JOIN :SCHEMA.outcome_performance p ON p.run_id = e.run_id AND p.band IS NOT DISTINCT FROM e.band;

COMMENT ON VIEW :SCHEMA.model_performance IS 'Per run, model and band (band NULL: the whole run), from scorejob outcomes sync: the realised figures on the customers whose outcome matured (NULL before any did) beside the figures estimated from the scores alone. See docs/outcomes.md.';
COMMENT ON COLUMN :SCHEMA.model_performance.maturity IS 'Share of the outcome horizon elapsed at as_of, 0 to 1; the figures of a run below 1 may still move.';
COMMENT ON COLUMN :SCHEMA.model_performance.as_of IS 'The time the last sync joined outcomes up to (scorejob outcomes sync --as-of).';
COMMENT ON COLUMN :SCHEMA.model_performance.customers IS 'Customers the run scored (in the band).';
COMMENT ON COLUMN :SCHEMA.model_performance.with_outcome IS 'Customers with a matured outcome (or counted negative: manifest outcomes.absent).';
COMMENT ON COLUMN :SCHEMA.model_performance.coverage IS 'with_outcome / customers.';
COMMENT ON COLUMN :SCHEMA.model_performance.auc IS 'Area under the ROC curve on the customers with an outcome (rank-sum, ties counted half).';
COMMENT ON COLUMN :SCHEMA.model_performance.gini IS '2 * auc - 1.';
COMMENT ON COLUMN :SCHEMA.model_performance.ks IS 'Kolmogorov-Smirnov: the largest gap between the score distributions of positives and negatives.';
COMMENT ON COLUMN :SCHEMA.model_performance.brier IS 'Mean squared difference between score and outcome (0/1).';
COMMENT ON COLUMN :SCHEMA.model_performance.log_loss IS 'Mean negative log-likelihood of the outcomes (scores clamped to [1e-15, 1 - 1e-15]).';
COMMENT ON COLUMN :SCHEMA.model_performance.top_decile_lift IS 'Positive rate of the highest-scored tenth over the overall positive rate.';
COMMENT ON COLUMN :SCHEMA.model_performance.calibration_error IS 'Expected calibration error: customer-weighted mean |mean score - observed rate| over the score deciles.';
COMMENT ON COLUMN :SCHEMA.model_performance.estimated_auc IS 'The AUC expected if the scores are calibrated probabilities, from the scores alone; computed once when the run is first synced.';
COMMENT ON COLUMN :SCHEMA.model_performance.expected_positive_rate IS 'Mean score: the positive rate expected if the scores are calibrated probabilities.';
COMMENT ON COLUMN :SCHEMA.model_performance.decile_predicted IS 'Mean score per score decile of the customers with an outcome, lowest first.';
COMMENT ON COLUMN :SCHEMA.model_performance.decile_observed IS 'Observed positive rate per score decile, lowest first.';
COMMENT ON COLUMN :SCHEMA.model_performance.roc_fpr IS 'Whole-run rows: false positive rates of about 50 points of the ROC curve, increasing (with roc_tpr).';
COMMENT ON COLUMN :SCHEMA.model_performance.roc_tpr IS 'Whole-run rows: the true positive rates matching roc_fpr.';
COMMENT ON TABLE :SCHEMA.outcome_syncs IS 'Ledger of scorejob outcomes sync: one row per run synced. Readers: model_performance.';
COMMENT ON TABLE :SCHEMA.outcome_performance IS 'Realised figures per run and band. Readers: model_performance.';
COMMENT ON TABLE :SCHEMA.outcome_estimates IS 'Estimated figures per run and band, computed once. Readers: model_performance.';
