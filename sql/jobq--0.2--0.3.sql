/*
 * jobq 0.2 -> 0.3: multi-unit jobs with checkpoints in blob storage, the
 * stale-job sweep and purge (SPEC sections 5, 6 and 12).
 */
\echo Use "ALTER EXTENSION jobq UPDATE TO '0.3'" to load this file. \quit

-- One row per unit output in the store.  stored = false marks a record
-- written just before its upload, so a restart can adopt the blob once its
-- hash matches; only stored rows count.
CREATE TABLE jobq.unit_checkpoints (
    job_id     uuid NOT NULL REFERENCES jobq.jobs (id) ON DELETE CASCADE,
    unit_id    int NOT NULL CHECK (unit_id > 0),
    uri        text NOT NULL,
    bytes      bigint NOT NULL,
    sha256     text NOT NULL,
    stored     boolean NOT NULL DEFAULT true,
    created_at timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (job_id, unit_id)
);
SELECT pg_catalog.pg_extension_config_dump('jobq.unit_checkpoints', '');

-- Blobs of purged jobs (their recorded URIs), deleted by the in-server
-- workers between jobs, so purge() itself does no I/O inside its caller's
-- transaction.  A store that is down is tried again later, with backoff.
CREATE TABLE jobq.blob_deletions (
    job_id          uuid PRIMARY KEY,
    uris            text[] NOT NULL,
    attempts        int NOT NULL DEFAULT 0,
    next_attempt_at timestamptz NOT NULL DEFAULT now(),
    queued_at       timestamptz NOT NULL DEFAULT now()
);
SELECT pg_catalog.pg_extension_config_dump('jobq.blob_deletions', '');

CREATE FUNCTION jobq.checkpoint(job_id uuid, unit_id int, data bytea) RETURNS text
    AS 'MODULE_PATHNAME', 'jobq_checkpoint' LANGUAGE C VOLATILE
    SECURITY DEFINER SET search_path = pg_catalog, pg_temp;

CREATE FUNCTION jobq.checkpoint_data(job_id uuid, unit_id int) RETURNS bytea
    AS 'MODULE_PATHNAME', 'jobq_checkpoint_data' LANGUAGE C VOLATILE
    SECURITY DEFINER SET search_path = pg_catalog, pg_temp;

CREATE FUNCTION jobq.checkpoints(job_id uuid)
    RETURNS TABLE (unit_id int, uri text, bytes bigint, sha256 text, created_at timestamptz)
    LANGUAGE plpgsql STABLE SECURITY DEFINER SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    tenant uuid := jobq.current_user_id();
BEGIN
    IF checkpoints.job_id IS NULL THEN
        RAISE EXCEPTION 'job_id must not be NULL' USING ERRCODE = '22023';
    END IF;
    IF NOT EXISTS (SELECT 1 FROM jobq.jobs j WHERE j.id = checkpoints.job_id
                      AND (tenant IS NULL OR j.user_id = tenant)) THEN
        RAISE EXCEPTION 'job % does not exist', checkpoints.job_id USING ERRCODE = 'P0002';
    END IF;
    RETURN QUERY SELECT c.unit_id, c.uri, c.bytes, c.sha256, c.created_at
                   FROM jobq.unit_checkpoints c
                  WHERE c.job_id = checkpoints.job_id AND c.stored
                  ORDER BY c.unit_id;
END
$$;

-- pg_cron: SELECT cron.schedule('jobq-sweep', '* * * * *', 'SELECT jobq.sweep()')
CREATE FUNCTION jobq.sweep(stale_after interval DEFAULT NULL) RETURNS int
    LANGUAGE plpgsql VOLATILE SECURITY DEFINER SET search_path = pg_catalog, pg_temp
AS $$
BEGIN
    IF stale_after < interval '0' THEN
        RAISE EXCEPTION 'stale_after must not be negative, not %', stale_after
              USING ERRCODE = '22023';
    END IF;
    IF stale_after > interval '1000 years' THEN
        -- no heartbeat is that old: only lost in-server holders remain to rescue
        RETURN jobq._release_lost(false, NULL);
    END IF;
    RETURN jobq._release_lost(true, stale_after);
