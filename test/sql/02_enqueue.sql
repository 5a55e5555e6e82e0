-- enqueue: defaults, options, ids, trace ids, dedupe, limits.
SET jobq.default_max_attempts = 3;

SELECT jobq.enqueue('email') IS NOT NULL AS enqueued;
SELECT job_type, queue, status, payload, user_id, priority, attempts, max_attempts,
       units_total, units_done, progress_percent, run_at = created_at AS due_now,
       trace_id ~ '^[0-9a-f]{32}$' AS trace_ok, locked_by, completed_at
  FROM jobq.jobs;

-- options are stored
SELECT jobq.enqueue('report', '{"n": 1}', '11111111-1111-1111-1111-111111111111',
                    queue => 'reports', priority => 5, run_at => now() + interval '1 hour',
                    units => 20, max_attempts => 7,
                    trace_id => '4BF92F3577B34DA6A3CE929D0E0E4736') AS id \gset
SELECT job_type, queue, payload, user_id, priority, run_at > now() AS delayed, units_total,
       max_attempts, trace_id FROM jobq.status(:'id');

-- NULL for an argument with a default means that default
SELECT queue, priority, payload, max_attempts
  FROM jobq.status(jobq.enqueue('x', NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL));

-- ids are UUIDv7 and strictly increasing within a session
SELECT bool_and(substr(id::text, 15, 1) = '7') AS v7,
       bool_and(substr(id::text, 20, 1) IN ('8', '9', 'a', 'b')) AS rfc_variant
  FROM jobq.jobs;
WITH ids AS (SELECT jobq.gen_uuid_v7() AS id, g FROM generate_series(1, 5000) g)
SELECT bool_and(id > lag) AS increasing
  FROM (SELECT id, lag(id) OVER (ORDER BY g) FROM ids) s WHERE lag IS NOT NULL;

-- trace id from the session's W3C traceparent
SET jobq.traceparent = '00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01';
SELECT trace_id FROM jobq.status(jobq.enqueue('traced'));
RESET jobq.traceparent;

-- dedupe: an active job of the same type and key is returned, nothing created
SELECT jobq.enqueue('sync', dedupe_key => 'user-42') AS first \gset
SELECT jobq.enqueue('sync', dedupe_key => 'user-42') = :'first' AS same_job;
SELECT count(*) FROM jobq.jobs WHERE dedupe_key = 'user-42';
-- another type with the same key is a different job
SELECT jobq.enqueue('other', dedupe_key => 'user-42') <> :'first' AS other_type_new;
-- once the first job is terminal the key is free again
SELECT jobq.cancel(:'first');
SELECT jobq.enqueue('sync', dedupe_key => 'user-42') <> :'first' AS new_after_terminal;

-- enqueue_many: ids in array order, one per payload
CREATE TEMP TABLE e AS
  SELECT * FROM jobq.enqueue_many('bulk', ARRAY(SELECT ('{"i": ' || g || '}')::jsonb
                                               FROM generate_series(1, 100) g))
       WITH ORDINALITY AS e(id, ord);
SELECT count(*) AS n, bool_and(s.payload = ('{"i": ' || e.ord || '}')::jsonb) AS in_order,
       bool_and(s.trace_id ~ '^[0-9a-f]{32}$') AS traced
  FROM e JOIN jobq.jobs s ON s.id = e.id;
SELECT count(*) FROM jobq.enqueue_many('bulk', '{}'::jsonb[]);
-- a big batch: every returned id is a job with its payload, in order
CREATE TEMP TABLE big AS
  SELECT * FROM jobq.enqueue_many('bigbulk', ARRAY(SELECT jsonb_build_object('i', g)
                                                FROM generate_series(1, 5000) g))
       WITH ORDINALITY AS e(id, ord);
SELECT count(*) AS n, count(DISTINCT e.id) AS distinct_ids,
       bool_and((s.payload->>'i')::int = e.ord) AS in_order
  FROM big e JOIN jobq.jobs s ON s.id = e.id;
SELECT count(DISTINCT trace_id) AS distinct_traces FROM jobq.jobs WHERE job_type = 'bulk';

-- bad input: 22023 naming the value, 54000 over the size limit, nothing created
SELECT t.err($$SELECT jobq.enqueue(NULL)$$);
SELECT t.err($$SELECT jobq.enqueue('')$$);
SELECT t.err($$SELECT jobq.enqueue(repeat('t', 201))$$);
SELECT t.err($$SELECT jobq.enqueue('x', queue => '')$$);
SELECT t.err($$SELECT jobq.enqueue('x', units => 0)$$);
SELECT t.err($$SELECT jobq.enqueue('x', units => 100001)$$);
SELECT t.err($$SELECT jobq.enqueue('x', max_attempts => -1)$$);
SELECT t.err($$SELECT jobq.enqueue('x', dedupe_key => '')$$);
SELECT t.err($$SELECT jobq.enqueue('x', trace_id => 'abc')$$);
SELECT t.err($$SELECT jobq.enqueue('x', trace_id => '00000000000000000000000000000000')$$);
SELECT t.err($$SELECT jobq.enqueue('x', trace_id => '4bf92f3577b34da6a3ce929d0e0e47361')$$);
SELECT t.err($$SELECT jobq.enqueue_many('x', NULL)$$);
SELECT t.err($$SELECT jobq.enqueue_many('x', ARRAY['{}'::jsonb, NULL])$$);
SELECT t.err($$SELECT jobq.enqueue_many('x', ARRAY[['{}'::jsonb], ['{}'::jsonb]])$$);
SET jobq.max_payload_bytes = '100B';
SELECT t.err($$SELECT jobq.enqueue('x', jsonb_build_object('s', repeat('a', 200)))$$);
SELECT t.err($$SELECT jobq.enqueue_many('x', ARRAY['{}'::jsonb, jsonb_build_object('s', repeat('a', 200))])$$);
RESET jobq.max_payload_bytes;
SET jobq.traceparent = 'garbage';
SELECT t.err($$SELECT jobq.enqueue('x')$$);
RESET jobq.traceparent;
SELECT count(*) FROM jobq.jobs WHERE job_type = 'x';
