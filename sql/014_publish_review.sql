-- scorejob schema, version 14: a publication made with --force says so, and why.
-- `scorejob publish <run> --force` and `publish <run> --challenger --force` take a person's word over a gate
-- (the run's, or the comparison of a challenger with its champion): they need `--reason TEXT`, recorded on
-- the publication with forced = true, so readers and `scorejob runs` can tell such a publication apart.
-- Readers wait for this transaction instead of deadlocking with it (as in 007): views first, then tables.
LOCK TABLE :SCHEMA.customer_scores, :SCHEMA.customer_score_history, :SCHEMA.customer_score_changes,
           :SCHEMA.published_runs, :SCHEMA.customer_score_rejects, :SCHEMA.customer_score_reasons IN ACCESS EXCLUSIVE MODE;

ALTER TABLE :SCHEMA.score_publications ADD COLUMN forced boolean NOT NULL DEFAULT false;
-- Earlier publications by force are the kind 'force' ones (a challenger published by force was not told apart).
UPDATE :SCHEMA.score_publications SET forced = true WHERE kind = 'force';

-- As in 013, with `forced` added last (CREATE OR REPLACE VIEW only adds columns at the end).
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
       q.publication_id = (SELECT max(l.publication_id) FROM :SCHEMA.score_publications l WHERE l.model_name = q.model_name) AS is_current,
       EXISTS (SELECT 1 FROM :SCHEMA.score_data k WHERE k.run_id = q.run_id)
         OR EXISTS (SELECT 1 FROM :SCHEMA.score_layers y JOIN :SCHEMA.score_data k ON k.run_id = y.under_run_id WHERE y.run_id = q.run_id) AS in_history,
       q.forced
FROM :SCHEMA.score_publications q
JOIN :SCHEMA.score_runs r ON r.run_id = q.run_id;

COMMENT ON COLUMN :SCHEMA.published_runs.reason IS 'Why, in a person''s words: scorejob rollback --reason, publish --reason (required with --force).';
COMMENT ON COLUMN :SCHEMA.published_runs.forced IS 'Published with --force past a gate (publish <run> --force over the run''s gate, publish <run> --challenger --force over the challenger''s gates or its comparison with the champion); reason says why.';
COMMENT ON COLUMN :SCHEMA.score_publications.forced IS 'Published with --force past a gate; reason says why.';
