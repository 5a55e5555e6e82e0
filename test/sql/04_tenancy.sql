-- A session with a tenant acts only for its own user (SPEC sections 9, 14).
TRUNCATE jobq.jobs CASCADE;
SELECT jobq.current_user_id() IS NULL AS no_tenant;
SELECT jobq.enqueue('t', user_id => 'aaaaaaaa-0000-0000-0000-000000000001') AS a \gset
SELECT jobq.enqueue('t', user_id => 'bbbbbbbb-0000-0000-0000-000000000002') AS b \gset

SET jobq.user_id = 'aaaaaaaa-0000-0000-0000-000000000001';
SELECT jobq.current_user_id();
-- enqueue without user_id takes the tenant; another user's id is refused
SELECT user_id FROM jobq.status(jobq.enqueue('t'));
SELECT t.err($$SELECT jobq.enqueue('t', user_id => 'bbbbbbbb-0000-0000-0000-000000000002')$$);
-- another tenant's job answers exactly like a missing one
SELECT t.err(format('SELECT jobq.status(%L)', :'b'));
SELECT t.err(format('SELECT jobq.cancel(%L)', :'b'));
SELECT t.err(format('SELECT jobq.retry(%L)', :'b'));
SELECT t.err(format('SELECT jobq.heartbeat(%L)', :'b'));
SELECT t.err(format('SELECT jobq.complete(%L)', :'b'));
SELECT t.err(format('SELECT jobq.fail(%L, %L)', :'b', 'x'));
SELECT t.err(format('SELECT jobq.progress(%L, 5)', :'b'));
SELECT (jobq.status(:'a')).id = :'a' AS own_visible;
SELECT jobq.cancel(:'a') AS cancelled_own;
RESET jobq.user_id;
SELECT status FROM jobq.jobs WHERE id = :'b';

-- the tenant from PostgREST's request.jwt.claims
SET request.jwt.claims = '{"sub": "bbbbbbbb-0000-0000-0000-000000000002", "role": "web"}';
SELECT jobq.current_user_id();
SELECT jobq.cancel(:'b') AS cancelled_own;
SELECT t.err(format('SELECT jobq.cancel(%L)', :'a'));
SET request.jwt.claims = '{"sub": "not-a-uuid"}';
SELECT t.err($$SELECT jobq.current_user_id()$$);
SET request.jwt.claims = '{not json';
SELECT t.err($$SELECT jobq.current_user_id()$$);
SET request.jwt.claims = '[1, 2]';
SELECT jobq.current_user_id() IS NULL AS no_sub_no_tenant;
SET jobq.user_id = 'nope';
SELECT t.err($$SELECT jobq.current_user_id()$$);
SELECT t.err($$SELECT jobq.enqueue('t')$$);
RESET jobq.user_id;
RESET request.jwt.claims;
SELECT jobq.current_user_id() IS NULL AS no_tenant;
