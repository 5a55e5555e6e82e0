/*
 * jobq 0.1: the queue core.  The jobs table, its indexes, and the SQL API of
 * SPEC sections 3 and 4.  Later versions are reached through the update
 * scripts jobq--A--B.sql; CREATE EXTENSION runs the same chain, so a fresh
 * install and an upgraded one cannot differ.
 */
\echo Use "CREATE EXTENSION jobq" to load this file. \quit

CREATE TABLE jobq.jobs (
    id               uuid PRIMARY KEY,
    user_id          uuid NOT NULL DEFAULT '00000000-0000-0000-0000-000000000000',
    job_type         text NOT NULL,
    queue            text NOT NULL DEFAULT 'default',
    status           int NOT NULL DEFAULT 0,
    payload          jsonb NOT NULL DEFAULT '{}',
    result           jsonb,
    error_message    text,
    error            jsonb,
    progress_percent int NOT NULL DEFAULT 0,
    status_message   text,
    created_at       timestamptz NOT NULL DEFAULT now(),
    started_at       timestamptz,
    completed_at     timestamptz,
    priority         int NOT NULL DEFAULT 0,
    run_at           timestamptz NOT NULL DEFAULT now(),
    attempts         int NOT NULL DEFAULT 0,
    max_attempts     int NOT NULL DEFAULT 3,
    units_total      int,
    units_done       int NOT NULL DEFAULT 0,
    locked_by        text,
    heartbeat_at     timestamptz,
    dedupe_key       text,
    trace_id         text NOT NULL
) WITH (
    -- a queue table churns: vacuum it early, and leave room on each page so
    -- heartbeat/progress updates can stay HOT
    fillfactor = 90,
    autovacuum_vacuum_scale_factor = 0.02,
    autovacuum_analyze_scale_factor = 0.02,
    autovacuum_vacuum_insert_scale_factor = 0.05
);

-- No CHECK constraints: every write goes through jobq's functions, which
-- check their arguments, and a CHECK is re-planned by every UPDATE, which
-- would cost the worker a fifth of its time per job.
COMMENT ON TABLE jobq.jobs IS
  'One row per job. status: 0 Queued, 1 Processing, 2 Completed, 3 Failed, 4 Cancelled.';

-- Partial indexes hold only live work, so claim and depth() stay fast however
-- many terminal jobs the table keeps.
CREATE INDEX jobs_claim_idx ON jobq.jobs (queue, priority DESC, run_at, id)
    WHERE status = 0;
-- "started_at IS NOT NULL" is always true of a Processing job; it is in the
-- predicate so that only queries that say it (depth, sweep, metrics) can use
-- this small index.  Without it the planner would scan the whole index for
-- "id = $1 AND status = 1" (complete, heartbeat, ...) instead of the primary
-- key, which gets slower with every dead entry.  started_at changes only
-- with status, so heartbeats stay HOT.
CREATE INDEX jobs_processing_idx ON jobq.jobs (queue)
    WHERE status = 1 AND started_at IS NOT NULL;
CREATE UNIQUE INDEX jobs_dedupe_idx ON jobq.jobs (job_type, user_id, dedupe_key)
    WHERE dedupe_key IS NOT NULL AND status < 2;

SELECT pg_catalog.pg_extension_config_dump('jobq.jobs', '');

-- Tenancy for direct reads: a session with a tenant sees only its user's
-- jobs.  The SQL functions below run as the owner and apply the same rule.
ALTER TABLE jobq.jobs ENABLE ROW LEVEL SECURITY;

---------------------------------------------------------------------------
-- helpers
---------------------------------------------------------------------------

CREATE FUNCTION jobq.gen_uuid_v7() RETURNS uuid
    AS 'MODULE_PATHNAME', 'jobq_gen_uuid_v7' LANGUAGE C VOLATILE PARALLEL SAFE;
COMMENT ON FUNCTION jobq.gen_uuid_v7() IS 'A time-ordered UUIDv7, as job ids are made.';

CREATE FUNCTION jobq.current_user_id() RETURNS uuid
    AS 'MODULE_PATHNAME', 'jobq_current_user_id' LANGUAGE C STABLE PARALLEL SAFE;
COMMENT ON FUNCTION jobq.current_user_id() IS
  'The session''s tenant: jobq.user_id, else the sub of request.jwt.claims, else NULL.';

CREATE POLICY jobs_tenant ON jobq.jobs FOR SELECT
    USING (jobq.current_user_id() IS NULL OR user_id = jobq.current_user_id());

CREATE FUNCTION jobq._error_json(trace_id text, code text, message text,
                                 attempt int, checkpoints int) RETURNS jsonb
    AS 'MODULE_PATHNAME', 'jobq_error_json_sql' LANGUAGE C IMMUTABLE PARALLEL SAFE;

