-- claim 10 jobs (transaction 1), complete those 10 with one call (transaction 2), through jobq.
-- An empty claim gives NULL, and complete_many(NULL) fails: the prefill prevents it.
SELECT array_agg(id) AS ids FROM jobq.claim('default', 'w' || :client_id, 10) \gset
SELECT jobq.complete_many(:ids::uuid[]);
