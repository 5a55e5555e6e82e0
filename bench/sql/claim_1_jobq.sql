-- claim 1 job (transaction 1), complete it (transaction 2), through jobq.
-- \gset fails on zero rows: the bench sizes the prefill so the queue never runs dry.
SELECT id FROM jobq.claim('default', 'w' || :client_id, 1) \gset
SELECT jobq.complete(:id::uuid);
