
# In-server workers run registered handlers by themselves (SPEC 5, 12, 14):
# job id / trace id settings, retries with backoff, ValidationError, the
# handler's writes committing with its job, worker_status, unregistered types
# left to external workers, and queues other than 'default'.
use strict;
use warnings;

use PostgreSQL::Test::Cluster;
use PostgreSQL::Test::Utils;
use Test::More;
use JobqTest;

my $node = jobq_node('worker_runs', conf => "jobq.retry_delay = '1s'");

$node->safe_psql(
	'postgres', q{
CREATE TABLE seen (job_id uuid, trace_id text, guc_job_id text, guc_trace_id text,
                   attempt int, at timestamptz DEFAULT clock_timestamp());
CREATE SEQUENCE fail_calls;
CREATE SEQUENCE invalid_calls;

CREATE FUNCTION h_ok(j jobq.jobs) RETURNS jsonb LANGUAGE plpgsql AS $$
BEGIN
  INSERT INTO seen (job_id, trace_id, guc_job_id, guc_trace_id, attempt)
  VALUES (j.id, j.trace_id, current_setting('jobq.job_id'),
          current_setting('jobq.trace_id'), j.attempts);
  RETURN jsonb_build_object('echo', j.payload, 'by', current_user);
END $$;

-- writes, then fails: the write must not survive
CREATE FUNCTION h_fail(j jobq.jobs) RETURNS jsonb LANGUAGE plpgsql AS $$
BEGIN
  PERFORM nextval('fail_calls');
  INSERT INTO seen (job_id, trace_id, attempt) VALUES (j.id, j.trace_id, j.attempts);
  RAISE EXCEPTION 'boom on attempt %', j.attempts;
END $$;

CREATE FUNCTION h_invalid(j jobq.jobs) RETURNS jsonb LANGUAGE plpgsql AS $$
BEGIN
  PERFORM nextval('invalid_calls');
  INSERT INTO seen (job_id, trace_id, attempt) VALUES (j.id, j.trace_id, j.attempts);
  RAISE EXCEPTION 'payload field x is out of range' USING ERRCODE = '22023';
END $$;

-- writes, then takes a while: the write is visible only with the completion
CREATE FUNCTION h_slow(j jobq.jobs) RETURNS jsonb LANGUAGE plpgsql AS $$
BEGIN
  INSERT INTO seen (job_id, trace_id, attempt) VALUES (j.id, j.trace_id, j.attempts);
  PERFORM pg_sleep(2);
  RETURN '{"slow": true}';
END $$;

SELECT jobq.register('ok', handler => 'h_ok(jobq.jobs)'::regprocedure);
SELECT jobq.register('fails', handler => 'h_fail(jobq.jobs)'::regprocedure, max_attempts => 3);
SELECT jobq.register('invalid', handler => 'h_invalid(jobq.jobs)'::regprocedure, max_attempts => 5);
SELECT jobq.register('slow', handler => 'h_slow(jobq.jobs)'::regprocedure);
SELECT jobq.register('elsewhere', handler => 'h_ok(jobq.jobs)'::regprocedure, queue => 'other');
});

# ---- worker_status: two workers, matching pg_stat_activity ----
ok( poll_within(
		$node,
		"SELECT count(*) = 2 AND bool_and(state IN ('idle', 'running')) FROM jobq.worker_status",
		't', 60),
	'worker_status shows 2 workers, idle or running');
is( worker_pids($node),
	activity_worker_pids($node),
	'worker_status pids are the "jobq worker" backends of pg_stat_activity');
is( $node->safe_psql(
		'postgres',
		"SELECT count(DISTINCT pid) = 2 AND bool_and(pid > 0) AND bool_and(started_at <= now()) FROM jobq.worker_status"
	),
	't',
	'two distinct pids with start times');

my $done_before = $node->safe_psql('postgres',
	"SELECT sum(jobs_done) FROM jobq.worker_status");

# ---- an unregistered job type, enqueued first, stays Queued ----
my $ext = $node->safe_psql('postgres',
	"SELECT jobq.enqueue('external_only', '{\"x\": 1}')");

# ---- a registered handler's jobs run by themselves ----
my $trace = '0af7651916cd43dd8448eb211c80319c';
my $id = $node->safe_psql('postgres',
	"SELECT jobq.enqueue('ok', '{\"n\": 1}', trace_id => '$trace')");
ok(poll_within($node, "SELECT status FROM jobq.jobs WHERE id = '$id'", '2'),
	'a registered job completes without any external worker');
