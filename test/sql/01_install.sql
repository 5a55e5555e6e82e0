-- The extension installs into schema jobq with the SPEC's table and functions.
CREATE EXTENSION jobq;
SELECT extname, extversion = (SELECT default_version FROM pg_available_extensions WHERE name = 'jobq') AS current
  FROM pg_extension WHERE extname = 'jobq';
SELECT nspname FROM pg_namespace WHERE nspname = 'jobq';

-- every column of SPEC section 2, with its type
SELECT attname, format_type(atttypid, atttypmod) AS type, attnotnull
  FROM pg_attribute WHERE attrelid = 'jobq.jobs'::regclass AND attnum > 0 AND NOT attisdropped
 ORDER BY attnum;

-- the table is dumped with its rows
SELECT extconfig::regclass[] FROM pg_extension WHERE extname = 'jobq';

-- partial indexes keep claim and depth() independent of terminal jobs
SELECT indexrelid::regclass, pg_get_indexdef(indexrelid) ~ 'WHERE' AS partial
  FROM pg_index WHERE indrelid = 'jobq.jobs'::regclass ORDER BY indexrelid::regclass::text;

-- every SECURITY DEFINER function pins search_path
SELECT p.proname FROM pg_proc p
 WHERE p.pronamespace = 'jobq'::regnamespace AND p.prosecdef
   AND NOT coalesce(p.proconfig::text LIKE '%search_path=pg_catalog, pg_temp%', false);

-- nothing but harmless helpers is executable by PUBLIC
SELECT p.proname FROM pg_proc p
 WHERE p.pronamespace = 'jobq'::regnamespace AND has_function_privilege('public', p.oid, 'EXECUTE')
 ORDER BY 1;

-- Test helper: run a statement, show its SQLSTATE and message (uuids masked).
CREATE SCHEMA t;
CREATE FUNCTION t.err(stmt text) RETURNS text LANGUAGE plpgsql AS $$
BEGIN
    EXECUTE stmt;
    RETURN 'no error';
EXCEPTION WHEN OTHERS THEN
    RETURN SQLSTATE || ': ' || regexp_replace(SQLERRM,
        '[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}', '<uuid>', 'g');
END
$$;
