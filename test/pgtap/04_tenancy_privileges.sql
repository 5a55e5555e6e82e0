-- Tenancy and privileges (SPEC sections 8, 9 and 14): a session with a
-- tenant sees, cancels and retries only its own user's jobs, and any other
-- job id is P0002 (no existence leak) in every function that takes one;
-- enqueue for another user is 42501; row-level security on direct reads of
-- jobq.jobs; and the capability sets of grant_client / grant_worker.
BEGIN;
SELECT plan(64);
\ir _helpers.psql

CREATE TABLE jt.users (name text PRIMARY KEY, id uuid NOT NULL);
INSERT INTO jt.users VALUES ('A', 'aaaaaaaa-0000-4000-8000-000000000001'),
                            ('B', 'bbbbbbbb-0000-4000-8000-000000000002');
GRANT SELECT ON jt.users TO PUBLIC;
CREATE FUNCTION jt.user(name text) RETURNS uuid LANGUAGE sql STABLE
    AS $$ SELECT u.id FROM jt.users u WHERE u.name = "user".name $$;

DO $$ BEGIN
    PERFORM jt.make('a-q', 0, jt.user('A'));
    PERFORM jt.make('a-p', 1, jt.user('A'));
    PERFORM jt.make('a-f', 3, jt.user('A'));
    PERFORM jt.make('b-q', 0, jt.user('B'));
    PERFORM jt.make('b-p', 1, jt.user('B'));
    PERFORM jt.make('b-f', 3, jt.user('B'));
    PERFORM jt.make('b-d', 2, jt.user('B'));
    INSERT INTO jt.ids VALUES ('b-dedupe', jobq.enqueue('sync', user_id => jt.user('B'), dedupe_key => 'shared'));
END $$;

---------------------------------------------------------------------------
-- a session whose tenant is A (jobq.user_id)
---------------------------------------------------------------------------

SET LOCAL jobq.user_id = 'aaaaaaaa-0000-4000-8000-000000000001';
SELECT is(jobq.current_user_id(), jt.user('A'), 'current_user_id() is the jobq.user_id setting');
DO $$ BEGIN PERFORM jt.snapshot(); END $$;
SELECT throws_ok($$SELECT jobq.status(jt.id('b-q'))$$, 'P0002', NULL, 'tenant A: status of B''s job is P0002');
SELECT throws_ok($$SELECT jobq.cancel(jt.id('b-q'))$$, 'P0002', NULL, 'tenant A: cancel of B''s Queued job is P0002');
SELECT throws_ok($$SELECT jobq.cancel(jt.id('b-d'))$$, 'P0002', NULL, 'tenant A: cancel of B''s Completed job is P0002, not false');
SELECT throws_ok($$SELECT jobq.retry(jt.id('b-f'))$$, 'P0002', NULL, 'tenant A: retry of B''s Failed job is P0002');
SELECT throws_ok($$SELECT jobq.retry(jt.id('b-q'))$$, 'P0002', NULL, 'tenant A: retry of B''s Queued job is P0002, not false');
SELECT throws_ok($$SELECT jobq.heartbeat(jt.id('b-p'))$$, 'P0002', NULL, 'tenant A: heartbeat of B''s job is P0002');
SELECT throws_ok($$SELECT jobq.heartbeat(jt.id('b-p'), 'w1')$$, 'P0002', NULL, 'tenant A: heartbeat of B''s job as its holder is P0002');
SELECT throws_ok($$SELECT jobq.progress(jt.id('b-p'), 50)$$, 'P0002', NULL, 'tenant A: progress of B''s job is P0002');
SELECT throws_ok($$SELECT jobq.complete(jt.id('b-p'))$$, 'P0002', NULL, 'tenant A: complete of B''s job is P0002');
SELECT throws_ok($$SELECT jobq.complete(jt.id('b-p'), '{}', 'w1')$$, 'P0002', NULL, 'tenant A: complete of B''s job as its holder is P0002');
SELECT throws_ok($$SELECT jobq.complete_many(ARRAY[jt.id('b-p')])$$, 'P0002', NULL, 'tenant A: complete_many of B''s job is P0002');
SELECT throws_ok($$SELECT jobq.complete_many(ARRAY[jt.id('a-p'), jt.id('b-p')])$$, 'P0002', NULL,
                 'tenant A: complete_many of its own job plus B''s is P0002');
SELECT throws_ok($$SELECT jobq.fail(jt.id('b-p'), 'boom')$$, 'P0002', NULL, 'tenant A: fail of B''s job is P0002');
SELECT throws_ok($$SELECT jobq.fail(jt.id('b-p'), 'boom', worker => 'w1')$$, 'P0002', NULL, 'tenant A: fail of B''s job as its holder is P0002');
SELECT throws_ok($$SELECT jobq.enqueue('t', user_id => jt.user('B'))$$, '42501', NULL,
                 'tenant A: enqueue for user B is 42501');