-- Queue the progress notification of a job (SPEC section 11); for the
-- SQL-language paths, the C paths call the same builder.
CREATE FUNCTION jobq._notify(j jobq.jobs) RETURNS boolean
    AS 'MODULE_PATHNAME', 'jobq_notify_sql' LANGUAGE C VOLATILE;

CREATE FUNCTION jobq._holder_alive(holder text) RETURNS boolean
    AS 'MODULE_PATHNAME', 'jobq_holder_alive_sql' LANGUAGE C VOLATILE;

---------------------------------------------------------------------------
-- application API (SPEC section 3)
---------------------------------------------------------------------------

CREATE FUNCTION jobq.enqueue(job_type text, payload jsonb DEFAULT '{}', user_id uuid DEFAULT NULL,
                             queue text DEFAULT 'default', priority int DEFAULT 0,
                             run_at timestamptz DEFAULT NULL, units int DEFAULT NULL,
                             max_attempts int DEFAULT NULL, dedupe_key text DEFAULT NULL,
                             trace_id text DEFAULT NULL) RETURNS uuid
    AS 'MODULE_PATHNAME', 'jobq_enqueue' LANGUAGE C VOLATILE
    SECURITY DEFINER SET search_path = pg_catalog, pg_temp;

CREATE FUNCTION jobq.enqueue_many(job_type text, payloads jsonb[], user_id uuid DEFAULT NULL,
                                  queue text DEFAULT 'default', priority int DEFAULT 0)
    RETURNS SETOF uuid
    AS 'MODULE_PATHNAME', 'jobq_enqueue_many' LANGUAGE C VOLATILE ROWS 100
    SECURITY DEFINER SET search_path = pg_catalog, pg_temp;

CREATE FUNCTION jobq.cancel(job_id uuid) RETURNS boolean
    AS 'MODULE_PATHNAME', 'jobq_cancel' LANGUAGE C VOLATILE
    SECURITY DEFINER SET search_path = pg_catalog, pg_temp;

CREATE FUNCTION jobq.retry(job_id uuid) RETURNS boolean
    AS 'MODULE_PATHNAME', 'jobq_retry' LANGUAGE C VOLATILE
    SECURITY DEFINER SET search_path = pg_catalog, pg_temp;

-- VOLATILE so it sees jobs made earlier in the same statement
CREATE FUNCTION jobq.status(job_id uuid) RETURNS jobq.jobs
    AS 'MODULE_PATHNAME', 'jobq_status' LANGUAGE C VOLATILE
    SECURITY DEFINER SET search_path = pg_catalog, pg_temp;

-- KEDA's query: one row, one numeric column, never NULL.  Not tenant-scoped:
-- it measures the queue, not a user's jobs.
CREATE FUNCTION jobq.depth(queue text DEFAULT NULL) RETURNS bigint
    LANGUAGE plpgsql STABLE SECURITY DEFINER SET search_path = pg_catalog, pg_temp
AS $$
BEGIN
    IF queue = '' OR octet_length(queue) > 200 THEN
        RAISE EXCEPTION 'queue "%" must be a name of 1 to 200 bytes', left(queue, 40)
              USING ERRCODE = '22023';
    END IF;
    IF queue IS NULL THEN
        RETURN (SELECT count(*) FROM jobq.jobs j WHERE j.status = 0 AND j.run_at <= now())
             + (SELECT count(*) FROM jobq.jobs j WHERE j.status = 1 AND j.started_at IS NOT NULL);
    END IF;
    RETURN (SELECT count(*) FROM jobq.jobs j
             WHERE j.status = 0 AND j.queue = depth.queue AND j.run_at <= now())
         + (SELECT count(*) FROM jobq.jobs j
             WHERE j.status = 1 AND j.started_at IS NOT NULL AND j.queue = depth.queue);
END
$$;

---------------------------------------------------------------------------
-- worker API (SPEC section 4)
---------------------------------------------------------------------------

CREATE FUNCTION jobq.claim(queue text DEFAULT 'default', worker text DEFAULT NULL,
                           max_jobs int DEFAULT 1, job_types text[] DEFAULT NULL)
    RETURNS SETOF jobq.jobs
    AS 'MODULE_PATHNAME', 'jobq_claim' LANGUAGE C VOLATILE ROWS 10
    SECURITY DEFINER SET search_path = pg_catalog, pg_temp;

CREATE FUNCTION jobq.heartbeat(job_id uuid, worker text DEFAULT NULL) RETURNS boolean
    AS 'MODULE_PATHNAME', 'jobq_heartbeat' LANGUAGE C VOLATILE
    SECURITY DEFINER SET search_path = pg_catalog, pg_temp;

