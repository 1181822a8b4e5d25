-- scorejob schema, version 17: the reader views mean the same whatever sequence of runs, layers, challenger
-- publishes, rollbacks and retires led to them (docs/downstream-semantics.md is the written contract).
-- - customer_score_changes compares with a publication's comparison run (compare_run_id), chosen when it is
--   published: for an only-new layer the run readers saw before the full run it lies on, so the view keeps
--   meaning "since last month"; it also lists the customers the comparison run had and the published run has
--   not (is_removed, score NULL); customer_score_changes_since(run) gives the same against any kept run.
-- - customer_score_reasons reads each customer's reasons from the run that scored that customer, so a
--   carried customer keeps its run's reasons.
-- - published_runs says what a publication shows: rows published / scored / carried / with reasons, and its
--   kind in a reader's words (full, only-new, challenger, rollback, retire).
-- Readers wait for this transaction instead of deadlocking with it (as in 007): views first, then tables.
LOCK TABLE :SCHEMA.customer_scores, :SCHEMA.customer_score_history, :SCHEMA.customer_score_changes,
           :SCHEMA.published_runs, :SCHEMA.customer_score_rejects, :SCHEMA.customer_score_reasons IN ACCESS EXCLUSIVE MODE;

ALTER TABLE :SCHEMA.published_run ADD COLUMN compare_run_id bigint;
UPDATE :SCHEMA.published_run SET compare_run_id = previous_run_id;
ALTER TABLE :SCHEMA.score_publications
  ADD COLUMN compare_run_id bigint,
  ADD COLUMN rows_published bigint,
  ADD COLUMN rows_with_reasons bigint,
  -- The full run an only-new run lies on: kept here because retention drops the layer's own row.
  ADD COLUMN under_run_id bigint;
UPDATE :SCHEMA.score_publications q SET compare_run_id = q.from_run_id,
       rows_published = CASE WHEN q.kind = 'retire' THEN 0 ELSE r.rows_scored + r.rows_carried END
  FROM :SCHEMA.score_runs r WHERE r.run_id = q.run_id;

UPDATE :SCHEMA.score_publications q SET under_run_id = l.under_run_id FROM :SCHEMA.score_layers l WHERE l.run_id = q.run_id;

COMMENT ON COLUMN :SCHEMA.published_run.compare_run_id IS 'The run customer_score_changes compares with (docs/downstream-semantics.md).';
COMMENT ON COLUMN :SCHEMA.score_publications.compare_run_id IS 'The run customer_score_changes compared with while this publication was current.';
COMMENT ON COLUMN :SCHEMA.score_publications.rows_published IS 'Rows customer_scores showed for the model after this publication.';
COMMENT ON COLUMN :SCHEMA.score_publications.under_run_id IS 'only-new runs: the full run the published run lies on (score_layers.under_run_id, kept after retention drops the layer).';
COMMENT ON COLUMN :SCHEMA.score_publications.rows_with_reasons IS 'Customers with reasons in customer_score_reasons after this publication; NULL before schema version 17.';

/*
 * The SQL of a model's rows of customer_score_changes, with the published run and the comparison run as
 * expressions (init plans in the views, literals in customer_score_changes_since): one branch for the
 * published run's customers, one for the comparison run's customers it does not have. Both runs are read
 * through their layers (sql/013_layers.sql), and `customer_id = …` stays a probe of each partition.
 */
CREATE FUNCTION :SCHEMA.score_changes_sql(model text, cur text, cmp text) RETURNS text LANGUAGE plpgsql STABLE
AS $fn$
DECLARE
  target text := current_schema();
  run_rows text := '(SELECT d.customer_id, d.score FROM %2$I.score_data d WHERE d.run_id = $RUN'
                   ' UNION ALL SELECT b.customer_id, b.score FROM %2$I.score_data b'
                   ' WHERE b.run_id = (SELECT l.under_run_id FROM %2$I.score_layers l WHERE l.run_id = $RUN)'
                   ' AND NOT EXISTS (SELECT 1 FROM %2$I.score_layer_hidden h WHERE h.run_id = $RUN AND h.customer_id = b.customer_id))';
