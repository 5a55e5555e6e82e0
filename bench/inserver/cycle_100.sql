-- bloat: enqueue 100 (transaction 1), claim 100 (transaction 2), complete them (transaction 3),
-- all through jobq, in queue 'default' (the queue the claim figure is measured on afterwards)
SELECT count(*) FROM jobq.enqueue_many('noop', array_fill('{"task": "noop"}'::jsonb, ARRAY[100]));
SELECT coalesce(array_agg(id), '{}') AS ids FROM jobq.claim('default', 'c' || :client_id, 100) \gset
SELECT jobq.complete_many(:ids::uuid[]);
