-- The status machine (SPEC sections 2, 4, 8 and 14): every valid transition
-- and what it records, the boolean answers of cancel / retry / heartbeat, and
-- 55000 (changing nothing) for every transition that does not apply and for
-- a worker name that does not match locked_by.
--   0 -> 1 claim          1 -> 2 complete / complete_many
--   1 -> 0 fail (retry, attempts left)     1 -> 3 fail (last attempt / retry => false)
--   0 -> 4, 1 -> 4 cancel                  3 -> 0, 4 -> 0 retry
BEGIN;
SELECT plan(101);
\ir _helpers.psql
SET LOCAL jobq.retry_delay = '10s';
SET LOCAL jobq.retry_delay_max = '1h';

---------------------------------------------------------------------------
-- 0 -> 1: claim
---------------------------------------------------------------------------

DO $$ BEGIN PERFORM jt.make('c', 0, max_attempts => 3); END $$;
SELECT is(jt.status('c'), 0, 'a new job is Queued (0)');
SELECT is((jt.job('c')).attempts, 0, 'a new job has 0 attempts');
SELECT is(
    (SELECT array_agg(id) FROM jobq.claim('q-c', 'w1', 5)), ARRAY[jt.id('c')],
    'claim returns the Queued job (and only it)');
SELECT is(jt.status('c'), 1, 'claim: 0 -> 1 Processing');
SELECT is((jt.job('c')).attempts, 1, 'claim counts an attempt');
SELECT is((jt.job('c')).locked_by, 'w1', 'claim records the worker in locked_by');
SELECT ok((jt.job('c')).started_at IS NOT NULL AND (jt.job('c')).heartbeat_at IS NOT NULL,
          'claim sets started_at and heartbeat_at');
SELECT is((SELECT count(*) FROM jobq.claim('q-c', 'w2', 5)), 0::bigint,
          'a Processing job is not claimed again');

---------------------------------------------------------------------------
-- heartbeat and progress on a Processing job
---------------------------------------------------------------------------

SELECT is(jobq.heartbeat(jt.id('c'), 'w1'), true, 'heartbeat: true for the holder');
SELECT is(jobq.heartbeat(jt.id('c'), 'w2'), false, 'heartbeat: false for a worker that is not the holder');
SELECT is(jobq.heartbeat(jt.id('c')), true, 'heartbeat without a worker name: true while Processing');
SELECT lives_ok($$SELECT jobq.progress(jt.id('c'), 40, 'step 2 of 5')$$, 'progress on a Processing job');
SELECT is((jt.job('c')).progress_percent, 40, 'progress stores progress_percent');
SELECT is((jt.job('c')).status_message, 'step 2 of 5', 'progress stores status_message');
SELECT lives_ok($$SELECT jobq.progress(jt.id('c'), 60)$$, 'progress without a message');
SELECT is((jt.job('c')).status_message, 'step 2 of 5', 'progress without a message keeps the last one');
SELECT is(jt.status('c'), 1, 'heartbeat and progress leave the job Processing');

---------------------------------------------------------------------------
-- 1 -> 2: complete
---------------------------------------------------------------------------

SELECT lives_ok($$SELECT jobq.complete(jt.id('c'), '{"answer": 42}', 'w1')$$, 'complete by the holder');
SELECT is(jt.status('c'), 2, 'complete: 1 -> 2 Completed');
SELECT is((jt.job('c')).result, '{"answer": 42}'::jsonb, 'complete stores the result');
SELECT ok((jt.job('c')).completed_at IS NOT NULL, 'complete sets completed_at');
SELECT is((jt.job('c')).locked_by, NULL, 'complete releases locked_by');

DO $$ BEGIN PERFORM jt.make('c2', 1); END $$;
SELECT lives_ok($$SELECT jobq.complete(jt.id('c2'))$$,
                'complete without a worker name completes a job held by any worker');
SELECT is(jt.status('c2'), 2, 'complete without a worker: 1 -> 2');

---------------------------------------------------------------------------
-- 1 -> 2: complete_many
---------------------------------------------------------------------------