BEGIN
  RETURN format(
    'SELECT d.customer_id, d.score, o.score AS previous_score, d.score - o.score AS delta, o.customer_id IS NULL AS is_new,'
    ' width_bucket(d.score::float8, r.score_cuts) + 1 AS percentile,'
    ' width_bucket(o.score::float8, ro.score_cuts) + 1 AS previous_percentile,'
    ' r.band_names[width_bucket(d.score::float8, r.band_bounds) + 1] AS band,'
    ' ro.band_names[width_bucket(o.score::float8, ro.band_bounds) + 1] AS previous_band,'
    ' r.run_id, ro.run_id AS previous_run_id, %1$L::text AS model_name, r.model_version, ro.model_version AS previous_model_version,'
    ' false AS is_removed'
    ' FROM ' || replace(run_rows, '$RUN', cur) || ' d' ||
    ' JOIN %2$I.score_runs r ON r.run_id = ' || cur ||
    ' LEFT JOIN %2$I.score_runs ro ON ro.run_id = ' || cmp ||
    ' LEFT JOIN ' || replace(run_rows, '$RUN', cmp) || ' o ON o.customer_id = d.customer_id'
    ' UNION ALL '
    'SELECT o.customer_id, NULL::real AS score, o.score AS previous_score, NULL::real AS delta, NULL::boolean AS is_new,'
    ' NULL::integer AS percentile, width_bucket(o.score::float8, ro.score_cuts) + 1 AS previous_percentile,'
    ' NULL::text AS band, ro.band_names[width_bucket(o.score::float8, ro.band_bounds) + 1] AS previous_band,'
    ' r.run_id, ro.run_id AS previous_run_id, %1$L::text AS model_name, r.model_version, ro.model_version AS previous_model_version,'
    ' true AS is_removed'
    ' FROM ' || replace(run_rows, '$RUN', cmp) || ' o' ||
    ' JOIN %2$I.score_runs r ON r.run_id = ' || cur ||
    ' JOIN %2$I.score_runs ro ON ro.run_id = ' || cmp ||
    ' WHERE NOT EXISTS (SELECT 1 FROM %2$I.score_data x WHERE x.run_id = ' || cur || ' AND x.customer_id = o.customer_id)'
    ' AND NOT EXISTS (SELECT 1 FROM %2$I.score_data y WHERE y.run_id = (SELECT l.under_run_id FROM %2$I.score_layers l WHERE l.run_id = ' || cur || ')'
    '  AND y.customer_id = o.customer_id'
    '  AND NOT EXISTS (SELECT 1 FROM %2$I.score_layer_hidden h WHERE h.run_id = ' || cur || ' AND h.customer_id = y.customer_id))',
    model, target);
END
$fn$;
REVOKE ALL ON FUNCTION :SCHEMA.score_changes_sql(text, text, text) FROM PUBLIC;

/*
 * A model's rows of customer_score_reasons: each customer's reasons come from the run that scored it. The
 * published run's own rows (its partition of score_reasons), the rows a layer copied from an earlier layer
 * (that layer's partition, found by scored_run_id; a probe per row), and the rows it carries from the
 * full run below it (that run's partition, minus the hidden customers).
 */
CREATE FUNCTION :SCHEMA.score_reasons_sql(model text, cur text) RETURNS text LANGUAGE plpgsql STABLE
AS $fn$
DECLARE
  target text := current_schema();
  cols text := 'SELECT s.customer_id, u.rank::integer AS rank, sr.params -> ''reasons'' -> ''features'' ->> (u.feature - 1) AS feature,'
               ' u.contribution, sr.params -> ''reasons'' ->> ''space'' AS measured_in, s.run_id, %1$L::text AS model_name';
  unnest text := ' JOIN %2$I.score_runs sr ON sr.run_id = s.run_id'
                 ' CROSS JOIN LATERAL unnest(s.features, s.contributions) WITH ORDINALITY AS u(feature, contribution, rank)';
BEGIN
  RETURN format(
    cols || ' FROM %2$I.score_reasons s' || unnest || ' WHERE s.run_id = ' || cur ||
    ' UNION ALL ' ||
    cols || ' FROM %2$I.score_data d JOIN %2$I.score_reasons s ON s.run_id = d.scored_run_id AND s.customer_id = d.customer_id' || unnest ||
    ' WHERE d.run_id = ' || cur || ' AND d.scored_run_id IS NOT NULL'
    ' UNION ALL ' ||
    cols || ' FROM %2$I.score_reasons s' || unnest ||
    ' WHERE s.run_id = (SELECT l.under_run_id FROM %2$I.score_layers l WHERE l.run_id = ' || cur || ')'
    ' AND NOT EXISTS (SELECT 1 FROM %2$I.score_layer_hidden h WHERE h.run_id = ' || cur || ' AND h.customer_id = s.customer_id)',
    model, target);
END
$fn$;
REVOKE ALL ON FUNCTION :SCHEMA.score_reasons_sql(text, text) FROM PUBLIC;

-- customer_scores as in 013; customer_score_changes against compare_run_id, with removed customers;
-- customer_score_reasons per model, from the run that scored each customer.
CREATE OR REPLACE FUNCTION :SCHEMA.refresh_score_views() RETURNS void LANGUAGE plpgsql
  SET search_path = :SCHEMA
