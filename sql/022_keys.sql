-- scorejob schema, version 22: uuid and text customer keys (docs/models.md "Source keys").
-- - score_chunks keeps a uuid or text key's chunk bounds as the key's text (key_lo_text, key_hi_text);
--   integer keys keep theirs in key_lo / key_hi. A bound is cast back to the key's type where it is compared,
--   in the key column's own collation.
-- - One key type per schema: customer_id of the score tables (and so of every reader view) has the type of
--   the source key (bigint, uuid or text). set_key_type changes it while the schema holds no run: the run
--   that starts first in a schema gives it its key type (src/ledger/keyTypes.ts).
ALTER TABLE :SCHEMA.score_chunks ADD COLUMN key_lo_text text, ADD COLUMN key_hi_text text;
COMMENT ON COLUMN :SCHEMA.score_chunks.key_lo_text IS 'uuid and text keys: the chunk''s lower bound (exclusive) as text; NULL for integer keys (key_lo) and for the first chunk.';
COMMENT ON COLUMN :SCHEMA.score_chunks.key_hi_text IS 'uuid and text keys: the chunk''s upper bound (inclusive) as text; NULL for integer keys (key_hi) and for the last chunk.';

-- A grantee of an aclitem as SQL: PUBLIC for 0, else the role's quoted name.
CREATE FUNCTION :SCHEMA.grantee_sql(grantee oid) RETURNS text LANGUAGE sql STABLE
AS $fn$ SELECT CASE WHEN grantee = 0 THEN 'PUBLIC' ELSE quote_ident(pg_get_userbyid(grantee)) END $fn$;
REVOKE ALL ON FUNCTION :SCHEMA.grantee_sql(oid) FROM PUBLIC;

/*
 * Gives customer_id of every score table of the schema the type `key_type` (bigint, uuid or text), while
 * the schema holds no run. The reader views select customer_id from those tables, so they are dropped
 * and created again from their own definitions (pg_get_viewdef), with their comments, their columns'
 * comments, their options and their grants, and so are the functions that return a view's rows; all in
 * the caller's transaction. A view of another schema built on these views stops it (nothing but the
 * schema's own objects is dropped).
 */
CREATE FUNCTION :SCHEMA.set_key_type(key_type text) RETURNS void LANGUAGE plpgsql
  SET search_path = :SCHEMA
AS $fn$
DECLARE
  target text := current_schema();
  now_type text;
  views jsonb;
  funcs jsonb;
  v jsonb;
  t record;
  left_over jsonb;
  pending jsonb;
  progress boolean;
  c jsonb;