DO $$ BEGIN PERFORM jt.make('m1', 1); PERFORM jt.make('m2', 1); PERFORM jt.make('m3', 1); END $$;
SELECT is(jobq.complete_many(ARRAY[jt.id('m1'), jt.id('m2'), jt.id('m3')],
                             ARRAY['{"r": 1}', '{"r": 2}', '{"r": 3}']::jsonb[], 'w1'),
          3, 'complete_many returns the number of jobs completed');
SELECT is(ARRAY[jt.status('m1'), jt.status('m2'), jt.status('m3')], ARRAY[2, 2, 2],
          'complete_many: every job 1 -> 2');
SELECT is(ARRAY[(jt.job('m1')).result, (jt.job('m2')).result, (jt.job('m3')).result],
          ARRAY['{"r": 1}', '{"r": 2}', '{"r": 3}']::jsonb[],
          'complete_many stores each result with its own job');
SELECT ok((jt.job('m2')).completed_at IS NOT NULL AND (jt.job('m2')).locked_by IS NULL,
          'complete_many sets completed_at and releases locked_by');

---------------------------------------------------------------------------
-- 1 -> 0: fail with retry and attempts left (exponential backoff)
---------------------------------------------------------------------------

DO $$ BEGIN PERFORM jt.make('f', 1, max_attempts => 3); END $$;
SELECT lives_ok($$SELECT jobq.fail(jt.id('f'), 'upstream said no', 'UpstreamError', worker => 'w1')$$,
                'fail by the holder with attempts left');
SELECT is(jt.status('f'), 0, 'fail with retry and attempts left: 1 -> 0 Queued');
SELECT is((jt.job('f')).attempts, 1, 'the requeued job keeps its attempt count');
SELECT is((jt.job('f')).locked_by, NULL, 'the requeued job is released (locked_by NULL)');
SELECT is((jt.job('f')).completed_at, NULL, 'the requeued job has no completed_at');
SELECT ok((jt.job('f')).run_at - clock_timestamp() BETWEEN interval '5 s' AND interval '10 s',
          'first retry is due after jobq.retry_delay (10 s): run_at moved');
SELECT is((SELECT count(*) FROM jobq.claim('q-f', 'w1')), 0::bigint,
          'a job in its backoff is not claimable');
SELECT is((jt.job('f')).error_message, 'upstream said no', 'fail records error_message');
SELECT ok((jt.job('f')).error ?& ARRAY['traceId', 'success', 'status', 'errors', 'attempt', 'checkpoints'],
          'error JSON has traceId, success, status, errors, attempt, checkpoints');
SELECT is((jt.job('f')).error->>'traceId', (jt.job('f')).trace_id, 'error.traceId is the job''s trace_id');
SELECT is((jt.job('f')).error->'success', 'false'::jsonb, 'error.success is false');
SELECT is((jt.job('f')).error->'status', '502'::jsonb, 'error.status is the number 502 for UpstreamError');
SELECT is((jt.job('f')).error->'errors', '[{"code": "UpstreamError", "message": "upstream said no"}]'::jsonb,
          'error.errors holds the code and message');
SELECT is((jt.job('f')).error->'attempt', '1'::jsonb, 'error.attempt is the attempt that failed');
SELECT is((jt.job('f')).error->'checkpoints', '0'::jsonb, 'error.checkpoints is 0 for a job without units');

-- second attempt: the backoff doubles
UPDATE jobq.jobs SET run_at = now() - interval '1 s' WHERE id = jt.id('f');
SELECT is((SELECT count(*) FROM jobq.claim('q-f', 'w2')), 1::bigint, 'the job is claimable again once due');
SELECT is((jt.job('f')).attempts, 2, 'the second claim is attempt 2');
SELECT lives_ok($$SELECT jobq.fail(jt.id('f'), 'still no', 'UpstreamError', worker => 'w2')$$,
                'fail of attempt 2 of 3');
SELECT is(jt.status('f'), 0, 'attempt 2 of 3 failed: 1 -> 0 again');
SELECT ok((jt.job('f')).run_at - clock_timestamp() BETWEEN interval '15 s' AND interval '20 s',
          'second retry is due after twice jobq.retry_delay (exponential backoff)');

---------------------------------------------------------------------------
-- 1 -> 3: fail on the last attempt, or with retry => false
---------------------------------------------------------------------------