SELECT throws_ok($$SELECT jobq.enqueue_many('t', ARRAY['{}'::jsonb], user_id => jt.user('B'))$$, '42501', NULL,
                 'tenant A: enqueue_many for user B is 42501');
SELECT ok(jt.unchanged(), 'tenant A''s refused calls changed and created nothing');

SELECT is((jobq.status(jt.id('a-q'))).id, jt.id('a-q'), 'tenant A: status of its own job');
SELECT is(jobq.heartbeat(jt.id('a-p'), 'w1'), true, 'tenant A: heartbeat of its own job');
SELECT is(jobq.cancel(jt.id('a-q')), true, 'tenant A: cancel of its own job');
SELECT is(jobq.retry(jt.id('a-f')), true, 'tenant A: retry of its own Failed job');
SELECT is((jobq.status(jobq.enqueue('t'))).user_id, jt.user('A'),
          'tenant A: enqueue without user_id enqueues for A');
SELECT is((jobq.status(jobq.enqueue('t', user_id => jt.user('A')))).user_id, jt.user('A'),
          'tenant A: enqueue for its own user id is allowed');
SELECT is((SELECT count(*) FROM jobq.enqueue_many('t', ARRAY['{}', '{}']::jsonb[]) AS e(id)
            WHERE (jobq.status(e.id)).user_id = jt.user('A')), 2::bigint,
          'tenant A: enqueue_many without user_id enqueues for A');
SELECT isnt(jobq.enqueue('sync', dedupe_key => 'shared'), jt.id('b-dedupe'),
            'tenant A: a dedupe_key held by B''s job does not return B''s job id');
SELECT is((SELECT count(*) FROM jobq.jobs WHERE user_id = jt.user('B') AND status = 4), 0::bigint,
          'no job of B was cancelled by tenant A');

---------------------------------------------------------------------------
-- the tenant from request.jwt.claims (PostgREST / Supabase)
---------------------------------------------------------------------------

SET LOCAL jobq.user_id = '';
SET LOCAL request.jwt.claims = '{"sub": "bbbbbbbb-0000-4000-8000-000000000002", "role": "web"}';
SELECT is(jobq.current_user_id(), jt.user('B'), 'current_user_id() is the sub of request.jwt.claims');
SELECT throws_ok($$SELECT jobq.status(jt.id('a-q'))$$, 'P0002', NULL, 'JWT tenant B: status of A''s job is P0002');
SELECT throws_ok($$SELECT jobq.cancel(jt.id('a-p'))$$, 'P0002', NULL, 'JWT tenant B: cancel of A''s job is P0002');
SELECT is((jobq.status(jt.id('b-q'))).id, jt.id('b-q'), 'JWT tenant B: status of its own job');
SET LOCAL jobq.user_id = 'aaaaaaaa-0000-4000-8000-000000000001';
SELECT is(jobq.current_user_id(), jt.user('A'), 'jobq.user_id takes precedence over request.jwt.claims');
SET LOCAL jobq.user_id = '';
SET LOCAL request.jwt.claims = '';
SELECT is(jobq.current_user_id(), NULL, 'no jobq.user_id and no claims: no tenant');

---------------------------------------------------------------------------
-- a client role (grant_client): row-level security and its capability set
---------------------------------------------------------------------------

CREATE ROLE jobq_tap_client NOLOGIN;
DO $$ BEGIN PERFORM jobq.grant_client('jobq_tap_client'); END $$;
SET LOCAL ROLE jobq_tap_client;
SET LOCAL jobq.user_id = 'aaaaaaaa-0000-4000-8000-000000000001';
SELECT ok(EXISTS (SELECT 1 FROM jobq.jobs WHERE id = jt.id('a-p')),
          'RLS: client with tenant A sees A''s jobs in jobq.jobs');
SELECT is((SELECT count(*) FROM jobq.jobs WHERE user_id <> jt.user('A')), 0::bigint,
          'RLS: client with tenant A sees no other user''s row in jobq.jobs');
SELECT ok(NOT EXISTS (SELECT 1 FROM jobq.jobs WHERE id = jt.id('b-q')),
          'RLS: client with tenant A cannot select B''s job by id');
SELECT lives_ok($$SELECT jobq.enqueue('t')$$, 'client with tenant A: enqueue');
SELECT throws_ok($$SELECT jobq.enqueue('t', user_id => jt.user('B'))$$, '42501', NULL,
                 'client with tenant A: enqueue for user B is 42501');
