
# Extension lifecycle seen by the workers (SPEC 1, 12, 13): they wait quietly
# while the extension is missing from jobq.database, start working once it
# is created, survive DROP EXTENSION (idle or mid-job) and serve a new
# CREATE EXTENSION; SIGHUP reloads their settings; and without
# shared_preload_libraries the SQL API works with no workers at all.
use strict;
use warnings;

use PostgreSQL::Test::Cluster;
use PostgreSQL::Test::Utils;
use Test::More;
use Time::HiRes qw(time usleep);
use JobqTest;

my $node = jobq_node('lifecycle', create_extension => 0);

# jobq.worker_status is a view of the extension, and the workers' database
# must not have the extension yet: read it from another database.
$node->safe_psql('postgres', 'CREATE DATABASE observer');
$node->safe_psql('observer', 'CREATE EXTENSION jobq');
sub observe
{
	my ($query) = @_;
	return query_value($node, $query, 'observer');
}

my $setup_sql = q{
CREATE EXTENSION jobq;
CREATE TABLE IF NOT EXISTS runs (job_id uuid, n int);
CREATE FUNCTION h(j jobq.jobs) RETURNS jsonb LANGUAGE plpgsql AS $$
BEGIN
  INSERT INTO runs VALUES (j.id, (j.payload->>'n')::int);
  PERFORM pg_sleep(coalesce((j.payload->>'sleep')::float8, 0));
  RETURN jsonb_build_object('n', j.payload->'n');
END $$;
SELECT jobq.register('lc', handler => 'h(jobq.jobs)'::regprocedure);
};

# ---- extension absent: waiting quietly ----
ok( poll_within(
		$node,
		"SELECT count(*) FILTER (WHERE state = 'waiting for extension') || '/' || count(*) FROM jobq.worker_status",
		'2/2', 60, 'observer'),
	"both workers report 'waiting for extension'");
my $pids = activity_worker_pids($node);
ok($pids =~ /^\d+,\d+$/, "two 'jobq worker' processes: $pids");

my $offset = -s $node->logfile;
sleep 3;    # no queries of ours in this window
my @lines = grep { /jobq/ } split /\n/, log_since($node, $offset);
cmp_ok(scalar(@lines), '<=', 2,
	'the waiting workers write at most a couple of log lines in 3 s')
  or diag(join("\n", @lines));
is(activity_worker_pids($node), $pids,
	'the same worker processes are still waiting (no crash loop)');
unlike(log_since($node, 0), qr/FATAL|PANIC|terminated by signal/,
	'no FATAL, PANIC or killed process while waiting');

# ---- CREATE EXTENSION: jobs run ----
$node->safe_psql('postgres', $setup_sql);
my $id = $node->safe_psql('postgres', "SELECT jobq.enqueue('lc', '{\"n\": 1}')");
ok(poll_within($node, "SELECT status FROM jobq.jobs WHERE id = '$id'", '2', 60),
	'after CREATE EXTENSION a registered job runs');
# the other worker notices the extension at its next check (up to 1 s)
ok( poll_within(
		$node,
		"SELECT count(*) FROM jobq.worker_status WHERE state IN ('idle', 'running')",
		'2', 60),
	'both workers are serving the queue');
is(activity_worker_pids($node), $pids, 'they are the processes that waited');

# ---- DROP EXTENSION while the workers are idle ----
ok( poll_within(
		$node,
		"SELECT count(*) FROM jobq.worker_status WHERE state = 'idle'",
		'2', 60),
	'both workers idle');
$offset = -s $node->logfile;
$node->safe_psql('postgres', 'DROP EXTENSION jobq CASCADE');
ok( poll_within(
		$node,
		"SELECT count(*) FILTER (WHERE state = 'waiting for extension') || '/' || count(*) FROM jobq.worker_status",
		'2/2', 60, 'observer'),
	"after DROP EXTENSION of idle workers both report 'waiting for extension'");
like(activity_worker_pids($node), qr/^\d+,\d+$/, 'two workers are still there');
my $log = log_since($node, $offset);
unlike($log, qr/reinitializing|terminated by signal|PANIC/,
	'DROP EXTENSION caused no crash');