UPDATE jobq.jobs SET run_at = now() - interval '1 s' WHERE id = jt.id('f');
SELECT is((SELECT count(*) FROM jobq.claim('q-f', 'w3')), 1::bigint, 'attempt 3 of 3 claimed');
SELECT lives_ok($$SELECT jobq.fail(jt.id('f'), 'gave up', worker => 'w3')$$, 'fail on the last attempt');
SELECT is(jt.status('f'), 3, 'fail on the last attempt: 1 -> 3 Failed');
SELECT ok((jt.job('f')).completed_at IS NOT NULL, 'Failed sets completed_at');
SELECT is((jt.job('f')).error->'attempt', '3'::jsonb, 'error.attempt of the last failure is 3');
SELECT is((jt.job('f')).error->'status', '500'::jsonb, 'error.status is 500 for the default code HandlerError');

DO $$ BEGIN PERFORM jt.make('nr', 1, max_attempts => 5); END $$;
SELECT lives_ok($$SELECT jobq.fail(jt.id('nr'), 'bad input', 'ValidationError', retry => false)$$,
                'fail with retry => false and attempts left');
SELECT is(jt.status('nr'), 3, 'fail with retry => false: 1 -> 3 Failed at once');
SELECT is((jt.job('nr')).error->'status', '400'::jsonb, 'error.status is 400 for ValidationError');

---------------------------------------------------------------------------
-- 0 -> 4 and 1 -> 4: cancel
---------------------------------------------------------------------------

DO $$ BEGIN PERFORM jt.make('xq', 0); PERFORM jt.make('xp', 1); END $$;
SELECT is(jobq.cancel(jt.id('xq')), true, 'cancel of a Queued job returns true');
SELECT is(jt.status('xq'), 4, 'cancel: 0 -> 4 Cancelled');
SELECT ok((jt.job('xq')).completed_at IS NOT NULL, 'Cancelled sets completed_at');
SELECT is((jt.job('xq')).error->'errors'->0->>'code', 'Cancelled', 'a cancelled job''s error has code Cancelled');
SELECT is(jobq.cancel(jt.id('xp')), true, 'cancel of a Processing job returns true');
SELECT is(jt.status('xp'), 4, 'cancel: 1 -> 4 Cancelled');
SELECT is((jt.job('xp')).locked_by, NULL, 'cancel releases locked_by');
SELECT is(jobq.heartbeat(jt.id('xp'), 'w1'), false, 'heartbeat of the former holder after cancel: false');

---------------------------------------------------------------------------
-- cancel is false on terminal jobs; retry is false unless Failed/Cancelled
---------------------------------------------------------------------------

DO $$ BEGIN PERFORM jt.snapshot(); END $$;
SELECT is(jobq.cancel(jt.id('c')), false, 'cancel of a Completed job returns false');
SELECT is(jobq.cancel(jt.id('nr')), false, 'cancel of a Failed job returns false');
SELECT is(jobq.cancel(jt.id('xq')), false, 'cancel of a Cancelled job returns false');
DO $$ BEGIN PERFORM jt.make('rq', 0); PERFORM jt.make('rp', 1); END $$;
SELECT is(jobq.retry(jt.id('rq')), false, 'retry of a Queued job returns false');
SELECT is(jobq.retry(jt.id('rp')), false, 'retry of a Processing job returns false');
SELECT is(jobq.retry(jt.id('c')), false, 'retry of a Completed job returns false');
SELECT is(ARRAY[jt.status('c'), jt.status('nr'), jt.status('xq'), jt.status('rq'), jt.status('rp')],
          ARRAY[2, 3, 4, 0, 1], 'cancel/retry answering false changed no status');
SELECT is(jobq.heartbeat(jt.id('c'), 'w1'), false, 'heartbeat of a Completed job: false');
SELECT is(jobq.heartbeat(jt.id('rq')), false, 'heartbeat of a Queued job: false');

---------------------------------------------------------------------------
-- 3 -> 0 and 4 -> 0: retry
---------------------------------------------------------------------------

SELECT is(jobq.retry(jt.id('nr')), true, 'retry of a Failed job returns true');
SELECT is(jt.status('nr'), 0, 'retry: 3 -> 0 Queued');
SELECT ok((jt.job('nr')).run_at <= now(), 'retry makes the job due at once');
SELECT ok((jt.job('nr')).completed_at IS NULL AND (jt.job('nr')).error IS NULL
          AND (jt.job('nr')).error_message IS NULL,
          'retry clears completed_at, error and error_message');
