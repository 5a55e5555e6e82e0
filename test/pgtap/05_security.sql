-- Security per role (SPEC sections 8, 9; issue 7).  What each capability set
-- (grant_client / grant_worker / grant_admin) may and may not do, what a role
-- with no grant gets (only the harmless helpers), that nothing is granted to
-- PUBLIC beyond them, and that the store credentials and the forwarded
-- token are invisible to every non-superuser.  04_tenancy_privileges.sql
-- already covers the client's worker-API calls (claim, heartbeat, progress,
-- complete, complete_many, fail), direct INSERT/UPDATE/DELETE on jobq.jobs and
-- the worker's claim..complete_many: they are not repeated here.
--
-- Every probe goes through jt.try(role, sql) / jt.val(role, sql): the SQL
-- runs as that role inside a subtransaction that is always rolled back, so
-- the probes are independent of each other and of their order.
BEGIN;
SELECT plan(148);
\ir _helpers.psql

-- 'ok' when sql runs without error as role r, else its SQLSTATE; changes nothing
CREATE FUNCTION jt.try(r text, sql text) RETURNS text LANGUAGE plpgsql AS $$
BEGIN
    BEGIN
        PERFORM set_config('role', r, true);
        EXECUTE sql;
        RAISE EXCEPTION 'jt.try: roll back' USING ERRCODE = 'JQ0OK';
    EXCEPTION WHEN OTHERS THEN
        IF SQLSTATE = 'JQ0OK' THEN
            RETURN 'ok';
        END IF;
        RETURN SQLSTATE;
    END;
END
$$;

-- the first column of sql's first row as text ('(null)' for NULL), run as
-- role r, or 'ERROR <SQLSTATE>'; changes nothing
CREATE FUNCTION jt.val(r text, sql text) RETURNS text LANGUAGE plpgsql AS $$
DECLARE
    v text;
BEGIN
    BEGIN
        PERFORM set_config('role', r, true);
        EXECUTE sql INTO v;
        RAISE EXCEPTION 'jt.val: roll back' USING ERRCODE = 'JQ0OK';
    EXCEPTION WHEN OTHERS THEN
        IF SQLSTATE = 'JQ0OK' THEN
            RETURN coalesce(v, '(null)');
        END IF;
        RETURN 'ERROR ' || SQLSTATE;
    END;
END
$$;

---------------------------------------------------------------------------
-- fixtures, made as the superuser
---------------------------------------------------------------------------

CREATE ROLE jobq_sec_client NOLOGIN;
CREATE ROLE jobq_sec_worker NOLOGIN;
CREATE ROLE jobq_sec_admin NOLOGIN;
CREATE ROLE jobq_sec_nobody NOLOGIN;
DO $$ BEGIN
    PERFORM jobq.grant_client('jobq_sec_client');
    PERFORM jobq.grant_worker('jobq_sec_worker');
    PERFORM jobq.grant_admin('jobq_sec_admin');
END $$;

