-- scorejob schema, version 15: `scorejob model retire NAME` takes a model out of the reader views.
-- Retiring deletes the model's row of published_run: every view finds the model's run through that row
-- (an init plan per model branch, sql/013_layers.sql), so with no row the model's branch reads nothing
-- and the views need no change. The retire is recorded in score_publications with kind 'retire' (run_id
-- and from_run_id: the run taken out); the model's next publication (a run, publish --force or
-- --challenger, a rollback) inserts the row again. History keeps the kept runs (published_at is unchanged).
-- Readers wait for this transaction instead of deadlocking with it (as in 007): views first, then tables.
LOCK TABLE :SCHEMA.customer_scores, :SCHEMA.customer_score_history, :SCHEMA.customer_score_changes,
           :SCHEMA.published_runs, :SCHEMA.customer_score_rejects, :SCHEMA.customer_score_reasons IN ACCESS EXCLUSIVE MODE;

ALTER TABLE :SCHEMA.score_publications DROP CONSTRAINT IF EXISTS score_publications_kind_check;
ALTER TABLE :SCHEMA.score_publications
  ADD CONSTRAINT score_publications_kind_check CHECK (kind IN ('publish', 'force', 'rollback', 'challenger', 'retire'));

-- As in 014 (forced last). is_current: a retire makes no publication of the model current (customer_scores shows none of its rows).
CREATE OR REPLACE VIEW :SCHEMA.published_runs AS
SELECT q.publication_id,
       q.model_name,
       q.run_id,
       r.model_version,
       r.rows_scored,
       r.rows_rejected,
       r.started_at,
       r.finished_at,
       q.published_at,
       q.from_run_id AS previous_run_id,
       q.kind,
       COALESCE(q.os_user, q.db_user) AS published_by,
       q.reason,
       q.kind <> 'retire'
         AND q.publication_id = (SELECT max(l.publication_id) FROM :SCHEMA.score_publications l WHERE l.model_name = q.model_name) AS is_current,
       EXISTS (SELECT 1 FROM :SCHEMA.score_data k WHERE k.run_id = q.run_id)
         OR EXISTS (SELECT 1 FROM :SCHEMA.score_layers y JOIN :SCHEMA.score_data k ON k.run_id = y.under_run_id WHERE y.run_id = q.run_id) AS in_history,
       q.forced
FROM :SCHEMA.score_publications q
JOIN :SCHEMA.score_runs r ON r.run_id = q.run_id;

COMMENT ON VIEW :SCHEMA.customer_scores IS 'The current scores: one row per scored customer of each model''s published run. Pick a model with WHERE model_name = ''…''. Changes at once (in one transaction) on publish, rollback or retire (scorejob model retire: the model''s rows leave); never a mix of two runs.';
COMMENT ON VIEW :SCHEMA.published_runs IS 'Every publication (publish, publish --force, publish --challenger, rollback, retire) of every model, oldest first by publication_id; is_current marks the one readers see now (none for a retired model). Answers in milliseconds: it reads the ledger of publications, not the scores.';
COMMENT ON COLUMN :SCHEMA.published_runs.run_id IS 'The run made current by this publication; for a retire, the run taken out of customer_scores.';
COMMENT ON COLUMN :SCHEMA.published_runs.previous_run_id IS 'The run readers saw before this publication; NULL for the model''s first, and for its first after a retire.';
COMMENT ON COLUMN :SCHEMA.published_runs.kind IS 'publish (a run), force (scorejob publish --force over a gate), rollback (scorejob rollback), challenger (scorejob publish <run> --challenger: the run''s challenger) or retire (scorejob model retire: the model''s rows left customer_scores).';
COMMENT ON COLUMN :SCHEMA.published_runs.is_current IS 'The model''s latest publication, unless it is a retire: the run customer_scores shows.';
COMMENT ON TABLE :SCHEMA.published_run IS 'The pointer readers follow: one row per published model (none for a retired one). Prefer published_runs (it says when, which version, and what was before).';
