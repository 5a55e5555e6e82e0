-- enqueue, 100 jobs per transaction, through jobq (array_fill of constants is folded at plan time)
SELECT count(*) FROM jobq.enqueue_many('noop', array_fill('{"task": "noop"}'::jsonb, ARRAY[100]));
