-- claim 1 job (transaction 1), complete it (transaction 2), in plain SQL
-- (claim order, SKIP LOCKED and columns as in jobq.claim; unlike jobq.complete, the complete does
-- not set progress_percent = 100 and result = NULL, which changes no row size)
WITH c AS (
  UPDATE jobq.jobs SET status = 1, attempts = attempts + 1, locked_by = 'w' || :client_id,
         started_at = now(), heartbeat_at = now()
   WHERE id = ANY (ARRAY(SELECT id FROM jobq.jobs
                          WHERE status = 0 AND queue = 'default' AND run_at <= now()
                          ORDER BY priority DESC, run_at, id FOR UPDATE SKIP LOCKED LIMIT 1))
  RETURNING id)
SELECT array_agg(id) AS ids FROM c \gset
UPDATE jobq.jobs SET status = 2, completed_at = now(), locked_by = NULL WHERE id = ANY (:ids::uuid[]);
