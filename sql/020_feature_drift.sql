-- scorejob schema, version 20: per-feature drift (docs/models.md "Feature drift"). When the model has a
-- baseline.json, each chunk counts every feature's values into the baseline's bins and stores the counts
-- in the chunk's transaction (so every worker's chunks of a shared run count, and a resume keeps the done
-- chunks' counts); at statistics time the counts are merged and each feature's PSI is stored per run.
CREATE TABLE :SCHEMA.chunk_feature_counts (
  run_id    bigint NOT NULL REFERENCES :SCHEMA.score_runs (run_id) ON DELETE CASCADE,
  chunk_no  integer NOT NULL,
  -- Every feature's bins in the baseline's order, one after the other (each: its bins, then NULL).
  counts    int8[] NOT NULL,
  PRIMARY KEY (run_id, chunk_no)
);
COMMENT ON TABLE :SCHEMA.chunk_feature_counts IS 'Per chunk: every feature''s values counted into the model baseline''s bins (merged into run_feature_drift).';

CREATE TABLE :SCHEMA.run_feature_drift (
  run_id           bigint NOT NULL REFERENCES :SCHEMA.score_runs (run_id) ON DELETE CASCADE,
  feature_no       integer NOT NULL,
  feature          text NOT NULL,
  kind             text NOT NULL CHECK (kind IN ('numeric', 'categorical')),
  -- The run's merged counts over the baseline's bins (NULL last): the next run compares with them.
  counts           int8[] NOT NULL,
  psi_baseline     float8,
  psi_previous     float8,
  -- The published run compared with (the one readers saw when this run started); NULL: none with the same baseline.
  previous_run_id  bigint,
  -- The sha256 of the baseline.json the bins come from: only runs with the same one are compared.
  baseline_sha256  text NOT NULL,
  PRIMARY KEY (run_id, feature_no)
);
COMMENT ON TABLE :SCHEMA.run_feature_drift IS 'Per run and feature: PSI against the model baseline and against the previous published run (docs/models.md "Feature drift").';

CREATE VIEW :SCHEMA.feature_drift AS
SELECT d.run_id, r.model_name, r.model_version, r.status, r.published_at IS NOT NULL AS published,
       d.feature, d.kind, d.psi_baseline, d.psi_previous, d.previous_run_id,
       rank() OVER (PARTITION BY d.run_id ORDER BY d.psi_baseline DESC NULLS LAST) AS mover_rank
  FROM :SCHEMA.run_feature_drift d
  JOIN :SCHEMA.score_runs r USING (run_id);
COMMENT ON VIEW :SCHEMA.feature_drift IS 'Per run and feature: PSI against the model''s training baseline and the previous published run; mover_rank 1 = moved most. See docs/models.md "Feature drift".';
