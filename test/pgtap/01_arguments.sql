-- The shape of the API (SPEC sections 2-4) and its argument errors
-- (sections 8 and 14): 22023 for NULL / empty / out-of-range arguments,
-- 54000 for payloads over jobq.max_payload_bytes, P0002 for unknown job ids,
-- and NULL meaning the default for arguments that have one.
BEGIN;
SELECT plan(100);
\ir _helpers.psql

---------------------------------------------------------------------------
-- shape: the jobs table and the SQL signatures callers rely on
---------------------------------------------------------------------------

SELECT set_has(
    $$SELECT attname::text, format_type(atttypid, atttypmod)
        FROM pg_attribute WHERE attrelid = 'jobq.jobs'::regclass AND attnum > 0 AND NOT attisdropped$$,
    $$VALUES ('id', 'uuid'), ('user_id', 'uuid'), ('job_type', 'text'), ('queue', 'text'),
             ('status', 'integer'), ('payload', 'jsonb'), ('result', 'jsonb'),
             ('error_message', 'text'), ('error', 'jsonb'), ('progress_percent', 'integer'),
             ('status_message', 'text'), ('created_at', 'timestamp with time zone'),
             ('started_at', 'timestamp with time zone'), ('completed_at', 'timestamp with time zone'),
             ('priority', 'integer'), ('run_at', 'timestamp with time zone'),
             ('attempts', 'integer'), ('max_attempts', 'integer'), ('units_total', 'integer'),
             ('units_done', 'integer'), ('locked_by', 'text'),
             ('heartbeat_at', 'timestamp with time zone'), ('dedupe_key', 'text'), ('trace_id', 'text')$$,
    'jobq.jobs has every column of SPEC section 2 with its type');

SELECT set_has(
    $$SELECT attname::text FROM pg_attribute
       WHERE attrelid = 'jobq.jobs'::regclass AND attnum > 0 AND attnotnull$$,
    $$VALUES ('id'), ('user_id'), ('job_type'), ('queue'), ('status'), ('payload'),
             ('priority'), ('run_at')$$,
    'jobq.jobs: id, user_id, job_type, queue, status, payload, priority, run_at are NOT NULL');

SELECT col_is_pk('jobq', 'jobs', 'id', 'jobq.jobs.id is the primary key');

SELECT is(
    (SELECT coalesce(p.proargnames::text, '{}') || ' -> ' || pg_get_function_result(p.oid)
       FROM pg_proc p WHERE p.oid = to_regprocedure(e.sig)),
    e.expected,
    'signature of ' || e.sig)
  FROM (VALUES
    ('jobq.enqueue(text,jsonb,uuid,text,integer,timestamp with time zone,integer,integer,text,text)',
     '{job_type,payload,user_id,queue,priority,run_at,units,max_attempts,dedupe_key,trace_id} -> uuid'),
    ('jobq.enqueue_many(text,jsonb[],uuid,text,integer)',
     '{job_type,payloads,user_id,queue,priority} -> SETOF uuid'),
    ('jobq.cancel(uuid)', '{job_id} -> boolean'),
    ('jobq.retry(uuid)', '{job_id} -> boolean'),
    ('jobq.status(uuid)', '{job_id} -> jobq.jobs'),
    ('jobq.depth(text)', '{queue} -> bigint'),
    ('jobq.claim(text,text,integer,text[])', '{queue,worker,max_jobs,job_types} -> SETOF jobq.jobs'),
    ('jobq.heartbeat(uuid,text)', '{job_id,worker} -> boolean'),
    ('jobq.progress(uuid,integer,text)', '{job_id,percent,message} -> void'),
    ('jobq.complete(uuid,jsonb,text)', '{job_id,result,worker} -> void'),
    ('jobq.complete_many(uuid[],jsonb[],text)', '{job_ids,results,worker} -> integer'),
    ('jobq.fail(uuid,text,text,boolean,text)', '{job_id,message,code,retry,worker} -> void'),
    ('jobq.current_user_id()', '{} -> uuid'),
    ('jobq.grant_client(regrole)', '{role} -> void'),
    ('jobq.grant_worker(regrole)', '{role} -> void'),
    ('jobq.grant_admin(regrole)', '{role} -> void')
  ) AS e(sig, expected);

---------------------------------------------------------------------------
-- NULL for an argument with a default means that default
---------------------------------------------------------------------------

SET LOCAL jobq.default_max_attempts = 4;
DO $$ BEGIN
    INSERT INTO jt.ids VALUES ('defaults',
        jobq.enqueue('t', NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL));
