-- scorejob schema, version 6: several models in one schema. Each model (the manifest's `name`) has its
-- own published run; readers pick one with `WHERE model_name = '…'`.
--
-- The migration keeps the published run and history of the schema's model: readers wait for this
-- transaction (a few ms) and then see the same rows, now with a model_name.

-- Readers wait for this transaction instead of deadlocking with it: a reader locks the view first and
-- the tables behind it next, so this takes the views first (LOCK on a view locks what it reads too).
LOCK TABLE :SCHEMA.customer_scores, :SCHEMA.customer_score_history IN ACCESS EXCLUSIVE MODE;

-- The models that publish into this schema. A model is registered by its first (non-dry) run; the
-- customer_scores view has one branch per registered model (see refresh_score_views).
CREATE TABLE :SCHEMA.models (
  model_name     text PRIMARY KEY,
  registered_at  timestamptz NOT NULL DEFAULT now()
);
INSERT INTO :SCHEMA.models (model_name, registered_at)
SELECT model_name, min(started_at) FROM :SCHEMA.score_runs GROUP BY model_name;

-- The pointer: one row per model (was: exactly one row).
ALTER TABLE :SCHEMA.published_run ADD COLUMN model_name text;
UPDATE :SCHEMA.published_run p SET model_name = r.model_name FROM :SCHEMA.score_runs r WHERE r.run_id = p.run_id;
DELETE FROM :SCHEMA.published_run WHERE run_id IS NULL;
ALTER TABLE :SCHEMA.published_run DROP COLUMN only_row;
ALTER TABLE :SCHEMA.published_run
  ALTER COLUMN model_name SET NOT NULL,
  ALTER COLUMN run_id SET NOT NULL,
  ADD PRIMARY KEY (model_name),
  ADD FOREIGN KEY (model_name) REFERENCES :SCHEMA.models (model_name);

/*
 * customer_scores as one UNION ALL branch per model, each with the model's name as a constant and
 * `run_id = (SELECT run_id FROM published_run WHERE model_name = <that name>)`:
 * - `WHERE model_name = 'x'` removes every other branch at plan time (a constant compared with a constant);
 * - in the branch left, the sub-select is an init plan, so the executor prunes every partition of
 *   score_data but the model's published run, and `customer_id = …` is one probe of that partition's key.
 * (A join of score_data with published_run cannot prune: PostgreSQL prunes partitions on a parameter,
 * not on `run_id = ANY (array of the published runs)`, so every kept run of every model would be read.)
 * Names enter as literals through format('%L') and identifiers through format('%I'): a view has no
 * parameters. The job calls this when it registers a model, before that model's first run is planned.
 */
CREATE FUNCTION :SCHEMA.refresh_score_views() RETURNS void LANGUAGE plpgsql
  -- Pinned to this schema: `models` below and current_schema() are this schema's, whoever calls.
  SET search_path = :SCHEMA
AS $fn$
DECLARE
  target text := current_schema();
  body text;
BEGIN
  SELECT string_agg(format(
           'SELECT d.customer_id, d.score, r.model_version, d.run_id, r.finished_at AS scored_at, %1$L::text AS model_name'
           ' FROM %2$I.score_data d JOIN %2$I.score_runs r ON r.run_id = d.run_id'
           ' WHERE d.run_id = (SELECT p.run_id FROM %2$I.published_run p WHERE p.model_name = %1$L)',
           m.model_name, target), ' UNION ALL ' ORDER BY m.model_name)
    INTO body
    FROM (SELECT model_name FROM models) m;
  IF body IS NULL THEN
    body := format('SELECT d.customer_id, d.score, r.model_version, d.run_id, r.finished_at AS scored_at, NULL::text AS model_name'
                   ' FROM %1$I.score_data d JOIN %1$I.score_runs r ON r.run_id = d.run_id WHERE false', target);
  END IF;
  EXECUTE format('CREATE OR REPLACE VIEW %I.customer_scores AS %s', target, body);
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
       r.model_name
FROM :SCHEMA.score_data d
JOIN :SCHEMA.score_runs r ON r.run_id = d.run_id
WHERE r.published_at IS NOT NULL;
