-- The upgrade path: CREATE EXTENSION at the first version, enqueue, then
-- ALTER EXTENSION UPDATE gives the same objects as a fresh install, and the
-- queued job survives.
CREATE FUNCTION t.ext_objects() RETURNS TABLE (obj text, def text) LANGUAGE sql AS $$
    SELECT pg_describe_object(d.classid, d.objid, d.objsubid),
           CASE d.classid
               WHEN 'pg_proc'::regclass THEN md5(pg_get_functiondef(d.objid))
               WHEN 'pg_class'::regclass THEN
                   (SELECT md5(string_agg(a.attname || ' ' || format_type(a.atttypid, a.atttypmod)
                                          || coalesce(' default ' || pg_get_expr(ad.adbin, ad.adrelid), ''),
                                          ', ' ORDER BY a.attnum))
                      FROM pg_attribute a LEFT JOIN pg_attrdef ad
                           ON ad.adrelid = a.attrelid AND ad.adnum = a.attnum
                     WHERE a.attrelid = d.objid AND a.attnum > 0 AND NOT a.attisdropped)
           END
      FROM pg_depend d
     WHERE d.refclassid = 'pg_extension'::regclass AND d.deptype = 'e'
       AND d.refobjid = (SELECT oid FROM pg_extension WHERE extname = 'jobq')
$$;

DROP EXTENSION jobq CASCADE;
CREATE EXTENSION jobq VERSION '0.1';
SELECT extversion FROM pg_extension WHERE extname = 'jobq';
SELECT jobq.enqueue('survivor', '{"kept": true}', queue => 'upgrade') AS kept \gset
ALTER EXTENSION jobq UPDATE;
SELECT extversion = (SELECT default_version FROM pg_available_extensions WHERE name = 'jobq') AS current
  FROM pg_extension WHERE extname = 'jobq';
SELECT status, payload FROM jobq.status(:'kept');
CREATE TEMP TABLE upgraded AS SELECT * FROM t.ext_objects();

DROP EXTENSION jobq CASCADE;
CREATE EXTENSION jobq;
CREATE TEMP TABLE fresh AS SELECT * FROM t.ext_objects();

-- no object differs in existence or definition
(SELECT 'only after upgrade' AS side, * FROM upgraded EXCEPT SELECT 'only after upgrade', * FROM fresh)
UNION ALL
(SELECT 'only when fresh', * FROM fresh EXCEPT SELECT 'only when fresh', * FROM upgraded);
SELECT count(*) > 30 AS many_objects FROM fresh;
