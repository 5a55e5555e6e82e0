-- claim order, every transition, and the errors of transitions that do not apply.
TRUNCATE jobq.jobs CASCADE;
SET jobq.retry_delay = '1s';

-- claim order: priority DESC, run_at, id; only due jobs; only the asked types
SELECT jobq.enqueue('t', '{"n": 1}', queue => 'q') AS j1 \gset
SELECT jobq.enqueue('t', '{"n": 2}', queue => 'q', priority => 10) AS j2 \gset
SELECT jobq.enqueue('t', '{"n": 3}', queue => 'q') AS j3 \gset
SELECT jobq.enqueue('t', '{"n": 4}', queue => 'q', run_at => now() + interval '1 day') AS j4 \gset
SELECT jobq.enqueue('u', '{"n": 5}', queue => 'q') AS j5 \gset
SELECT jobq.depth('q') AS depth_q, jobq.depth() AS depth_all, jobq.depth('nope') AS depth_none;

SELECT payload, status, attempts, locked_by FROM jobq.claim('q', 'w1', 2, ARRAY['t']) ORDER BY priority DESC, id;
SELECT payload, status, attempts FROM jobq.claim('q', 'w2', 10, ARRAY['t']);
SELECT count(*) FROM jobq.claim('q', 'w2', 0);
SELECT count(*) FROM jobq.claim('empty-queue', 'w2', 5);
SELECT jobq.depth('q') AS depth_q;

-- heartbeat: true for the holder, false otherwise
SELECT jobq.heartbeat(:'j2', 'w1') AS mine, jobq.heartbeat(:'j2', 'w2') AS not_mine,
       jobq.heartbeat(:'j2') AS anyone, jobq.heartbeat(:'j5') AS queued;

-- progress on a Processing job
SELECT jobq.progress(:'j2', 40, 'step 2 of 5');
SELECT jobq.progress(:'j2', 50);
SELECT progress_percent, status_message FROM jobq.status(:'j2');

-- complete by the holder; a stranger gets 55000 and changes nothing
SELECT t.err(format('SELECT jobq.complete(%L, %L, %L)', :'j2', '{"ok": true}', 'w2'));
SELECT status, locked_by FROM jobq.status(:'j2');
SELECT jobq.complete(:'j2', '{"ok": true}', 'w1');
SELECT status, result, progress_percent, locked_by, completed_at IS NOT NULL AS done FROM jobq.status(:'j2');

-- transitions that do not apply: 55000, nothing changes
SELECT t.err(format('SELECT jobq.complete(%L)', :'j2'));
SELECT t.err(format('SELECT jobq.progress(%L, 10)', :'j2'));
SELECT t.err(format('SELECT jobq.fail(%L, %L)', :'j2', 'boom'));
SELECT t.err(format('SELECT jobq.complete(%L)', :'j5'));
SELECT t.err(format('SELECT jobq.fail(%L, %L, worker => %L)', :'j5', 'boom', 'w1'));
SELECT status, progress_percent FROM jobq.status(:'j2');

-- fail with attempts left: back to Queued, due after the backoff, error recorded
SELECT jobq.fail(:'j1', 'upstream said no', 'UpstreamError', worker => 'w1');
SELECT status, attempts, run_at > now() AS backoff, locked_by, completed_at, error_message,
       error - 'traceId' AS error, error->>'traceId' = trace_id AS trace_in_error
  FROM jobq.jobs WHERE id = :'j1';

-- fail without retry: Failed at once
SELECT jobq.fail(:'j3', 'bad input', 'ValidationError', retry => false);
SELECT status, completed_at IS NOT NULL AS done, error->'status' AS http_status,
       error->'errors'->0->>'code' AS code FROM jobq.jobs WHERE id = :'j3';

-- fail on the last attempt: Failed
UPDATE jobq.jobs SET run_at = now() - interval '1 s' WHERE id = :'j1';
SELECT jobq.enqueue('t', queue => 'last', max_attempts => 1) AS j6 \gset
SELECT count(*) FROM jobq.claim('last', 'w3');
SELECT jobq.fail(:'j6', 'once is enough');
SELECT status, attempts, error->'attempt' AS attempt FROM jobq.jobs WHERE id = :'j6';

-- retry: Failed/Cancelled -> Queued, due now, error cleared, fresh attempts
SELECT jobq.retry(:'j6') AS retried, jobq.retry(:'j6') AS again, jobq.retry(:'j2') AS completed;
SELECT status, attempts, run_at <= now() AS due, error, error_message, completed_at FROM jobq.jobs WHERE id = :'j6';