END $$;
SELECT is((jt.job('defaults')).queue, 'default', 'enqueue: NULL queue means ''default''');
SELECT is((jt.job('defaults')).payload, '{}'::jsonb, 'enqueue: NULL payload means ''{}''');
SELECT is((jt.job('defaults')).priority, 0, 'enqueue: NULL priority means 0');
SELECT is((jt.job('defaults')).user_id, '00000000-0000-0000-0000-000000000000'::uuid,
          'enqueue: NULL user_id without a tenant means the nil UUID');
SELECT is((jt.job('defaults')).max_attempts, 4,
          'enqueue: NULL max_attempts stores the jobq.default_max_attempts GUC');
SELECT ok((jt.job('defaults')).run_at <= now(), 'enqueue: NULL run_at means due now');
SELECT ok((jt.job('defaults')).trace_id ~ '^[0-9a-f]{32}$',
          'enqueue: every job gets a trace_id of 32 lowercase hex digits');
SELECT is((jobq.status(jobq.enqueue('t', trace_id => '4BF92F3577B34DA6A3CE929D0E0E4736'))).trace_id,
          '4bf92f3577b34da6a3ce929d0e0e4736', 'enqueue: an upper-case trace_id is accepted, stored lower-case');
SELECT is((SELECT count(*) FROM jobq.claim(NULL, NULL, NULL, NULL)), 1::bigint,
          'claim(NULL, NULL, NULL, NULL) claims one job from queue ''default''');
SELECT is((SELECT count(*) FROM jobq.enqueue_many('t', ARRAY['{}', '{}']::jsonb[], NULL, NULL, NULL)), 2::bigint,
          'enqueue_many: NULL user_id, queue and priority mean their defaults');

---------------------------------------------------------------------------
-- 22023: NULL where a value is needed, empty names, out-of-range numbers
---------------------------------------------------------------------------

DO $$ BEGIN PERFORM jt.make('queued', 0); PERFORM jt.make('proc', 1); END $$;
DO $$ BEGIN PERFORM jt.snapshot(); END $$;

-- enqueue
SELECT throws_ok($$SELECT jobq.enqueue(NULL)$$, '22023', NULL, 'enqueue: NULL job_type is 22023');
SELECT throws_ok($$SELECT jobq.enqueue('')$$, '22023', NULL, 'enqueue: empty job_type is 22023');
SELECT throws_ok($$SELECT jobq.enqueue('t', queue => '')$$, '22023', NULL, 'enqueue: empty queue is 22023');
SELECT throws_ok($$SELECT jobq.enqueue('t', units => 0)$$, '22023', NULL, 'enqueue: units = 0 is 22023');
SELECT throws_ok($$SELECT jobq.enqueue('t', units => -3)$$, '22023', NULL, 'enqueue: negative units is 22023');
SELECT throws_ok($$SELECT jobq.enqueue('t', max_attempts => 0)$$, '22023', NULL, 'enqueue: max_attempts = 0 is 22023');
SELECT throws_ok($$SELECT jobq.enqueue('t', max_attempts => -1)$$, '22023', NULL, 'enqueue: negative max_attempts is 22023');
SELECT throws_ok($$SELECT jobq.enqueue('t', dedupe_key => '')$$, '22023', NULL, 'enqueue: empty dedupe_key is 22023');
SELECT throws_ok($$SELECT jobq.enqueue('t', trace_id => 'abc')$$, '22023', NULL, 'enqueue: a 3-character trace_id is 22023');
SELECT throws_ok($$SELECT jobq.enqueue('t', trace_id => repeat('a', 31))$$, '22023', NULL, 'enqueue: a 31-digit trace_id is 22023');
SELECT throws_ok($$SELECT jobq.enqueue('t', trace_id => repeat('a', 33))$$, '22023', NULL, 'enqueue: a 33-digit trace_id is 22023');
SELECT throws_ok($$SELECT jobq.enqueue('t', trace_id => repeat('g', 32))$$, '22023', NULL, 'enqueue: a trace_id with non-hex digits is 22023');

-- enqueue_many
SELECT throws_ok($$SELECT jobq.enqueue_many(NULL, ARRAY['{}'::jsonb])$$, '22023', NULL, 'enqueue_many: NULL job_type is 22023');
SELECT throws_ok($$SELECT jobq.enqueue_many('', ARRAY['{}'::jsonb])$$, '22023', NULL, 'enqueue_many: empty job_type is 22023');
SELECT throws_ok($$SELECT jobq.enqueue_many('t', NULL)$$, '22023', NULL, 'enqueue_many: NULL payloads is 22023');
SELECT throws_ok($$SELECT jobq.enqueue_many('t', ARRAY['{}'::jsonb, NULL])$$, '22023', NULL, 'enqueue_many: a NULL payload element is 22023');
SELECT throws_ok($$SELECT jobq.enqueue_many('t', ARRAY[['{}'::jsonb], ['{}'::jsonb]])$$, '22023', NULL, 'enqueue_many: a 2-D payloads array is 22023');
SELECT throws_ok($$SELECT jobq.enqueue_many('t', ARRAY['{}'::jsonb], queue => '')$$, '22023', NULL, 'enqueue_many: empty queue is 22023');

