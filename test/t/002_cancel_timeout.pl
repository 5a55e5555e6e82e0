
# Interrupting handlers (SPEC 3, 5): jobq.cancel() of a running job stops its
# handler instead of waiting it out, a per-type timeout fails the job with
# code Timeout, and a stray pg_cancel_backend() does not hurt a worker.
#
# Timings here are functional, not performance checks: the handlers sleep
# 30 s, and "interrupted" means "done well before those 30 s".
use strict;
use warnings;

use PostgreSQL::Test::Cluster;
use PostgreSQL::Test::Utils;
use Test::More;
use Time::HiRes qw(time usleep);
use JobqTest;

my $node = jobq_node('cancel_timeout');

$node->safe_psql(
	'postgres', q{
CREATE TABLE writes (job_id uuid, attempt int);
CREATE TABLE ctl (sleep_s float8 NOT NULL);
INSERT INTO ctl VALUES (30);

-- writes, then sleeps as long as ctl says (30 s unless changed)
CREATE FUNCTION h_sleepy(j jobq.jobs) RETURNS jsonb LANGUAGE plpgsql AS $$
BEGIN
  INSERT INTO writes VALUES (j.id, j.attempts);
  PERFORM pg_sleep((SELECT sleep_s FROM ctl));
  RETURN '{"slept": true}';
END $$;

CREATE FUNCTION h_forever(j jobq.jobs) RETURNS jsonb LANGUAGE plpgsql AS $$
BEGIN
  INSERT INTO writes VALUES (j.id, j.attempts);
  PERFORM pg_sleep(30);
  RETURN '{"slept": true}';
END $$;

-- sleeps as long as its payload says
CREATE FUNCTION h_payload(j jobq.jobs) RETURNS jsonb LANGUAGE plpgsql AS $$
BEGIN
  INSERT INTO writes VALUES (j.id, j.attempts);
  PERFORM pg_sleep((j.payload->>'sleep')::float8);
  RETURN '{"slept": true}';
END $$;

CREATE FUNCTION h_quick(j jobq.jobs) RETURNS jsonb LANGUAGE sql AS $$ SELECT '{"quick": true}'::jsonb $$;

SELECT jobq.register('sleepy', handler => 'h_sleepy(jobq.jobs)'::regprocedure);
SELECT jobq.register('limited', handler => 'h_forever(jobq.jobs)'::regprocedure,
                     max_attempts => 1, timeout => '1 s');
SELECT jobq.register('batched', handler => 'h_payload(jobq.jobs)'::regprocedure);
SELECT jobq.register('quick', handler => 'h_quick(jobq.jobs)'::regprocedure);
});

ok( poll_within(
		$node,
		"SELECT count(*) FROM jobq.worker_status WHERE state = 'idle'",
		'2', 60),
	'two idle workers');
my $pids_at_start = worker_pids($node);

# ---- cancel of a running handler ----
my $id = $node->safe_psql('postgres', "SELECT jobq.enqueue('sleepy')");
my $pid = wait_handler_sleeping($node, $id);
ok(defined $pid, 'the handler is running (in pg_sleep) in an in-server worker');
$pid //= 0;

my $t0 = time;
is($node->safe_psql('postgres', "SELECT jobq.cancel('$id')"),
	't', 'cancel() of the Processing job returns true');
is( $node->safe_psql(
		'postgres',
		"SELECT status, error->'errors'->0->>'code', completed_at IS NOT NULL FROM jobq.jobs WHERE id = '$id'"
	),
	'4|Cancelled|t',
	'the job is Cancelled');

my $freed = poll_within(
	$node,
	"SELECT state = 'idle' AND job_id IS NULL FROM jobq.worker_status WHERE pid = $pid",
	't', 20);