-- a handler, a unit handler and a validator anybody may execute
CREATE FUNCTION jt.h(j jobq.jobs) RETURNS jsonb LANGUAGE sql AS $$ SELECT '{}'::jsonb $$;
CREATE FUNCTION jt.uh(j jobq.jobs, unit int) RETURNS bytea LANGUAGE sql AS $$ SELECT '\x00'::bytea $$;
CREATE FUNCTION jt.v(p jsonb) RETURNS real LANGUAGE sql AS $$ SELECT 0.9::real $$;
-- registered functions run as the registrant: it must own them (or be their owner's member)
ALTER FUNCTION jt.h(jobq.jobs) OWNER TO jobq_sec_admin;
ALTER FUNCTION jt.uh(jobq.jobs, int) OWNER TO jobq_sec_admin;
ALTER FUNCTION jt.v(jsonb) OWNER TO jobq_sec_admin;
CREATE FUNCTION jt.h_other(j jobq.jobs) RETURNS jsonb LANGUAGE sql AS $$ SELECT '{}'::jsonb $$;
GRANT EXECUTE ON FUNCTION jt.h_other(jobq.jobs) TO PUBLIC;

DO $$
DECLARE
    jid uuid;
BEGIN
    PERFORM jt.make('q', 0);
    PERFORM jt.make('p', 1);
    PERFORM jt.make('f', 3);
    -- a Processing job with two units, held by w1, unit 1 checkpointed
    jid := jobq.enqueue('t', units => 2, queue => 'q-u');
    INSERT INTO jt.ids VALUES ('u', jid);
    PERFORM FROM jobq.claim('q-u', 'w1');
    PERFORM jobq.checkpoint(jid, 1, '\x0102');
    -- configuration for the admin calls to find
    PERFORM jobq.create_provider('sec-mock', kind => 'mock');
    PERFORM jobq.register('sec-reg', 'jt.h(jobq.jobs)', queue => 'sec-reg-q');
    PERFORM jobq.register('sec-prov', providers => ARRAY['sec-mock'], queue => 'sec-prov-q');
    PERFORM jobq.set_prewarm_hook('sec-hook-q', 'http://127.0.0.1:9/warm');
    INSERT INTO jobq.job_tokens VALUES (jid, 'sec-secret-token');
END $$;

-- what each role may (ok) and may not (42501) do
CREATE TABLE jt.cases (n serial PRIMARY KEY, who text NOT NULL, what text NOT NULL,
                       sql text NOT NULL, expect text NOT NULL);
INSERT INTO jt.cases (who, what, sql, expect) VALUES
    -- a client: the application API only
    ('client', 'checkpoint', $$SELECT jobq.checkpoint(jt.id('u'), 2, '\x00')$$, '42501'),
    ('client', 'checkpoint_data', $$SELECT jobq.checkpoint_data(jt.id('u'), 1)$$, '42501'),
    ('client', 'checkpoints', $$SELECT * FROM jobq.checkpoints(jt.id('u'))$$, '42501'),
    ('client', 'sweep', $$SELECT jobq.sweep()$$, '42501'),
    ('client', 'purge', $$SELECT jobq.purge('0 s')$$, '42501'),
    ('client', 'register', $$SELECT jobq.register('sec-x', 'jt.h(jobq.jobs)')$$, '42501'),
    ('client', 'unregister', $$SELECT jobq.unregister('sec-reg')$$, '42501'),
    ('client', 'create_provider', $$SELECT jobq.create_provider('sec-x', kind => 'mock')$$, '42501'),
    ('client', 'drop_provider', $$SELECT jobq.drop_provider('sec-mock')$$, '42501'),
    ('client', 'provider_health', $$SELECT jobq.provider_health('sec-mock')$$, '42501'),
    ('client', 'add_validator', $$SELECT jobq.add_validator('t', 'jt.v(jsonb)')$$, '42501'),
    ('client', 'set_validation_threshold', $$SELECT jobq.set_validation_threshold('t', 0.1)$$, '42501'),
    ('client', 'set_prewarm_hook', $$SELECT jobq.set_prewarm_hook('q', 'http://127.0.0.1:9/')$$, '42501'),
    ('client', 'drop_prewarm_hook', $$SELECT jobq.drop_prewarm_hook('sec-hook-q')$$, '42501'),
    ('client', 'metrics', $$SELECT jobq.metrics()$$, '42501'),
    ('client', 'grant_client', $$SELECT jobq.grant_client('jobq_sec_client')$$, '42501'),
    ('client', 'grant_worker (to itself)', $$SELECT jobq.grant_worker('jobq_sec_client')$$, '42501'),
    ('client', '_release_lost', $$SELECT jobq._release_lost(true, '0 s')$$, '42501'),
    ('client', '_worker_status', $$SELECT * FROM jobq._worker_status()$$, '42501'),
    ('client', 'read jobq.registrations', $$SELECT * FROM jobq.registrations$$, '42501'),
    ('client', 'read jobq.providers', $$SELECT * FROM jobq.providers$$, '42501'),
    ('client', 'read jobq.job_tokens', $$SELECT * FROM jobq.job_tokens$$, '42501'),
    ('client', 'read jobq.unit_checkpoints', $$SELECT * FROM jobq.unit_checkpoints$$, '42501'),
    ('client', 'read jobq.blob_deletions', $$SELECT * FROM jobq.blob_deletions$$, '42501'),
    ('client', 'read jobq.validators', $$SELECT * FROM jobq.validators$$, '42501'),
    ('client', 'read jobq.validation_thresholds', $$SELECT * FROM jobq.validation_thresholds$$, '42501'),
    ('client', 'read jobq.prewarm_hooks', $$SELECT * FROM jobq.prewarm_hooks$$, '42501'),
    ('client', 'read jobq.queue_stats (every tenant''s counts)', $$SELECT * FROM jobq.queue_stats$$, '42501'),
    ('client', 'read jobq.worker_status', $$SELECT * FROM jobq.worker_status$$, '42501'),
    ('client', 'TRUNCATE jobq.jobs', $$TRUNCATE jobq.jobs CASCADE$$, '42501'),
    ('client', 'write jobq.job_tokens', $$INSERT INTO jobq.job_tokens VALUES (jt.id('q'), 'x')$$, '42501'),
    ('client', 'write jobq.unit_checkpoints', $$DELETE FROM jobq.unit_checkpoints$$, '42501'),
    ('client', 'write jobq.registrations', $$DELETE FROM jobq.registrations$$, '42501'),
    ('client', 'create objects in schema jobq', $$CREATE TABLE jobq.evil (x int)$$, '42501'),
    ('client', 'enqueue_many', $$SELECT * FROM jobq.enqueue_many('t', ARRAY['{}', '{}']::jsonb[])$$, 'ok'),
    ('client', 'validate', $$SELECT jobq.validate('t', '{}')$$, 'ok'),
    ('client', 'read jobq.jobs', $$SELECT count(*) FROM jobq.jobs$$, 'ok'),
    -- a worker: the worker API, no configuration, no secrets
    ('worker', 'checkpoint of a held job', $$SELECT jobq.checkpoint(jt.id('u'), 2, '\x0304')$$, 'ok'),
    ('worker', 'checkpoint_data', $$SELECT jobq.checkpoint_data(jt.id('u'), 1)$$, 'ok'),
    ('worker', 'checkpoints', $$SELECT * FROM jobq.checkpoints(jt.id('u'))$$, 'ok'),
    ('worker', 'status', $$SELECT jobq.status(jt.id('q'))$$, 'ok'),
    ('worker', 'depth', $$SELECT jobq.depth()$$, 'ok'),
    ('worker', 'register', $$SELECT jobq.register('sec-x', 'jt.h(jobq.jobs)')$$, '42501'),
    ('worker', 'unregister', $$SELECT jobq.unregister('sec-reg')$$, '42501'),
    ('worker', 'purge', $$SELECT jobq.purge('0 s')$$, '42501'),
    ('worker', 'sweep', $$SELECT jobq.sweep()$$, '42501'),
    ('worker', 'create_provider', $$SELECT jobq.create_provider('sec-x', kind => 'mock')$$, '42501'),
    ('worker', 'drop_provider', $$SELECT jobq.drop_provider('sec-mock')$$, '42501'),
    ('worker', 'provider_health', $$SELECT jobq.provider_health('sec-mock')$$, '42501'),
    ('worker', 'add_validator', $$SELECT jobq.add_validator('t', 'jt.v(jsonb)')$$, '42501'),
    ('worker', 'set_prewarm_hook', $$SELECT jobq.set_prewarm_hook('q', 'http://127.0.0.1:9/')$$, '42501'),
    ('worker', 'metrics', $$SELECT jobq.metrics()$$, '42501'),
    ('worker', 'grant_admin (to itself)', $$SELECT jobq.grant_admin('jobq_sec_worker')$$, '42501'),
    ('worker', 'read jobq.job_tokens', $$SELECT * FROM jobq.job_tokens$$, '42501'),
    ('worker', 'read jobq.providers (their headers hold credentials)', $$SELECT * FROM jobq.providers$$, '42501'),
    ('worker', 'read jobq.registrations', $$SELECT * FROM jobq.registrations$$, '42501'),
    ('worker', 'write jobq.jobs', $$UPDATE jobq.jobs SET status = 2$$, '42501'),
    ('worker', 'write jobq.unit_checkpoints', $$DELETE FROM jobq.unit_checkpoints$$, '42501'),
    -- an admin: configuration and operations; still no forwarded tokens and
    -- no direct writes
    ('admin', 'sweep', $$SELECT jobq.sweep()$$, 'ok'),
    ('admin', 'purge', $$SELECT jobq.purge('0 s')$$, 'ok'),
    ('admin', 'register', $$SELECT jobq.register('sec-x', 'jt.h(jobq.jobs)', queue => 'sec-x-q')$$, 'ok'),
    ('admin', 'register of a function another role owns', $$SELECT jobq.register('sec-y', 'jt.h_other(jobq.jobs)', queue => 'sec-x-q')$$, '42501'),
    ('admin', 'register a unit handler', $$SELECT jobq.register('sec-x', unit_handler => 'jt.uh(jobq.jobs,integer)', queue => 'sec-x-q')$$, 'ok'),
    ('admin', 'unregister', $$SELECT jobq.unregister('sec-reg')$$, 'ok'),
    ('admin', 'create_provider', $$SELECT jobq.create_provider('sec-x', kind => 'mock')$$, 'ok'),
    ('admin', 'drop_provider', $$SELECT jobq.drop_provider('sec-mock')$$, 'ok'),
    ('admin', 'provider_health', $$SELECT jobq.provider_health('sec-mock')$$, 'ok'),
    ('admin', 'add_validator', $$SELECT jobq.add_validator('sec-v', 'jt.v(jsonb)')$$, 'ok'),
    ('admin', 'set_validation_threshold', $$SELECT jobq.set_validation_threshold('sec-v', 0.5)$$, 'ok'),
    ('admin', 'set_prewarm_hook', $$SELECT jobq.set_prewarm_hook('sec-x-q', 'http://127.0.0.1:9/')$$, 'ok'),
    ('admin', 'drop_prewarm_hook', $$SELECT jobq.drop_prewarm_hook('sec-hook-q')$$, 'ok'),
    ('admin', 'metrics', $$SELECT jobq.metrics()$$, 'ok'),
    ('admin', 'enqueue (the client set)', $$SELECT jobq.enqueue('t')$$, 'ok'),
    ('admin', 'claim (the worker set)', $$SELECT * FROM jobq.claim('q-q', 'adm')$$, 'ok'),
    ('admin', 'checkpoints (the worker set)', $$SELECT * FROM jobq.checkpoints(jt.id('u'))$$, 'ok'),
    ('admin', 'read jobq.registrations', $$SELECT * FROM jobq.registrations$$, 'ok'),
    ('admin', 'read jobq.providers', $$SELECT * FROM jobq.providers$$, 'ok'),
    ('admin', 'read jobq.unit_checkpoints', $$SELECT * FROM jobq.unit_checkpoints$$, 'ok'),
    ('admin', 'read jobq.queue_stats', $$SELECT * FROM jobq.queue_stats$$, 'ok'),
    ('admin', 'read jobq.worker_status', $$SELECT * FROM jobq.worker_status$$, 'ok'),
    ('admin', 'read jobq.job_tokens', $$SELECT * FROM jobq.job_tokens$$, '42501'),
    ('admin', 'read jobq.job_tokens.token', $$SELECT t.token FROM jobq.job_tokens t WHERE t.job_id = jt.id('u')$$, '42501'),
    ('admin', 'write jobq.jobs', $$UPDATE jobq.jobs SET status = 2$$, '42501'),
    ('admin', 'write jobq.registrations directly', $$DELETE FROM jobq.registrations$$, '42501'),
    ('admin', 'write jobq.providers directly', $$UPDATE jobq.providers SET url = 'http://evil/'$$, '42501'),
    ('admin', 'grant_admin (to others)', $$SELECT jobq.grant_admin('jobq_sec_nobody')$$, '42501'),
    -- a role with no grant
    ('nobody', 'enqueue_many', $$SELECT * FROM jobq.enqueue_many('t', ARRAY['{}']::jsonb[])$$, '42501'),
    ('nobody', 'depth', $$SELECT jobq.depth()$$, '42501'),
    ('nobody', 'status', $$SELECT jobq.status(jt.id('q'))$$, '42501'),
    ('nobody', 'claim', $$SELECT * FROM jobq.claim('q-q')$$, '42501'),
    ('nobody', 'metrics', $$SELECT jobq.metrics()$$, '42501'),
    ('nobody', 'read jobq.queue_stats', $$SELECT * FROM jobq.queue_stats$$, '42501');

SELECT is(jt.try('jobq_sec_' || c.who, c.sql), c.expect,
          format('%s: %s %s', c.who, c.what, CASE c.expect WHEN 'ok' THEN 'is allowed' ELSE 'is 42501' END))
  FROM jt.cases c ORDER BY c.n;

-- the fixtures the probes used are intact (every probe was rolled back)
SELECT is(ARRAY[jt.status('q'), jt.status('p'), jt.status('f'), jt.status('u')], ARRAY[0, 1, 3, 1],
          'the probes changed no job');

---------------------------------------------------------------------------
-- nothing for PUBLIC (and so for a role with no grant) but the helpers
---------------------------------------------------------------------------

SELECT is(
    (SELECT array_agg(p.oid::regprocedure::text ORDER BY p.oid::regprocedure::text)
       FROM pg_proc p
      WHERE p.pronamespace = 'jobq'::regnamespace
        AND EXISTS (SELECT 1 FROM aclexplode(coalesce(p.proacl, acldefault('f', p.proowner))) a
                     WHERE a.grantee = 0 AND a.privilege_type = 'EXECUTE')),
    ARRAY['jobq.current_user_id()', 'jobq.gen_uuid_v7()'],
    'PUBLIC may execute only jobq.gen_uuid_v7() and jobq.current_user_id()');

SELECT is(
    (SELECT array_agg(p.oid::regprocedure::text ORDER BY p.oid::regprocedure::text)
       FROM pg_proc p
      WHERE p.pronamespace = 'jobq'::regnamespace
        AND has_function_privilege('jobq_sec_nobody', p.oid, 'EXECUTE')),
    ARRAY['jobq.current_user_id()', 'jobq.gen_uuid_v7()'],
    'a role with no grant may execute only jobq.gen_uuid_v7() and jobq.current_user_id()');

SELECT is(
    (SELECT array_agg(DISTINCT format('%s %s', c.oid::regclass, a.privilege_type))
       FROM pg_class c, aclexplode(coalesce(c.relacl, acldefault('r', c.relowner))) a
      WHERE c.relnamespace = 'jobq'::regnamespace AND a.grantee = 0),
    NULL,
    'PUBLIC holds no privilege on any table, view or sequence in schema jobq');

SELECT is(
    (SELECT array_agg(format('%s %s', c.oid::regclass, p.priv))
       FROM pg_class c,
            unnest(ARRAY['SELECT', 'INSERT', 'UPDATE', 'DELETE', 'TRUNCATE', 'REFERENCES', 'TRIGGER']) p(priv)
      WHERE c.relnamespace = 'jobq'::regnamespace AND c.relkind IN ('r', 'v', 'm', 'p', 'S')
        AND has_table_privilege('jobq_sec_nobody', c.oid, p.priv)),
    NULL,
    'a role with no grant has no privilege on any relation in schema jobq');

SELECT is(
    (SELECT array_agg(a.privilege_type)
       FROM pg_namespace n, aclexplode(coalesce(n.nspacl, acldefault('n', n.nspowner))) a
      WHERE n.nspname = 'jobq' AND a.grantee = 0),
    NULL,
    'PUBLIC has neither USAGE nor CREATE on schema jobq');

SELECT is(
    (SELECT array_agg(r.rolname::text ORDER BY r.rolname)
       FROM pg_roles r
      WHERE r.rolname LIKE 'jobq\_sec\_%' AND has_table_privilege(r.oid, 'jobq.job_tokens', 'SELECT')),
    NULL,
    'no client, worker or admin role may read jobq.job_tokens');

SELECT is(
    (SELECT array_agg(r.rolname::text ORDER BY r.rolname)
       FROM pg_roles r
      WHERE r.rolname LIKE 'jobq\_sec\_%'
        AND (has_schema_privilege(r.oid, 'jobq', 'CREATE')
             OR EXISTS (SELECT 1 FROM pg_class c WHERE c.relnamespace = 'jobq'::regnamespace
                          AND c.relkind IN ('r', 'p')
                          AND (has_table_privilege(r.oid, c.oid, 'INSERT')
                               OR has_table_privilege(r.oid, c.oid, 'UPDATE')
                               OR has_table_privilege(r.oid, c.oid, 'DELETE')
                               OR has_table_privilege(r.oid, c.oid, 'TRUNCATE'))))),
    NULL,
    'no client, worker or admin role may write a jobq table directly or create in schema jobq');

SELECT is(
    (SELECT array_agg(p.proname::text ORDER BY p.proname)
       FROM pg_proc p
      WHERE p.pronamespace = 'jobq'::regnamespace AND p.proname LIKE '\_%'
        AND (has_function_privilege('jobq_sec_client', p.oid, 'EXECUTE')
             OR has_function_privilege('jobq_sec_worker', p.oid, 'EXECUTE'))),
    NULL,
    'no internal jobq._* function is executable by a client or a worker');

---------------------------------------------------------------------------
-- secrets: store credentials and the forwarded token (SPEC sections 6, 9)
---------------------------------------------------------------------------

SET LOCAL jobq.s3_secret_access_key = 'zzsecretzz-s3-secret';
SET LOCAL jobq.s3_access_key_id = 'zzsecretzz-s3-key-id';
SET LOCAL jobq.azure_account_key = 'zzsecretzz-azure-key';
SET LOCAL jobq.azure_sas_token = 'zzsecretzz-azure-sas';
SET LOCAL jobq.http_store_headers = '{"Authorization": "Bearer zzsecretzz-http"}';

CREATE TABLE jt.secrets (n serial PRIMARY KEY, name text NOT NULL, suset boolean NOT NULL);
INSERT INTO jt.secrets (name, suset) VALUES
    ('jobq.s3_secret_access_key', true), ('jobq.s3_access_key_id', true),
    ('jobq.azure_account_key', true), ('jobq.azure_sas_token', true),
    ('jobq.http_store_headers', true), ('jobq.auth_token', false);

SELECT is(jt.val('postgres', format('SHOW %s', s.name)) IS NOT NULL
          AND jt.val('postgres', format('SHOW %s', s.name)) NOT LIKE 'ERROR%', true,
          format('superuser: %s exists and can be shown (so the checks below mean something)', s.name))
  FROM jt.secrets s ORDER BY s.n;

SELECT is(jt.try('jobq_sec_admin', format('SHOW %s', s.name)), '42501',
          format('admin: SHOW %s is 42501', s.name))
  FROM jt.secrets s ORDER BY s.n;

SELECT is(jt.try('jobq_sec_client', format('SELECT current_setting(%L)', s.name)), '42501',
          format('client: current_setting(%L) is 42501', s.name))
  FROM jt.secrets s ORDER BY s.n;

SELECT is(jt.try('jobq_sec_worker', format('SELECT current_setting(%L, true)', s.name)), '42501',
          format('worker: current_setting(%L, missing_ok) is 42501, not NULL', s.name))
  FROM jt.secrets s ORDER BY s.n;

SELECT is(
    jt.val('jobq_sec_admin',
           $$SELECT count(*) FROM pg_settings
              WHERE name IN ('jobq.s3_secret_access_key', 'jobq.s3_access_key_id', 'jobq.azure_account_key',
                             'jobq.azure_sas_token', 'jobq.http_store_headers', 'jobq.auth_token')
                 OR setting LIKE '%zzsecretzz%' OR reset_val LIKE '%zzsecretzz%'
                 OR boot_val LIKE '%zzsecretzz%'$$),
    '0', 'admin: pg_settings shows no secret setting and no secret value');

SELECT is(
    jt.val('jobq_sec_admin',
           $$SELECT count(*) FROM pg_show_all_settings() s WHERE s.setting LIKE '%zzsecretzz%'$$),
    '0', 'admin: pg_show_all_settings() shows no secret value');

SELECT is(jt.try('jobq_sec_admin', format('SET %s = %L', s.name, 'x')), '42501',
          format('admin: SET %s is 42501', s.name))
  FROM jt.secrets s WHERE s.suset ORDER BY s.n;

SELECT is(jt.try('jobq_sec_client', format('SELECT set_config(%L, %L, true)', s.name, 'x')), '42501',
          format('client: set_config(%L) is 42501', s.name))
  FROM jt.secrets s WHERE s.suset ORDER BY s.n;

SELECT ok(
    (SELECT array_agg(g.name::text) FROM pg_settings g WHERE g.name LIKE 'jobq.%' AND g.context = 'superuser')
      @> ARRAY['jobq.checkpoint_url', 'jobq.max_payload_bytes', 'jobq.max_units', 'jobq.max_checkpoint_bytes'],
    'checkpoint_url and the size limits are superuser-only settings');

SELECT is(
    (SELECT array_agg(g.name::text ORDER BY g.name) FROM pg_settings g
      WHERE g.name LIKE 'jobq.%' AND g.context = 'superuser'
        AND jt.try('jobq_sec_admin', format('SET LOCAL %s = %L', g.name, g.setting)) <> '42501'),
    NULL,
    'admin: SET of every other superuser-only jobq setting is 42501');

-- the forwarded token: a client sets it (SPEC 9) but cannot read it back
SELECT is(jt.try('jobq_sec_client', $$SET LOCAL jobq.auth_token = 'client-token'$$), 'ok',
          'client: SET LOCAL jobq.auth_token is allowed');
SELECT is(jt.val('jobq_sec_client', $$SET LOCAL jobq.auth_token = 'client-token'; SHOW jobq.auth_token$$),
          'ERROR 42501', 'client: SHOW of the jobq.auth_token it has just set is 42501');

-- the token is kept apart from jobq.jobs (in jobq.job_tokens, which no
-- client, worker or admin reads)
DO $$ BEGIN
    PERFORM set_config('role', 'jobq_sec_client', true);
    SET LOCAL jobq.auth_token = 'zzsecretzz-forwarded-token';
    PERFORM jobq.enqueue('sec-prov', '{"k": 1}');
    SET LOCAL jobq.auth_token = '';
    PERFORM set_config('role', 'none', true);
END $$;
SELECT is((SELECT count(*) FROM jobq.job_tokens WHERE token = 'zzsecretzz-forwarded-token'), 1::bigint,
          'a client''s forwarded token is kept in jobq.job_tokens');
SELECT is((SELECT count(*) FROM jobq.jobs j WHERE to_jsonb(j)::text LIKE '%zzsecretzz%'), 0::bigint,
          'no column of jobq.jobs holds the forwarded token');

-- SPEC 9: the token goes into an "Authorization: Bearer <token>" header.  A
-- token with CR/LF (or any control character) would let a client add its
-- own headers to the provider request (header injection): it must be
-- refused with 22023, when it is set or at the latest when a job is enqueued
-- with it, and then no token row exists.
CREATE FUNCTION jt.enqueue_with_token(token text, many boolean) RETURNS text
LANGUAGE plpgsql AS $$
BEGIN
    BEGIN
        PERFORM set_config('role', 'jobq_sec_client', true);
        -- SET, not set_config(): set_config() returns the value, which a
        -- non-superuser may not examine
        EXECUTE format('SET LOCAL jobq.auth_token = %L', token);
        IF many THEN
            PERFORM FROM jobq.enqueue_many('sec-prov', ARRAY['{}']::jsonb[]);
        ELSE
            PERFORM jobq.enqueue('sec-prov');
        END IF;
        PERFORM set_config('role', 'none', true);
        IF EXISTS (SELECT 1 FROM jobq.job_tokens t WHERE t.token = enqueue_with_token.token) THEN
            RAISE EXCEPTION 'kept' USING ERRCODE = 'JQ0OK';
        END IF;
        RAISE EXCEPTION 'not kept' USING ERRCODE = 'JQ0NK';
    EXCEPTION WHEN OTHERS THEN
        RETURN CASE SQLSTATE WHEN 'JQ0OK' THEN 'kept' WHEN 'JQ0NK' THEN 'not kept' ELSE SQLSTATE END;
    END;
END
$$;

SELECT is(jt.enqueue_with_token('plain-token-123', false), 'kept',
          'a plain bearer token is kept for a provider job type (so the next checks mean something)');
SELECT is(jt.enqueue_with_token(E'tok\r\nX-Injected: yes', false), '22023',
          'enqueue with a jobq.auth_token holding CR/LF is 22023 (no header injection)');
SELECT is(jt.enqueue_with_token(E'tok\r\nX-Injected: yes', true), '22023',
          'enqueue_many with a jobq.auth_token holding CR/LF is 22023 (no header injection)');
SELECT is(jt.enqueue_with_token(E'tok\nX-Injected: yes', false), '22023',
          'enqueue with a jobq.auth_token holding a bare LF is 22023');
SELECT is(jt.enqueue_with_token(E'tok\x01', false), '22023',
          'enqueue with a jobq.auth_token holding a control character is 22023');

SELECT * FROM finish();
ROLLBACK;
