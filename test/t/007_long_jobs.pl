
# A long job never holds the jobs claimed with it.  A worker claims a batch;
# when it comes to a unit job (which runs for as long as its units take), it
# first gives the rest of the batch back to the queue, where an idle worker
# takes it at once.  A queue whose types are all unit jobs is claimed one job
# at a time, so two unit jobs run side by side on two workers.  A pre-warm
# hook noticed in the poll that claimed a long job fires before that job
# runs, not after it.
use strict;
use warnings;

use PostgreSQL::Test::Cluster;
use PostgreSQL::Test::Utils;
use Test::More;
use IO::Socket::INET;
use Time::HiRes qw(usleep);
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

# ---- a pre-warm hook fires before the long job claimed in the same poll ----
# One worker, so the poll that claims the unit job is the one that sees the
# hooked queue go from empty to non-empty.  The hook's receiver is an HTTP
# server on 127.0.0.1 that writes each request line to a file.
my $hits = $node->basedir . '/hook_hits';
my $srv = IO::Socket::INET->new(
	LocalAddr => '127.0.0.1',
	LocalPort => 0,
	Listen => 5,
	ReuseAddr => 1) or die "cannot listen on 127.0.0.1: $!";
my $port = $srv->sockport;
my $child = fork();
die "fork: $!" unless defined $child;
if ($child == 0)
{
	while (my $c = $srv->accept)
	{
		my $line = <$c>;
		my $len = 0;
		while (my $h = <$c>)
		{
			$len = $1 if $h =~ /^Content-Length:\s*(\d+)/i;
			last if $h =~ /^\r?\n$/;
		}
		read($c, my $body, $len) if $len;
		append_to_file($hits, $line);
		print $c "HTTP/1.1 204 No Content\r\nConnection: close\r\n\r\n";
		close $c;
	}
	exit 0;
}
close $srv;

$node->append_conf('postgresql.conf', 'jobq.workers = 1');
$node->restart;
ok( poll_within(
		$node,
		"SELECT count(*) FROM jobq.worker_status WHERE state = 'idle'",
		'1', 60),
	'one idle worker');
$node->safe_psql(
	'postgres', qq{
TRUNCATE gate;
SELECT jobq.set_prewarm_hook('hooked', 'http://127.0.0.1:$port/warm', min_interval => '0');
});
# the workers look for new hooks at most every 5 s
sleep 6;
$node->safe_psql(
	'postgres', q{
DO $$
BEGIN
  PERFORM jobq.enqueue('served_elsewhere', queue => 'hooked');
  PERFORM jobq.enqueue('only_units', '{"gated": true}', queue => 'units', units => 1);
END $$;
});
ok( poll_within(
		$node,
		"SELECT count(*) FROM jobq.jobs WHERE job_type = 'only_units' AND status = 1",
		'1', 60),
	'the unit job runs');
my $fired = 0;
for (1 .. 300)
{
	last if ($fired = -e $hits);
	usleep(100_000);
}
ok($fired, 'the hook fired while the unit job claimed in the same poll still runs');
like(slurp_file($hits), qr{^POST /warm HTTP/1\.1}, 'the hook sent its request') if $fired;
is( $node->safe_psql(
		'postgres', "SELECT count(*) FROM jobq.jobs WHERE job_type = 'only_units' AND status = 1"),
	'1',
	'the unit job is still at its gate');
$node->safe_psql('postgres', 'INSERT INTO gate VALUES (1)');
ok( poll_within(
		$node,
		"SELECT count(*) FROM jobq.jobs WHERE job_type = 'only_units' AND status = 1",
		'0', 60),
	'the unit job ends once its gate opens');
kill 'TERM', $child;
waitpid($child, 0);

log_has_no_crash($node, 'long_jobs');
$node->stop;
done_testing();
