-- The checkpoint API for external workers (file store under $PGDATA), sweep and purge.
TRUNCATE jobq.jobs CASCADE;
SELECT jobq.enqueue('ext.units', '{}', queue => 'ext', units => 3) AS j \gset
SELECT jobq.enqueue('ext.whole', '{}', queue => 'ext-whole') AS w \gset

-- only a Processing job takes checkpoints
SELECT t.err(format('SELECT jobq.checkpoint(%L, 1, %L)', :'j', '\x01'));
SELECT count(*) FROM jobq.claim('ext', 'ext-1');
SELECT jobq.checkpoint(:'j', 1, 'one') ~ ('^file:///.*/jobq_checkpoints/00000000-0000-0000-0000-000000000000/jobs/' || :'j' || '/units/unit_1\.output$') AS uri_ok;
SELECT jobq.checkpoint(:'j', 2, 'second unit') IS NOT NULL AS stored;
SELECT units_done, progress_percent FROM jobq.jobs WHERE id = :'j';
SELECT unit_id, bytes, sha256 = encode(sha256(convert_to(CASE unit_id WHEN 1 THEN 'one' ELSE 'second unit' END, 'UTF8')), 'hex') AS sha_ok
  FROM jobq.checkpoints(:'j');
SELECT convert_from(jobq.checkpoint_data(:'j', 1), 'UTF8') AS unit1,
       convert_from(jobq.checkpoint_data(:'j', 2), 'UTF8') AS unit2,
       jobq.checkpoint_data(:'j', 3) IS NULL AS unit3_none;
-- a stored checkpoint is immutable: the same output again is a no-op, another is refused
SELECT jobq.checkpoint(:'j', 2, 'second unit') = (SELECT uri FROM jobq.checkpoints(:'j') WHERE unit_id = 2) AS same_again;
SELECT t.err(format('SELECT jobq.checkpoint(%L, 2, %L)', :'j', 'second, again'));
SELECT convert_from(jobq.checkpoint_data(:'j', 2), 'UTF8'), (SELECT units_done FROM jobq.jobs WHERE id = :'j');

-- bad input
SELECT t.err(format('SELECT jobq.checkpoint(%L, 0, %L)', :'j', 'x'));
SELECT t.err(format('SELECT jobq.checkpoint(%L, 4, %L)', :'j', 'x'));
SELECT t.err(format('SELECT jobq.checkpoint(%L, NULL, %L)', :'j', 'x'));
SELECT t.err(format('SELECT jobq.checkpoint(%L, 3, NULL)', :'j'));
SELECT t.err($$SELECT jobq.checkpoint(NULL, 1, 'x')$$);
SELECT t.err($$SELECT jobq.checkpoint('00000000-0000-0000-0000-000000000009', 1, 'x')$$);
SELECT t.err(format('SELECT jobq.checkpoint_data(%L, 99)', :'j'));
SELECT t.err($$SELECT jobq.checkpoints(NULL)$$);
SELECT t.err($$SELECT jobq.checkpoints('00000000-0000-0000-0000-000000000009')$$);
SELECT count(*) FROM jobq.claim('ext-whole', 'ext-1');
SELECT t.err(format('SELECT jobq.checkpoint(%L, 1, %L)', :'w', 'x'));
SET jobq.max_checkpoint_bytes = '8B';
SELECT t.err(format('SELECT jobq.checkpoint(%L, 3, %L)', :'j', 'more than eight bytes'));
RESET jobq.max_checkpoint_bytes;
-- another tenant cannot see them
SET jobq.user_id = 'aaaaaaaa-0000-0000-0000-000000000001';
SELECT t.err(format('SELECT jobq.checkpoints(%L)', :'j'));
SELECT t.err(format('SELECT jobq.checkpoint_data(%L, 1)', :'j'));
RESET jobq.user_id;

-- sweep: an external holder silent for longer than stale_after loses the job
SELECT jobq.sweep() AS nothing_stale;
UPDATE jobq.jobs SET heartbeat_at = now() - interval '1 hour' WHERE id = :'j';
SELECT jobq.sweep('10 minutes') AS swept;
SELECT status, attempts, locked_by, error->'errors'->0->>'code' AS code,
       error->'checkpoints' AS checkpoints, error->>'attempt' AS attempt
  FROM jobq.jobs WHERE id = :'j';
-- its checkpoints are kept for the next attempt
SELECT count(*) FROM jobq.checkpoints(:'j');
-- the last attempt: Failed, with the checkpoint count
UPDATE jobq.jobs SET max_attempts = 2 WHERE id = :'j';
SELECT count(*) FROM jobq.claim('ext', 'ext-2');
UPDATE jobq.jobs SET heartbeat_at = now() - interval '1 hour' WHERE id = :'j';
SELECT jobq.sweep('10 minutes') AS swept;
SELECT status, error->'errors'->0->>'code' AS code, error->'checkpoints' AS checkpoints,
       completed_at IS NOT NULL AS done FROM jobq.jobs WHERE id = :'j';
-- a recent heartbeat is left alone; a held in-server token that is not alive is taken
SELECT jobq.sweep('1 hour') AS fresh_left_alone;
UPDATE jobq.jobs SET locked_by = 'jobq:0:1:00000000000000ff' WHERE id = :'w';
SELECT jobq.sweep('1 hour') AS dead_worker_token;
SELECT t.err($$SELECT jobq.sweep('-1 s')$$);

-- purge: old terminal jobs go, with their checkpoint records; their blobs are queued
UPDATE jobq.jobs SET completed_at = now() - interval '30 days' WHERE id = :'j';
SELECT jobq.purge('7 days', 'other-queue') AS other_queue, jobq.purge('60 days') AS too_young;
SELECT jobq.purge('7 days') AS purged;
SELECT count(*) AS jobs_left FROM jobq.jobs WHERE id = :'j';
SELECT count(*) AS records_left FROM jobq.unit_checkpoints WHERE job_id = :'j';
SELECT t.err($$SELECT jobq.purge('-1 day')$$);
SELECT t.err($$SELECT jobq.purge('1 day', '')$$);
