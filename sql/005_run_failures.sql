-- Every failure of a run, oldest first, kept across resumes: error and error_kind hold only the
-- latest, and a resume clears them. Each entry: {"at", "status", "kind", "error"}; appended when a
-- failed or interrupted run is resumed (scorejob resume), so `runs show` can tell what happened before.
ALTER TABLE :SCHEMA.score_runs ADD COLUMN failures jsonb NOT NULL DEFAULT '[]'::jsonb;
