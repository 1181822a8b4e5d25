-- Least-privilege roles for scorejob (docs/operations.md, "Least privilege"). Not a migration: an administrator runs
-- part 1 once before the first `scorejob migrate`, and part 2 once after it. Adapt the names (and the
-- source table) to your database; `scorejob_job`, `scorejob_reader`, `public.customers` and `scoring`
-- are the defaults.
--
--   psql "$ADMIN_URL" -f sql/roles.sql          -- both parts, when the job's first migrate ran already
--
-- Part 1: the job's role and its schema.
-- The job logs in as scorejob_job: it may only read the source, and it owns the scoring schema
-- (so `scorejob migrate` can create and upgrade it). It is not a superuser and cannot create databases or roles.
DO $$ BEGIN
  IF NOT EXISTS (SELECT FROM pg_roles WHERE rolname = 'scorejob_job') THEN
    CREATE ROLE scorejob_job LOGIN NOSUPERUSER NOCREATEDB NOCREATEROLE;  -- set its password with \password scorejob_job
  END IF;
  IF NOT EXISTS (SELECT FROM pg_roles WHERE rolname = 'scorejob_reader') THEN
    CREATE ROLE scorejob_reader NOLOGIN;  -- grant it to the downstream teams' login roles
  END IF;
END $$;
GRANT USAGE ON SCHEMA public TO scorejob_job;
GRANT SELECT ON public.customers TO scorejob_job;
CREATE SCHEMA IF NOT EXISTS scoring AUTHORIZATION scorejob_job;
ALTER SCHEMA scoring OWNER TO scorejob_job;

-- Part 2 (after the first `scorejob migrate`): downstream readers may read the published scores and
-- their history, nothing else. The views run with their owner's (the job's) rights, so readers need
-- no grant on the tables behind them, and new runs' partitions are covered without new grants.
GRANT USAGE ON SCHEMA scoring TO scorejob_reader;
DO $$ BEGIN
  IF to_regclass('scoring.customer_scores') IS NOT NULL THEN
    GRANT SELECT ON scoring.customer_scores, scoring.customer_score_history TO scorejob_reader;
    -- Freshness: which run is published and when (docs/downstream.md).
    GRANT SELECT ON scoring.published_run TO scorejob_reader;
    -- Schema version 7 (issue 15): what changed, every publication, and what could not be scored.
    IF to_regclass('scoring.published_runs') IS NOT NULL THEN
      GRANT SELECT ON scoring.customer_score_changes, scoring.published_runs, scoring.customer_score_rejects TO scorejob_reader;
    END IF;
    -- Schema version 17: what changed against any kept run a reader names (runs with the job's rights, as the views do).
    IF to_regprocedure('scoring.customer_score_changes_since(bigint)') IS NOT NULL THEN
      GRANT EXECUTE ON FUNCTION scoring.customer_score_changes_since(bigint) TO scorejob_reader;
    END IF;
    -- Schema version 10 (issue 19): why each customer scored what it did.
    IF to_regclass('scoring.customer_score_reasons') IS NOT NULL THEN
      GRANT SELECT ON scoring.customer_score_reasons TO scorejob_reader;
    END IF;
    -- Schema version 18 (issue 31): realised and estimated performance per run, model and band.
    IF to_regclass('scoring.model_performance') IS NOT NULL THEN
      GRANT SELECT ON scoring.model_performance TO scorejob_reader;
    END IF;
    -- Schema version 20 (issue 30): each feature's drift per run.
    IF to_regclass('scoring.feature_drift') IS NOT NULL THEN
      GRANT SELECT ON scoring.feature_drift TO scorejob_reader;
    END IF;
    -- Schema version 21 (issue 30): each segment's figures and drift per run.
    IF to_regclass('scoring.segment_drift') IS NOT NULL THEN
      GRANT SELECT ON scoring.segment_drift TO scorejob_reader;
    END IF;
  ELSE
    RAISE NOTICE 'scoring.customer_scores does not exist yet: run `scorejob migrate` as scorejob_job, then this file again';
  END IF;
  -- Nothing on the run lock (scoring.run_locks, docs/architecture.md "The run lock"): a role that could update or
  -- row-lock it (SELECT ... FOR UPDATE/SHARE needs UPDATE) could take or block the job's lock.
  IF to_regclass('scoring.run_locks') IS NOT NULL THEN
    REVOKE ALL ON scoring.run_locks FROM scorejob_reader;
  END IF;
END $$;
