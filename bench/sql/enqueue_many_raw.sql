-- enqueue, 100 jobs per transaction, plain INSERT .. SELECT of the same row shape
INSERT INTO jobq.jobs (id, job_type, payload, trace_id)
SELECT jobq.gen_uuid_v7(), 'noop', '{"task": "noop"}', md5(random()::text) FROM generate_series(1, 100);