AS $fn$
DECLARE
  target text := current_schema();
  scores text;
  changes text;
  reasons text;
  cur text := '(SELECT p.run_id FROM %2$I.published_run p WHERE p.model_name = %1$L)';
  cmp text := '(SELECT p.compare_run_id FROM %2$I.published_run p WHERE p.model_name = %1$L)';
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
         string_agg(score_changes_sql(m.model_name, format(cur, m.model_name, target), format(cmp, m.model_name, target)), ' UNION ALL ' ORDER BY m.model_name),
         string_agg(score_reasons_sql(m.model_name, format(cur, m.model_name, target)), ' UNION ALL ' ORDER BY m.model_name)
    INTO scores, changes, reasons
    FROM (SELECT model_name FROM models) m;
  IF scores IS NULL THEN
    scores := format('SELECT d.customer_id, d.score, r.model_version, d.run_id, r.finished_at AS scored_at, NULL::text AS model_name,'
                     ' NULL::integer AS percentile, NULL::text AS band'
                     ' FROM %1$I.score_data d JOIN %1$I.score_runs r ON r.run_id = d.run_id WHERE false', target);
    changes := format('SELECT d.customer_id, d.score, d.score AS previous_score, d.score AS delta, NULL::boolean AS is_new,'
                      ' NULL::integer AS percentile, NULL::integer AS previous_percentile, NULL::text AS band, NULL::text AS previous_band,'
                      ' d.run_id, NULL::bigint AS previous_run_id, NULL::text AS model_name, r.model_version, r.model_version AS previous_model_version,'
                      ' NULL::boolean AS is_removed'
                      ' FROM %1$I.score_data d JOIN %1$I.score_runs r ON r.run_id = d.run_id WHERE false', target);
    reasons := format('SELECT s.customer_id, NULL::integer AS rank, NULL::text AS feature, NULL::real AS contribution, NULL::text AS measured_in,'
                      ' s.run_id, NULL::text AS model_name FROM %1$I.score_reasons s WHERE false', target);
  END IF;
  EXECUTE format('CREATE OR REPLACE VIEW %I.customer_scores AS %s', target, scores);
  EXECUTE format('CREATE OR REPLACE VIEW %I.customer_score_changes AS %s', target, changes);
  EXECUTE format('CREATE OR REPLACE VIEW %I.customer_score_reasons AS %s', target, reasons);
END
$fn$;
REVOKE ALL ON FUNCTION :SCHEMA.refresh_score_views() FROM PUBLIC;
SELECT :SCHEMA.refresh_score_views();

/*
 * customer_score_changes against any kept run the reader names: the model's published run (the model of
 * `against`) compared with `against`, same columns and rules as the view. Runs with its owner's rights (as
 * the views do), so a reader needs EXECUTE only (sql/roles.sql). A run no longer kept is an error naming
 * the kept runs' view, not an empty answer.
 */
CREATE FUNCTION :SCHEMA.customer_score_changes_since(against bigint) RETURNS SETOF :SCHEMA.customer_score_changes
  LANGUAGE plpgsql STABLE SECURITY DEFINER SET search_path = :SCHEMA
AS $fn$
DECLARE
  model text;
BEGIN
  SELECT r.model_name INTO model FROM score_runs r WHERE r.run_id = against;
  IF model IS NULL THEN
    RAISE EXCEPTION 'run % is not a run of %.score_runs', against, current_schema() USING ERRCODE = 'invalid_parameter_value';
  END IF;
  IF NOT EXISTS (SELECT 1 FROM score_data k WHERE k.run_id = against)
     AND NOT EXISTS (SELECT 1 FROM score_layers y JOIN score_data k ON k.run_id = y.under_run_id WHERE y.run_id = against) THEN
    RAISE EXCEPTION 'run % is not kept (its scores were dropped by retention, or it scored nobody): pick a run with in_history in %.published_runs', against, current_schema()
      USING ERRCODE = 'invalid_parameter_value';
  END IF;
  RETURN QUERY EXECUTE score_changes_sql(model, format('(SELECT p.run_id FROM %I.published_run p WHERE p.model_name = %L)', current_schema(), model), against::text);
END
$fn$;
REVOKE ALL ON FUNCTION :SCHEMA.customer_score_changes_since(bigint) FROM PUBLIC;