ok($freed, 'the worker that ran it is idle again, well before the 30 s sleep would end');
note(sprintf('worker free again %.1f s after cancel', time - $t0));
is( $node->safe_psql(
		'postgres', "SELECT count(*) FROM pg_stat_activity WHERE pid = $pid AND backend_type = 'jobq worker' AND wait_event IS DISTINCT FROM 'PgSleep'"
	),
	'1',
	'the same worker process survives the interrupt and is out of the handler');
is($node->safe_psql('postgres', "SELECT count(*) FROM writes WHERE job_id = '$id'"),
	'0', "the cancelled handler's writes are rolled back");
is( $node->safe_psql(
		'postgres',
		"SELECT status, error->'errors'->0->>'code', locked_by IS NULL FROM jobq.jobs WHERE id = '$id'"
	),
	'4|Cancelled|t',
	'the worker did not overwrite the Cancelled state');

# a cancelled job can be retried; this time the handler finishes quickly
$node->safe_psql('postgres', "UPDATE ctl SET sleep_s = 0");
is($node->safe_psql('postgres', "SELECT jobq.retry('$id')"),
	't', 'retry() of the Cancelled job returns true');
ok(poll_within($node, "SELECT status FROM jobq.jobs WHERE id = '$id'", '2'),
	'the retried job runs again and completes');
is( $node->safe_psql(
		'postgres',
		"SELECT result->>'slept', error IS NULL, (SELECT count(*) FROM writes WHERE job_id = '$id') FROM jobq.jobs WHERE id = '$id'"
	),
	'true|t|1',
	'with its result, no error, and the write of the successful run only');
$node->safe_psql('postgres', "UPDATE ctl SET sleep_s = 30");

# ---- per-type timeout ----
my $lim = $node->safe_psql('postgres',
	"SELECT jobq.enqueue('limited', max_attempts => 1)");
ok(poll_within($node, "SELECT status FROM jobq.jobs WHERE id = '$lim'", '3', 60),
	'a handler that outlives the type timeout fails its job');
is( $node->safe_psql(
		'postgres', qq{
	SELECT attempts, error->'errors'->0->>'code', error->>'attempt',
	       completed_at - started_at < interval '25 s'
	  FROM jobq.jobs WHERE id = '$lim'}),
	'1|Timeout|1|t',
	"status 3 with code 'Timeout', stopped before its 30 s sleep ended");
is($node->safe_psql('postgres', "SELECT count(*) FROM writes WHERE job_id = '$lim'"),
	'0', "the timed-out handler's writes are rolled back");
ok(poll_within($node, "SELECT count(*) FROM jobq.worker_status WHERE state = 'idle'", '2', 30),
	'both workers are idle again after the timeout');

# a timeout on one job does not leak into the next job of that worker
my $q1 = $node->safe_psql('postgres', "SELECT jobq.enqueue('quick')");
ok(poll_within($node, "SELECT status FROM jobq.jobs WHERE id = '$q1'", '2'),
	'a job after the timeout completes normally');

# ---- pg_cancel_backend of idle workers ----
my $before = worker_pids($node);
is($before, $pids_at_start, 'the workers are the processes that started the test');
my @pids = split /,/, $before;
is( $node->safe_psql(
		'postgres',
		"SELECT bool_and(pg_cancel_backend(pid)) FROM jobq.worker_status"),
	't',
	'pg_cancel_backend() sent to both idle workers');
# give them time to act on it (several poll cycles), then look
usleep(1_500_000);
is(worker_pids($node), $before, 'pg_cancel_backend() does not kill an idle worker');
is( $node->safe_psql(
		'postgres',
		"SELECT count(*) FROM pg_stat_activity WHERE backend_type = 'jobq worker' AND pid IN (" . join(',', @pids) . ")"
	),
	'2',
	'both worker processes are alive');
my $q2 = $node->safe_psql('postgres', "SELECT jobq.enqueue('quick')");
ok(poll_within($node, "SELECT status FROM jobq.jobs WHERE id = '$q2'", '2'),
	'the workers still run jobs afterwards');

