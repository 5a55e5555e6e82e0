-- enqueue, 1 job per transaction, through jobq
SELECT jobq.enqueue('noop', '{"task": "noop"}');
