/*
 * jobq 0.4 -> 0.5: providers (HTTP processing behind one interface, with
 * circuit breakers and fallback), forwarded auth tokens, validation before
 * enqueue, and per-queue pre-warm hooks (SPEC sections 7, 9 and 10).
 */
\echo Use "ALTER EXTENSION jobq UPDATE TO '0.5'" to load this file. \quit

-- Providers.  `headers` may hold credentials: the table is readable by
-- administrators only, and nothing in it reaches a log, an error or NOTIFY.
CREATE TABLE jobq.providers (
    name              text PRIMARY KEY,
    kind              text NOT NULL CHECK (kind IN ('http', 'mock')),
    url               text,
    health_url        text,
    headers           jsonb NOT NULL DEFAULT '{}',
    timeout           interval NOT NULL DEFAULT '30 s',
    failure_threshold int NOT NULL DEFAULT 5 CHECK (failure_threshold > 0),
    open_for          interval NOT NULL DEFAULT '30 s',
    options           jsonb NOT NULL DEFAULT '{}',
    created_at        timestamptz NOT NULL DEFAULT now(),
    updated_at        timestamptz NOT NULL DEFAULT now()
);
SELECT pg_catalog.pg_extension_config_dump('jobq.providers', '');

-- Bearer tokens of jobs enqueued with jobq.auth_token set, apart from
-- jobq.jobs; erased when the job ends.  Not dumped: a restored job falls
-- back to its providers' own headers.
CREATE TABLE jobq.job_tokens (
    job_id uuid PRIMARY KEY REFERENCES jobq.jobs (id) ON DELETE CASCADE,
    token  text NOT NULL
);

-- SET LOCAL jobq.auth_token from a bind parameter: SELECT jobq.set_auth_token($1)
CREATE FUNCTION jobq.set_auth_token(token text) RETURNS void
    AS 'MODULE_PATHNAME', 'jobq_set_auth_token' LANGUAGE C VOLATILE;

CREATE TABLE jobq.validators (
    job_type  text NOT NULL,
    name      text NOT NULL,
    validator regprocedure NOT NULL,
    weight    real NOT NULL CHECK (weight > 0),
    owner     regrole NOT NULL,
    PRIMARY KEY (job_type, name)
);
SELECT pg_catalog.pg_extension_config_dump('jobq.validators', '');

CREATE TABLE jobq.validation_thresholds (
    job_type  text PRIMARY KEY,
    threshold real NOT NULL CHECK (threshold BETWEEN 0 AND 1)
);
SELECT pg_catalog.pg_extension_config_dump('jobq.validation_thresholds', '');

CREATE TRIGGER validators_changed
    AFTER INSERT OR UPDATE OR DELETE OR TRUNCATE ON jobq.validators
    FOR EACH STATEMENT EXECUTE FUNCTION jobq._registry_changed();
CREATE TRIGGER thresholds_changed
    AFTER INSERT OR UPDATE OR DELETE OR TRUNCATE ON jobq.validation_thresholds
    FOR EACH STATEMENT EXECUTE FUNCTION jobq._registry_changed();

-- Called by a worker when its queue goes from empty to non-empty, at most
-- once per min_interval, behind a circuit breaker like a provider.
CREATE TABLE jobq.prewarm_hooks (
    queue             text PRIMARY KEY,
    url               text NOT NULL,
    method            text NOT NULL DEFAULT 'POST',
    headers           jsonb NOT NULL DEFAULT '{}',
    body              text,
    min_interval      interval NOT NULL DEFAULT '1 min',
    timeout           interval NOT NULL DEFAULT '10 s',
    failure_threshold int NOT NULL DEFAULT 5 CHECK (failure_threshold > 0),
    open_for          interval NOT NULL DEFAULT '30 s'
);
SELECT pg_catalog.pg_extension_config_dump('jobq.prewarm_hooks', '');

-- 22023 unless url is an absolute http(s) URL
CREATE FUNCTION jobq._check_url(what text, url text) RETURNS void
    LANGUAGE plpgsql IMMUTABLE SET search_path = pg_catalog, pg_temp
AS $$
BEGIN
    IF url IS NULL OR url !~ '^https?://[^/\s]+(/\S*)?$' THEN
        RAISE EXCEPTION '% "%" is not an http(s) URL', what, url USING ERRCODE = '22023';
    END IF;
END
$$;

