-- scorejob schema, version 11: a challenger beside the champion (issue 19, `scorejob run --challenger DIR`).
-- A run with a challenger scores a second model in the same pass over the source; the challenger's scores
-- are a sibling run: a score_runs row of kind 'challenger' that names its champion, with its own score_data
-- partition, chunks and rejects, written in the champion's chunk transactions. Its model_name is the
-- champion's (the slot `scorejob publish <run> --challenger` may publish it into); its model_version and
-- model_sha256 are the challenger's. It is never published by the run itself.
-- Readers wait for this transaction instead of deadlocking with it (as in 007 and 010): views first, then tables.
LOCK TABLE :SCHEMA.customer_scores, :SCHEMA.customer_score_history, :SCHEMA.customer_score_changes,
           :SCHEMA.published_runs, :SCHEMA.customer_score_rejects, :SCHEMA.customer_score_reasons IN ACCESS EXCLUSIVE MODE;

ALTER TABLE :SCHEMA.score_runs DROP CONSTRAINT IF EXISTS score_runs_kind_check;
ALTER TABLE :SCHEMA.score_runs
  ADD CONSTRAINT score_runs_kind_check CHECK (kind IN ('full', 'only_new', 'challenger')),
  ADD COLUMN champion_run_id bigint REFERENCES :SCHEMA.score_runs (run_id),
  ADD CONSTRAINT score_runs_challenger_champion CHECK ((kind = 'challenger') = (champion_run_id IS NOT NULL));

-- One challenger per champion run.
CREATE UNIQUE INDEX score_runs_champion_run_id ON :SCHEMA.score_runs (champion_run_id) WHERE champion_run_id IS NOT NULL;

COMMENT ON COLUMN :SCHEMA.score_runs.kind IS 'full: every customer scored; only_new: new and changed customers scored, the others carried forward from base_run_id; challenger: a second model scored beside champion_run_id in the same pass (scorejob run --challenger).';
COMMENT ON COLUMN :SCHEMA.score_runs.champion_run_id IS 'challenger runs: the run whose chunks wrote these scores; its status is this run''s.';

-- `scorejob publish <run> --challenger`: the pointer moved to a run's challenger, recorded as such.
ALTER TABLE :SCHEMA.score_publications DROP CONSTRAINT IF EXISTS score_publications_kind_check;
ALTER TABLE :SCHEMA.score_publications
  ADD CONSTRAINT score_publications_kind_check CHECK (kind IN ('publish', 'force', 'rollback', 'challenger'));
COMMENT ON COLUMN :SCHEMA.published_runs.kind IS 'publish (a run), force (scorejob publish --force over a gate), rollback (scorejob rollback) or challenger (scorejob publish <run> --challenger: the run''s challenger).';