END
$$;

-- Delete terminal jobs that completed before now() - older_than (their
-- checkpoint records go with them; their blobs are queued for the workers).
CREATE FUNCTION jobq.purge(older_than interval DEFAULT '7 days', queue text DEFAULT NULL)
    RETURNS bigint
    LANGUAGE plpgsql VOLATILE SECURITY DEFINER SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    n bigint;
BEGIN
    IF older_than IS NULL THEN
        older_than := interval '7 days';
    END IF;
    IF older_than < interval '0' THEN
        RAISE EXCEPTION 'older_than must not be negative, not %', older_than USING ERRCODE = '22023';
    END IF;
    IF queue = '' THEN
        RAISE EXCEPTION 'queue must not be empty' USING ERRCODE = '22023';
    END IF;
    IF older_than > interval '1000 years' THEN
        RETURN 0;               -- nothing finished that long ago
    END IF;
    -- the checkpoint records are still visible to this statement: their
    -- rows go with their jobs (ON DELETE CASCADE) when it ends
    WITH gone AS (
        DELETE FROM jobq.jobs j
         WHERE j.status >= 2 AND j.completed_at < now() - older_than
           AND (purge.queue IS NULL OR j.queue = purge.queue)
        RETURNING j.id),
    blobs AS (
        INSERT INTO jobq.blob_deletions (job_id, uris)
        SELECT c.job_id, array_agg(c.uri ORDER BY c.unit_id)
          FROM jobq.unit_checkpoints c JOIN gone g ON g.id = c.job_id
         GROUP BY c.job_id
        ON CONFLICT (job_id) DO NOTHING)
    SELECT count(*) INTO n FROM gone;
    RETURN n;
END
$$;

REVOKE ALL ON FUNCTION jobq.checkpoint(uuid, int, bytea), jobq.checkpoint_data(uuid, int),
    jobq.checkpoints(uuid), jobq.sweep(interval), jobq.purge(interval, text) FROM PUBLIC;
REVOKE ALL ON jobq.unit_checkpoints, jobq.blob_deletions FROM PUBLIC;

CREATE OR REPLACE FUNCTION jobq.grant_worker(role regrole) RETURNS void
    LANGUAGE plpgsql SET search_path = pg_catalog, pg_temp
AS $$
BEGIN
    PERFORM jobq._check_role(role);
    EXECUTE format('GRANT USAGE ON SCHEMA jobq TO %s', role);
    EXECUTE format('GRANT EXECUTE ON FUNCTION jobq.claim(text, text, int, text[]),
        jobq.heartbeat(uuid, text), jobq.progress(uuid, int, text),
        jobq.complete(uuid, jsonb, text), jobq.complete_many(uuid[], jsonb[], text),
        jobq.fail(uuid, text, text, boolean, text), jobq.status(uuid), jobq.depth(text),
        jobq.checkpoint(uuid, int, bytea), jobq.checkpoint_data(uuid, int),
        jobq.checkpoints(uuid) TO %s', role);
END
$$;

CREATE OR REPLACE FUNCTION jobq.grant_admin(role regrole) RETURNS void
    LANGUAGE plpgsql SET search_path = pg_catalog, pg_temp
AS $$
BEGIN
    PERFORM jobq._check_role(role);
    PERFORM jobq.grant_client(role);
    PERFORM jobq.grant_worker(role);
    EXECUTE format('GRANT SELECT ON ALL TABLES IN SCHEMA jobq TO %s', role);
    EXECUTE format('GRANT EXECUTE ON FUNCTION jobq.register(text, regprocedure, regprocedure,
        regprocedure, text[], text, int, interval), jobq.unregister(text),
        jobq._worker_status(), jobq.sweep(interval), jobq.purge(interval, text) TO %s', role);
END
$$;
