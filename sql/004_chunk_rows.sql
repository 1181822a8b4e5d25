-- Every source row accounted for (issue 11).
-- rows_planned: the rows a chunk holds in the snapshot it is read in, counted when the run plans (and again
-- for the unfinished chunks when a run resumes or takes a new snapshot); a chunk that reads another number fails.
-- key_lo / key_hi may be NULL: the first chunk has no lower bound and the last no upper bound, so no key
-- outside the planned minimum and maximum is skipped and no bound has to be computed past the key type's range.
ALTER TABLE :SCHEMA.score_chunks
  ALTER COLUMN key_lo DROP NOT NULL,
  ALTER COLUMN key_hi DROP NOT NULL,
  ADD COLUMN rows_planned bigint;

-- The snapshot (pg_export_snapshot()) every chunk of the run reads, while the run's process holds it open.
ALTER TABLE :SCHEMA.score_runs ADD COLUMN source_snapshot text;