CREATE FUNCTION jobq.progress(job_id uuid, percent int, message text DEFAULT NULL) RETURNS void
    AS 'MODULE_PATHNAME', 'jobq_progress' LANGUAGE C VOLATILE
    SECURITY DEFINER SET search_path = pg_catalog, pg_temp;

CREATE FUNCTION jobq.complete(job_id uuid, result jsonb DEFAULT NULL, worker text DEFAULT NULL)
    RETURNS void
    AS 'MODULE_PATHNAME', 'jobq_complete' LANGUAGE C VOLATILE
    SECURITY DEFINER SET search_path = pg_catalog, pg_temp;

CREATE FUNCTION jobq.complete_many(job_ids uuid[], results jsonb[] DEFAULT NULL,
                                   worker text DEFAULT NULL) RETURNS int
    AS 'MODULE_PATHNAME', 'jobq_complete_many' LANGUAGE C VOLATILE
    SECURITY DEFINER SET search_path = pg_catalog, pg_temp;

CREATE FUNCTION jobq.fail(job_id uuid, message text, code text DEFAULT 'HandlerError',
                          retry boolean DEFAULT true, worker text DEFAULT NULL) RETURNS void
    AS 'MODULE_PATHNAME', 'jobq_fail' LANGUAGE C VOLATILE
    SECURITY DEFINER SET search_path = pg_catalog, pg_temp;

---------------------------------------------------------------------------
-- privileges (SPEC section 9): nothing for PUBLIC but the harmless helpers
---------------------------------------------------------------------------

REVOKE ALL ON ALL FUNCTIONS IN SCHEMA jobq FROM PUBLIC;
REVOKE ALL ON ALL TABLES IN SCHEMA jobq FROM PUBLIC;
GRANT EXECUTE ON FUNCTION jobq.gen_uuid_v7(), jobq.current_user_id() TO PUBLIC;

-- 22023 unless role names an existing role (a regrole can hold any OID)
CREATE FUNCTION jobq._check_role(role regrole) RETURNS void
    LANGUAGE plpgsql STABLE SET search_path = pg_catalog, pg_temp
AS $$
BEGIN
    IF role IS NULL OR NOT EXISTS (SELECT 1 FROM pg_roles r WHERE r.oid = role) THEN
        RAISE EXCEPTION 'role % does not exist', coalesce(role::oid::text, 'NULL')
              USING ERRCODE = '22023';
    END IF;
END
$$;
REVOKE ALL ON FUNCTION jobq._check_role(regrole) FROM PUBLIC;

CREATE FUNCTION jobq.grant_client(role regrole) RETURNS void
    LANGUAGE plpgsql SET search_path = pg_catalog, pg_temp
AS $$
BEGIN
    PERFORM jobq._check_role(role);
    EXECUTE format('GRANT USAGE ON SCHEMA jobq TO %s', role);
    EXECUTE format('GRANT SELECT ON jobq.jobs TO %s', role);
    EXECUTE format('GRANT EXECUTE ON FUNCTION jobq.enqueue(text, jsonb, uuid, text, int, timestamptz, int, int, text, text),
        jobq.enqueue_many(text, jsonb[], uuid, text, int), jobq.cancel(uuid), jobq.retry(uuid),
        jobq.status(uuid), jobq.depth(text) TO %s', role);
END
$$;

CREATE FUNCTION jobq.grant_worker(role regrole) RETURNS void
    LANGUAGE plpgsql SET search_path = pg_catalog, pg_temp
AS $$
BEGIN
    PERFORM jobq._check_role(role);
    EXECUTE format('GRANT USAGE ON SCHEMA jobq TO %s', role);
    EXECUTE format('GRANT EXECUTE ON FUNCTION jobq.claim(text, text, int, text[]),
        jobq.heartbeat(uuid, text), jobq.progress(uuid, int, text),
        jobq.complete(uuid, jsonb, text), jobq.complete_many(uuid[], jsonb[], text),
        jobq.fail(uuid, text, text, boolean, text), jobq.status(uuid), jobq.depth(text) TO %s', role);
END
$$;

CREATE FUNCTION jobq.grant_admin(role regrole) RETURNS void
    LANGUAGE plpgsql SET search_path = pg_catalog, pg_temp
AS $$
BEGIN
    PERFORM jobq._check_role(role);
    PERFORM jobq.grant_client(role);
    PERFORM jobq.grant_worker(role);
    EXECUTE format('GRANT SELECT ON ALL TABLES IN SCHEMA jobq TO %s', role);
END
$$;

REVOKE ALL ON FUNCTION jobq.grant_client(regrole), jobq.grant_worker(regrole),
    jobq.grant_admin(regrole) FROM PUBLIC;