-- cancel / retry / status / depth
SELECT throws_ok($$SELECT jobq.cancel(NULL)$$, '22023', NULL, 'cancel: NULL job_id is 22023');
SELECT throws_ok($$SELECT jobq.retry(NULL)$$, '22023', NULL, 'retry: NULL job_id is 22023');
SELECT throws_ok($$SELECT jobq.status(NULL)$$, '22023', NULL, 'status: NULL job_id is 22023');
SELECT throws_ok($$SELECT jobq.depth('')$$, '22023', NULL, 'depth: empty queue name is 22023');

-- claim
SELECT throws_ok($$SELECT * FROM jobq.claim('')$$, '22023', NULL, 'claim: empty queue is 22023');
SELECT throws_ok($$SELECT * FROM jobq.claim('default', '')$$, '22023', NULL, 'claim: empty worker is 22023');
SELECT throws_ok($$SELECT * FROM jobq.claim('default', 'w1', -1)$$, '22023', NULL, 'claim: negative max_jobs is 22023');
SELECT throws_ok($$SELECT * FROM jobq.claim('default', 'w1', 1, ARRAY[''])$$, '22023', NULL, 'claim: an empty job type name in job_types is 22023');

-- heartbeat / progress
SELECT throws_ok($$SELECT jobq.heartbeat(NULL)$$, '22023', NULL, 'heartbeat: NULL job_id is 22023');
SELECT throws_ok($$SELECT jobq.heartbeat(jt.id('proc'), '')$$, '22023', NULL, 'heartbeat: empty worker is 22023');
SELECT throws_ok($$SELECT jobq.progress(NULL, 10)$$, '22023', NULL, 'progress: NULL job_id is 22023');
SELECT throws_ok($$SELECT jobq.progress(jt.id('proc'), NULL)$$, '22023', NULL, 'progress: NULL percent is 22023');
SELECT throws_ok($$SELECT jobq.progress(jt.id('proc'), -1)$$, '22023', NULL, 'progress: percent -1 is 22023');
SELECT throws_ok($$SELECT jobq.progress(jt.id('proc'), 101)$$, '22023', NULL, 'progress: percent 101 is 22023');

-- complete / complete_many
SELECT throws_ok($$SELECT jobq.complete(NULL)$$, '22023', NULL, 'complete: NULL job_id is 22023');
SELECT throws_ok($$SELECT jobq.complete(jt.id('proc'), NULL, '')$$, '22023', NULL, 'complete: empty worker is 22023');
SELECT throws_ok($$SELECT jobq.complete_many(NULL)$$, '22023', NULL, 'complete_many: NULL job_ids is 22023');
SELECT throws_ok($$SELECT jobq.complete_many(ARRAY[jt.id('proc'), NULL])$$, '22023', NULL, 'complete_many: a NULL element in job_ids is 22023');
SELECT throws_ok($$SELECT jobq.complete_many(ARRAY[[jt.id('proc')], [jt.id('queued')]])$$, '22023', NULL, 'complete_many: a 2-D job_ids array is 22023');
SELECT throws_ok($$SELECT jobq.complete_many(ARRAY[jt.id('proc')], ARRAY['{}', '{}']::jsonb[])$$, '22023', NULL, 'complete_many: more results than job ids is 22023');
SELECT throws_ok($$SELECT jobq.complete_many(ARRAY[jt.id('proc'), jt.id('proc')])$$, '22023', NULL, 'complete_many: the same job id twice is 22023');
SELECT throws_ok($$SELECT jobq.complete_many(ARRAY[jt.id('proc')], NULL, '')$$, '22023', NULL, 'complete_many: empty worker is 22023');

-- fail
SELECT throws_ok($$SELECT jobq.fail(NULL, 'boom')$$, '22023', NULL, 'fail: NULL job_id is 22023');
SELECT throws_ok($$SELECT jobq.fail(jt.id('proc'), NULL)$$, '22023', NULL, 'fail: NULL message is 22023');
SELECT throws_ok($$SELECT jobq.fail(jt.id('proc'), 'boom', '')$$, '22023', NULL, 'fail: empty code is 22023');
SELECT throws_ok($$SELECT jobq.fail(jt.id('proc'), 'boom', worker => '')$$, '22023', NULL, 'fail: empty worker is 22023');

-- grants
SELECT throws_ok($$SELECT jobq.grant_client(NULL)$$, '22023', NULL, 'grant_client: NULL role is 22023');
SELECT throws_ok($$SELECT jobq.grant_worker(NULL)$$, '22023', NULL, 'grant_worker: NULL role is 22023');
SELECT throws_ok($$SELECT jobq.grant_admin(NULL)$$, '22023', NULL, 'grant_admin: NULL role is 22023');