# A DROP EXTENSION that takes a moment (here: held open in a transaction for
# 2 s while the idle workers poll) must be waited out quietly too.
# BUG (minor, log noise; src/worker.c poll_and_run): a worker whose poll
# overlaps the DROP sees the extension (get_extension_oid), then blocks in
# its claim on the lock of jobq.jobs, and when the DROP commits fails with
#   ERROR:  relation "jobq.jobs" does not exist
#   QUERY:  WITH c AS (SELECT id FROM jobq.jobs ...
# in the server log (one per worker).  SPEC 1: the workers "stop using it
# cleanly after DROP EXTENSION".  The same race makes a plain DROP
# EXTENSION log this ERROR now and then.
$node->safe_psql('postgres', $setup_sql);
ok( poll_within(
		$node,
		"SELECT count(*) FROM jobq.worker_status WHERE state = 'idle'",
		'2', 60),
	'both workers idle before a slow DROP EXTENSION');
my $wpids = activity_worker_pids($node);
$offset = -s $node->logfile;
$node->safe_psql('postgres',
	"BEGIN; DROP EXTENSION jobq CASCADE; SELECT pg_sleep(2); COMMIT;");
ok( poll_within(
		$node,
		"SELECT count(*) FILTER (WHERE state = 'waiting for extension') || '/' || count(*) FROM jobq.worker_status",
		'2/2', 60, 'observer'),
	"after a slow DROP EXTENSION both workers report 'waiting for extension'");
sleep 1;    # let any error report reach the log
my $wre = join('|', split /,/, $wpids);
my @werrors = grep { /\[($wre)\].*(ERROR|FATAL)/ } split /\n/, log_since($node, $offset);
is(scalar(@werrors), 0,
	'BUG: the workers log no ERROR when the extension is dropped under their poll')
  or diag(join("\n", @werrors));

$node->safe_psql('postgres', $setup_sql);
$id = $node->safe_psql('postgres', "SELECT jobq.enqueue('lc', '{\"n\": 2}')");
ok(poll_within($node, "SELECT status FROM jobq.jobs WHERE id = '$id'", '2', 60),
	'after CREATE EXTENSION again plus register and enqueue, a job runs');

# ---- DROP EXTENSION while a job is running ----
$id = $node->safe_psql('postgres',
	"SELECT jobq.enqueue('lc', '{\"n\": 3, \"sleep\": 3}')");
my $pid = wait_handler_sleeping($node, $id);
ok(defined $pid, 'a job is running');
$offset = -s $node->logfile;
$node->safe_psql('postgres', 'DROP EXTENSION jobq CASCADE');
ok( poll_within(
		$node,
		"SELECT count(*) FILTER (WHERE state = 'waiting for extension') || '/' || count(*) FROM jobq.worker_status",
		'2/2', 60, 'observer'),
	"after DROP EXTENSION under a running job both workers report 'waiting for extension'");
like(activity_worker_pids($node), qr/^\d+,\d+$/, 'two workers are still there');
$log = log_since($node, $offset);
unlike($log, qr/reinitializing|terminated by signal|PANIC/,
	'DROP EXTENSION under a running job caused no crash');

$node->safe_psql('postgres', $setup_sql);
$id = $node->safe_psql('postgres', "SELECT jobq.enqueue('lc', '{\"n\": 4}')");
ok(poll_within($node, "SELECT status FROM jobq.jobs WHERE id = '$id'", '2', 60),
	'after CREATE EXTENSION again plus register and enqueue, a job runs');
is($node->safe_psql('postgres', "SELECT result->>'n' FROM jobq.jobs WHERE id = '$id'"),
	'4', 'with its result');

# ---- SIGHUP reloads the poll interval ----
ok( poll_within(
		$node,
		"SELECT count(*) FROM jobq.worker_status WHERE state = 'idle' AND poll_delay_ms = 200",
		'2', 60),
	'idle workers back off to jobq.poll_interval_max = 200 ms');
$node->safe_psql('postgres', "ALTER SYSTEM SET jobq.poll_interval_max = '50ms'");
$node->safe_psql('postgres', "SELECT pg_reload_conf()");
ok( poll_within(
		$node,
		"SELECT count(*) FROM jobq.worker_status WHERE poll_delay_ms <= 50",
		'2', 60),
	'after ALTER SYSTEM + pg_reload_conf() poll_delay_ms drops to 50 ms or less');
ok( poll_within(
		$node,
		"SELECT count(*) FROM jobq.worker_status WHERE state = 'idle' AND poll_delay_ms = 50",
		'2', 60),
	'and the backoff reaches the new maximum of 50 ms');
