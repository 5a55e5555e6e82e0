-- raw batched claim (transaction 1) + complete (transaction 2) of queue 'raw', 10 jobs per batch
WITH c AS (
  UPDATE jobq.jobs SET status = 1, attempts = attempts + 1, locked_by = 'w',
         started_at = now(), heartbeat_at = now()
   WHERE id = ANY (ARRAY(SELECT id FROM jobq.jobs
                          WHERE status = 0 AND queue = 'raw' AND run_at <= now()
                          ORDER BY priority DESC, run_at, id FOR UPDATE SKIP LOCKED LIMIT 10))
  RETURNING id)
SELECT coalesce(array_agg(id), '{}') AS ids FROM c \gset
UPDATE jobq.jobs SET status = 2, completed_at = now(), locked_by = NULL WHERE id = ANY (:ids::uuid[]);
