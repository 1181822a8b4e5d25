-- scorejob schema, version 7: for downstream teams (issue 15). A ledger of publications (rollback),
-- the published run before the current one (the changes view), percentiles and bands on every score,
-- small views a reader may use instead of the ledger, and COMMENT ON everything a reader may touch.
-- Existing columns and views keep their names and order; new view columns are appended at the end.

-- Readers wait for this transaction instead of deadlocking with it: a reader locks the view first and
-- the tables behind it next, so this takes the views first (LOCK on a view locks what it reads too).
LOCK TABLE :SCHEMA.customer_scores, :SCHEMA.customer_score_history IN ACCESS EXCLUSIVE MODE;

-- Percentiles: the run's 99 cut points (percentile_cont(0.01 … 0.99) of its scores), computed in one
-- pass over the run's own table after its last chunk. A reader's percentile is then
-- width_bucket(score, cuts) + 1: no window function, no sort, and `customer_id = …` stays one probe.
ALTER TABLE :SCHEMA.score_runs
  ADD COLUMN score_cuts double precision[],
  -- Bands (the manifest's output.bands), kept on the run so a rollback brings its own bands back:
  -- band_names[i] for band_bounds[i-1] <= score < band_bounds[i] (open at both ends).
  ADD COLUMN band_bounds double precision[],
  ADD COLUMN band_names text[];

-- The runs kept in history get their cut points now (one sort of each kept run's scores).
UPDATE :SCHEMA.score_runs r SET score_cuts = c.cuts
  FROM (SELECT d.run_id, percentile_cont((SELECT array_agg(i / 100.0) FROM generate_series(1, 99) i)) WITHIN GROUP (ORDER BY d.score) AS cuts
          FROM :SCHEMA.score_data d
         WHERE d.run_id IN (SELECT run_id FROM :SCHEMA.score_runs WHERE published_at IS NOT NULL)
         GROUP BY d.run_id) c
 WHERE r.run_id = c.run_id;

-- Every move of a model's pointer, oldest first: publish (a run), force (`publish --force`), rollback.
-- Written in the transaction that moves the pointer; never updated or deleted.
CREATE TABLE :SCHEMA.score_publications (
  publication_id  bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
  model_name      text NOT NULL REFERENCES :SCHEMA.models (model_name),
  run_id          bigint NOT NULL REFERENCES :SCHEMA.score_runs (run_id),
  kind            text NOT NULL CHECK (kind IN ('publish', 'force', 'rollback')),
  -- The run readers saw before (NULL: the model's first publication).
  from_run_id     bigint REFERENCES :SCHEMA.score_runs (run_id),
  published_at    timestamptz NOT NULL DEFAULT now(),
  db_user         text NOT NULL DEFAULT current_user,
  os_user         text,
  host            text,
  pid             integer,
  reason          text
);
CREATE INDEX score_publications_model_idx ON :SCHEMA.score_publications (model_name, publication_id DESC);

-- The publications before this version, as far as the ledger tells (who and why are not known).
INSERT INTO :SCHEMA.score_publications (model_name, run_id, kind, from_run_id, published_at, db_user)
SELECT model_name, run_id, CASE WHEN stats ? 'forced_publish' THEN 'force' ELSE 'publish' END,
       lag(run_id) OVER (PARTITION BY model_name ORDER BY published_at, run_id), published_at, 'unknown (before schema version 7)'
  FROM :SCHEMA.score_runs
 WHERE published_at IS NOT NULL AND NOT dry_run
 ORDER BY published_at, run_id;

-- The run readers saw before the pointer's current one: what customer_score_changes compares with.
ALTER TABLE :SCHEMA.published_run ADD COLUMN previous_run_id bigint REFERENCES :SCHEMA.score_runs (run_id);
UPDATE :SCHEMA.published_run p SET previous_run_id = (
  SELECT q.from_run_id FROM :SCHEMA.score_publications q WHERE q.model_name = p.model_name AND q.run_id = p.run_id
   ORDER BY q.publication_id DESC LIMIT 1);

/*
 * customer_scores and customer_score_changes, one UNION ALL branch per model (see sql/006_models.sql
 * for why branches and init plans). Version 7 appends percentile and band to customer_scores, and
 * builds customer_score_changes the same way: in each branch both run ids are init plans, so the
 * executor reads exactly two partitions (the published run and the one before), and
 * `customer_id = …` is one probe of each.
 */
CREATE OR REPLACE FUNCTION :SCHEMA.refresh_score_views() RETURNS void LANGUAGE plpgsql
  SET search_path = :SCHEMA
AS $fn$
DECLARE
  target text := current_schema();
  scores text;
  changes text;
BEGIN
  SELECT string_agg(format(
           'SELECT d.customer_id, d.score, r.model_version, d.run_id, r.finished_at AS scored_at, %1$L::text AS model_name,'
           ' width_bucket(d.score::float8, r.score_cuts) + 1 AS percentile,'
           ' r.band_names[width_bucket(d.score::float8, r.band_bounds) + 1] AS band'
           ' FROM %2$I.score_data d JOIN %2$I.score_runs r ON r.run_id = d.run_id'
           ' WHERE d.run_id = (SELECT p.run_id FROM %2$I.published_run p WHERE p.model_name = %1$L)',
           m.model_name, target), ' UNION ALL ' ORDER BY m.model_name),
         string_agg(format(
           'SELECT d.customer_id, d.score, o.score AS previous_score, d.score - o.score AS delta, o.customer_id IS NULL AS is_new,'
           ' width_bucket(d.score::float8, r.score_cuts) + 1 AS percentile,'
           ' width_bucket(o.score::float8, ro.score_cuts) + 1 AS previous_percentile,'
           ' r.band_names[width_bucket(d.score::float8, r.band_bounds) + 1] AS band,'
           ' ro.band_names[width_bucket(o.score::float8, ro.band_bounds) + 1] AS previous_band,'
           ' d.run_id, ro.run_id AS previous_run_id, %1$L::text AS model_name, r.model_version, ro.model_version AS previous_model_version'
           ' FROM %2$I.score_data d JOIN %2$I.score_runs r ON r.run_id = d.run_id'
           ' LEFT JOIN %2$I.score_runs ro ON ro.run_id = (SELECT p.previous_run_id FROM %2$I.published_run p WHERE p.model_name = %1$L)'
           ' LEFT JOIN %2$I.score_data o ON o.run_id = (SELECT p.previous_run_id FROM %2$I.published_run p WHERE p.model_name = %1$L)'
           '  AND o.customer_id = d.customer_id'
           ' WHERE d.run_id = (SELECT p.run_id FROM %2$I.published_run p WHERE p.model_name = %1$L)',
           m.model_name, target), ' UNION ALL ' ORDER BY m.model_name)
    INTO scores, changes
    FROM (SELECT model_name FROM models) m;
  IF scores IS NULL THEN
    scores := format('SELECT d.customer_id, d.score, r.model_version, d.run_id, r.finished_at AS scored_at, NULL::text AS model_name,'
                     ' NULL::integer AS percentile, NULL::text AS band'
                     ' FROM %1$I.score_data d JOIN %1$I.score_runs r ON r.run_id = d.run_id WHERE false', target);
    changes := format('SELECT d.customer_id, d.score, d.score AS previous_score, d.score AS delta, NULL::boolean AS is_new,'
                      ' NULL::integer AS percentile, NULL::integer AS previous_percentile, NULL::text AS band, NULL::text AS previous_band,'
                      ' d.run_id, NULL::bigint AS previous_run_id, NULL::text AS model_name, r.model_version, r.model_version AS previous_model_version'
                      ' FROM %1$I.score_data d JOIN %1$I.score_runs r ON r.run_id = d.run_id WHERE false', target);
  END IF;
  EXECUTE format('CREATE OR REPLACE VIEW %I.customer_scores AS %s', target, scores);
  EXECUTE format('CREATE OR REPLACE VIEW %I.customer_score_changes AS %s', target, changes);
END
$fn$;
REVOKE ALL ON FUNCTION :SCHEMA.refresh_score_views() FROM PUBLIC;
SELECT :SCHEMA.refresh_score_views();

CREATE OR REPLACE VIEW :SCHEMA.customer_score_history AS
SELECT d.run_id,
       d.customer_id,
       d.score,
       r.model_version,
       r.finished_at AS scored_at,
       r.model_name,
       width_bucket(d.score::float8, r.score_cuts) + 1 AS percentile,
       r.band_names[width_bucket(d.score::float8, r.band_bounds) + 1] AS band
FROM :SCHEMA.score_data d
JOIN :SCHEMA.score_runs r ON r.run_id = d.run_id
WHERE r.published_at IS NOT NULL;

-- For readers: every publication, newest last, without reading the ledger or scanning the history.
CREATE VIEW :SCHEMA.published_runs AS
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
       EXISTS (SELECT 1 FROM :SCHEMA.score_data k WHERE k.run_id = q.run_id) AS in_history
FROM :SCHEMA.score_publications q
JOIN :SCHEMA.score_runs r ON r.run_id = q.run_id;

-- For readers: the customers the published run of each model could not score, and why. The offending
-- value (score_rejects.detail) stays in the ledger: it is source data a reader may not be allowed to see.
CREATE VIEW :SCHEMA.customer_score_rejects AS
SELECT j.customer_id,
       j.reason,
       j.detail ->> 'column' AS rejected_column,
       j.run_id,
       p.model_name
FROM :SCHEMA.score_rejects j
JOIN :SCHEMA.published_run p ON p.run_id = j.run_id;

-- The contract, where `\d+` shows it.
COMMENT ON VIEW :SCHEMA.customer_scores IS 'The current scores: one row per scored customer of each model''s published run. Pick a model with WHERE model_name = ''…''. Changes at once (in one transaction) on publish or rollback; never a mix of two runs.';
COMMENT ON COLUMN :SCHEMA.customer_scores.customer_id IS 'The source''s key (the manifest''s source.key).';
COMMENT ON COLUMN :SCHEMA.customer_scores.score IS 'The model''s output (the manifest''s output.name), float4.';
COMMENT ON COLUMN :SCHEMA.customer_scores.model_version IS 'The manifest''s version of the model that scored the run.';
COMMENT ON COLUMN :SCHEMA.customer_scores.run_id IS 'The run that computed the score: see published_runs.';
COMMENT ON COLUMN :SCHEMA.customer_scores.scored_at IS 'When the run finished scoring (not when it was published: see published_runs.published_at).';
COMMENT ON COLUMN :SCHEMA.customer_scores.model_name IS 'The manifest''s name: one published run per model.';
COMMENT ON COLUMN :SCHEMA.customer_scores.percentile IS '1-100 within the run, 100 = highest scores: 1 + the number of the run''s 99 cut points (percentile_cont(0.01 … 0.99) of its scores) at or below the score. Equal scores share a percentile. NULL for a run scored before schema version 7 and no longer kept then.';
COMMENT ON COLUMN :SCHEMA.customer_scores.band IS 'The manifest''s output.bands name for the score (band i: bounds[i-1] <= score < bounds[i]); NULL when the model defines no bands.';

COMMENT ON VIEW :SCHEMA.customer_score_history IS 'Every score of every published run still kept in history (scorejob run --keep-runs), the published one included. Same columns as customer_scores.';
COMMENT ON COLUMN :SCHEMA.customer_score_history.run_id IS 'The run; see published_runs for when it was published.';
COMMENT ON COLUMN :SCHEMA.customer_score_history.customer_id IS 'The source''s key.';
COMMENT ON COLUMN :SCHEMA.customer_score_history.score IS 'The model''s output, float4.';
COMMENT ON COLUMN :SCHEMA.customer_score_history.model_version IS 'The manifest''s version of the model that scored the run.';
COMMENT ON COLUMN :SCHEMA.customer_score_history.scored_at IS 'When the run finished scoring.';
COMMENT ON COLUMN :SCHEMA.customer_score_history.model_name IS 'The manifest''s name.';
COMMENT ON COLUMN :SCHEMA.customer_score_history.percentile IS '1-100 within its run, 100 = highest (as customer_scores.percentile).';
COMMENT ON COLUMN :SCHEMA.customer_score_history.band IS 'The run''s band for the score (as customer_scores.band).';

COMMENT ON VIEW :SCHEMA.customer_score_changes IS 'Every customer of each model''s published run against the run published before it (published_run.previous_run_id; after a rollback: the run rolled back from). previous_* are NULL where the customer has no score in that run. Largest moves: WHERE NOT is_new ORDER BY delta DESC LIMIT n.';
COMMENT ON COLUMN :SCHEMA.customer_score_changes.customer_id IS 'The source''s key.';
COMMENT ON COLUMN :SCHEMA.customer_score_changes.score IS 'The score in the published run.';
COMMENT ON COLUMN :SCHEMA.customer_score_changes.previous_score IS 'The score in the previous run; NULL when the customer had none there.';
COMMENT ON COLUMN :SCHEMA.customer_score_changes.delta IS 'score - previous_score; NULL when is_new.';
COMMENT ON COLUMN :SCHEMA.customer_score_changes.is_new IS 'True when the customer has no score in the previous run (new, rejected then, or no previous run kept).';
COMMENT ON COLUMN :SCHEMA.customer_score_changes.percentile IS 'Percentile in the published run (as customer_scores.percentile).';
COMMENT ON COLUMN :SCHEMA.customer_score_changes.previous_percentile IS 'Percentile in the previous run.';
COMMENT ON COLUMN :SCHEMA.customer_score_changes.band IS 'Band in the published run.';
COMMENT ON COLUMN :SCHEMA.customer_score_changes.previous_band IS 'Band in the previous run (that run''s own bands).';
COMMENT ON COLUMN :SCHEMA.customer_score_changes.run_id IS 'The published run.';
COMMENT ON COLUMN :SCHEMA.customer_score_changes.previous_run_id IS 'The run published before it; NULL for a model''s first publication.';
COMMENT ON COLUMN :SCHEMA.customer_score_changes.model_name IS 'The manifest''s name.';
COMMENT ON COLUMN :SCHEMA.customer_score_changes.model_version IS 'Model version of the published run.';
COMMENT ON COLUMN :SCHEMA.customer_score_changes.previous_model_version IS 'Model version of the previous run.';

COMMENT ON VIEW :SCHEMA.published_runs IS 'Every publication (publish, publish --force, rollback) of every model, oldest first by publication_id; is_current marks the one readers see now. Answers in milliseconds: it reads the ledger of publications, not the scores.';
COMMENT ON COLUMN :SCHEMA.published_runs.publication_id IS 'Increasing with time.';
COMMENT ON COLUMN :SCHEMA.published_runs.model_name IS 'The manifest''s name.';
COMMENT ON COLUMN :SCHEMA.published_runs.run_id IS 'The run made current by this publication.';
COMMENT ON COLUMN :SCHEMA.published_runs.model_version IS 'The manifest''s version of the run''s model.';
COMMENT ON COLUMN :SCHEMA.published_runs.rows_scored IS 'Customers the run scored (rows in customer_scores for it).';
COMMENT ON COLUMN :SCHEMA.published_runs.rows_rejected IS 'Customers the run could not score: see customer_score_rejects.';
COMMENT ON COLUMN :SCHEMA.published_runs.started_at IS 'When the run started.';
COMMENT ON COLUMN :SCHEMA.published_runs.finished_at IS 'When the run finished scoring.';
COMMENT ON COLUMN :SCHEMA.published_runs.published_at IS 'When this publication committed: the freshness of customer_scores.';
COMMENT ON COLUMN :SCHEMA.published_runs.previous_run_id IS 'The run readers saw before this publication; NULL for the model''s first.';
COMMENT ON COLUMN :SCHEMA.published_runs.kind IS 'publish (a run), force (scorejob publish --force over a gate) or rollback (scorejob rollback).';
COMMENT ON COLUMN :SCHEMA.published_runs.published_by IS 'The operating-system user of the scorejob process (or the database role).';
COMMENT ON COLUMN :SCHEMA.published_runs.reason IS 'scorejob rollback --reason.';
COMMENT ON COLUMN :SCHEMA.published_runs.is_current IS 'The model''s latest publication: the run customer_scores shows.';
COMMENT ON COLUMN :SCHEMA.published_runs.in_history IS 'The run''s scores are still kept (customer_score_history, possible rollback target).';

COMMENT ON VIEW :SCHEMA.customer_score_rejects IS 'The customers each model''s published run could not score, with the reason. A source customer in neither customer_scores nor here was not in the source when the run read it.';
COMMENT ON COLUMN :SCHEMA.customer_score_rejects.customer_id IS 'The source''s key.';
COMMENT ON COLUMN :SCHEMA.customer_score_rejects.reason IS 'null_without_fill (a feature is NULL and has no fill), non_finite (a feature value is not finite), non_finite_score (the model gave no finite score).';
COMMENT ON COLUMN :SCHEMA.customer_score_rejects.rejected_column IS 'The source column that made the row unscorable.';
COMMENT ON COLUMN :SCHEMA.customer_score_rejects.run_id IS 'The published run.';
COMMENT ON COLUMN :SCHEMA.customer_score_rejects.model_name IS 'The manifest''s name.';

COMMENT ON TABLE :SCHEMA.published_run IS 'The pointer readers follow: one row per model. Prefer published_runs (it says when, which version, and what was before).';
COMMENT ON COLUMN :SCHEMA.published_run.model_name IS 'The manifest''s name.';
COMMENT ON COLUMN :SCHEMA.published_run.run_id IS 'The run customer_scores shows for the model.';
COMMENT ON COLUMN :SCHEMA.published_run.published_at IS 'When the pointer last moved (publish or rollback).';
COMMENT ON COLUMN :SCHEMA.published_run.previous_run_id IS 'The run it pointed at before (customer_score_changes compares with it).';
COMMENT ON TABLE :SCHEMA.score_publications IS 'Ledger: every move of a model''s pointer (who, when, from which run, to which, why). Readers: published_runs.';
