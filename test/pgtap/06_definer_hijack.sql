-- SECURITY DEFINER hygiene (issue 7; PostgreSQL's "Writing SECURITY DEFINER
-- Functions Safely").  Every SECURITY DEFINER function in schema jobq pins
-- search_path to "pg_catalog, pg_temp", and every other function that is
-- not written in C pins it too.  Then the attack itself: a client (and a
-- worker, and an admin) puts its own schema first on its search_path and
-- fills it, and its temporary schema, with look-alikes of what jobq's code
-- uses: the tables (jobs, registrations, ...), now(), count(*), unnest(),
-- array_position(), format(), jsonb_build_object(), the operators = <> < ...
-- on uuid/text/int/timestamptz/jsonb, and so on, each of which raises
-- "hijacked: <name>".  Exact-type overloads (array_position(uuid[], uuid),
-- unnest(uuid[]), ...) would beat pg_catalog's polymorphic functions if the
-- schema were searched at all.  Every API call must then work exactly as
-- without the look-alikes: none is ever called.
BEGIN;
SELECT plan(82);
\ir _helpers.psql

---------------------------------------------------------------------------
-- the catalog: pinned search_path, trusted owners
---------------------------------------------------------------------------

SELECT ok((SELECT count(*) FROM pg_proc p WHERE p.pronamespace = 'jobq'::regnamespace AND p.prosecdef) >= 20,
          'schema jobq has SECURITY DEFINER functions (so the next check means something)');

SELECT is(
    (SELECT array_agg(format('%s %s', p.oid::regprocedure, coalesce(p.proconfig::text, 'no SET'))
                      ORDER BY p.oid::regprocedure::text)
       FROM pg_proc p
      WHERE p.pronamespace = 'jobq'::regnamespace AND p.prosecdef
        AND p.proconfig IS DISTINCT FROM ARRAY['search_path=pg_catalog, pg_temp']),
    NULL,
    'every SECURITY DEFINER function in jobq has exactly SET search_path = pg_catalog, pg_temp');

SELECT is(
    (SELECT array_agg(p.oid::regprocedure::text ORDER BY p.oid::regprocedure::text)
       FROM pg_proc p JOIN pg_language l ON l.oid = p.prolang
      WHERE p.pronamespace = 'jobq'::regnamespace AND l.lanname NOT IN ('c', 'internal')
        AND NOT coalesce(p.proconfig @> ARRAY['search_path=pg_catalog, pg_temp'], false)),
    NULL,
    'every SQL / PL/pgSQL function in jobq pins search_path (they run as superuser from grant_*, sweep, ...)');

SELECT is(
    (SELECT array_agg(DISTINCT o.what ORDER BY o.what)
       FROM (SELECT p.oid::regprocedure::text AS what, p.proowner AS owner
               FROM pg_proc p WHERE p.pronamespace = 'jobq'::regnamespace
             UNION ALL
             SELECT c.oid::regclass::text, c.relowner FROM pg_class c
              WHERE c.relnamespace = 'jobq'::regnamespace
             UNION ALL
             SELECT t.oid::regtype::text, t.typowner FROM pg_type t
              WHERE t.typnamespace = 'jobq'::regnamespace
             UNION ALL
             SELECT n.nspname::text, n.nspowner FROM pg_namespace n WHERE n.nspname = 'jobq') o
       JOIN pg_roles r ON r.oid = o.owner
      WHERE NOT r.rolsuper),
    NULL,
    'schema jobq and everything in it belong to a superuser (nobody else can replace them)');

---------------------------------------------------------------------------
-- the attacker's look-alikes
---------------------------------------------------------------------------

CREATE ROLE jobq_hj_client NOLOGIN;
CREATE ROLE jobq_hj_worker NOLOGIN;
CREATE ROLE jobq_hj_admin NOLOGIN;
DO $$ BEGIN
    PERFORM jobq.grant_client('jobq_hj_client');
    PERFORM jobq.grant_worker('jobq_hj_worker');
    PERFORM jobq.grant_admin('jobq_hj_admin');
END $$;
CREATE SCHEMA hj AUTHORIZATION jobq_hj_client;

SET LOCAL ROLE jobq_hj_client;
DO $do$
DECLARE
    spec text;
    parts text[];
    n int := 0;
BEGIN
    -- trap for relations: selecting from a look-alike table calls it
    CREATE FUNCTION hj.trap_rel(what text) RETURNS int LANGUAGE plpgsql VOLATILE
        AS $t$ BEGIN RAISE EXCEPTION 'hijacked: relation %', what; END $t$;

    -- functions: name | arguments | result
    FOREACH spec IN ARRAY ARRAY[
        'now||timestamptz', 'clock_timestamp||timestamptz', 'statement_timestamp||timestamptz',
        'transaction_timestamp||timestamptz', 'random||double precision', 'gen_random_uuid||uuid',
        'current_setting|text|text', 'current_setting|text, boolean|text',
        'set_config|text, text, boolean|text', 'pg_notify|text, text|void',
        'format|text|text', 'format|text, text|text', 'format|text, text, text|text',
        'format|text, integer, integer|text', 'format|text, text, timestamptz|text',
        'format|text, anyelement|text',
        'jsonb_build_object||jsonb', 'jsonb_build_object|text, text|jsonb',
        'jsonb_build_object|text, jsonb|jsonb', 'jsonb_build_object|text, uuid|jsonb',
        'to_jsonb|anyelement|jsonb', 'row_to_json|record|json',
        'jsonb_typeof|jsonb|text', 'jsonb_object_keys|jsonb|SETOF text',
        'jsonb_each|jsonb, OUT key text, OUT value jsonb|SETOF record',
        'jsonb_array_elements|jsonb|SETOF jsonb',
        'unnest|anyarray|SETOF anyelement', 'unnest|uuid[]|SETOF uuid', 'unnest|jsonb[]|SETOF jsonb',
        'unnest|text[]|SETOF text',
        'array_position|anycompatiblearray, anycompatible|integer', 'array_position|uuid[], uuid|integer',
        'array_length|anyarray, integer|integer', 'cardinality|anyarray|integer',
        'left|text, integer|text', 'octet_length|text|integer', 'length|text|integer',
        'upper|text|text', 'lower|text|text', 'substr|text, integer, integer|text',
        'date_part|text, interval|double precision', 'extract|text, interval|numeric',
        'coalesce|anyelement, anyelement|anyelement', 'nullif|anyelement, anyelement|anyelement',
        'greatest|integer, integer|integer', 'least|integer, integer|integer',
        'num_nonnulls|anyelement|integer', 'uuid_send|uuid|bytea', 'pg_backend_pid||integer',
        'sha256|bytea|bytea', 'encode|bytea, text|text', 'md5|text|text'
    ] LOOP
        parts := string_to_array(spec, '|');
        EXECUTE format('CREATE FUNCTION hj.%I(%s) RETURNS %s LANGUAGE plpgsql VOLATILE AS %L',
                       parts[1], parts[2], parts[3],
                       format('BEGIN RAISE EXCEPTION %L; END', 'hijacked: ' || parts[1] || '(' || parts[2] || ')'));
    END LOOP;

    -- operators: operator | left | right | result
    FOREACH spec IN ARRAY ARRAY[
        '=|uuid|uuid|boolean', '=|text|text|boolean', '=|integer|integer|boolean',
        '=|bigint|bigint|boolean', '=|boolean|boolean|boolean', '=|jsonb|jsonb|boolean',
        '=|interval|interval|boolean', '=|real|real|boolean', '=|oid|oid|boolean',
        '=|timestamptz|timestamptz|boolean', '=|name|name|boolean', '=|uuid[]|uuid[]|boolean',
        '<>|text|text|boolean', '<>|integer|integer|boolean', '<>|uuid|uuid|boolean',
        '<|integer|integer|boolean', '<|bigint|bigint|boolean', '<|timestamptz|timestamptz|boolean',
        '<|interval|interval|boolean', '<|real|real|boolean', '<|double precision|double precision|boolean',
        '<=|integer|integer|boolean', '<=|timestamptz|timestamptz|boolean',
        '>|integer|integer|boolean', '>|real|real|boolean', '>|double precision|double precision|boolean',
        '>=|integer|integer|boolean', '>=|double precision|double precision|boolean',
        '-|timestamptz|interval|timestamptz', '-|timestamptz|timestamptz|interval',
        '-|integer|integer|integer', '+|timestamptz|interval|timestamptz', '+|integer|integer|integer',
        '+|bigint|bigint|bigint', '*|integer|integer|integer', '*|numeric|integer|numeric',
        '*|bigint|bigint|bigint', '/|integer|integer|integer', '/|bigint|bigint|bigint',
        '||||text|text|text', '||||jsonb|jsonb|jsonb', '~|text|text|boolean', '!~|text|text|boolean',
        '~~|text|text|boolean', '!~~|text|text|boolean', '?|jsonb|text|boolean',
        '->|jsonb|text|jsonb', '->>|jsonb|text|text', '#>>|jsonb|text[]|text', '@>|jsonb|jsonb|boolean',
        '@>|anyarray|anyarray|boolean'
    ] LOOP
        -- "||" itself contains the separator: it is written "||||"
        IF spec LIKE '||||%' THEN
            parts := ARRAY['||'] || string_to_array(substr(spec, 5), '|');
        ELSE
            parts := string_to_array(spec, '|');
        END IF;
        n := n + 1;
        EXECUTE format('CREATE FUNCTION hj.trap_op_%s(%s, %s) RETURNS %s LANGUAGE plpgsql VOLATILE AS %L',
                       n, parts[2], parts[3], parts[4],
                       format('BEGIN RAISE EXCEPTION %L; END',
                              format('hijacked: operator %s (%s, %s)', parts[1], parts[2], parts[3])));
        EXECUTE format('CREATE OPERATOR hj.%s (LEFTARG = %s, RIGHTARG = %s, FUNCTION = hj.trap_op_%s)',
                       parts[1], parts[2], parts[3], n);
    END LOOP;

    -- aggregates: the final function raises, so even an empty group calls it
    CREATE FUNCTION hj.trap_final(anyelement) RETURNS anyelement LANGUAGE plpgsql
        AS $t$ BEGIN RAISE EXCEPTION 'hijacked: aggregate'; END $t$;
    CREATE FUNCTION hj.keep(int8) RETURNS int8 LANGUAGE sql AS 'SELECT $1';
    CREATE FUNCTION hj.keep(int8, anyelement) RETURNS int8 LANGUAGE sql AS 'SELECT $1';
    CREATE FUNCTION hj.keep(text, text, text) RETURNS text LANGUAGE sql AS 'SELECT $1';
    CREATE FUNCTION hj.keep(numeric, bigint) RETURNS numeric LANGUAGE sql AS 'SELECT $1';
    CREATE FUNCTION hj.keep(timestamptz, timestamptz) RETURNS timestamptz LANGUAGE sql AS 'SELECT $1';
    CREATE FUNCTION hj.keep(double precision, double precision) RETURNS double precision LANGUAGE sql AS 'SELECT $1';
    CREATE AGGREGATE hj.count(*) (SFUNC = hj.keep, STYPE = int8, INITCOND = '0', FINALFUNC = hj.trap_final);
    CREATE AGGREGATE hj.count(anyelement) (SFUNC = hj.keep, STYPE = int8, INITCOND = '0', FINALFUNC = hj.trap_final);
    CREATE AGGREGATE hj.string_agg(text, text) (SFUNC = hj.keep, STYPE = text, FINALFUNC = hj.trap_final);
    CREATE AGGREGATE hj.sum(bigint) (SFUNC = hj.keep, STYPE = numeric, INITCOND = '0', FINALFUNC = hj.trap_final);
    CREATE AGGREGATE hj.min(timestamptz) (SFUNC = hj.keep, STYPE = timestamptz, FINALFUNC = hj.trap_final);
    CREATE AGGREGATE hj.max(double precision) (SFUNC = hj.keep, STYPE = double precision, FINALFUNC = hj.trap_final);

    -- look-alike tables, in the attacker's schema and in its temporary one
    -- (which is searched for relations even when it is listed last)
    FOREACH spec IN ARRAY ARRAY['jobs', 'jobq_jobs', 'registrations', 'providers', 'job_tokens',
                                'unit_checkpoints', 'blob_deletions', 'validators',
                                'validation_thresholds', 'prewarm_hooks', 'queue_stats', 'worker_status'] LOOP
        EXECUTE format('CREATE VIEW hj.%I AS SELECT hj.trap_rel(%L) AS id', spec, 'hj.' || spec);
        EXECUTE format('CREATE TEMP VIEW %I AS SELECT hj.trap_rel(%L) AS id', spec, 'pg_temp.' || spec);
    END LOOP;
END
$do$;
GRANT USAGE ON SCHEMA hj TO PUBLIC;
RESET ROLE;

-- results of the calls made as the attacker, by name
CREATE TABLE jt.res (name text PRIMARY KEY, v text);

-- Run sql as role r with the attacker's schema first on the search_path;
-- record and return the first column of its first row as text ('(null)'
-- for NULL) or 'ERROR <SQLSTATE>: <message>'.  Everything after the
-- search_path changes uses only schema-qualified functions and no operator.
CREATE FUNCTION jt.hj(name text, r text, sql text) RETURNS text LANGUAGE plpgsql AS $$
DECLARE
    v text;
    saved text := pg_catalog.current_setting('search_path');
BEGIN
    PERFORM pg_catalog.set_config('role', r, true);
    PERFORM pg_catalog.set_config('search_path', 'hj, pg_catalog', true);
    BEGIN
        EXECUTE sql INTO v;
        v := COALESCE(v, '(null)');
    EXCEPTION WHEN OTHERS THEN
        v := pg_catalog.concat('ERROR ', SQLSTATE, ': ', SQLERRM);
    END;
    PERFORM pg_catalog.set_config('search_path', saved, true);
    PERFORM pg_catalog.set_config('role', 'none', true);
    INSERT INTO jt.res VALUES (name, v) ON CONFLICT ON CONSTRAINT res_pkey DO UPDATE SET v = excluded.v;
    RETURN v;
END
$$;

-- the recorded result as a uuid, or NULL
CREATE FUNCTION jt.rid(name text) RETURNS uuid LANGUAGE sql AS $$
    SELECT CASE WHEN r.v ~ '^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$' THEN r.v::uuid END
      FROM jt.res r WHERE r.name = rid.name
$$;

CREATE FUNCTION jt.jobr(name text) RETURNS jobq.jobs LANGUAGE sql AS $$
    SELECT j.* FROM jobq.jobs j WHERE j.id = jt.rid(jobr.name)
$$;

-- the look-alikes are live: the attacker's own calls reach them
SELECT ok(jt.hj('trap now', 'jobq_hj_client', $$SELECT now()::text$$) LIKE 'ERROR P0001: hijacked: now()%',
          'the trap works: now() is the look-alike on the attacker''s search_path');
SELECT ok(jt.hj('trap uuid =', 'jobq_hj_client', $$SELECT (jobq.gen_uuid_v7() = jobq.gen_uuid_v7())::text$$)
            LIKE 'ERROR P0001: hijacked: operator = (uuid, uuid)%',
          'the trap works: = (uuid, uuid)');
SELECT ok(jt.hj('trap text =', 'jobq_hj_client', $$SELECT ('a'::text = 'a'::text)::text$$)
            LIKE 'ERROR P0001: hijacked: operator = (text, text)%',
          'the trap works: = (text, text)');
SELECT ok(jt.hj('trap count', 'jobq_hj_client', $$SELECT count(*)::text FROM pg_catalog.generate_series(1, 0)$$)
            LIKE 'ERROR P0001: hijacked: aggregate%',
          'the trap works: count(*), even over no rows');
SELECT ok(jt.hj('trap unnest', 'jobq_hj_client', $$SELECT unnest(ARRAY[jobq.gen_uuid_v7()])::text$$)
            LIKE 'ERROR P0001: hijacked: unnest(uuid[])%',
          'the trap works: unnest(uuid[]) beats pg_catalog.unnest(anyarray)');
SELECT ok(jt.hj('trap array_position', 'jobq_hj_client',
                $$SELECT array_position(ARRAY[jobq.gen_uuid_v7()], jobq.gen_uuid_v7())::text$$)
            LIKE 'ERROR P0001: hijacked: array_position(uuid[], uuid)%',
          'the trap works: array_position(uuid[], uuid)');
SELECT ok(jt.hj('trap jsonb_build_object', 'jobq_hj_client', $$SELECT jsonb_build_object('a'::text, 'b'::text)::text$$)
            LIKE 'ERROR P0001: hijacked: jsonb_build_object(text, text)%',
          'the trap works: jsonb_build_object(text, text)');
SELECT ok(jt.hj('trap format', 'jobq_hj_client', $$SELECT format('%s'::text, 'x'::text)$$)
            LIKE 'ERROR P0001: hijacked: format(text, text)%',
          'the trap works: format(text, text)');
SELECT ok(jt.hj('trap table', 'jobq_hj_client', $$SELECT pg_catalog.count(*)::text FROM jobs$$)
            LIKE 'ERROR P0001: hijacked: relation pg_temp.jobs%',
          'the trap works: an unqualified "jobs" is the temporary look-alike');
SELECT ok(jt.hj('trap -', 'jobq_hj_client', $$SELECT (pg_catalog.now() - interval '1 day')::text$$)
            LIKE 'ERROR P0001: hijacked: operator - (timestamptz, interval)%',
          'the trap works: - (timestamptz, interval)');
SELECT ok(jt.hj('trap ?', 'jobq_hj_client', $$SELECT ('{}'::jsonb ? 'a')::text$$)
            LIKE 'ERROR P0001: hijacked: operator ? (jsonb, text)%',
          'the trap works: ? (jsonb, text)');

---------------------------------------------------------------------------
-- fixtures (as the superuser, without the look-alikes)
---------------------------------------------------------------------------

CREATE FUNCTION jt.h(j jobq.jobs) RETURNS jsonb LANGUAGE sql AS $$ SELECT '{}'::jsonb $$;
CREATE FUNCTION jt.v_high(p jsonb) RETURNS real LANGUAGE sql AS $$ SELECT 0.9::real $$;
-- registered functions run as the registrant, who must own them
ALTER FUNCTION jt.h(jobq.jobs) OWNER TO jobq_hj_admin;
ALTER FUNCTION jt.v_high(jsonb) OWNER TO jobq_hj_admin;
CREATE FUNCTION jt.v_low(p jsonb) RETURNS real LANGUAGE sql AS $$ SELECT 0.1::real $$;
DO $$ BEGIN
    PERFORM jobq.add_validator('hj-valid', 'jt.v_high(jsonb)', 2, 'high');
    PERFORM jobq.add_validator('hj-valid', 'jt.v_low(jsonb)', 1, 'low');
    PERFORM jobq.set_validation_threshold('hj-valid', 0.5);
    PERFORM jobq.add_validator('hj-reject', 'jt.v_low(jsonb)');
    PERFORM jobq.set_validation_threshold('hj-reject', 0.5);
    -- another tenant's job
    INSERT INTO jt.ids VALUES ('other', jobq.enqueue('t', user_id => 'bbbbbbbb-0000-4000-8000-000000000002', queue => 'hj-other'));
    -- a unit job for the worker's checkpoints
    INSERT INTO jt.ids VALUES ('units', jobq.enqueue('hj-units', units => 2, queue => 'hj-units-q'));
END $$;

---------------------------------------------------------------------------
-- a client with tenant A: enqueue, enqueue_many, status, depth, validate,
-- cancel, retry
---------------------------------------------------------------------------

SET LOCAL jobq.user_id = 'aaaaaaaa-0000-4000-8000-000000000001';

SELECT ok(jt.hj('e1', 'jobq_hj_client',
    $$SELECT jobq.enqueue('hj-t', '{"k": "v"}', queue => 'hjq', priority => 5, dedupe_key => 'hj-dk',
                          trace_id => '0123456789ABCDEF0123456789abcdef')::text$$) ~ '^[0-9a-f-]{36}$',
    'client: enqueue works');
SELECT is(
    (SELECT jsonb_build_array(j.user_id, j.job_type, j.queue, j.priority, j.payload, j.status, j.trace_id,
                              j.max_attempts, j.dedupe_key, j.run_at <= now())
       FROM jobq.jobs j WHERE j.id = jt.rid('e1')),
    jsonb_build_array('aaaaaaaa-0000-4000-8000-000000000001', 'hj-t', 'hjq', 5, '{"k": "v"}'::jsonb, 0,
                      '0123456789abcdef0123456789abcdef', 3, 'hj-dk', true),
    'client: the enqueued row is exactly what was asked for');
SELECT is(jt.hj('e1 again', 'jobq_hj_client',
                $$SELECT jobq.enqueue('hj-t', '{"k": "other"}', queue => 'hjq', dedupe_key => 'hj-dk')::text$$),
          jt.rid('e1')::text, 'client: enqueue with a held dedupe_key returns the holder''s id');
SELECT is(jt.hj('many', 'jobq_hj_client',
                $$SELECT pg_catalog.count(*)::text FROM jobq.enqueue_many('hj-t', ARRAY['{"n": 1}', '{"n": 2}']::jsonb[],
                                                                          queue => 'hjq2', priority => 1)$$),
          '2', 'client: enqueue_many works');
SELECT is((SELECT array_agg(j.payload ORDER BY j.id) FROM jobq.jobs j
            WHERE j.queue = 'hjq2' AND j.user_id = 'aaaaaaaa-0000-4000-8000-000000000001' AND j.priority = 1),
          ARRAY['{"n": 1}', '{"n": 2}']::jsonb[], 'client: enqueue_many made both jobs for tenant A, in order');
SELECT is(jt.hj('status', 'jobq_hj_client', format($$SELECT (jobq.status(%L)).payload::text$$, jt.rid('e1'))),
          '{"k": "v"}', 'client: status works');
SELECT ok(jt.hj('status other', 'jobq_hj_client', format($$SELECT (jobq.status(%L)).id::text$$, jt.id('other')))
            LIKE 'ERROR P0002:%', 'client: status of another tenant''s job is still P0002');
SELECT ok(jt.hj('cancel other', 'jobq_hj_client', format($$SELECT jobq.cancel(%L)::text$$, jt.id('other')))
            LIKE 'ERROR P0002:%', 'client: cancel of another tenant''s job is still P0002');
SELECT ok(jt.hj('enqueue for B', 'jobq_hj_client',
                $$SELECT jobq.enqueue('hj-t', user_id => 'bbbbbbbb-0000-4000-8000-000000000002')::text$$)
            LIKE 'ERROR 42501:%', 'client: enqueue for another user is still 42501');
SELECT is(jt.hj('depth', 'jobq_hj_client', $$SELECT jobq.depth('hjq')::text$$), '1', 'client: depth(queue) works');
SELECT is(jt.hj('depth all', 'jobq_hj_client', $$SELECT jobq.depth()::text$$),
          (SELECT jobq.depth()::text), 'client: depth() works');
SELECT is(jt.hj('validate', 'jobq_hj_client', $$SELECT jobq.validate('hj-valid', '{"x": 1}')::text$$),
          jobq.validate('hj-valid', '{"x": 1}')::text, 'client: validate works (validators, weights, threshold)');
SELECT ok(jt.hj('validated', 'jobq_hj_client', $$SELECT jobq.enqueue('hj-valid', '{"x": 1}')::text$$)
            ~ '^[0-9a-f-]{36}$', 'client: enqueue of a job type whose validators pass works');
SELECT ok(jt.hj('rejected', 'jobq_hj_client', $$SELECT jobq.enqueue('hj-reject', '{"x": 1}')::text$$)
            LIKE 'ERROR 23514:%', 'client: enqueue rejected by validators is still 23514');
SELECT is(jt.hj('cancel', 'jobq_hj_client', format($$SELECT jobq.cancel(%L)::text$$, jt.rid('e1'))),
          'true', 'client: cancel works');
SELECT is((jt.jobr('e1')).status, 4, 'client: the cancel took effect');
SELECT is(jt.hj('cancel again', 'jobq_hj_client', format($$SELECT jobq.cancel(%L)::text$$, jt.rid('e1'))),
          'false', 'client: cancel of a terminal job answers false');
SELECT is(jt.hj('retry', 'jobq_hj_client', format($$SELECT jobq.retry(%L)::text$$, jt.rid('e1'))),
          'true', 'client: retry works');
SELECT is(ARRAY[(jt.jobr('e1')).status, (jt.jobr('e1')).attempts], ARRAY[0, 0],
          'client: the retry took effect');
SELECT is(jt.hj('retry queued', 'jobq_hj_client', format($$SELECT jobq.retry(%L)::text$$, jt.rid('e1'))),
          'false', 'client: retry of a Queued job answers false');
SELECT is(jt.hj('direct read', 'jobq_hj_client',
                $$SELECT pg_catalog.count(*)::text FROM jobq.jobs j
                   WHERE NOT (j.user_id OPERATOR(pg_catalog.=) 'aaaaaaaa-0000-4000-8000-000000000001'::uuid)$$),
          '0', 'client: row-level security still hides other tenants'' rows');

SET LOCAL jobq.user_id = '';

---------------------------------------------------------------------------
-- a worker: claim, heartbeat, progress, complete, fail, complete_many,
-- checkpoint, checkpoint_data, checkpoints
---------------------------------------------------------------------------

SELECT is(jt.hj('claim', 'jobq_hj_worker',
                $$SELECT pg_catalog.string_agg(c.id::text, ',') FROM jobq.claim('hjq', 'hjw', 10) c$$),
          jt.rid('e1')::text, 'worker: claim works (and takes exactly the due job of the queue)');
SELECT is(ARRAY[(jt.jobr('e1')).status::text, (jt.jobr('e1')).locked_by, (jt.jobr('e1')).attempts::text],
          ARRAY['1', 'hjw', '1'], 'worker: the claim took effect');
SELECT is(jt.hj('heartbeat', 'jobq_hj_worker', format($$SELECT jobq.heartbeat(%L, 'hjw')::text$$, jt.rid('e1'))),
          'true', 'worker: heartbeat of its job answers true');
SELECT is(jt.hj('heartbeat other', 'jobq_hj_worker', format($$SELECT jobq.heartbeat(%L, 'intruder')::text$$, jt.rid('e1'))),
          'false', 'worker: heartbeat by another worker name answers false');
SELECT is(jt.hj('progress', 'jobq_hj_worker', format($$SELECT jobq.progress(%L, 42, 'half way')::text$$, jt.rid('e1'))),
          '', 'worker: progress works');
SELECT is(ARRAY[(jt.jobr('e1')).progress_percent::text, (jt.jobr('e1')).status_message],
          ARRAY['42', 'half way'], 'worker: the progress took effect');
SELECT ok(jt.hj('progress 101', 'jobq_hj_worker', format($$SELECT jobq.progress(%L, 101)::text$$, jt.rid('e1')))
            LIKE 'ERROR 22023:%', 'worker: progress 101 is still 22023');
SELECT ok(jt.hj('complete intruder', 'jobq_hj_worker', format($$SELECT jobq.complete(%L, '{}', 'intruder')::text$$, jt.rid('e1')))
            LIKE 'ERROR 55000:%', 'worker: complete by another worker name is still 55000');
SELECT is(jt.hj('complete', 'jobq_hj_worker', format($$SELECT jobq.complete(%L, '{"r": 1}', 'hjw')::text$$, jt.rid('e1'))),
          '', 'worker: complete works');
SELECT is(ARRAY[(jt.jobr('e1')).status::text, (jt.jobr('e1')).result::text, (jt.jobr('e1')).progress_percent::text],
          ARRAY['2', '{"r": 1}', '100'], 'worker: the completion took effect');
SELECT ok(jt.hj('complete again', 'jobq_hj_worker', format($$SELECT jobq.complete(%L)::text$$, jt.rid('e1')))
            LIKE 'ERROR 55000:%', 'worker: complete of a Completed job is still 55000');

INSERT INTO jt.res
SELECT 'm' || row_number() OVER (ORDER BY j.id), j.id::text FROM jobq.jobs j WHERE j.queue = 'hjq2';
SELECT is(jt.hj('claim 2', 'jobq_hj_worker',
                $$SELECT pg_catalog.count(*)::text FROM jobq.claim('hjq2', 'hjw', 5) c$$),
          '2', 'worker: claim of two jobs works');
SELECT is(jt.hj('fail', 'jobq_hj_worker',
                format($$SELECT jobq.fail(%L, 'boom', 'Timeout', true, 'hjw')::text$$, jt.rid('m1'))),
          '', 'worker: fail works');
SELECT is(
    (SELECT jsonb_build_array(j.status, j.run_at > now(), j.error_message, j.error -> 'errors' -> 0 ->> 'code',
                              (j.error ->> 'status')::int, (j.error ->> 'attempt')::int, j.locked_by)
       FROM jobq.jobs j WHERE j.id = jt.rid('m1')),
    jsonb_build_array(0, true, 'boom', 'Timeout', 504, 1, NULL),
    'worker: the failure took effect (requeued after a backoff, the one error shape)');
SELECT is(jt.hj('complete_many', 'jobq_hj_worker',
                format($$SELECT jobq.complete_many(ARRAY[%L]::uuid[], ARRAY['{"m": 2}']::jsonb[], 'hjw')::text$$,
                       jt.rid('m2'))),
          '1', 'worker: complete_many works');
SELECT is(ARRAY[(jt.jobr('m2')).status::text, (jt.jobr('m2')).result::text], ARRAY['2', '{"m": 2}'],
          'worker: the batch completion took effect');

SELECT is(jt.hj('claim units', 'jobq_hj_worker',
                $$SELECT pg_catalog.string_agg(c.id::text, ',') FROM jobq.claim('hj-units-q', 'hjw') c$$),
          jt.id('units')::text, 'worker: claim of a unit job works');
SELECT ok(jt.hj('checkpoint', 'jobq_hj_worker', format($$SELECT jobq.checkpoint(%L, 1, '\x0102')$$, jt.id('units')))
            LIKE '%/jobs/' || jt.id('units') || '/units/unit_1.output',
          'worker: checkpoint works and returns the blob''s URI');
SELECT is(ARRAY[(jt.job('units')).units_done, (jt.job('units')).progress_percent], ARRAY[1, 50],
          'worker: the checkpoint counted (units_done, percent)');
SELECT is(jt.hj('checkpoint_data', 'jobq_hj_worker', format($$SELECT jobq.checkpoint_data(%L, 1)::text$$, jt.id('units'))),
          '\x0102', 'worker: checkpoint_data works');
SELECT is(jt.hj('checkpoints', 'jobq_hj_worker',
                format($$SELECT pg_catalog.string_agg(pg_catalog.concat(c.unit_id, ':', c.bytes, ':', c.sha256), ',')
                           FROM jobq.checkpoints(%L) c$$, jt.id('units'))),
          '1:2:' || encode(sha256('\x0102'), 'hex'), 'worker: checkpoints works');
SELECT ok(jt.hj('checkpoint unit 3', 'jobq_hj_worker', format($$SELECT jobq.checkpoint(%L, 3, '\x00')$$, jt.id('units')))
            LIKE 'ERROR 22023:%', 'worker: checkpoint of unit 3 of 2 is still 22023');
SELECT is(jt.hj('status worker', 'jobq_hj_worker', format($$SELECT (jobq.status(%L)).status::text$$, jt.id('units'))),
          '1', 'worker: status works');

---------------------------------------------------------------------------
-- an admin: providers, registrations, validators, hooks, metrics, sweep, purge
---------------------------------------------------------------------------

SELECT is(jt.hj('create_provider', 'jobq_hj_admin',
                $$SELECT jobq.create_provider('hj-mock', kind => 'mock', headers => '{"X-Key": "v"}',
                                              options => '{"failure_rate": 0.25, "latency_ms": 1}')::text$$),
          '', 'admin: create_provider works');
SELECT is((SELECT jsonb_build_array(p.kind, p.headers, p.options, p.failure_threshold) FROM jobq.providers p WHERE p.name = 'hj-mock'),
          jsonb_build_array('mock', '{"X-Key": "v"}'::jsonb, '{"failure_rate": 0.25, "latency_ms": 1}'::jsonb, 5),
          'admin: the provider row is exactly what was asked for');
SELECT ok(jt.hj('create_provider bad url', 'jobq_hj_admin',
                $$SELECT jobq.create_provider('hj-bad', 'file:///etc/passwd')::text$$)
            LIKE 'ERROR 22023:%', 'admin: create_provider with a file:// URL is still 22023');
SELECT ok(jt.hj('create_provider bad header', 'jobq_hj_admin',
                $$SELECT jobq.create_provider('hj-bad', 'http://127.0.0.1:9/', headers => '{"X": "a\r\nB: c"}')::text$$)
            LIKE 'ERROR 22023:%', 'admin: create_provider with a header value holding CR/LF is still 22023');
SELECT ok(jt.hj('create_provider bad option', 'jobq_hj_admin',
                $$SELECT jobq.create_provider('hj-bad', kind => 'mock', options => '{"nope": 1}')::text$$)
            LIKE 'ERROR 22023:%', 'admin: create_provider with an unknown option is still 22023');
SELECT is(jt.hj('provider_health', 'jobq_hj_admin', $$SELECT jobq.provider_health('hj-mock')::text$$),
          '{"name": "hj-mock", "state": "closed", "healthy": true, "failures": 0}', 'admin: provider_health works');
SELECT is(jt.hj('register', 'jobq_hj_admin',
                $$SELECT jobq.register('hj-reg', 'jt.h(jobq.jobs)', queue => 'hj-reg-q', max_attempts => 4,
                                       timeout => '1 min')::text$$),
          '', 'admin: register works');
SELECT is(jt.hj('register providers', 'jobq_hj_admin',
                $$SELECT jobq.register('hj-reg-p', providers => ARRAY['hj-mock'], queue => 'hj-reg-q')::text$$),
          '', 'admin: register of a provider chain works');
SELECT is((SELECT jsonb_build_array(r.handler::text, r.queue, r.max_attempts, r.timeout::text, r.owner::text)
             FROM jobq.registrations r WHERE r.job_type = 'hj-reg'),
          jsonb_build_array('jt.h(jobq.jobs)', 'hj-reg-q', 4, '00:01:00', 'jobq_hj_admin'),
          'admin: the registration is exactly what was asked for, owned by the admin');
SELECT is(jt.hj('unregister', 'jobq_hj_admin', $$SELECT jobq.unregister('hj-reg')::text$$), 'true',
          'admin: unregister works');
SELECT is(jt.hj('drop_provider', 'jobq_hj_admin', $$SELECT jobq.drop_provider('hj-nope')::text$$), 'false',
          'admin: drop_provider of an unknown provider answers false');
SELECT is(jt.hj('add_validator', 'jobq_hj_admin', $$SELECT jobq.add_validator('hj-v2', 'jt.v_high(jsonb)')::text$$),
          '', 'admin: add_validator works');
SELECT is(jt.hj('threshold', 'jobq_hj_admin', $$SELECT jobq.set_validation_threshold('hj-v2', 0.95)::text$$),
          '', 'admin: set_validation_threshold works');
SELECT ok(jt.hj('threshold NaN', 'jobq_hj_admin', $$SELECT jobq.set_validation_threshold('hj-v2', 'NaN')::text$$)
            LIKE 'ERROR 22023:%', 'admin: set_validation_threshold NaN is still 22023');
SELECT is(jt.hj('prewarm', 'jobq_hj_admin',
                $$SELECT jobq.set_prewarm_hook('hj-hook', 'http://127.0.0.1:9/warm', 'put', '{"X": "y"}')::text$$),
          '', 'admin: set_prewarm_hook works');
SELECT is((SELECT h.method FROM jobq.prewarm_hooks h WHERE h.queue = 'hj-hook'), 'PUT',
          'admin: the hook''s method was upper-cased');
SELECT is(jt.hj('drop prewarm', 'jobq_hj_admin', $$SELECT jobq.drop_prewarm_hook('hj-hook')::text$$), 'true',
          'admin: drop_prewarm_hook works');
SELECT ok(jt.hj('metrics', 'jobq_hj_admin', $$SELECT jobq.metrics()$$) LIKE '%jobq_jobs{queue="hjq2",status="queued"} 1%',
          'admin: metrics works');
SELECT is(jt.hj('sweep', 'jobq_hj_admin', $$SELECT jobq.sweep('1 hour')::text$$), '0', 'admin: sweep works');
SELECT ok(jt.hj('sweep negative', 'jobq_hj_admin', $$SELECT jobq.sweep('-1 s')::text$$) LIKE 'ERROR 22023:%',
          'admin: sweep with a negative interval is still 22023');
SELECT is(jt.hj('purge', 'jobq_hj_admin', $$SELECT jobq.purge('1 hour')::text$$), '0', 'admin: purge works');
SELECT is(jt.hj('worker_status', 'jobq_hj_admin', $$SELECT pg_catalog.count(*)::text FROM jobq.worker_status$$),
          (SELECT count(*)::text FROM jobq.worker_status), 'admin: jobq.worker_status works');

---------------------------------------------------------------------------
-- and no call anywhere reached a look-alike
---------------------------------------------------------------------------

SELECT is(
    (SELECT array_agg(r.name || ': ' || r.v ORDER BY r.name) FROM jt.res r
      WHERE r.v LIKE '%hijacked%' AND r.name NOT LIKE 'trap %'),
    NULL,
    'no jobq function called a look-alike');

SELECT * FROM finish();
ROLLBACK;