-- 22023 unless h is a JSON object of string values
CREATE FUNCTION jobq._check_headers(h jsonb) RETURNS void
    LANGUAGE plpgsql IMMUTABLE SET search_path = pg_catalog, pg_temp
AS $$
BEGIN
    IF jsonb_typeof(h) <> 'object'
       OR EXISTS (SELECT 1 FROM jsonb_each(h) e WHERE jsonb_typeof(e.value) <> 'string'
                                                   OR e.key !~ '^[A-Za-z0-9!#$%&''*+.^_`|~-]+$'
                                                   OR e.value #>> '{}' ~ '[\r\n]') THEN
        RAISE EXCEPTION 'headers must be a JSON object of header names to string values'
              USING ERRCODE = '22023';
    END IF;
END
$$;

-- 22023 unless iv is a positive (or, with zero_ok, non-negative) interval
CREATE FUNCTION jobq._check_interval(what text, iv interval, zero_ok boolean) RETURNS void
    LANGUAGE plpgsql IMMUTABLE SET search_path = pg_catalog, pg_temp
AS $$
BEGIN
    IF iv IS NULL OR iv < interval '0' OR (NOT zero_ok AND iv = interval '0') THEN
        RAISE EXCEPTION '% must be a positive interval, not %', what, coalesce(iv::text, 'NULL')
              USING ERRCODE = '22023';
    END IF;
END
$$;

CREATE FUNCTION jobq.create_provider(name text, url text DEFAULT NULL, kind text DEFAULT 'http',
                                     health_url text DEFAULT NULL, headers jsonb DEFAULT '{}',
                                     timeout interval DEFAULT '30 s', failure_threshold int DEFAULT 5,
                                     open_for interval DEFAULT '30 s', options jsonb DEFAULT '{}')
    RETURNS void
    LANGUAGE plpgsql VOLATILE SECURITY DEFINER SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    unknown text;
BEGIN
    IF name IS NULL OR name = '' OR octet_length(name) > 200 THEN
        RAISE EXCEPTION 'provider name "%" must be 1 to 200 bytes', coalesce(name, 'NULL') USING ERRCODE = '22023';
    END IF;
    kind := coalesce(kind, 'http');
    IF kind NOT IN ('http', 'mock') THEN
        RAISE EXCEPTION 'provider kind "%" is not http or mock', kind USING ERRCODE = '22023';
    END IF;
    IF kind = 'http' THEN
        PERFORM jobq._check_url('url', url);
    ELSIF url IS NOT NULL THEN
        PERFORM jobq._check_url('url', url);
    END IF;
    IF health_url IS NOT NULL THEN
        PERFORM jobq._check_url('health_url', health_url);
    END IF;
    headers := coalesce(headers, '{}');
    PERFORM jobq._check_headers(headers);
    timeout := coalesce(timeout, '30 s');
    PERFORM jobq._check_interval('timeout', timeout, false);
    open_for := coalesce(open_for, '30 s');
    PERFORM jobq._check_interval('open_for', open_for, true);
    failure_threshold := coalesce(failure_threshold, 5);
    IF failure_threshold <= 0 THEN
        RAISE EXCEPTION 'failure_threshold must be positive, not %', failure_threshold USING ERRCODE = '22023';
    END IF;
    options := coalesce(options, '{}');
    IF jsonb_typeof(options) <> 'object' THEN
        RAISE EXCEPTION 'options must be a JSON object' USING ERRCODE = '22023';
    END IF;
    SELECT string_agg(k, ', ') INTO unknown FROM jsonb_object_keys(options) k
     WHERE kind = 'http'
        OR k NOT IN ('failure_rate', 'latency_ms', 'fail_status', 'output', 'healthy');
    IF unknown IS NOT NULL THEN
        RAISE EXCEPTION 'unknown option(s) for a % provider: %', kind, unknown USING ERRCODE = '22023',
              HINT = 'A mock provider takes failure_rate, latency_ms, fail_status, output and healthy; an http provider takes none.';
    END IF;
    -- compared as numeric: a float8 cast would overflow on 1e400
    IF (options ? 'failure_rate' AND (jsonb_typeof(options->'failure_rate') <> 'number'
                                      OR (options->>'failure_rate')::numeric NOT BETWEEN 0 AND 1))
       OR (options ? 'latency_ms' AND (jsonb_typeof(options->'latency_ms') <> 'number'
                                       OR (options->>'latency_ms')::numeric NOT BETWEEN 0 AND 86400000))
       OR (options ? 'fail_status' AND (jsonb_typeof(options->'fail_status') <> 'number'
                                        OR (options->>'fail_status')::numeric NOT BETWEEN 400 AND 599))
       OR (options ? 'healthy' AND jsonb_typeof(options->'healthy') <> 'boolean') THEN
        RAISE EXCEPTION 'bad mock options %', options USING ERRCODE = '22023',
              HINT = 'failure_rate in [0, 1], latency_ms >= 0, fail_status 400..599, healthy a boolean.';
    END IF;
    INSERT INTO jobq.providers AS p (name, kind, url, health_url, headers, timeout,
                                     failure_threshold, open_for, options)
    VALUES (create_provider.name, kind, url, health_url, headers, timeout,
            failure_threshold, open_for, options)
    ON CONFLICT ON CONSTRAINT providers_pkey DO UPDATE
       SET kind = excluded.kind, url = excluded.url, health_url = excluded.health_url,
           headers = excluded.headers, timeout = excluded.timeout,
           failure_threshold = excluded.failure_threshold, open_for = excluded.open_for,
           options = excluded.options, updated_at = now();
END
$$;

CREATE FUNCTION jobq.drop_provider(name text) RETURNS boolean
    LANGUAGE plpgsql VOLATILE SECURITY DEFINER SET search_path = pg_catalog, pg_temp
AS $$
BEGIN
    IF name IS NULL OR name = '' THEN
        RAISE EXCEPTION 'provider name must not be NULL or empty' USING ERRCODE = '22023';
    END IF;
    DELETE FROM jobq.providers p WHERE p.name = drop_provider.name;
    RETURN FOUND;
END
$$;

CREATE FUNCTION jobq.provider_health(name text) RETURNS jsonb
    AS 'MODULE_PATHNAME', 'jobq_provider_health' LANGUAGE C VOLATILE
    SECURITY DEFINER SET search_path = pg_catalog, pg_temp;

CREATE FUNCTION jobq.add_validator(job_type text, validator regprocedure, weight real DEFAULT 1,
                                   name text DEFAULT NULL) RETURNS void
    AS 'MODULE_PATHNAME', 'jobq_add_validator' LANGUAGE C VOLATILE
    SECURITY DEFINER SET search_path = pg_catalog, pg_temp;

CREATE FUNCTION jobq.set_validation_threshold(job_type text, threshold real) RETURNS void
    LANGUAGE plpgsql VOLATILE SECURITY DEFINER SET search_path = pg_catalog, pg_temp
AS $$
BEGIN
    IF job_type IS NULL OR job_type = '' THEN
        RAISE EXCEPTION 'job_type must not be NULL or empty' USING ERRCODE = '22023';
    END IF;
    IF threshold IS NULL OR threshold < 0 OR threshold > 1 OR threshold = 'NaN' THEN
        RAISE EXCEPTION 'threshold must be in [0, 1], not %', coalesce(threshold::text, 'NULL')
              USING ERRCODE = '22023';
    END IF;
    INSERT INTO jobq.validation_thresholds AS t (job_type, threshold)
    VALUES (set_validation_threshold.job_type, set_validation_threshold.threshold)
    ON CONFLICT ON CONSTRAINT validation_thresholds_pkey
       DO UPDATE SET threshold = excluded.threshold;
END
$$;

CREATE FUNCTION jobq.validate(job_type text, payload jsonb) RETURNS jsonb
    AS 'MODULE_PATHNAME', 'jobq_validate' LANGUAGE C VOLATILE
    SECURITY DEFINER SET search_path = pg_catalog, pg_temp;

CREATE FUNCTION jobq.set_prewarm_hook(queue text, url text, method text DEFAULT 'POST',
                                      headers jsonb DEFAULT '{}', body text DEFAULT NULL,
                                      min_interval interval DEFAULT '1 min',
                                      timeout interval DEFAULT '10 s') RETURNS void
    LANGUAGE plpgsql VOLATILE SECURITY DEFINER SET search_path = pg_catalog, pg_temp
AS $$
BEGIN
    IF queue IS NULL OR queue = '' OR octet_length(queue) > 200 THEN
        RAISE EXCEPTION 'queue "%" must be 1 to 200 bytes', coalesce(queue, 'NULL') USING ERRCODE = '22023';
    END IF;
    PERFORM jobq._check_url('url', url);
    method := upper(coalesce(method, 'POST'));
    IF method NOT IN ('GET', 'POST', 'PUT', 'PATCH', 'DELETE') THEN
        RAISE EXCEPTION 'method "%" is not GET, POST, PUT, PATCH or DELETE', method USING ERRCODE = '22023';
    END IF;
    headers := coalesce(headers, '{}');
    PERFORM jobq._check_headers(headers);
    min_interval := coalesce(min_interval, '1 min');
    PERFORM jobq._check_interval('min_interval', min_interval, true);
    timeout := coalesce(timeout, '10 s');
    PERFORM jobq._check_interval('timeout', timeout, false);
    INSERT INTO jobq.prewarm_hooks AS h (queue, url, method, headers, body, min_interval, timeout)
    VALUES (set_prewarm_hook.queue, url, method, headers, body, min_interval, timeout)
    ON CONFLICT ON CONSTRAINT prewarm_hooks_pkey DO UPDATE
       SET url = excluded.url, method = excluded.method, headers = excluded.headers,
           body = excluded.body, min_interval = excluded.min_interval, timeout = excluded.timeout;
END
$$;

CREATE FUNCTION jobq.drop_prewarm_hook(queue text) RETURNS boolean
    LANGUAGE plpgsql VOLATILE SECURITY DEFINER SET search_path = pg_catalog, pg_temp
AS $$
BEGIN
    DELETE FROM jobq.prewarm_hooks h WHERE h.queue = drop_prewarm_hook.queue;
    RETURN FOUND;
END
$$;

-- Lost jobs that end Failed lose their forwarded token too.
CREATE OR REPLACE FUNCTION jobq._release_lost(include_external boolean, stale_after interval)
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
        RETURNING j),
    tokens AS (
        DELETE FROM jobq.job_tokens t USING released r
         WHERE t.job_id = (r.j).id AND (r.j).status = 3)
    SELECT (count(*) FILTER (WHERE jobq._notify(r.j)))::int FROM released r
