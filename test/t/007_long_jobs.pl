
# A long job never holds the jobs claimed with it.  A worker claims a batch;
# when it comes to a unit job (which runs for as long as its units take), it
# first gives the rest of the batch back to the queue, where an idle worker
# takes it at once.  A queue whose types are all unit jobs is claimed one job
# at a time, so two unit jobs run side by side on two workers.
use strict;
use warnings;

use PostgreSQL::Test::Cluster;
use PostgreSQL::Test::Utils;
use Test::More;
use JobqTest;

my $node = jobq_node('long_jobs');
$node->safe_psql(
	'postgres', q{
-- each unit takes 1 s, or waits for the gate table to have a row
CREATE TABLE gate (x int);
CREATE FUNCTION slow_unit(j jobq.jobs, n int) RETURNS bytea LANGUAGE plpgsql AS $$
BEGIN
  IF j.payload ? 'gated' THEN
    WHILE NOT EXISTS (SELECT 1 FROM gate) LOOP
      PERFORM pg_sleep(0.05);
    END LOOP;
  ELSE
    PERFORM pg_sleep(1);
  END IF;
  RETURN convert_to('unit ' || n, 'UTF8');
END $$;
CREATE FUNCTION quick(j jobq.jobs) RETURNS jsonb LANGUAGE sql AS $$ SELECT '{}'::jsonb $$;
SELECT jobq.register('mixed_units', unit_handler => 'slow_unit(jobq.jobs,int)'::regprocedure,
                     queue => 'mixed');
SELECT jobq.register('mixed_quick', handler => 'quick(jobq.jobs)'::regprocedure, queue => 'mixed');
SELECT jobq.register('only_units', unit_handler => 'slow_unit(jobq.jobs,int)'::regprocedure,
                     queue => 'units');
});
ok( poll_within(
		$node,
		"SELECT count(*) FROM jobq.worker_status WHERE state = 'idle'",
		'2', 60),
	'two idle workers');

# ---- a unit job first in a batch with quick jobs behind it ----
# One transaction, so that the worker woken at commit claims all six at
# once, the unit job first (oldest).
$node->safe_psql(
	'postgres', q{
DO $$
BEGIN
  PERFORM jobq.enqueue('mixed_units', '{"gated": true}', queue => 'mixed', units => 2);
  PERFORM jobq.enqueue('mixed_quick', jsonb_build_object('i', i), queue => 'mixed')
     FROM generate_series(1, 5) i;
END $$;
});
my $unit = $node->safe_psql('postgres', "SELECT id FROM jobq.jobs WHERE job_type = 'mixed_units'");
ok( poll_within(
		$node,
		"SELECT count(*) FROM jobq.jobs WHERE job_type = 'mixed_quick' AND status = 2",
		'5', 60),
	'the quick jobs complete while the unit job waits at its gate');
is($node->safe_psql('postgres', "SELECT status FROM jobq.jobs WHERE id = '$unit'"),
	'1', 'the unit job is still running');
is( $node->safe_psql(
		'postgres',
		"SELECT count(DISTINCT attempts) || ':' || min(attempts) FROM jobq.jobs WHERE job_type = 'mixed_quick'"),
	'1:1',
	'the quick jobs given back ran on their first attempt (giving back counts no attempt)');
$node->safe_psql('postgres', 'INSERT INTO gate VALUES (1)');
ok( poll_within(
		$node, "SELECT status FROM jobq.jobs WHERE id = '$unit'", '2', 60),
	'the unit job completes once its gate opens');

# ---- a queue of unit jobs only: one claim each, two workers at once ----
$node->safe_psql(
	'postgres', q{
TRUNCATE gate;
SELECT jobq.enqueue('only_units', '{"gated": true}', queue => 'units', units => 1)
  FROM generate_series(1, 2);
});
ok( poll_within(
		$node,
		"SELECT count(DISTINCT locked_by) FROM jobq.jobs WHERE job_type = 'only_units' AND status = 1",
		'2', 60),
	'two unit jobs of a unit-only queue run at the same time, one per worker');
$node->safe_psql('postgres', 'INSERT INTO gate VALUES (1)');
ok( poll_within(
		$node,
		"SELECT count(*) FROM jobq.jobs WHERE job_type = 'only_units' AND status = 2",
		'2', 60),
	'both complete');

log_has_no_crash($node, 'long_jobs');
$node->stop;
done_testing();
