-- scorejob schema, version 13: an only_new run is a layer over a full run's table (issue 19).
-- Until version 12 an only_new run copied every score it carried forward into its own table: on 5M
-- customers with 1% new, that copy cost more than scoring everybody. Now its table holds only what it
-- wrote (the customers it rescored, and the scores it carries from an earlier layer), and every other
-- score of the run is read, through the views, from the table of the full run below it, minus the
-- customers the run does not carry (deleted from the source, or changed since: rescored, or rejected).
-- A layer is always one deep: an only_new run over a layered run lies on that run's full run, and copies
-- the few scores the run it starts from had written itself.
-- Readers wait for this transaction instead of deadlocking with it (as in 007): views first, then tables.
LOCK TABLE :SCHEMA.customer_scores, :SCHEMA.customer_score_history, :SCHEMA.customer_score_changes,
           :SCHEMA.published_runs, :SCHEMA.customer_score_rejects, :SCHEMA.customer_score_reasons IN ACCESS EXCLUSIVE MODE;

-- One row per layered run, written in the run's snapshot with its hidden customers (all or nothing; a
-- resume that finds the row carries nothing again). No foreign key: the row is written in a repeatable-
-- read transaction that must not lock score_runs rows other sessions have changed since its snapshot.
CREATE TABLE :SCHEMA.score_layers (
  run_id        bigint PRIMARY KEY,
  -- The full run whose table holds the carried scores; kept by retention while a kept run lies on it.
  under_run_id  bigint NOT NULL,
  rows_carried  bigint NOT NULL,
  created_at    timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX score_layers_under_idx ON :SCHEMA.score_layers (under_run_id);

-- The customers of the run below that a layered run does not carry: read as "not in this run".
CREATE TABLE :SCHEMA.score_layer_hidden (
  run_id       bigint NOT NULL,
  customer_id  bigint NOT NULL,
  PRIMARY KEY (run_id, customer_id)
);

-- The histogram of a full run's scores (src/stats/scoreCuts.ts: 2^20 bins of their float32 order keys),
-- its non-empty bins only: the percentiles of a layer on the run start from it, minus the hidden scores,
-- plus the layer's own, instead of reading every carried score. Dropped with the run's scores.
CREATE TABLE :SCHEMA.score_histograms (
  run_id  bigint PRIMARY KEY,
  bins    integer[] NOT NULL,
  counts  integer[] NOT NULL
);

COMMENT ON TABLE :SCHEMA.score_layers IS 'only_new runs (version 13 on): the scores the run carries forward stay in the table of under_run_id, a full run, minus score_layer_hidden.';
COMMENT ON TABLE :SCHEMA.score_layer_hidden IS 'Per layered run: the customers of its under_run_id it does not carry (deleted from the source, or rescored).';

/*
 * customer_scores and customer_score_changes as in version 10, read through layers: a model's run is
 * its own partition UNION ALL (for a layered run) the partition of the run below it minus the hidden
 * customers. Every run id is still an init plan (for a full run the layer's is NULL and prunes every
 * partition), so the executor reads only the partitions it needs and `customer_id = …` stays a probe of each.
 */
CREATE OR REPLACE FUNCTION :SCHEMA.refresh_score_views() RETURNS void LANGUAGE plpgsql
  SET search_path = :SCHEMA
AS $fn$
DECLARE
  target text := current_schema();
  scores text;
  changes text;
  -- A run's scores (customer_id, score) through its layer; $RUN is the run's id (an expression). In
  -- format() below, %1$L is the model and %2$I the schema.
  run_rows text := '(SELECT d.customer_id, d.score FROM %2$I.score_data d WHERE d.run_id = $RUN'
                   ' UNION ALL SELECT b.customer_id, b.score FROM %2$I.score_data b'
                   ' WHERE b.run_id = (SELECT l.under_run_id FROM %2$I.score_layers l WHERE l.run_id = $RUN)'
                   ' AND NOT EXISTS (SELECT 1 FROM %2$I.score_layer_hidden h WHERE h.run_id = $RUN AND h.customer_id = b.customer_id))';
  cur text := '(SELECT p.run_id FROM %2$I.published_run p WHERE p.model_name = %1$L)';
  prev text := '(SELECT p.previous_run_id FROM %2$I.published_run p WHERE p.model_name = %1$L)';
BEGIN
  SELECT string_agg(format(
           'SELECT d.customer_id, d.score, r.model_version, COALESCE(d.scored_run_id, d.run_id) AS run_id,'
           ' COALESCE(o.finished_at, r.finished_at) AS scored_at, %1$L::text AS model_name,'
           ' width_bucket(d.score::float8, r.score_cuts) + 1 AS percentile,'
           ' r.band_names[width_bucket(d.score::float8, r.band_bounds) + 1] AS band'
           ' FROM %2$I.score_data d JOIN %2$I.score_runs r ON r.run_id = d.run_id'
           ' LEFT JOIN %2$I.score_runs o ON o.run_id = d.scored_run_id'
           ' WHERE d.run_id = ' || cur ||
           ' UNION ALL '
           'SELECT b.customer_id, b.score, r.model_version, COALESCE(b.scored_run_id, b.run_id) AS run_id,'
           ' COALESCE(o.finished_at, u.finished_at) AS scored_at, %1$L::text AS model_name,'
           ' width_bucket(b.score::float8, r.score_cuts) + 1 AS percentile,'
           ' r.band_names[width_bucket(b.score::float8, r.band_bounds) + 1] AS band'
           ' FROM %2$I.score_data b JOIN %2$I.score_runs u ON u.run_id = b.run_id'
           ' JOIN %2$I.score_runs r ON r.run_id = ' || cur ||
           ' LEFT JOIN %2$I.score_runs o ON o.run_id = b.scored_run_id'
           ' WHERE b.run_id = (SELECT l.under_run_id FROM %2$I.score_layers l WHERE l.run_id = ' || cur || ')'
           ' AND NOT EXISTS (SELECT 1 FROM %2$I.score_layer_hidden h WHERE h.run_id = ' || cur || ' AND h.customer_id = b.customer_id)',
           m.model_name, target), ' UNION ALL ' ORDER BY m.model_name),
         string_agg(format(
           'SELECT d.customer_id, d.score, o.score AS previous_score, d.score - o.score AS delta, o.customer_id IS NULL AS is_new,'
           ' width_bucket(d.score::float8, r.score_cuts) + 1 AS percentile,'
           ' width_bucket(o.score::float8, ro.score_cuts) + 1 AS previous_percentile,'
           ' r.band_names[width_bucket(d.score::float8, r.band_bounds) + 1] AS band,'
           ' ro.band_names[width_bucket(o.score::float8, ro.band_bounds) + 1] AS previous_band,'
           ' r.run_id, ro.run_id AS previous_run_id, %1$L::text AS model_name, r.model_version, ro.model_version AS previous_model_version'
           ' FROM ' || replace(run_rows, '$RUN', cur) || ' d' ||
           ' JOIN %2$I.score_runs r ON r.run_id = ' || cur ||
           ' LEFT JOIN %2$I.score_runs ro ON ro.run_id = ' || prev ||
           ' LEFT JOIN ' || replace(run_rows, '$RUN', prev) || ' o ON o.customer_id = d.customer_id',
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

-- History: a layered run's scores are its own rows and the carried ones below it, listed under the run.
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
WHERE r.published_at IS NOT NULL
UNION ALL
SELECT l.run_id,
       b.customer_id,
       b.score,
       r.model_version,
       r.finished_at AS scored_at,
       r.model_name,
       width_bucket(b.score::float8, r.score_cuts) + 1 AS percentile,
       r.band_names[width_bucket(b.score::float8, r.band_bounds) + 1] AS band
FROM :SCHEMA.score_layers l
JOIN :SCHEMA.score_runs r ON r.run_id = l.run_id
JOIN :SCHEMA.score_data b ON b.run_id = l.under_run_id
WHERE r.published_at IS NOT NULL
  AND NOT EXISTS (SELECT 1 FROM :SCHEMA.score_layer_hidden h WHERE h.run_id = l.run_id AND h.customer_id = b.customer_id);

-- in_history: a layered run that rescored nobody has no row of its own and is still in history.
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
         OR EXISTS (SELECT 1 FROM :SCHEMA.score_layers y JOIN :SCHEMA.score_data k ON k.run_id = y.under_run_id WHERE y.run_id = q.run_id) AS in_history
FROM :SCHEMA.score_publications q
JOIN :SCHEMA.score_runs r ON r.run_id = q.run_id;

COMMENT ON COLUMN :SCHEMA.score_runs.rows_carried IS 'only_new runs: the scores carried forward (from version 13 on they stay in the table of score_layers.under_run_id).';