BEGIN
  IF key_type NOT IN ('bigint', 'uuid', 'text') THEN
    RAISE EXCEPTION 'key type % is not bigint, uuid or text', key_type USING ERRCODE = 'invalid_parameter_value';
  END IF;
  -- No run may be created while the types change (createRun inserts into score_runs).
  LOCK TABLE score_runs IN SHARE ROW EXCLUSIVE MODE;
  SELECT format_type(a.atttypid, a.atttypmod) INTO now_type
    FROM pg_attribute a WHERE a.attrelid = 'score_data'::regclass AND a.attname = 'customer_id';
  IF now_type = key_type THEN
    RETURN;
  END IF;
  IF EXISTS (SELECT 1 FROM score_runs) THEN
    RAISE EXCEPTION 'schema % holds runs keyed by %: its keys cannot become %', target, now_type, key_type
      USING ERRCODE = 'object_not_in_prerequisite_state';
  END IF;

  SELECT jsonb_agg(jsonb_build_object(
           'name', c.relname, 'def', pg_get_viewdef(c.oid), 'comment', obj_description(c.oid, 'pg_class'),
           'options', array_to_string(c.reloptions, ', '),
           'columns', (SELECT COALESCE(jsonb_agg(jsonb_build_object('name', a.attname, 'comment', col_description(c.oid, a.attnum))), '[]')
                         FROM pg_attribute a WHERE a.attrelid = c.oid AND a.attnum > 0 AND col_description(c.oid, a.attnum) IS NOT NULL),
           'grants', (SELECT COALESCE(jsonb_agg(jsonb_build_object('grantee', x.grantee, 'privilege', x.privilege_type)), '[]')
                        FROM aclexplode(c.relacl) x WHERE x.grantee <> c.relowner)) ORDER BY c.oid)
    INTO views
    FROM pg_class c WHERE c.relnamespace = target::regnamespace AND c.relkind = 'v';
  SELECT jsonb_agg(jsonb_build_object(
           'sig', p.oid::regprocedure::text, 'def', pg_get_functiondef(p.oid), 'comment', obj_description(p.oid, 'pg_proc'),
           'public', p.proacl IS NULL,
           'grants', (SELECT COALESCE(jsonb_agg(jsonb_build_object('grantee', x.grantee, 'privilege', x.privilege_type)), '[]')
                        FROM aclexplode(p.proacl) x WHERE x.grantee <> p.proowner)))
    INTO funcs
    FROM pg_proc p
   WHERE p.oid IN (SELECT d.objid FROM pg_depend d JOIN pg_class c ON d.refobjid = c.reltype
                    WHERE d.classid = 'pg_proc'::regclass AND d.refclassid = 'pg_type'::regclass
                      AND c.relnamespace = target::regnamespace AND c.relkind = 'v');

  FOR v IN SELECT * FROM jsonb_array_elements(COALESCE(funcs, '[]')) LOOP
    EXECUTE format('DROP FUNCTION %s', v ->> 'sig');
  END LOOP;
  IF views IS NOT NULL THEN
    BEGIN
      EXECUTE 'DROP VIEW ' || (SELECT string_agg(format('%I.%I', target, e ->> 'name'), ', ') FROM jsonb_array_elements(views) e);
    EXCEPTION WHEN dependent_objects_still_exist THEN
      RAISE EXCEPTION 'cannot change the key type of schema %: an object outside it is built on its views (%)', target, SQLERRM
        USING ERRCODE = 'dependent_objects_still_exist';
    END;
  END IF;

  FOR t IN SELECT c.relname FROM pg_class c JOIN pg_attribute a ON a.attrelid = c.oid AND a.attname = 'customer_id' AND NOT a.attisdropped
            WHERE c.relnamespace = target::regnamespace AND c.relkind IN ('r', 'p') AND NOT c.relispartition LOOP
    EXECUTE format('ALTER TABLE %I.%I ALTER COLUMN customer_id TYPE %s USING customer_id::text::%s', target, t.relname, key_type, key_type);
  END LOOP;

  -- Views built on views: a view whose base is not back yet waits for the next round.
  left_over := COALESCE(views, '[]');
  WHILE jsonb_array_length(left_over) > 0 LOOP
    pending := left_over;
    left_over := '[]';
    progress := false;
    FOR v IN SELECT * FROM jsonb_array_elements(pending) LOOP
      BEGIN
        EXECUTE format('CREATE VIEW %I.%I%s AS %s', target, v ->> 'name',
                       CASE WHEN COALESCE(v ->> 'options', '') = '' THEN '' ELSE ' WITH (' || (v ->> 'options') || ')' END, v ->> 'def');
        progress := true;
      EXCEPTION WHEN undefined_table THEN
        left_over := left_over || jsonb_build_array(v);
      END;
    END LOOP;
    IF NOT progress THEN
      RAISE EXCEPTION 'cannot create view %.% again', target, left_over -> 0 ->> 'name';
    END IF;
  END LOOP;
  FOR v IN SELECT * FROM jsonb_array_elements(COALESCE(views, '[]')) LOOP
    EXECUTE format('COMMENT ON VIEW %I.%I IS %L', target, v ->> 'name', v ->> 'comment');
    FOR c IN SELECT * FROM jsonb_array_elements(v -> 'columns') LOOP
      EXECUTE format('COMMENT ON COLUMN %I.%I.%I IS %L', target, v ->> 'name', c ->> 'name', c ->> 'comment');
    END LOOP;
    FOR c IN SELECT * FROM jsonb_array_elements(v -> 'grants') LOOP
      EXECUTE format('GRANT %s ON %I.%I TO %s', c ->> 'privilege', target, v ->> 'name', grantee_sql((c ->> 'grantee')::oid));
    END LOOP;
  END LOOP;
  FOR v IN SELECT * FROM jsonb_array_elements(COALESCE(funcs, '[]')) LOOP
    EXECUTE v ->> 'def';
    EXECUTE format('COMMENT ON FUNCTION %s IS %L', v ->> 'sig', v ->> 'comment');
    IF NOT (v ->> 'public')::boolean THEN
      EXECUTE format('REVOKE ALL ON FUNCTION %s FROM PUBLIC', v ->> 'sig');
    END IF;
    FOR c IN SELECT * FROM jsonb_array_elements(v -> 'grants') LOOP
      EXECUTE format('GRANT %s ON FUNCTION %s TO %s', c ->> 'privilege', v ->> 'sig', grantee_sql((c ->> 'grantee')::oid));
    END LOOP;
  END LOOP;
END
$fn$;
REVOKE ALL ON FUNCTION :SCHEMA.set_key_type(text) FROM PUBLIC;
COMMENT ON FUNCTION :SCHEMA.set_key_type(text) IS 'Gives customer_id of the score tables and reader views the type bigint, uuid or text, while the schema holds no run (docs/models.md "Source keys").';
