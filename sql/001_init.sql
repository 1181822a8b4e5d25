-- scorejob schema, version 1. `:SCHEMA` is replaced by the configured schema (quoted) when migrating.

-- One row per run: the ledger's truth about what happened and why.
CREATE TABLE :SCHEMA.score_runs (
  run_id         bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
  status         text NOT NULL CHECK (status IN ('running', 'succeeded', 'failed', 'interrupted')),
  trigger        text NOT NULL CHECK (trigger IN ('manual', 'cron', 'schedule', 'resume')),
  dry_run        boolean NOT NULL DEFAULT false,
  model_name     text NOT NULL,
  model_version  text NOT NULL,
  model_sha256   text NOT NULL,
  backend        text NOT NULL,
  params         jsonb NOT NULL DEFAULT '{}'::jsonb,
  started_at     timestamptz NOT NULL DEFAULT now(),
  finished_at    timestamptz,
  heartbeat_at   timestamptz NOT NULL DEFAULT now(),
  published_at   timestamptz,
  tick_at        timestamptz,
  chunks_total   integer,
  rows_scored    bigint NOT NULL DEFAULT 0,
  rows_rejected  bigint NOT NULL DEFAULT 0,
  -- error: the root cause in one line; error_kind: data, model, database, gate, interrupted, internal.
  error          text,
  error_kind     text,
  stats          jsonb,
  host           text NOT NULL,
  pid            integer NOT NULL,
  resumes        integer NOT NULL DEFAULT 0
);
CREATE INDEX score_runs_status_idx ON :SCHEMA.score_runs (status, run_id DESC);

-- One row per key-range chunk (key_lo, key_hi]: the unit of checkpointing.
CREATE TABLE :SCHEMA.score_chunks (
  run_id         bigint NOT NULL REFERENCES :SCHEMA.score_runs (run_id) ON DELETE CASCADE,
  chunk_no       integer NOT NULL,
  key_lo         bigint NOT NULL,
  key_hi         bigint NOT NULL,
  status         text NOT NULL DEFAULT 'pending' CHECK (status IN ('pending', 'done')),
  attempts       integer NOT NULL DEFAULT 0,
  rows_scored    integer,
  rows_rejected  integer,
  started_at     timestamptz,
  finished_at    timestamptz,
  duration_ms    integer,
  last_error     text,
  -- Score histogram and moments of the chunk, merged into the run's statistics at the end.
  stats          jsonb,
  PRIMARY KEY (run_id, chunk_no),
  CHECK (key_lo < key_hi)
);

-- Scores of every kept run, one partition per published run. A run writes into a table of its own
-- and that table is attached here when the run is published (ATTACH takes only SHARE UPDATE
-- EXCLUSIVE on the parent, so readers are never blocked); old runs are dropped as whole partitions.
CREATE TABLE :SCHEMA.score_data (
  run_id       bigint NOT NULL,
  customer_id  bigint NOT NULL,
  score        real NOT NULL,
  PRIMARY KEY (run_id, customer_id)
) PARTITION BY LIST (run_id);

-- The pointer readers follow: exactly one row; publishing is an UPDATE of it.
CREATE TABLE :SCHEMA.published_run (
  only_row      boolean PRIMARY KEY DEFAULT true CHECK (only_row),
  run_id        bigint REFERENCES :SCHEMA.score_runs (run_id),
  published_at  timestamptz
);
INSERT INTO :SCHEMA.published_run (only_row, run_id, published_at) VALUES (true, NULL, NULL);

-- Rows a run could not score, with the reason and the offending values.
CREATE TABLE :SCHEMA.score_rejects (
  run_id       bigint NOT NULL REFERENCES :SCHEMA.score_runs (run_id) ON DELETE CASCADE,
  customer_id  bigint NOT NULL,
  reason       text NOT NULL,
  detail       jsonb,
  PRIMARY KEY (run_id, customer_id)
);

-- The downstream contract: the latest published run, one row per customer.
-- `run_id = (SELECT ...)` is an init plan, so the executor prunes every other partition.
CREATE VIEW :SCHEMA.customer_scores AS
SELECT d.customer_id,
       d.score,
       r.model_version,
       d.run_id,
       r.finished_at AS scored_at
FROM :SCHEMA.score_data d
JOIN :SCHEMA.score_runs r ON r.run_id = d.run_id
WHERE d.run_id = (SELECT p.run_id FROM :SCHEMA.published_run p);

-- Every score of every kept (published) run.
CREATE VIEW :SCHEMA.customer_score_history AS
SELECT d.run_id,
       d.customer_id,
       d.score,
       r.model_version,
       r.finished_at AS scored_at
FROM :SCHEMA.score_data d
JOIN :SCHEMA.score_runs r ON r.run_id = d.run_id;
