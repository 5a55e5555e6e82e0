-- Queue behaviour (SPEC sections 2-4): depth(), claim order
-- (priority DESC, run_at, id), claim's job_types and max_jobs, dedupe keys,
-- and complete_many being all-or-nothing.
BEGIN;
SELECT plan(40);
\ir _helpers.psql

-- claim one job at a time and list the payload names in claim order
CREATE FUNCTION jt.claim_order(queue text, n int) RETURNS text[] LANGUAGE plpgsql VOLATILE AS $$
DECLARE
    names text[] := '{}';
    got text;
BEGIN
    FOR i IN 1 .. n LOOP
        SELECT c.payload->>'name' INTO got FROM jobq.claim(queue, 'w-order', 1) c;
        EXIT WHEN got IS NULL;
        names := names || got;
    END LOOP;
    RETURN names;
END
$$;

---------------------------------------------------------------------------
-- depth(): due jobs in status 0 or 1; never NULL
---------------------------------------------------------------------------

SELECT is(jobq.depth(), 0::bigint, 'depth() of an empty queue table is 0, not NULL');
SELECT is(jobq.depth('nope'), 0::bigint, 'depth(queue) of a queue without jobs is 0, not NULL');
SELECT is(pg_typeof(jobq.depth())::text, 'bigint', 'depth() is one numeric (bigint) column, as KEDA expects');

DO $$ BEGIN
    -- non-Queued jobs of a queue first, so each claim takes the job just made
    PERFORM jt.make('d-proc', 1, queue => 'd1');
    PERFORM jt.make('d-done', 2, queue => 'd1');
    PERFORM jt.make('d-failed', 3, queue => 'd1');
    PERFORM jt.make('d-cancelled', 4, queue => 'd1');
    PERFORM jt.make('d-retrying', 1, queue => 'd1');
    PERFORM jt.make('d-due1', 0, queue => 'd1');
    PERFORM jt.make('d-due2', 0, queue => 'd1');
    PERFORM jt.make('d-other', 0, queue => 'd2');
    PERFORM jobq.enqueue('t', queue => 'd1', run_at => now() + interval '1 hour');
END $$;
SELECT is(jobq.depth('d1'), 4::bigint,
          'depth(queue) counts due Queued and Processing jobs, not future, Completed, Failed or Cancelled ones');
SELECT is(jobq.depth('d2'), 1::bigint, 'depth(queue) counts only that queue');
SELECT is(jobq.depth(), 5::bigint, 'depth() with no queue counts every queue');
SELECT is(jobq.depth(NULL), 5::bigint, 'depth(NULL) counts every queue');
DO $$ BEGIN PERFORM jobq.fail(jt.id('d-retrying'), 'try later', worker => 'w1'); END $$;
SELECT is(jobq.depth('d1'), 3::bigint, 'a job requeued with a backoff (run_at in the future) is not counted');
DO $$ BEGIN PERFORM jobq.retry(jt.id('d-failed')); END $$;
SELECT is(jobq.depth('d1'), 4::bigint, 'a retried job is due again and counted');
DO $$ BEGIN PERFORM jobq.cancel(jt.id('d-due1')); END $$;
SELECT is(jobq.depth('d1'), 3::bigint, 'a cancelled job is no longer counted');

---------------------------------------------------------------------------
-- claim order: priority DESC, run_at, id
---------------------------------------------------------------------------

DO $$ BEGIN
    PERFORM jobq.enqueue('t', '{"name": "a"}', queue => 'ord', run_at => now() - interval '1 hour');
    PERFORM jobq.enqueue('t', '{"name": "b"}', queue => 'ord', run_at => now() - interval '2 hours');
    PERFORM jobq.enqueue('t', '{"name": "c"}', queue => 'ord', priority => 5, run_at => now() - interval '1 minute');
    PERFORM jobq.enqueue('t', '{"name": "d"}', queue => 'ord', run_at => now() - interval '1 hour');
    PERFORM jobq.enqueue('t', '{"name": "e"}', queue => 'ord', priority => -1, run_at => now() - interval '3 hours');
    PERFORM jobq.enqueue('t', '{"name": "f"}', queue => 'ord', priority => 5, run_at => now() - interval '1 hour');
    PERFORM jobq.enqueue('t', '{"name": "g"}', queue => 'ord', priority => 9, run_at => now() + interval '1 hour');
