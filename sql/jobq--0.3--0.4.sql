/*
 * jobq 0.3 -> 0.4: observability.  jobq.metrics() (Prometheus text) and the
 * jobq.queue_stats view (SPEC section 12).  Progress notifications (section
 * 11) need no new objects.
 */
\echo Use "ALTER EXTENSION jobq UPDATE TO '0.4'" to load this file. \quit

CREATE FUNCTION jobq.metrics() RETURNS text
    AS 'MODULE_PATHNAME', 'jobq_metrics' LANGUAGE C VOLATILE
    SECURITY DEFINER SET search_path = pg_catalog, pg_temp;
COMMENT ON FUNCTION jobq.metrics() IS 'Prometheus text exposition of the queue, workers and stores.';

-- Exact counts per queue and job type.  Reads the whole table: for
-- dashboards and people; scrapers should use jobq.metrics().
CREATE VIEW jobq.queue_stats AS
SELECT queue, job_type,
       count(*) FILTER (WHERE status = 0) AS queued,
       count(*) FILTER (WHERE status = 1) AS processing,
       count(*) FILTER (WHERE status = 2) AS completed,
       count(*) FILTER (WHERE status = 3) AS failed,
       count(*) FILTER (WHERE status = 4) AS cancelled,
       now() - min(run_at) FILTER (WHERE status = 0 AND run_at <= now()) AS oldest_queued_age
  FROM jobq.jobs
 GROUP BY queue, job_type;

REVOKE ALL ON FUNCTION jobq.metrics() FROM PUBLIC;
REVOKE ALL ON jobq.queue_stats FROM PUBLIC;

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
        jobq._worker_status(), jobq.sweep(interval), jobq.purge(interval, text),
        jobq.metrics() TO %s', role);
END
$$;