$$;

REVOKE ALL ON FUNCTION jobq._check_url(text, text), jobq._check_headers(jsonb),
    jobq._check_interval(text, interval, boolean),
    jobq.create_provider(text, text, text, text, jsonb, interval, int, interval, jsonb),
    jobq.drop_provider(text), jobq.provider_health(text),
    jobq.add_validator(text, regprocedure, real, text), jobq.set_validation_threshold(text, real),
    jobq.validate(text, jsonb), jobq.set_auth_token(text),
    jobq.set_prewarm_hook(text, text, text, jsonb, text, interval, interval),
    jobq.drop_prewarm_hook(text) FROM PUBLIC;
REVOKE ALL ON jobq.providers, jobq.job_tokens, jobq.validators, jobq.validation_thresholds,
    jobq.prewarm_hooks FROM PUBLIC;

CREATE OR REPLACE FUNCTION jobq.grant_client(role regrole) RETURNS void
    LANGUAGE plpgsql SET search_path = pg_catalog, pg_temp
AS $$
BEGIN
    PERFORM jobq._check_role(role);
    EXECUTE format('GRANT USAGE ON SCHEMA jobq TO %s', role);
    EXECUTE format('GRANT SELECT ON jobq.jobs TO %s', role);
    EXECUTE format('GRANT EXECUTE ON FUNCTION jobq.enqueue(text, jsonb, uuid, text, int, timestamptz, int, int, text, text),
        jobq.enqueue_many(text, jsonb[], uuid, text, int), jobq.cancel(uuid), jobq.retry(uuid),
        jobq.status(uuid), jobq.depth(text), jobq.validate(text, jsonb),
        jobq.set_auth_token(text) TO %s', role);
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
    -- forwarded user tokens are for providers only, not for anybody to read
    EXECUTE format('REVOKE ALL ON jobq.job_tokens FROM %s', role);
    EXECUTE format('GRANT EXECUTE ON FUNCTION jobq.register(text, regprocedure, regprocedure,
        regprocedure, text[], text, int, interval), jobq.unregister(text),
        jobq._worker_status(), jobq.sweep(interval), jobq.purge(interval, text),
        jobq.metrics(), jobq.create_provider(text, text, text, text, jsonb, interval, int, interval, jsonb),
        jobq.drop_provider(text), jobq.provider_health(text),
        jobq.add_validator(text, regprocedure, real, text), jobq.set_validation_threshold(text, real),
        jobq.set_prewarm_hook(text, text, text, jsonb, text, interval, interval),
        jobq.drop_prewarm_hook(text) TO %s', role);
END
$$;