END $$;
SELECT is(
    (SELECT array_agg(payload->>'name' ORDER BY payload->>'name') FROM jobq.claim('ord', 'w1', 2)),
    ARRAY['c', 'f'], 'claim of 2 takes the two jobs of highest priority');
SELECT is(jt.claim_order('ord', 10), ARRAY['b', 'a', 'd', 'e'],
          'then, one by one: equal priority by run_at, equal run_at by id (enqueue order), lower priority last');
SELECT is((SELECT count(*) FROM jobq.claim('ord', 'w1', 10)), 0::bigint,
          'a job whose run_at is in the future is not claimed, whatever its priority');
SELECT is((SELECT status FROM jobq.jobs WHERE payload->>'name' = 'g' AND queue = 'ord'), 0,
          'the future job is still Queued');

---------------------------------------------------------------------------
-- claim: job_types, queue, max_jobs
---------------------------------------------------------------------------

DO $$ BEGIN
    PERFORM jobq.enqueue('x', queue => 'types');
    PERFORM jobq.enqueue('x', queue => 'types');
    PERFORM jobq.enqueue('y', queue => 'types');
    PERFORM jobq.enqueue('z', queue => 'types');
END $$;
SELECT is((SELECT count(*) FROM jobq.claim('types', 'w1', 10, ARRAY['nope'])), 0::bigint,
          'claim with job_types of no queued type claims nothing');
SELECT is((SELECT array_agg(job_type ORDER BY job_type) FROM jobq.claim('types', 'w1', 10, ARRAY['y', 'z'])),
          ARRAY['y', 'z'], 'claim with job_types claims only those types');
SELECT is((SELECT count(*) FROM jobq.jobs WHERE queue = 'types' AND job_type = 'x' AND status = 0), 2::bigint,
          'jobs of other types stay Queued');
SELECT is((SELECT count(*) FROM jobq.claim('elsewhere', 'w1', 10)), 0::bigint,
          'claim takes jobs only from the queue it names');
SELECT is((SELECT count(*) FROM jobq.claim('types', 'w1', 1)), 1::bigint, 'claim honours max_jobs');
SELECT is((SELECT count(*) FROM jobq.claim('types', 'w1', 10)), 1::bigint,
          'claim of more than available returns what there is');
SELECT is((SELECT count(DISTINCT locked_by) FROM jobq.jobs WHERE queue = 'types'), 1::bigint,
          'every claimed job records the claiming worker');

---------------------------------------------------------------------------
-- dedupe_key: an active (0/1) job of the same type and key is returned
---------------------------------------------------------------------------

DO $$ BEGIN
    INSERT INTO jt.ids VALUES ('k1', jobq.enqueue('sync', '{"v": 1}', queue => 'dd', dedupe_key => 'k1'));
END $$;
SELECT is(jobq.enqueue('sync', '{"v": 1}', queue => 'dd', dedupe_key => 'k1'), jt.id('k1'),
          'dedupe: enqueueing a key held by a Queued job returns that job''s id');
SELECT is(jobq.enqueue('sync', '{"v": 2}', queue => 'dd', dedupe_key => 'k1'), jt.id('k1'),
          'dedupe: a different payload with the same key returns the same id');
SELECT is((SELECT count(*) FROM jobq.jobs WHERE dedupe_key = 'k1'), 1::bigint,
          'dedupe: no second job was created');
SELECT is((jt.job('k1')).payload, '{"v": 1}'::jsonb, 'dedupe: the existing job is unchanged');
SELECT isnt(jobq.enqueue('other', queue => 'dd', dedupe_key => 'k1'), jt.id('k1'),
            'dedupe: the same key for another job type is a new job');
SELECT is((SELECT array_agg(id) FROM jobq.claim('dd', 'w1', 1, ARRAY['sync'])), ARRAY[jt.id('k1')],
          'the deduplicated job is claimed');
SELECT is(jobq.enqueue('sync', queue => 'dd', dedupe_key => 'k1'), jt.id('k1'),
          'dedupe: a key held by a Processing job returns that job''s id');
