-- jobq.register / unregister: signatures are checked, registrations are configuration.
TRUNCATE jobq.jobs CASCADE;
CREATE FUNCTION t.good(j jobq.jobs) RETURNS jsonb LANGUAGE sql AS $$ SELECT '{}'::jsonb $$;
CREATE FUNCTION t.unit(j jobq.jobs, n int) RETURNS bytea LANGUAGE sql AS $$ SELECT '\x00'::bytea $$;
CREATE FUNCTION t.wrong_arg(n int) RETURNS jsonb LANGUAGE sql AS $$ SELECT '{}'::jsonb $$;
CREATE FUNCTION t.wrong_ret(j jobq.jobs) RETURNS text LANGUAGE sql AS $$ SELECT 'x' $$;
CREATE FUNCTION t.setof(j jobq.jobs) RETURNS SETOF jsonb LANGUAGE sql AS $$ SELECT '{}'::jsonb $$;

-- a queue no test enqueues into, so the running workers stay idle
SELECT jobq.register('reg.whole', 't.good(jobq.jobs)', queue => 'reg-q', max_attempts => 5,
                     timeout => '10 s');
SELECT jobq.register('reg.units', unit_handler => 't.unit(jobq.jobs, int)',
                     finalizer => 't.good(jobq.jobs)', queue => 'reg-q');
SELECT job_type, queue, handler, unit_handler, finalizer, providers, max_attempts, timeout,
       owner = current_user::regrole AS owner_is_caller
  FROM jobq.registrations ORDER BY job_type;

-- re-registering replaces
SELECT jobq.register('reg.whole', 't.good(jobq.jobs)', queue => 'reg-q2');
SELECT queue, max_attempts, timeout FROM jobq.registrations WHERE job_type = 'reg.whole';

-- the registration's max_attempts is the default for new jobs of the type
SELECT jobq.register('reg.whole', 't.good(jobq.jobs)', queue => 'reg-q', max_attempts => 9);
SELECT max_attempts FROM jobq.status(jobq.enqueue('reg.whole', queue => 'not-served'));
SELECT max_attempts FROM jobq.status(jobq.enqueue('reg.whole', queue => 'not-served', max_attempts => 2));
-- a unit-handler type needs units
SELECT t.err($$SELECT jobq.enqueue('reg.units')$$);
SELECT t.err($$SELECT jobq.enqueue_many('reg.units', ARRAY['{}'::jsonb])$$);
SELECT units_total FROM jobq.status(jobq.enqueue('reg.units', queue => 'not-served', units => 3));

-- wrong signatures and bad arguments: clear errors, nothing registered
SELECT t.err($$SELECT jobq.register('bad', 't.wrong_arg(int)')$$);
SELECT t.err($$SELECT jobq.register('bad', 't.wrong_ret(jobq.jobs)')$$);
SELECT t.err($$SELECT jobq.register('bad', 't.setof(jobq.jobs)')$$);
SELECT t.err($$SELECT jobq.register('bad', unit_handler => 't.good(jobq.jobs)')$$);
SELECT t.err($$SELECT jobq.register('bad', 't.good(jobq.jobs)', finalizer => 't.good(jobq.jobs)')$$);
SELECT t.err($$SELECT jobq.register('bad', unit_handler => 't.unit(jobq.jobs, int)', finalizer => 't.wrong_ret(jobq.jobs)')$$);
SELECT t.err($$SELECT jobq.register('bad')$$);
SELECT t.err($$SELECT jobq.register('bad', 't.good(jobq.jobs)', unit_handler => 't.unit(jobq.jobs, int)')$$);
SELECT t.err($$SELECT jobq.register(NULL, 't.good(jobq.jobs)')$$);
SELECT t.err($$SELECT jobq.register('', 't.good(jobq.jobs)')$$);
SELECT t.err($$SELECT jobq.register('bad', 't.good(jobq.jobs)', queue => '')$$);
SELECT t.err($$SELECT jobq.register('bad', 't.good(jobq.jobs)', max_attempts => 0)$$);
SELECT t.err($$SELECT jobq.register('bad', 't.good(jobq.jobs)', timeout => '-1 s')$$);
SELECT t.err($$SELECT jobq.register('bad', 't.good(jobq.jobs)', timeout => '0 s')$$);
SELECT t.err($$SELECT jobq.register('bad', 't.nope(jobq.jobs)')$$);
SELECT t.err($$SELECT jobq.register('bad', providers => ARRAY['p1'])$$);
SELECT t.err($$SELECT jobq.unregister(NULL)$$);
SELECT count(*) FROM jobq.registrations WHERE job_type = 'bad';

-- the handler must be executable by the registering role
CREATE ROLE jobq_reg_admin;
SELECT jobq.grant_admin('jobq_reg_admin');
REVOKE EXECUTE ON FUNCTION t.good(jobq.jobs) FROM PUBLIC;
GRANT USAGE ON SCHEMA t TO jobq_reg_admin;
SET ROLE jobq_reg_admin;
SELECT t.err($$SELECT jobq.register('bad', 't.good(jobq.jobs)')$$);
RESET ROLE;
GRANT EXECUTE ON FUNCTION t.good(jobq.jobs) TO jobq_reg_admin;
-- it runs as the registrant, so the registrant must own it: else whoever owns
-- it could change its body and run code as the registrant
SET ROLE jobq_reg_admin;
SELECT t.err($$SELECT jobq.register('bad', 't.good(jobq.jobs)')$$);
RESET ROLE;
ALTER FUNCTION t.good(jobq.jobs) OWNER TO jobq_reg_admin;
SET ROLE jobq_reg_admin;
SELECT jobq.register('reg.as_admin', 't.good(jobq.jobs)', queue => 'reg-q');
RESET ROLE;
SELECT owner FROM jobq.registrations WHERE job_type = 'reg.as_admin';

-- unregister: true once, then false
SELECT jobq.unregister('reg.whole') AS first, jobq.unregister('reg.whole') AS second;
SELECT jobq.unregister('reg.units'), jobq.unregister('reg.as_admin');
SELECT count(*) FROM jobq.registrations;
DROP OWNED BY jobq_reg_admin;
DROP ROLE jobq_reg_admin;

-- the workers of this server, as the view shows them (they start once the
-- test database exists: give them a few seconds)
DO $$
BEGIN
    FOR i IN 1..200 LOOP
        EXIT WHEN (SELECT count(*) FROM jobq.worker_status) = current_setting('jobq.workers')::int;
        PERFORM pg_sleep(0.05);
    END LOOP;
END
$$;
SELECT count(*) = current_setting('jobq.workers')::int AS all_workers,
       bool_and(state IN ('idle', 'running', 'starting', 'waiting for extension')) AS serving
  FROM jobq.worker_status;