SELECT is((SELECT array_agg(id) FROM jobq.claim('q-nr', 'w1')), ARRAY[jt.id('nr')],
          'a retried job is claimable again');
SELECT is(jobq.retry(jt.id('xp')), true, 'retry of a Cancelled job returns true');
SELECT is(jt.status('xp'), 0, 'retry: 4 -> 0 Queued');

---------------------------------------------------------------------------
-- 55000: transitions that do not apply, and a worker that is not the holder
---------------------------------------------------------------------------

DO $$ BEGIN
    PERFORM jt.make('q0', 0); PERFORM jt.make('p1', 1); PERFORM jt.make('d2', 2);
    PERFORM jt.make('f3', 3); PERFORM jt.make('x4', 4);
END $$;
DO $$ BEGIN PERFORM jt.snapshot(); END $$;
SELECT throws_ok($$SELECT jobq.complete(jt.id('q0'))$$, '55000', NULL, 'complete of a Queued job is 55000');
SELECT throws_ok($$SELECT jobq.complete(jt.id('d2'))$$, '55000', NULL, 'complete of a Completed job is 55000');
SELECT throws_ok($$SELECT jobq.complete(jt.id('f3'))$$, '55000', NULL, 'complete of a Failed job is 55000');
SELECT throws_ok($$SELECT jobq.complete(jt.id('x4'))$$, '55000', NULL, 'complete of a Cancelled job is 55000');
SELECT throws_ok($$SELECT jobq.fail(jt.id('q0'), 'boom')$$, '55000', NULL, 'fail of a Queued job is 55000');
SELECT throws_ok($$SELECT jobq.fail(jt.id('d2'), 'boom')$$, '55000', NULL, 'fail of a Completed job is 55000');
SELECT throws_ok($$SELECT jobq.fail(jt.id('f3'), 'boom')$$, '55000', NULL, 'fail of a Failed job is 55000');
SELECT throws_ok($$SELECT jobq.fail(jt.id('x4'), 'boom')$$, '55000', NULL, 'fail of a Cancelled job is 55000');
SELECT throws_ok($$SELECT jobq.progress(jt.id('q0'), 10)$$, '55000', NULL, 'progress of a Queued job is 55000');
SELECT throws_ok($$SELECT jobq.progress(jt.id('d2'), 10)$$, '55000', NULL, 'progress of a Completed job is 55000');
SELECT throws_ok($$SELECT jobq.progress(jt.id('f3'), 10)$$, '55000', NULL, 'progress of a Failed job is 55000');
SELECT throws_ok($$SELECT jobq.progress(jt.id('x4'), 10)$$, '55000', NULL, 'progress of a Cancelled job is 55000');
SELECT throws_ok($$SELECT jobq.complete_many(ARRAY[jt.id('d2')])$$, '55000', NULL,
                 'complete_many of a Completed job is 55000');
SELECT throws_ok($$SELECT jobq.complete(jt.id('p1'), '{}', 'w2')$$, '55000', NULL,
                 'complete by a worker that is not locked_by is 55000');
SELECT throws_ok($$SELECT jobq.fail(jt.id('p1'), 'boom', worker => 'w2')$$, '55000', NULL,
                 'fail by a worker that is not locked_by is 55000');
SELECT throws_ok($$SELECT jobq.fail(jt.id('p1'), 'boom', retry => false, worker => 'w2')$$, '55000', NULL,
                 'fail (retry => false) by a worker that is not locked_by is 55000');
SELECT throws_ok($$SELECT jobq.complete_many(ARRAY[jt.id('p1')], NULL, 'w2')$$, '55000', NULL,
                 'complete_many by a worker that is not locked_by is 55000');
SELECT throws_ok($$SELECT jobq.fail(jt.id('q0'), 'boom', worker => 'w1')$$, '55000', NULL,
                 'fail with a worker name of a Queued job (locked_by NULL) is 55000');
SELECT ok(jt.unchanged(), 'the transitions rejected with 55000 changed nothing');
SELECT is((jt.job('p1')).locked_by, 'w1', 'the holder still holds its job after the strangers'' attempts');

SELECT * FROM finish();
ROLLBACK;