SELECT throws_ok($$SELECT jobq.status(jt.id('b-q'))$$, 'P0002', NULL, 'client with tenant A: status of B''s job is P0002');
SELECT throws_ok($$SELECT jobq.cancel(jt.id('b-q'))$$, 'P0002', NULL, 'client with tenant A: cancel of B''s job is P0002');
SELECT throws_ok($$SELECT jobq.retry(jt.id('b-f'))$$, 'P0002', NULL, 'client with tenant A: retry of B''s job is P0002');
SELECT ok(jobq.depth() IS NOT NULL, 'client: depth() is callable');
SET LOCAL jobq.user_id = '';
SET LOCAL request.jwt.claims = '{"sub": "bbbbbbbb-0000-4000-8000-000000000002"}';
SELECT is((SELECT array_agg(DISTINCT user_id) FROM jobq.jobs), ARRAY[jt.user('B')],
          'RLS: client with JWT tenant B sees only B''s rows');
SET LOCAL request.jwt.claims = '';

-- not the worker or admin API, and no direct writes
SELECT throws_ok($$SELECT * FROM jobq.claim('q-b-q', 'evil')$$, '42501', NULL, 'client: claim is 42501');
SELECT throws_ok($$SELECT jobq.heartbeat(jt.id('b-p'), 'w1')$$, '42501', NULL, 'client: heartbeat is 42501');
SELECT throws_ok($$SELECT jobq.progress(jt.id('b-p'), 10)$$, '42501', NULL, 'client: progress is 42501');
SELECT throws_ok($$SELECT jobq.complete(jt.id('b-p'))$$, '42501', NULL, 'client: complete is 42501');
SELECT throws_ok($$SELECT jobq.complete_many(ARRAY[jt.id('b-p')])$$, '42501', NULL, 'client: complete_many is 42501');
SELECT throws_ok($$SELECT jobq.fail(jt.id('b-p'), 'boom')$$, '42501', NULL, 'client: fail is 42501');
SELECT throws_ok($$UPDATE jobq.jobs SET status = 2$$, '42501', NULL, 'client: UPDATE of jobq.jobs is 42501');
SELECT throws_ok($$DELETE FROM jobq.jobs$$, '42501', NULL, 'client: DELETE from jobq.jobs is 42501');
SELECT throws_ok($$INSERT INTO jobq.jobs (id, job_type, trace_id) VALUES (jobq.gen_uuid_v7(), 't', repeat('a', 32))$$,
                 '42501', NULL, 'client: INSERT into jobq.jobs is 42501');
SELECT throws_ok($$SELECT jobq.grant_admin('jobq_tap_client')$$, '42501', NULL,
                 'client: cannot grant itself the admin set');
RESET ROLE;
SELECT is(jt.status('b-p'), 1, 'the client''s refused calls left B''s Processing job alone');

---------------------------------------------------------------------------
-- a worker role (grant_worker) runs the worker API
---------------------------------------------------------------------------

CREATE ROLE jobq_tap_worker NOLOGIN;
DO $$ BEGIN
    PERFORM jobq.grant_worker('jobq_tap_worker');
    PERFORM jt.make('wa', 0); PERFORM jt.make('wb', 0); PERFORM jt.make('wc', 0);
END $$;
SET LOCAL ROLE jobq_tap_worker;
SELECT is((SELECT array_agg(id) FROM jobq.claim('q-wa', 'wk')), ARRAY[jt.id('wa')], 'worker: claim');
SELECT is(jobq.heartbeat(jt.id('wa'), 'wk'), true, 'worker: heartbeat of its job');
SELECT lives_ok($$SELECT jobq.progress(jt.id('wa'), 50, 'half')$$, 'worker: progress');
SELECT lives_ok($$SELECT jobq.complete(jt.id('wa'), '{"ok": true}', 'wk')$$, 'worker: complete');
SELECT lives_ok($$SELECT FROM jobq.claim('q-wb', 'wk'); SELECT jobq.fail(jt.id('wb'), 'boom', worker => 'wk')$$,
                'worker: claim then fail');
SELECT is((SELECT count(*) FROM jobq.claim('q-wc', 'wk')), 1::bigint, 'worker: claim another');
SELECT is(jobq.complete_many(ARRAY[jt.id('wc')], NULL, 'wk'), 1, 'worker: complete_many');
RESET ROLE;
SELECT is(ARRAY[jt.status('wa'), jt.status('wb'), jt.status('wc')], ARRAY[2, 0, 2],
          'the worker role''s calls took effect (Completed, requeued, Completed)');

---------------------------------------------------------------------------
-- a role with no grant gets nothing
---------------------------------------------------------------------------

CREATE ROLE jobq_tap_nobody NOLOGIN;
SET LOCAL ROLE jobq_tap_nobody;
SELECT throws_ok($$SELECT jobq.enqueue('t')$$, '42501', NULL, 'a role without grants: enqueue is 42501');
SELECT throws_ok($$SELECT count(*) FROM jobq.jobs$$, '42501', NULL, 'a role without grants: SELECT on jobq.jobs is 42501');
RESET ROLE;

SELECT * FROM finish();
ROLLBACK;
