-- scorejob schema, version 19: the input checks a run made before its first chunk (manifest `checks`:
-- the row count and each feature's NULL rate against the last published full run, and SQL assertions),
-- each with its figures, and the checks a person skipped with `--skip-check NAME --reason TEXT`.
-- One row per check per attempt: a resume checks again, and both attempts stay on record.
CREATE TABLE :SCHEMA.run_input_checks (
  check_no     bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
  run_id       bigint NOT NULL REFERENCES :SCHEMA.score_runs (run_id) ON DELETE CASCADE,
  check_name   text NOT NULL,
  outcome      text NOT NULL CHECK (outcome IN ('passed', 'failed', 'skipped')),
  -- The figures in one line, as the run's error says them (`3,500,000 rows vs 5,000,000 in run 41 (−30.0%), limit 20%`).
  detail       text NOT NULL,
  figures      jsonb NOT NULL,
  skip_reason  text CHECK ((outcome = 'skipped') = (skip_reason IS NOT NULL)),
  -- One value per attempt (the attempt's transaction time): the latest attempt is the rows with the run's max.
  checked_at   timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX run_input_checks_run_idx ON :SCHEMA.run_input_checks (run_id, checked_at);
COMMENT ON TABLE :SCHEMA.run_input_checks IS 'Input checks of each run before its first chunk (docs/models.md "Input checks"); skipped ones with the reason given.';