SELECT ok(jt.unchanged(), 'the calls rejected with 22023 created and changed no job');

-- the bounds themselves are valid
SELECT lives_ok($$SELECT jobq.progress(jt.id('proc'), 0)$$, 'progress: percent 0 is accepted');
SELECT lives_ok($$SELECT jobq.progress(jt.id('proc'), 100)$$, 'progress: percent 100 is accepted');
SELECT is((SELECT count(*) FROM jobq.claim('q-queued', 'w1', 0)), 0::bigint, 'claim: max_jobs 0 claims nothing');
SELECT is(jt.status('queued'), 0, 'claim with max_jobs 0 left the job Queued');
SELECT is(jobq.complete_many('{}'), 0, 'complete_many of an empty array completes nothing and returns 0');

---------------------------------------------------------------------------
-- 54000: payload over jobq.max_payload_bytes
---------------------------------------------------------------------------

SET LOCAL jobq.max_payload_bytes = '100B';
DO $$ BEGIN PERFORM jt.snapshot(); END $$;
SELECT throws_ok($$SELECT jobq.enqueue('t', jsonb_build_object('s', repeat('a', 200)))$$,
                 '54000', NULL, 'enqueue: a payload over jobq.max_payload_bytes is 54000');
SELECT throws_ok($$SELECT jobq.enqueue_many('t', ARRAY['{}'::jsonb, jsonb_build_object('s', repeat('a', 200))])$$,
                 '54000', NULL, 'enqueue_many: one payload over jobq.max_payload_bytes is 54000');
SELECT ok(jt.unchanged(), 'the oversized enqueues created no job (not even the small payloads of the batch)');
SELECT lives_ok($$SELECT jobq.enqueue('t', jsonb_build_object('s', repeat('a', 20)))$$,
                'enqueue: a payload under jobq.max_payload_bytes is accepted');
RESET jobq.max_payload_bytes;

---------------------------------------------------------------------------
-- P0002: a job id that does not exist, in every function taking one
---------------------------------------------------------------------------

DO $$ BEGIN PERFORM jt.snapshot(); END $$;
SELECT throws_ok($$SELECT jobq.status(jobq.gen_uuid_v7())$$, 'P0002', NULL, 'status: unknown job id is P0002');
SELECT throws_ok($$SELECT jobq.cancel(jobq.gen_uuid_v7())$$, 'P0002', NULL, 'cancel: unknown job id is P0002');
SELECT throws_ok($$SELECT jobq.retry(jobq.gen_uuid_v7())$$, 'P0002', NULL, 'retry: unknown job id is P0002');
SELECT throws_ok($$SELECT jobq.heartbeat(jobq.gen_uuid_v7())$$, 'P0002', NULL, 'heartbeat: unknown job id is P0002');
SELECT throws_ok($$SELECT jobq.heartbeat(jobq.gen_uuid_v7(), 'w1')$$, 'P0002', NULL, 'heartbeat with a worker: unknown job id is P0002');
SELECT throws_ok($$SELECT jobq.progress(jobq.gen_uuid_v7(), 5)$$, 'P0002', NULL, 'progress: unknown job id is P0002');
SELECT throws_ok($$SELECT jobq.complete(jobq.gen_uuid_v7())$$, 'P0002', NULL, 'complete: unknown job id is P0002');
SELECT throws_ok($$SELECT jobq.complete(jobq.gen_uuid_v7(), '{}', 'w1')$$, 'P0002', NULL, 'complete with a worker: unknown job id is P0002');
SELECT throws_ok($$SELECT jobq.complete_many(ARRAY[jobq.gen_uuid_v7()])$$, 'P0002', NULL, 'complete_many: unknown job id is P0002');
SELECT throws_ok($$SELECT jobq.complete_many(ARRAY[jt.id('proc'), jobq.gen_uuid_v7()])$$, 'P0002', NULL,
                 'complete_many: a Processing job plus an unknown id is P0002');
SELECT throws_ok($$SELECT jobq.fail(jobq.gen_uuid_v7(), 'boom')$$, 'P0002', NULL, 'fail: unknown job id is P0002');
SELECT throws_ok($$SELECT jobq.fail(jobq.gen_uuid_v7(), 'boom', worker => 'w1')$$, 'P0002', NULL, 'fail with a worker: unknown job id is P0002');
SELECT ok(jt.unchanged(), 'the calls with unknown ids changed no job (the Processing job of the batch was not completed)');
SELECT is(jt.status('proc'), 1, 'the Processing job named with an unknown id is still Processing');

SELECT * FROM finish();
ROLLBACK;