is( $node->safe_psql(
		'postgres',
		"SELECT result->'echo'->>'n', result->>'by' = current_user, attempts, locked_by IS NULL, completed_at IS NOT NULL FROM jobq.jobs WHERE id = '$id'"
	),
	'1|t|1|t|t',
	'the handler result is the job result; one attempt; ran as the registering role');
is( $node->safe_psql(
		'postgres',
		"SELECT guc_job_id = job_id::text, guc_trace_id = trace_id, trace_id FROM seen WHERE job_id = '$id'"
	),
	"t|t|$trace",
	'the handler sees jobq.job_id and jobq.trace_id of its job');

# several at once
$node->safe_psql('postgres',
	"SELECT jobq.enqueue('ok', jsonb_build_object('n', g)) FROM generate_series(2, 9) g"
);
ok( poll_within(
		$node,
		"SELECT count(*) FROM jobq.jobs WHERE job_type = 'ok' AND status = 2",
		'9'),
	'a batch of 8 more jobs completes');
is( $node->safe_psql(
		'postgres',
		"SELECT count(*) FROM seen s JOIN jobq.jobs j ON j.id = s.job_id WHERE j.job_type = 'ok' AND s.guc_job_id = j.id::text AND s.guc_trace_id = j.trace_id"
	),
	'9',
	'each handler call saw its own job id and trace id');
ok( poll_within(
		$node,
		"SELECT sum(jobs_done) >= $done_before + 9 FROM jobq.worker_status",
		't', 60),
	'worker_status jobs_done grew by the completed jobs');

# ---- the unregistered type was left for external workers ----
is( $node->safe_psql(
		'postgres',
		"SELECT status, attempts, locked_by IS NULL FROM jobq.jobs WHERE id = '$ext'"
	),
	'0|0|t',
	'an unregistered job type is left Queued for external workers');
is( $node->safe_psql(
		'postgres',
		"SELECT id FROM jobq.claim('default', 'external-1', 10, ARRAY['external_only'])"
	),
	$ext,
	'an external worker can claim it');
$node->safe_psql('postgres',
	"SELECT jobq.complete('$ext', '{\"by\": \"external\"}', 'external-1')");
is($node->safe_psql('postgres', "SELECT status FROM jobq.jobs WHERE id = '$ext'"),
	'2', 'and complete it');

# ---- a type registered in queue 'other' ----
my $other = $node->safe_psql('postgres',
	"SELECT jobq.enqueue('elsewhere', '{\"n\": 42}', queue => 'other')");
ok(poll_within($node, "SELECT status FROM jobq.jobs WHERE id = '$other'", '2'),
	"a job type registered in queue 'other' runs there");
is( $node->safe_psql('postgres',
		"SELECT result->'echo'->>'n' FROM jobq.jobs WHERE id = '$other'"),
	'42',
	"its result is stored");

# the same type enqueued into another queue is not the workers' business
my $wrongq = $node->safe_psql('postgres',
	"SELECT jobq.enqueue('elsewhere', '{}', queue => 'default')");
my $after = $node->safe_psql('postgres', "SELECT jobq.enqueue('ok', '{}')");
my $other2 = $node->safe_psql('postgres',
	"SELECT jobq.enqueue('elsewhere', '{}', queue => 'other')");
ok( poll_within(
		$node,
		"SELECT count(*) FROM jobq.jobs WHERE id IN ('$after', '$other2') AND status = 2",
		'2'),
	'jobs enqueued after it in both queues complete');
is($node->safe_psql('postgres', "SELECT status FROM jobq.jobs WHERE id = '$wrongq'"),
	'0', 'a registered type enqueued into a queue it is not registered in stays Queued');

# ---- the handler's writes become visible exactly with the completion ----
my $slow = $node->safe_psql('postgres', "SELECT jobq.enqueue('slow')");
ok(poll_within($node, "SELECT status FROM jobq.jobs WHERE id = '$slow'", '1'),
	'the slow job is Processing');
is($node->safe_psql('postgres', "SELECT count(*) FROM seen WHERE job_id = '$slow'"),
	'0', "while it is Processing the handler's write is not visible");
ok(poll_within($node, "SELECT status FROM jobq.jobs WHERE id = '$slow'", '2'),
	'the slow job completes');
is($node->safe_psql('postgres', "SELECT count(*) FROM seen WHERE job_id = '$slow'"),
	'1', "once Completed the handler's write is committed");

# ---- a failing handler: retried with backoff, then Failed ----
my $log_offset = -s $node->logfile;
my $fail = $node->safe_psql('postgres',
	"SELECT jobq.enqueue('fails', '{}', max_attempts => 3)");