DO $$ BEGIN PERFORM jobq.complete(jt.id('k1')); END $$;
SELECT isnt(jobq.enqueue('sync', queue => 'dd', dedupe_key => 'k1'), jt.id('k1'),
            'dedupe: once the holder is Completed the key makes a new job');
SELECT is((SELECT count(*) FROM jobq.jobs WHERE job_type = 'sync' AND dedupe_key = 'k1' AND status < 2), 1::bigint,
          'dedupe: exactly one active job holds the key');
DO $$ BEGIN
    INSERT INTO jt.ids VALUES ('k2', jobq.enqueue('sync', dedupe_key => 'k2'));
    PERFORM jobq.cancel(jt.id('k2'));
END $$;
SELECT isnt(jobq.enqueue('sync', dedupe_key => 'k2'), jt.id('k2'),
            'dedupe: once the holder is Cancelled the key makes a new job');

---------------------------------------------------------------------------
-- complete_many: all or nothing
---------------------------------------------------------------------------

DO $$ BEGIN
    PERFORM jt.make('cm1', 1); PERFORM jt.make('cm2', 1); PERFORM jt.make('cm-queued', 0);
    PERFORM jt.make('cm-done', 2);
    PERFORM jobq.enqueue('t', '{"name": "cm-w2"}', queue => 'q-cm-w2');
    INSERT INTO jt.ids SELECT 'cm-w2', id FROM jobq.claim('q-cm-w2', 'w2');
END $$;
DO $$ BEGIN PERFORM jt.snapshot(); END $$;
SELECT throws_ok($$SELECT jobq.complete_many(ARRAY[jt.id('cm1'), jt.id('cm2'), jt.id('cm-queued')],
                                             ARRAY['{"r": 1}', '{"r": 2}', '{"r": 3}']::jsonb[])$$,
                 '55000', NULL, 'complete_many with one Queued job among Processing ones is 55000');
SELECT is(ARRAY[jt.status('cm1'), jt.status('cm2')], ARRAY[1, 1],
          'complete_many failed: the Processing jobs of the batch were not completed');
SELECT throws_ok($$SELECT jobq.complete_many(ARRAY[jt.id('cm-done'), jt.id('cm1')])$$,
                 '55000', NULL, 'complete_many with a Completed job first in the batch is 55000');
SELECT throws_ok($$SELECT jobq.complete_many(ARRAY[jt.id('cm1'), jt.id('cm-w2')], NULL, 'w1')$$,
                 '55000', NULL, 'complete_many naming worker w1 with one job held by w2 is 55000');
SELECT ok(jt.unchanged(), 'the rejected complete_many calls changed no job at all');
SELECT is(jobq.complete_many(ARRAY[jt.id('cm1'), jt.id('cm2')], NULL, 'w1'), 2,
          'complete_many of the holder''s own Processing jobs completes both');

-- the payload limit applies to each result, as complete() applies it
SET LOCAL jobq.max_payload_bytes = '100B';
DO $$ BEGIN PERFORM jt.make('big1', 1); PERFORM jt.make('big2', 1); PERFORM jt.make('big3', 1); END $$;
SELECT lives_ok($$SELECT jobq.complete(jt.id('big3'), jsonb_build_object('s', repeat('x', 60)))$$,
                'complete accepts a 60-byte result under a 100-byte jobq.max_payload_bytes');
SELECT lives_ok($$SELECT jobq.complete_many(ARRAY[jt.id('big1'), jt.id('big2')],
                                            ARRAY[jsonb_build_object('s', repeat('x', 60)),
                                                  jsonb_build_object('s', repeat('x', 60))])$$,
                'complete_many accepts two results that are each under jobq.max_payload_bytes');
SELECT throws_ok($$SELECT jobq.complete_many(ARRAY[jt.id('big1'), jt.id('big2')],
                                             ARRAY['{}'::jsonb, jsonb_build_object('s', repeat('x', 200))])$$,
                 '54000', NULL, 'complete_many with one result over jobq.max_payload_bytes is 54000');

SELECT * FROM finish();
ROLLBACK;