-- As in 015, with what a publication shows appended, and kind in a reader's words.
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
       CASE WHEN q.kind IN ('rollback', 'retire', 'challenger') THEN q.kind
            WHEN r.kind = 'only_new' THEN 'only-new'
            WHEN r.kind = 'challenger' THEN 'challenger'
            ELSE 'full' END AS kind,
       COALESCE(q.os_user, q.db_user) AS published_by,
       q.reason,
       q.kind <> 'retire'
         AND q.publication_id = (SELECT max(l.publication_id) FROM :SCHEMA.score_publications l WHERE l.model_name = q.model_name) AS is_current,
       EXISTS (SELECT 1 FROM :SCHEMA.score_data k WHERE k.run_id = q.run_id)
         OR EXISTS (SELECT 1 FROM :SCHEMA.score_layers y JOIN :SCHEMA.score_data k ON k.run_id = y.under_run_id WHERE y.run_id = q.run_id) AS in_history,
       q.forced,
       q.rows_published,
       r.rows_carried,
       q.rows_with_reasons,
       q.rows_with_reasons < (SELECT b.rows_with_reasons FROM :SCHEMA.score_publications b
                               WHERE b.model_name = q.model_name AND b.publication_id < q.publication_id
                               ORDER BY b.publication_id DESC LIMIT 1) AS fewer_reasons,
       q.compare_run_id,
       COALESCE(c.params -> 'challenger' ->> 'name', q.model_name) AS scored_by_model,
       r.champion_run_id AS challenger_of_run_id
FROM :SCHEMA.score_publications q
JOIN :SCHEMA.score_runs r ON r.run_id = q.run_id
LEFT JOIN :SCHEMA.score_runs c ON c.run_id = r.champion_run_id;

COMMENT ON VIEW :SCHEMA.customer_score_changes IS 'What changed since last month, per model: the published run''s customers against its comparison run (published_runs.compare_run_id: for a full run the publication before it, for an only-new layer the publication before the full run it lies on, after a rollback the run rolled back from), plus the comparison run''s customers the published run no longer has (is_removed, score NULL). customer_score_changes_since(run_id) gives the same against any kept run. See docs/downstream-semantics.md.';
COMMENT ON COLUMN :SCHEMA.customer_score_changes.previous_run_id IS 'The comparison run (published_runs.compare_run_id); NULL when there is none (a model''s first publication, or the first after a retire).';
COMMENT ON COLUMN :SCHEMA.customer_score_changes.is_new IS 'True when the customer has no score in the comparison run (new, rejected then, or the comparison run is no longer kept); NULL when is_removed, so WHERE NOT is_new ORDER BY delta DESC still lists moves only.';
COMMENT ON COLUMN :SCHEMA.customer_score_changes.is_removed IS 'True for a customer the comparison run scored and the published run does not (deleted from the source, rejected now, or not in the run rolled back to): score, delta, percentile and band are NULL.';
COMMENT ON COLUMN :SCHEMA.customer_score_changes.score IS 'The score in the published run; NULL when is_removed.';
COMMENT ON VIEW :SCHEMA.customer_score_reasons IS 'Why each customer of each model''s published run scored what it did, from the run that scored that customer (run_id: for a customer an only-new run carried, the run that scored it then). None for customers whose run was scored without --reasons (a challenger never has reasons); published_runs.rows_with_reasons counts the customers that have them.';
COMMENT ON COLUMN :SCHEMA.published_runs.kind IS 'full (a full run), only-new (an only-new layer), challenger (publish --challenger), rollback, retire. forced says whether --force took it past a gate.';
COMMENT ON COLUMN :SCHEMA.published_runs.rows_scored IS 'Customers the run itself scored (for an only-new run: the new and changed ones); rows_published counts what customer_scores shows.';
COMMENT ON COLUMN :SCHEMA.published_runs.rows_published IS 'Rows customer_scores shows for the model after this publication (0 for a retire): rows_scored + rows_carried of the run.';
COMMENT ON COLUMN :SCHEMA.published_runs.rows_carried IS 'only-new runs: the scores carried from earlier runs; 0 otherwise.';
COMMENT ON COLUMN :SCHEMA.published_runs.rows_with_reasons IS 'Customers with reasons in customer_score_reasons after this publication; NULL for publications before schema version 17.';
COMMENT ON COLUMN :SCHEMA.published_runs.fewer_reasons IS 'True when this publication left fewer customers with reasons than the publication before it.';
COMMENT ON COLUMN :SCHEMA.published_runs.compare_run_id IS 'The run customer_score_changes compares with while this publication is current.';
COMMENT ON COLUMN :SCHEMA.published_runs.scored_by_model IS 'The manifest name of the model that scored the run (for a challenger: the challenger''s, model_name is the slot it fills).';
COMMENT ON COLUMN :SCHEMA.published_runs.challenger_of_run_id IS 'For a challenger''s run: the champion run it was scored beside.';
