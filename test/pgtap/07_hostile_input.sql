-- Hostile input that once went wrong (issue 7: SPEC sections 6, 8 and 14).
-- Each check states the correct behaviour; test/fuzz/ finds such cases
-- among thousands of generated calls, and the ones it found are kept here
-- as plain, deterministic regressions:
--   * complete_many pairs results[i] with job_ids[i] whatever the arrays'
--     lower bounds (or refuses such arrays with 22023)
--   * a timeout of '1 mon -31 days' is negative: 22023, as for every
--     other interval argument
--   * an interval so large that now() - it is out of range is an
--     out-of-range argument (22023) or simply matches nothing, never a
--     datetime overflow (22008) out of purge() / sweep()
--   * a mock provider option that is not a finite number in range is 22023,
--     not "value out of range" (22003)
--   * a checkpoint that was recorded survives a later checkpoint of the same
--     unit that is rolled back (the blob is overwritten in place, so the
--     recorded sha256 no longer matches and the unit is lost: XX001)
--   * grant_client/grant_worker/grant_admin of a regrole that is no role
--     (a numeric OID such as 0 or 1) is 22023 or 42704, not a syntax error
--     (42601) from the GRANT it builds
--   * request.jwt.claims that are JSON text but not representable as jsonb
--     (a \u0000 escape, a lone surrogate, a number out of numeric's range)
--     give the tenant of their sub or 22023, never 22P05 / 22P02 / 22003
--     from jsonb's input function
--   * no name a caller passes (job type, queue, worker) reaches a blob key
BEGIN;
SELECT plan(27);
\ir _helpers.psql

-- 'ok' when sql runs without error, else its SQLSTATE; always rolled back
CREATE FUNCTION jt.try(sql text) RETURNS text LANGUAGE plpgsql AS $$
BEGIN
    BEGIN
        EXECUTE sql;
        RAISE EXCEPTION 'jt.try: roll back' USING ERRCODE = 'JQ0OK';
    EXCEPTION WHEN OTHERS THEN
        RETURN CASE SQLSTATE WHEN 'JQ0OK' THEN 'ok' ELSE SQLSTATE END;
    END;
END
$$;

-- the first column of sql's first row as text, or 'ERROR <SQLSTATE>'
CREATE FUNCTION jt.val(sql text) RETURNS text LANGUAGE plpgsql AS $$
DECLARE
    v text;
BEGIN
    EXECUTE sql INTO v;
    RETURN coalesce(v, '(null)');
EXCEPTION WHEN OTHERS THEN
    RETURN 'ERROR ' || SQLSTATE;
END
$$;

-- ok() when have is one of wants, with a diagnostic saying what it was
CREATE FUNCTION jt.one_of(have text, wants text[], description text) RETURNS text LANGUAGE sql AS $$
    SELECT ok(coalesce(have = ANY (wants), false), description)
        || CASE WHEN coalesce(have = ANY (wants), false) THEN ''
                ELSE E'\n' || diag(format('    have: %s%s    want one of: %s', have, E'\n', array_to_string(wants, ', ')))
           END
$$;

CREATE FUNCTION jt.h(j jobq.jobs) RETURNS jsonb LANGUAGE sql AS $$ SELECT '{}'::jsonb $$;

---------------------------------------------------------------------------
-- complete_many and array lower bounds
---------------------------------------------------------------------------

-- complete_many(ids, results) with the given array literals, as worker w1, on
-- the Processing jobs named a and b; 'paired' when each job got its own
-- result, else what happened
CREATE FUNCTION jt.complete_pair(ids text, results text) RETURNS text LANGUAGE plpgsql AS $$
DECLARE
    a uuid := jt.id('a');
    b uuid := jt.id('b');
    outcome text;
BEGIN
    BEGIN
        PERFORM jobq.complete_many(format(ids, a, b)::uuid[], results::jsonb[], 'w1');
        SELECT CASE WHEN (SELECT result FROM jobq.jobs WHERE id = a) IS NOT DISTINCT FROM '{"r": "a"}'
                     AND (SELECT result FROM jobq.jobs WHERE id = b) IS NOT DISTINCT FROM '{"r": "b"}'
                    THEN 'paired'
                    ELSE format('a got %s, b got %s',
                                coalesce((SELECT result::text FROM jobq.jobs WHERE id = a), 'NULL'),
                                coalesce((SELECT result::text FROM jobq.jobs WHERE id = b), 'NULL')) END
          INTO outcome;
        RAISE EXCEPTION 'jt.complete_pair: roll back' USING ERRCODE = 'JQ0OK';
    EXCEPTION WHEN OTHERS THEN
        RETURN CASE SQLSTATE WHEN 'JQ0OK' THEN outcome ELSE SQLSTATE END;
    END;
END
$$;

DO $$ BEGIN
    PERFORM jt.make('a', 1, queue => 'q-ab');
    PERFORM jt.make('b', 1, queue => 'q-ab');
END $$;

SELECT is(jt.complete_pair('{%s,%s}', '{"{\"r\": \"a\"}","{\"r\": \"b\"}"}'), 'paired',
          'complete_many pairs results with job ids (both arrays from 1: the baseline)');
SELECT jt.one_of(jt.complete_pair('[5:6]={%s,%s}', '{"{\"r\": \"a\"}","{\"r\": \"b\"}"}'), ARRAY['paired', '22023'],
          'complete_many with job_ids indexed from 5 pairs results[i] with job_ids[i] (or is 22023)');
SELECT jt.one_of(jt.complete_pair('{%s,%s}', '[0:1]={"{\"r\": \"a\"}","{\"r\": \"b\"}"}'), ARRAY['paired', '22023'],
          'complete_many with results indexed from 0 pairs results[i] with job_ids[i] (or is 22023)');
SELECT jt.one_of(jt.complete_pair('[-3:-2]={%s,%s}', '[7:8]={"{\"r\": \"a\"}","{\"r\": \"b\"}"}'), ARRAY['paired', '22023'],
          'complete_many with both arrays at other lower bounds pairs them by position (or is 22023)');

---------------------------------------------------------------------------
-- intervals: negative however written, huge without overflow
---------------------------------------------------------------------------

SELECT is(jt.try($$SELECT jobq.register('neg-t', 'jt.h(jobq.jobs)', timeout => '1 mon -31 days')$$), '22023',
          'register with timeout ''1 mon -31 days'' (negative) is 22023');
SELECT is(jt.try($$SELECT jobq.register('neg-t', 'jt.h(jobq.jobs)', timeout => '-1 day 10 seconds')$$), '22023',
          'register with timeout ''-1 day 10 seconds'' (negative) is 22023');
SELECT is(jt.try($$SELECT jobq.register('neg-t', 'jt.h(jobq.jobs)', timeout => '1 day -10 seconds')$$), 'ok',
          'register with timeout ''1 day -10 seconds'' (positive) is accepted');

DO $$ BEGIN
    PERFORM jt.make('ext', 1, queue => 'q-ext');          -- an external worker's job
    PERFORM jt.make('done', 2, queue => 'q-done');
END $$;
SELECT jt.one_of(jt.try($$SELECT jobq.purge('178000000 years')$$), ARRAY['ok', '22023'],
          'purge(''178000000 years'') deletes nothing or is 22023, never a datetime overflow');
SELECT jt.one_of(jt.try($$SELECT jobq.sweep('178000000 years')$$), ARRAY['ok', '22023'],
          'sweep(''178000000 years'') with an external Processing job rescues nothing or is 22023, never a datetime overflow');
SELECT is(jt.val($$SELECT jobq.purge('1000 years')$$), '0', 'purge(''1000 years'') deletes nothing');
SELECT is(ARRAY[jt.status('ext'), jt.status('done')], ARRAY[1, 2], 'and the jobs are still there');

---------------------------------------------------------------------------
-- mock provider options
---------------------------------------------------------------------------

SELECT is(jt.try($$SELECT jobq.create_provider('m', kind => 'mock', options => '{"failure_rate": 1e400}')$$), '22023',
          'a mock provider''s failure_rate of 1e400 is 22023 (not 22003)');
SELECT is(jt.try($$SELECT jobq.create_provider('m', kind => 'mock', options => '{"latency_ms": -1e400}')$$), '22023',
          'a mock provider''s latency_ms of -1e400 is 22023 (not 22003)');
SELECT is(jt.try($$SELECT jobq.create_provider('m', kind => 'mock', options => '{"fail_status": 1e400}')$$), '22023',
          'a mock provider''s fail_status of 1e400 is 22023 (not 22003)');

---------------------------------------------------------------------------
-- checkpoints: a rolled-back checkpoint does not destroy a recorded one
---------------------------------------------------------------------------

DO $$
DECLARE
    jid uuid := jobq.enqueue('ck', units => 2, queue => 'q-ck');
BEGIN
    INSERT INTO jt.ids VALUES ('ck', jid);
    PERFORM FROM jobq.claim('q-ck', 'w1');
    PERFORM jobq.checkpoint(jid, 1, '\x0102');
END $$;
SELECT jt.one_of(jt.try($$SELECT jobq.checkpoint(jt.id('ck'), 1, '\x0303')$$), ARRAY['ok', '55000'],
          'a second checkpoint of unit 1 (rolled back) either works or is 55000');
SELECT is(jt.val($$SELECT jobq.checkpoint_data(jt.id('ck'), 1)::text$$), '\x0102',
          'the recorded checkpoint of unit 1 is intact after the rolled-back one (not XX001)');
SELECT is(jt.val($$SELECT count(*) FROM jobq.checkpoints(jt.id('ck'))$$), '1',
          'and it still counts');

---------------------------------------------------------------------------
-- the grant functions and roles that do not exist
---------------------------------------------------------------------------

SELECT jt.one_of(jt.try($$SELECT jobq.grant_client(0::oid::regrole)$$), ARRAY['22023', '42704'],
                 'grant_client(0::regrole) is 22023 or 42704 (not 42601 from "GRANT ... TO -")');
SELECT jt.one_of(jt.try($$SELECT jobq.grant_worker(1::oid::regrole)$$), ARRAY['22023', '42704'],
                 'grant_worker(1::regrole) is 22023 or 42704 (not 42601 from "GRANT ... TO 1")');
SELECT jt.one_of(jt.try($$SELECT jobq.grant_admin(4294967295::oid::regrole)$$), ARRAY['22023', '42704'],
                 'grant_admin of a dropped role''s OID is 22023 or 42704');

---------------------------------------------------------------------------
-- JWT claims jsonb cannot hold
---------------------------------------------------------------------------

-- current_user_id() with the given claims and no jobq.user_id (the
-- settings are rolled back afterwards)
CREATE FUNCTION jt.claims_tenant(claims text) RETURNS text LANGUAGE plpgsql AS $$
DECLARE
    tenant text;
BEGIN
    BEGIN
        PERFORM set_config('jobq.user_id', '', true);
        PERFORM set_config('request.jwt.claims', claims, true);
        tenant := coalesce(jobq.current_user_id()::text, '(null)');
        RAISE EXCEPTION 'jt.claims_tenant: roll back' USING ERRCODE = 'JQ0OK';
    EXCEPTION WHEN OTHERS THEN
        RETURN CASE SQLSTATE WHEN 'JQ0OK' THEN tenant ELSE SQLSTATE END;
    END;
END
$$;

SELECT is(jt.claims_tenant('{"sub": "aaaaaaaa-0000-4000-8000-000000000001"}'), 'aaaaaaaa-0000-4000-8000-000000000001',
          'claims with a uuid sub: that tenant (the baseline)');
SELECT jt.one_of(jt.claims_tenant('{"sub": "aaaaaaaa-0000-4000-8000-000000000001", "name": "a\u0000b"}'),
                 ARRAY['aaaaaaaa-0000-4000-8000-000000000001', '22023'],
                 'claims holding a \u0000 escape give their sub''s tenant or 22023 (not 22P05)');
SELECT is(jt.claims_tenant('{"sub": "\ud800"}'), '22023',
          'claims whose sub is a lone surrogate escape are 22023 (not 22P02)');
SELECT jt.one_of(jt.claims_tenant('{"sub": "aaaaaaaa-0000-4000-8000-000000000001", "n": 1e1000000}'),
                 ARRAY['aaaaaaaa-0000-4000-8000-000000000001', '22023'],
                 'claims holding a number beyond numeric''s range give their sub''s tenant or 22023 (not 22003)');
SELECT is(jt.claims_tenant('{"sub": '), '22023', 'claims that are not JSON are 22023');

---------------------------------------------------------------------------
-- blob keys come from uuids and integers only (SPEC 9)
---------------------------------------------------------------------------

DO $$
DECLARE
    jid uuid := jobq.enqueue('../../../FUZZMARK/etc/passwd', units => 1, queue => '..\..\FUZZMARK',
                             dedupe_key => '%2e%2e%2fFUZZMARK');
BEGIN
    INSERT INTO jt.ids VALUES ('traversal', jid);
    PERFORM FROM jobq.claim('..\..\FUZZMARK', 'file:///FUZZMARK/../..');
END $$;
SELECT ok(jt.val($$SELECT jobq.checkpoint(jt.id('traversal'), 1, '\x00')$$)
            ~ ('^file:///.+/jobq_checkpoints/00000000-0000-0000-0000-000000000000/jobs/'
               || jt.id('traversal') || '/units/unit_1\.output$'),
          'a job whose type, queue, dedupe key and worker are path-traversal strings gets the plain key');
SELECT is(jt.val($$SELECT jobq.checkpoint_data(jt.id('traversal'), 1)::text$$), '\x00',
          'and reads back its own blob');

SELECT * FROM finish();
ROLLBACK;
