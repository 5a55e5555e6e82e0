/*
 * jobq 0.1 -> 0.2: in-server workers.  Handler registrations, crash rescue,
 * and the worker_status view (SPEC sections 5, 12 and 13).
 */
\echo Use "ALTER EXTENSION jobq UPDATE TO '0.2'" to load this file. \quit

-- How the in-server workers run each job type.  Handlers run as `owner`,
-- the role that called register().  Writable only through register().
CREATE TABLE jobq.registrations (
    job_type     text PRIMARY KEY,
    queue        text NOT NULL DEFAULT 'default',
    handler      regprocedure,
    unit_handler regprocedure,
    finalizer    regprocedure,
    providers    text[],
    max_attempts int CHECK (max_attempts > 0),
    timeout      interval,
    owner        regrole NOT NULL,
    created_at   timestamptz NOT NULL DEFAULT now(),
    updated_at   timestamptz NOT NULL DEFAULT now(),
    CHECK (num_nonnulls(handler, unit_handler, providers) = 1)
);
SELECT pg_catalog.pg_extension_config_dump('jobq.registrations', '');

-- Every change, however made (register(), pg_restore, by hand), reaches the
-- workers' caches at commit.
CREATE FUNCTION jobq._registry_changed() RETURNS trigger
    AS 'MODULE_PATHNAME', 'jobq_registry_changed' LANGUAGE C;
CREATE TRIGGER registrations_changed
    AFTER INSERT OR UPDATE OR DELETE OR TRUNCATE ON jobq.registrations
    FOR EACH STATEMENT EXECUTE FUNCTION jobq._registry_changed();

CREATE FUNCTION jobq.register(job_type text, handler regprocedure DEFAULT NULL,
                              unit_handler regprocedure DEFAULT NULL,
                              finalizer regprocedure DEFAULT NULL,
                              providers text[] DEFAULT NULL, queue text DEFAULT 'default',
                              max_attempts int DEFAULT NULL, timeout interval DEFAULT NULL)
    RETURNS void
    AS 'MODULE_PATHNAME', 'jobq_register' LANGUAGE C VOLATILE
    SECURITY DEFINER SET search_path = pg_catalog, pg_temp;

CREATE FUNCTION jobq.unregister(job_type text) RETURNS boolean
    AS 'MODULE_PATHNAME', 'jobq_unregister' LANGUAGE C VOLATILE
    SECURITY DEFINER SET search_path = pg_catalog, pg_temp;

-- Jobs whose holder is lost go back to Queued with attempts left, else to
-- Failed, with the one error shape and their checkpoint count.  Lost means:
-- an in-server holder that is no longer alive (always), or, with
-- include_external, an external holder whose last heartbeat is older than
-- stale_after, else the job type's timeout, else jobq.stale_after.  A live
-- in-server holder is never taken from: it enforces its own timeout.
CREATE FUNCTION jobq._release_lost(include_external boolean, stale_after interval)
    RETURNS int LANGUAGE sql SET search_path = pg_catalog, pg_temp
AS $$
    WITH lost AS (
        SELECT j.id,
               CASE WHEN j.locked_by LIKE 'jobq:%' THEN 'the worker running this job was lost'
                    ELSE format('no heartbeat from %s since %s', j.locked_by, j.heartbeat_at) END AS why
          FROM jobq.jobs j LEFT JOIN jobq.registrations r ON r.job_type = j.job_type
         WHERE j.status = 1 AND j.started_at IS NOT NULL
           AND CASE WHEN j.locked_by LIKE 'jobq:%' THEN NOT jobq._holder_alive(j.locked_by)
                    ELSE include_external
                         AND j.heartbeat_at < now() - coalesce(stale_after, r.timeout,
                                  current_setting('jobq.stale_after')::interval) END
           FOR UPDATE OF j SKIP LOCKED),
    released AS (
        UPDATE jobq.jobs j SET
            status = CASE WHEN j.attempts < j.max_attempts THEN 0 ELSE 3 END,
            run_at = now(),
            locked_by = NULL,
            completed_at = CASE WHEN j.attempts < j.max_attempts THEN NULL ELSE clock_timestamp() END,
            error_message = lost.why,
            error = jobq._error_json(j.trace_id, 'WorkerLost', lost.why, j.attempts, j.units_done)
          FROM lost WHERE j.id = lost.id
        RETURNING j)
    SELECT (count(*) FILTER (WHERE jobq._notify(r.j)))::int FROM released r
$$;

-- Run by each in-server worker at start: the orphans of dead workers.
CREATE FUNCTION jobq._rescue_orphans() RETURNS int
    LANGUAGE sql SET search_path = pg_catalog, pg_temp
AS $$ SELECT jobq._release_lost(false, NULL) $$;

CREATE FUNCTION jobq._worker_status(OUT pid int, OUT state text, OUT job_id uuid,
                                    OUT poll_delay_ms int, OUT jobs_done bigint,
                                    OUT started_at timestamptz)
    RETURNS SETOF record
    AS 'MODULE_PATHNAME', 'jobq_worker_status' LANGUAGE C VOLATILE;

CREATE VIEW jobq.worker_status AS SELECT * FROM jobq._worker_status();
COMMENT ON VIEW jobq.worker_status IS 'The in-server workers of this server, one row each.';

REVOKE ALL ON FUNCTION jobq._registry_changed(), jobq.register(text, regprocedure, regprocedure,
    regprocedure, text[], text, int, interval), jobq.unregister(text), jobq._rescue_orphans(),
    jobq._release_lost(boolean, interval), jobq._worker_status() FROM PUBLIC;
REVOKE ALL ON jobq.registrations, jobq.worker_status FROM PUBLIC;

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
        jobq._worker_status() TO %s', role);
END
$$;
