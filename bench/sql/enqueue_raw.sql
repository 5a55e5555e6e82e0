-- enqueue, 1 job per transaction, plain INSERT of the same row shape into the same table
INSERT INTO jobq.jobs (id, job_type, payload, trace_id)
VALUES (jobq.gen_uuid_v7(), 'noop', '{"task": "noop"}', md5(random()::text));