my $max_seen = 0;
for (1 .. 20)
{
	my $v = query_value($node, "SELECT max(poll_delay_ms) FROM jobq.worker_status");
	$max_seen = $v if defined $v && $v ne '' && $v > $max_seen;
	usleep(100_000);
}
cmp_ok($max_seen, '<=', 50, 'poll_delay_ms never exceeds 50 afterwards');
$id = $node->safe_psql('postgres', "SELECT jobq.enqueue('lc', '{\"n\": 5}')");
ok(poll_within($node, "SELECT status FROM jobq.jobs WHERE id = '$id'", '2', 60),
	'jobs still run after the reload');

log_has_no_crash($node, 'lifecycle');
$node->stop;

# ---- no shared_preload_libraries: the SQL API alone ----
# BUG (jobq 0.2, src/jobq.c _PG_init -> jobq_define_settings): the library
# defines the PGC_POSTMASTER settings jobq.database and jobq.workers on every
# load, and PostgreSQL allows that only while shared_preload_libraries are
# loaded.  Loaded later (CREATE EXTENSION, or any jobq function in a new
# session), the backend dies with
#   FATAL:  cannot create PGC_POSTMASTER variables after startup
# so without shared_preload_libraries nothing of jobq works, against SPEC 1
# ("the SQL API works without").  The assertions below use psql, not
# safe_psql; when CREATE EXTENSION fails the API checks that need it
# are left out (not counted), so this one bug shows as the three BUG failures.
my $plain = jobq_node('nopreload', preload => 0, create_extension => 0);
sub plain_sql
{
	my ($sql) = @_;
	my ($ret, $out, $err) = $plain->psql('postgres', $sql, on_error_stop => 1);
	diag("psql failed: $err") if $ret != 0;
	return ($ret, $out, $err);
}
my ($ret, $out, $err) = plain_sql('CREATE EXTENSION jobq');
is($ret, 0, 'BUG: CREATE EXTENSION jobq works without shared_preload_libraries');
unlike($err, qr/FATAL/, 'BUG: and does not kill the session (FATAL)');
my $created = $ret == 0;
if ($created)
{
	($ret, $out) = plain_sql(
		"SELECT extversion = default_version FROM pg_extension, pg_available_extensions WHERE extname = 'jobq' AND name = 'jobq'"
	);
	is($out, 't', 'the extension is installed at its default version');

	# a new session loads the library again
	($ret, my $jid) = plain_sql("SELECT jobq.enqueue('plain', '{\"a\": 1}')");
	like($jid, qr/^[0-9a-f-]{36}$/, 'enqueue works');
	($ret, $out) = plain_sql("SELECT id FROM jobq.claim('default', 'ext-worker')");
	ok($ret == 0 && ($jid // '') ne '' && ($out // '') eq $jid, 'claim works');
	($ret) = plain_sql("SELECT jobq.complete('$jid', '{\"done\": true}', 'ext-worker')");
	is($ret, 0, 'complete works');
	($ret, $out) = plain_sql("SELECT status, result->>'done' FROM jobq.jobs WHERE id = '$jid'");
	is($out, '2|true', 'the job is Completed with its result');
	plain_sql(
		"CREATE FUNCTION h(j jobq.jobs) RETURNS jsonb LANGUAGE sql AS \$\$ SELECT '{}'::jsonb \$\$"
	);
	($ret, $out, $err) = plain_sql(
		"SELECT jobq.register('plain', handler => 'h(jobq.jobs)'::regprocedure)");
	is($ret, 0, 'register works without shared_preload_libraries');
	like($err, qr/NOTICE:.*shared_preload_libraries/s,
		'and gives a NOTICE mentioning shared_preload_libraries');
	($ret, $out) = plain_sql("SELECT count(*) FROM jobq.worker_status");
	is($out, '0', 'worker_status is empty');
	($ret, $out) = plain_sql(
		"SELECT count(*) FROM pg_stat_activity WHERE backend_type = 'jobq worker'");
	is($out, '0', 'no jobq worker process runs');
	($ret, my $jid2) = plain_sql("SELECT jobq.enqueue('plain')");
	sleep 1;
	($ret, $out) = plain_sql("SELECT status FROM jobq.jobs WHERE id = '$jid2'");
	is($out, '0', 'a registered job stays Queued with no workers');
}
else
{
	diag('the SQL API checks without shared_preload_libraries were not run: CREATE EXTENSION failed');
}
unlike(log_since($plain, 0), qr/FATAL/, 'BUG: no FATAL in the log of the node without preload');
log_has_no_crash($plain, 'nopreload');
$plain->stop;

done_testing();