# ---- pg_cancel_backend of a worker in a handler: a failed attempt, retried ----
$node->safe_psql('postgres', "UPDATE ctl SET sleep_s = 30");
my $pc = $node->safe_psql('postgres',
	"SELECT jobq.enqueue('sleepy', max_attempts => 2)");
my $pcpid = wait_handler_sleeping($node, $pc);
ok(defined $pcpid, 'a second sleepy job is in its handler');
$pcpid //= 0;
$node->safe_psql('postgres', "UPDATE ctl SET sleep_s = 0");
$node->safe_psql('postgres', "SELECT pg_cancel_backend($pcpid)");
ok(poll_within($node, "SELECT status FROM jobq.jobs WHERE id = '$pc'", '2', 60),
	'pg_cancel_backend() of a running handler fails that attempt only: the job is retried and completes'
);
is( $node->safe_psql(
		'postgres',
		"SELECT attempts, (SELECT count(*) FROM writes WHERE job_id = '$pc') FROM jobq.jobs WHERE id = '$pc'"
	),
	'2|1',
	'two attempts, the interrupted one rolled back');
is(worker_pids($node), $before, 'no worker was lost along the way');

# ---- cancel of a job claimed in a batch whose handler has not started yet ----
# BUG (jobq 0.2, src/dispatch.c jobq_run_batch/run_handler_job): a worker
# claims up to jobq.batch_size jobs at once and then runs each claimed job's
# handler without checking that the job is still Processing and not
# cancelled.  jobq.cancel() of such a job only signals the worker if that
# job's handler is the one running at that moment, so the cancelled job's
# handler is started later anyway and runs to its end (its completion then
# finds the job Cancelled and is rolled back).  SPEC 3: "cancel of a
# Processing job stops its in-server handler within about a second (the
# worker is interrupted, not waited out)".  Here the cancelled job sleeps
# 30 s: expected, the worker is free once the first job's 3 s are over;
# observed, it is busy ~33 s.
my ($first, $second) = split /\n/,
  $node->safe_psql(
	'postgres', q{
	SELECT jobq.enqueue('batched', jsonb_build_object('sleep', s))
	  FROM unnest(ARRAY[3, 30]) s});
my $bpid = wait_handler_sleeping($node, $first);
ok(defined $bpid, 'the first of two jobs enqueued together is in its handler');
$bpid //= 0;
my $holders = $node->safe_psql('postgres',
	"SELECT count(DISTINCT locked_by) || '|' || count(*) FROM jobq.jobs WHERE id IN ('$first', '$second') AND status = 1"
);
SKIP:
{
	skip 'the two jobs were not claimed in one batch by one worker', 4
	  unless $holders eq '1|2';
	my $tc = time;
	is($node->safe_psql('postgres', "SELECT jobq.cancel('$second')"),
		't', 'cancel() of the second job, claimed but not started, returns true');
	ok( poll_within(
			$node,
			"SELECT status FROM jobq.jobs WHERE id = '$first'", '2', 60),
		'the first job still completes');
	ok( poll_within(
			$node,
			"SELECT state = 'idle' FROM jobq.worker_status WHERE pid = $bpid",
			't', 20),
		'BUG: the worker does not run the cancelled job\'s 30 s handler (free well before 30 s)');
	note(sprintf('worker free again %.1f s after cancelling the second job', time - $tc));
	ok( poll_within(
			$node,
			"SELECT concat_ws('|', status, error->'errors'->0->>'code') FROM jobq.jobs WHERE id = '$second'",
			'4|Cancelled', 60),
		'the cancelled job stays Cancelled');
}
# let a handler that still runs finish before the log checks
poll_within($node, "SELECT count(*) FROM jobq.worker_status WHERE state = 'idle'", '2', 60);

log_has_no_crash($node, 'cancel_timeout');
$node->stop;
done_testing();