-- cancel: true for Queued/Processing, false when terminal
SELECT jobq.cancel(:'j5') AS queued, jobq.cancel(:'j5') AS again, jobq.cancel(:'j2') AS completed;
SELECT status, completed_at IS NOT NULL AS done, error->'errors'->0->>'code' AS code FROM jobq.jobs WHERE id = :'j5';
SELECT count(*) FROM jobq.claim('last', 'w4');
SELECT jobq.cancel(:'j6') AS processing;
SELECT status, locked_by FROM jobq.jobs WHERE id = :'j6';
SELECT jobq.heartbeat(:'j6', 'w4') AS after_cancel;

-- complete_many: all or nothing
TRUNCATE jobq.jobs CASCADE;
SELECT count(*) FROM jobq.enqueue_many('m', ARRAY['{}', '{}', '{}', '{}']::jsonb[]);
SELECT array_agg(id ORDER BY id) AS ids FROM jobq.claim('default', 'w', 3) \gset
SELECT id AS leftover FROM jobq.jobs WHERE status = 0 \gset
SELECT t.err(format('SELECT jobq.complete_many(%L::uuid[] || %L::uuid, worker => %L)', :'ids', :'leftover', 'w'));
SELECT t.err(format('SELECT jobq.complete_many(%L, worker => %L)', :'ids', 'other'));
SELECT t.err(format('SELECT jobq.complete_many(%L, %L)', :'ids', '{"{}"}'));
SELECT t.err(format('SELECT jobq.complete_many(%L::uuid[] || %L::uuid[])', :'ids', :'ids'));
SELECT t.err($$SELECT jobq.complete_many(ARRAY[NULL]::uuid[])$$);
SELECT t.err($$SELECT jobq.complete_many(NULL)$$);
SELECT status, count(*) FROM jobq.jobs GROUP BY 1 ORDER BY 1;
SELECT jobq.complete_many(:'ids', ARRAY['{"r": 1}', '{"r": 2}', '{"r": 3}']::jsonb[], 'w');
SELECT status, count(*), array_agg(result ORDER BY result::text) FROM jobq.jobs GROUP BY 1 ORDER BY 1;
SELECT jobq.complete_many('{}');

-- a job that does not exist: P0002 everywhere
\set nx '00000000-0000-0000-0000-000000000001'
SELECT t.err(format('SELECT jobq.status(%L)', :'nx'));
SELECT t.err(format('SELECT jobq.cancel(%L)', :'nx'));
SELECT t.err(format('SELECT jobq.retry(%L)', :'nx'));
SELECT t.err(format('SELECT jobq.heartbeat(%L)', :'nx'));
SELECT t.err(format('SELECT jobq.progress(%L, 1)', :'nx'));
SELECT t.err(format('SELECT jobq.complete(%L)', :'nx'));
SELECT t.err(format('SELECT jobq.complete_many(ARRAY[%L::uuid])', :'nx'));
SELECT t.err(format('SELECT jobq.fail(%L, %L)', :'nx', 'x'));
-- NULL where a value is needed, out-of-range numbers: 22023
SELECT t.err($$SELECT jobq.status(NULL)$$);
SELECT t.err($$SELECT jobq.cancel(NULL)$$);
SELECT t.err($$SELECT jobq.retry(NULL)$$);
SELECT t.err($$SELECT jobq.heartbeat(NULL)$$);
SELECT t.err($$SELECT jobq.complete(NULL)$$);
SELECT t.err(format('SELECT jobq.progress(%L, NULL)', :'leftover'));
SELECT t.err(format('SELECT jobq.progress(%L, 101)', :'leftover'));
SELECT t.err(format('SELECT jobq.progress(%L, -1)', :'leftover'));
SELECT t.err(format('SELECT jobq.fail(%L, NULL)', :'leftover'));
SELECT t.err(format('SELECT jobq.fail(%L, %L, %L)', :'leftover', 'x', ''));
SELECT t.err($$SELECT jobq.claim('default', 'w', -1)$$);
SELECT t.err($$SELECT jobq.claim('', 'w')$$);
SELECT t.err($$SELECT jobq.claim('default', '')$$);
SELECT t.err($$SELECT jobq.claim('default', 'jobq:0:1:0000000000000001')$$);
-- the failed calls changed nothing
SELECT status, count(*) FROM jobq.jobs GROUP BY 1 ORDER BY 1;
