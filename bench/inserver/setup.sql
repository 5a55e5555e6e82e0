-- Functions and tables for bench/inserver.sh, created once per throwaway cluster.

-- issue 3: no-op handlers
CREATE FUNCTION noop(j jobq.jobs) RETURNS jsonb LANGUAGE sql AS $$ SELECT NULL::jsonb $$;
CREATE FUNCTION noop_plpgsql(j jobq.jobs) RETURNS jsonb LANGUAGE plpgsql AS $$ BEGIN RETURN NULL; END $$;

-- Wait until queue q has no due Queued and no Processing job (what jobq.depth(q) counts, but
-- with EXISTS: depth() counts every queued job, which would take CPU from the workers while a
-- big queue drains), polling every 20 ms in short transactions; done_epoch = clock_timestamp()
-- (epoch seconds) when it is.
CREATE PROCEDURE bench_wait(q text, timeout_s float8, INOUT done_epoch float8 DEFAULT NULL)
LANGUAGE plpgsql AS $$
DECLARE t0 timestamptz := clock_timestamp();
BEGIN
  LOOP
    IF NOT EXISTS (SELECT 1 FROM jobq.jobs j WHERE j.queue = q AND j.status = 0 AND j.run_at <= now())
       AND NOT EXISTS (SELECT 1 FROM jobq.jobs j WHERE j.queue = q AND j.status = 1 AND j.started_at IS NOT NULL) THEN
      done_epoch := extract(epoch FROM clock_timestamp());
      RETURN;
    END IF;
    IF clock_timestamp() - t0 > timeout_s * interval '1 s' THEN
      RAISE EXCEPTION 'bench_wait: queue % still has work after % s', q, timeout_s;
    END IF;
    COMMIT;
    PERFORM pg_sleep(0.02);
  END LOOP;
END $$;

-- issue 3: idle pickup latency
-- at: handler start; claimed: the job's started_at (now() of the worker's claim transaction)
CREATE TABLE lat_seen (id uuid PRIMARY KEY, at timestamptz NOT NULL, claimed timestamptz);
-- x: the enqueue's xid (for pg_xact_commit_timestamp, stamped before its WAL flush);
-- committed: clock_timestamp() right after its COMMIT returned (flushed, visible, workers woken)
CREATE TABLE lat_enq (id uuid PRIMARY KEY, x xid NOT NULL, variant text NOT NULL,
                      poll_delays int[], committed timestamptz NOT NULL,
                      at timestamptz NOT NULL DEFAULT clock_timestamp());
-- one sample: enqueue, COMMIT, note the time; the row goes in 50 ms later, after the handler ran.
-- With durable = false the enqueue commits asynchronously: its commit timestamp is then taken
-- just before the job becomes visible (no WAL flush in between).
CREATE PROCEDURE lat_sample(v text, durable boolean DEFAULT true) LANGUAGE plpgsql AS $$
DECLARE
  jid uuid;
  x xid;
  t timestamptz;
  d int[];
BEGIN
  d := (SELECT array_agg(poll_delay_ms ORDER BY pid) FROM jobq.worker_status);
  IF NOT durable THEN
    PERFORM set_config('synchronous_commit', 'off', true);
  END IF;
  jid := jobq.enqueue('lat');
  x := xid(pg_current_xact_id());
  COMMIT;
  t := clock_timestamp();
  PERFORM pg_sleep(0.05);
  INSERT INTO lat_enq (id, x, variant, poll_delays, committed) VALUES (jid, x, v, d, t);
END $$;
CREATE FUNCTION lat_handler(j jobq.jobs) RETURNS jsonb LANGUAGE plpgsql AS $$
BEGIN
  INSERT INTO lat_seen VALUES (j.id, clock_timestamp(), j.started_at);
  RETURN NULL;
END $$;

-- issue 4: unit outputs.  ck_out(size, n): `size` bytes, cheap to make, different per unit.
CREATE FUNCTION ck_out(size int, n int) RETURNS bytea LANGUAGE sql VOLATILE AS $$
  SELECT decode(repeat(lpad(to_hex(n % 256), 2, '0'), size), 'hex') $$;
CREATE FUNCTION ck_unit(j jobq.jobs, n int) RETURNS bytea LANGUAGE sql VOLATILE AS $$
  SELECT ck_out((j.payload->>'size')::int, n) $$;
-- the same outputs computed in one whole-job handler, without checkpoints
CREATE TABLE ck_loop_done (id uuid PRIMARY KEY, at timestamptz NOT NULL, bytes bigint);
CREATE FUNCTION ck_loop(j jobq.jobs) RETURNS jsonb LANGUAGE plpgsql AS $$
DECLARE
  total bigint := 0;
  b bytea;
  size int := (j.payload->>'size')::int;
BEGIN
  FOR i IN 1..(j.payload->>'units')::int LOOP
    b := ck_out(size, i);
    total := total + length(b);
  END LOOP;
  INSERT INTO ck_loop_done VALUES (j.id, clock_timestamp(), total);
  RETURN jsonb_build_object('bytes', total);
END $$;
-- crash trials: a slow unit that says when it starts
CREATE FUNCTION ck_crash_unit(j jobq.jobs, n int) RETURNS bytea LANGUAGE plpgsql AS $$
BEGIN
  RAISE LOG 'unit-run % of job %', n, j.id;
  PERFORM pg_sleep(0.01);
  RETURN ck_out(4096, n);
END $$;

-- issue 5: small units
CREATE FUNCTION small_unit(j jobq.jobs, n int) RETURNS bytea LANGUAGE sql AS $$
  SELECT int4send(n) $$;
