
# Helpers shared by jobq's TAP tests (test/t/*.pl).
#
# Every test file starts its own node with jobq_node().  Waiting is always
# done by polling with generous bounds: these tests run on small, busy VMs
# and assert what happens, never how fast.

package JobqTest;

use strict;
use warnings;

use Exporter 'import';
use PostgreSQL::Test::Cluster;
use PostgreSQL::Test::Utils;
use Test::More;
use Time::HiRes qw(usleep time);

our @EXPORT = qw(jobq_node poll_within poll_result query_value wait_handler_sleeping
  worker_pids activity_worker_pids log_since log_has_no_crash);

# The settings every test node gets unless told otherwise.
our $BASE_CONF = <<'EOC';
shared_preload_libraries = 'jobq'
jobq.database = 'postgres'
jobq.workers = 2
jobq.poll_interval_min = '10ms'
jobq.poll_interval_max = '200ms'
max_worker_processes = 16
EOC

# jobq_node(name, preload => 1, conf => '...', create_extension => 1)
# A started node; conf is appended after the base settings.
sub jobq_node
{
	my ($name, %opt) = @_;
	my $preload = exists $opt{preload} ? $opt{preload} : 1;
	my $create = exists $opt{create_extension} ? $opt{create_extension} : 1;

	my $node = PostgreSQL::Test::Cluster->new($name);
	$node->init;
	$node->append_conf('postgresql.conf', $BASE_CONF) if $preload;
	$node->append_conf('postgresql.conf', $opt{conf}) if defined $opt{conf};
	$node->start;
	$node->safe_psql('postgres', 'CREATE EXTENSION jobq') if $create;
	return $node;
}

# query_value(node, query, db): one value, '' for NULL, undef when the query
# fails (for instance while the server restarts after a crash).
sub query_value
{
	my ($node, $query, $db) = @_;
	my ($ret, $out, $err) =
	  $node->psql($db // 'postgres', $query, on_error_stop => 1);
	return undef if $ret != 0;
	return $out;
}

# poll_within(node, query, expected, timeout_s, db): run query until its
# output equals expected.  Returns the seconds it took (true: at least
# 0.001), or 0 after timeout_s, with the last output as a diagnostic.
# Query errors (the server restarting) count as "not yet".
sub poll_within
{
	my ($node, $query, $expected, $timeout, $db) = @_;
	$timeout //= $PostgreSQL::Test::Utils::timeout_default;
	$expected //= 't';
	my $start = time;
	my ($ret, $out, $err) = (0, '', '');
	while (1)
	{
		($ret, $out, $err) =
		  $node->psql($db // 'postgres', $query, on_error_stop => 1);
		my $elapsed = time - $start;
		return ($elapsed > 0.001 ? $elapsed : 0.001)
		  if $ret == 0 && defined $out && $out eq $expected;
		if ($elapsed > $timeout)
		{
			diag(sprintf(
					"poll_within timed out after %.1f s:\n%s\nexpected: %s\nlast output: %s\nstderr: %s",
					$elapsed, $query, $expected, $out // '', $err // ''));
			return 0;
		}
		usleep(100_000);
	}
}

# poll_result(node, query, timeout_s, db): run query until it outputs
# something non-empty (no row or NULL means "not yet"); returns that output,
# or undef after timeout_s.
sub poll_result
{
	my ($node, $query, $timeout, $db) = @_;
	$timeout //= $PostgreSQL::Test::Utils::timeout_default;
	my $start = time;
	while (1)
	{
		my $out = query_value($node, $query, $db);
		return $out if defined $out && $out ne '';
		if (time - $start > $timeout)
		{
			diag("poll_result timed out after $timeout s:\n$query");
			return undef;
		}
		usleep(100_000);
	}
}

# Wait until the in-server worker running job `id` is inside the handler's
# pg_sleep; returns that worker's pid, or undef after timeout_s.
sub wait_handler_sleeping
{
	my ($node, $id, $timeout) = @_;
	my $q = qq{
		SELECT w.pid FROM jobq.worker_status w
		  JOIN pg_stat_activity a ON a.pid = w.pid
		 WHERE w.job_id = '$id' AND w.state = 'running'
		   AND a.wait_event = 'PgSleep'};
	my $start = time;
	while (time - $start < ($timeout // $PostgreSQL::Test::Utils::timeout_default))
	{
		my $pid = query_value($node, $q);
		return $pid if defined $pid && $pid =~ /^\d+$/;
		usleep(100_000);
	}
	diag("job $id never reached the handler's pg_sleep");
	return undef;
}

# The pids in jobq.worker_status, sorted, as one string "pid1,pid2".
sub worker_pids
{
	my ($node, $db) = @_;
	return query_value($node,
		"SELECT string_agg(pid::text, ',' ORDER BY pid) FROM jobq.worker_status",
		$db);
}

# The pids of the "jobq worker" background workers in pg_stat_activity.
sub activity_worker_pids
{
	my ($node) = @_;
	return query_value($node,
		"SELECT string_agg(pid::text, ',' ORDER BY pid) FROM pg_stat_activity WHERE backend_type = 'jobq worker'"
	);
}

# The server log from byte offset on.
sub log_since
{
	my ($node, $offset) = @_;
	return slurp_file($node->logfile, $offset // 0);
}

# Assert the whole server log shows no PANIC and no backend killed by a
# crash signal (SIGSEGV, SIGABRT, SIGBUS).
sub log_has_no_crash
{
	my ($node, $what) = @_;
	my $log = log_since($node, 0);
	unlike($log, qr/PANIC/, "$what: no PANIC in the server log");
	unlike(
		$log,
		qr/process .* was terminated by signal (11|6|7)\b/,
		"$what: no process died of SIGSEGV/SIGABRT/SIGBUS");
}

1;