# the retry delay is 1 s after attempt 1 and 2 s after attempt 2: catch the
# job in one of these windows ('missed' if it was never seen Queued again)
my $requeued = poll_result(
	$node, qq{
	SELECT CASE
	  WHEN status = 0 AND attempts >= 1 THEN
	    concat_ws('|', 'queued', error->'errors'->0->>'code',
	              (error->>'attempt')::int = attempts,
	              run_at >= started_at + interval '1 s' * 2 ^ (attempts - 1))
	  WHEN status = 3 THEN 'missed' END
	  FROM jobq.jobs WHERE id = '$fail'});
is($requeued, 'queued|HandlerError|t|t',
	'a failed attempt puts the job back to Queued, with a HandlerError for that attempt and run_at moved by the exponential retry delay'
);

ok(poll_within($node, "SELECT status FROM jobq.jobs WHERE id = '$fail'", '3'),
	'after max_attempts the job is Failed');
is( $node->safe_psql(
		'postgres', qq{
	SELECT attempts, error->'errors'->0->>'code', error->>'attempt', error->>'success',
	       error->>'traceId' = trace_id, error_message LIKE 'boom on attempt 3%',
	       completed_at >= created_at + interval '3 s'
	  FROM jobq.jobs WHERE id = '$fail'}),
	'3|HandlerError|3|false|t|t|t',
	'Failed after 3 attempts, with the error shape, having waited 1 s + 2 s of backoff');
is($node->safe_psql('postgres', "SELECT last_value FROM fail_calls"),
	'3', 'the handler was called exactly 3 times');
is($node->safe_psql('postgres', "SELECT count(*) FROM seen WHERE job_id = '$fail'"),
	'0', "a failing handler's INSERTs are rolled back");

# ---- a ValidationError fails at once ----
my $inv = $node->safe_psql('postgres',
	"SELECT jobq.enqueue('invalid', '{}', max_attempts => 5)");
ok(poll_within($node, "SELECT status FROM jobq.jobs WHERE id = '$inv'", '3'),
	'a handler raising SQLSTATE 22023 fails its job');
is( $node->safe_psql(
		'postgres', qq{
	SELECT attempts, max_attempts, error->'errors'->0->>'code', error_message
	  FROM jobq.jobs WHERE id = '$inv'}),
	'1|5|ValidationError|payload field x is out of range',
	'at once, without retry, with code ValidationError');
is($node->safe_psql('postgres', "SELECT last_value FROM invalid_calls"),
	'1', 'the handler was called once');
is($node->safe_psql('postgres', "SELECT count(*) FROM seen WHERE job_id = '$inv'"),
	'0', "its INSERT is rolled back");

# expected failures are recorded without ERROR-level noise (SPEC 8)
my $log = log_since($node, $log_offset);
unlike($log, qr/ERROR:.*boom on attempt/,
	"a handler's own error is not logged at ERROR level");
unlike($log, qr/ERROR:.*out of range/,
	"a ValidationError is not logged at ERROR level");

# SQL-language and PL/pgSQL handlers in one batch (one commit, so one worker
# claims all six): the SQL ones run through SPI, the others through fmgr,
# and no stale SPI result is freed twice
$node->safe_psql(
	'postgres', q{
CREATE FUNCTION h_sql(j jobq.jobs) RETURNS jsonb LANGUAGE sql AS $$ SELECT '{"sql": true}'::jsonb $$;
SELECT jobq.register('mixed_sql', handler => 'h_sql(jobq.jobs)'::regprocedure);
SELECT jobq.register('mixed_pl', handler => 'h_ok(jobq.jobs)'::regprocedure);
});
my $mixed_offset = -s $node->logfile;
$node->safe_psql(
	'postgres', q{
BEGIN;
SELECT jobq.enqueue('mixed_sql') FROM generate_series(1, 3);
SELECT jobq.enqueue('mixed_pl') FROM generate_series(1, 3);
COMMIT;
});
ok( poll_within(
		$node,
		"SELECT count(*) FROM jobq.jobs WHERE job_type LIKE 'mixed_%' AND status = 2", '6'),
	'a batch of SQL and PL/pgSQL handlers completes');
unlike(log_since($node, $mixed_offset), qr/invalid SPITupleTable/,
	'without a WARNING about freeing an SPI result twice');

# the workers are still the same processes
is(worker_pids($node), activity_worker_pids($node),
	'the workers are still running');
log_has_no_crash($node, 'worker_runs');

$node->stop;
done_testing();
