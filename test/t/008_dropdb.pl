
# DROP DATABASE of jobq.database (src/dropdb.c).  The workers and the
# notifier are connected to it, which would make PostgreSQL refuse the DROP
# ("being accessed by other users").  jobq parks them for the command: they
# leave, wait unconnected, and connect again when the command fails or when
# CREATE DATABASE makes the database again.  A user who may not drop the
# database, or a DROP inside a transaction block, does not disturb them.
use strict;
use warnings;

use PostgreSQL::Test::Cluster;
use PostgreSQL::Test::Utils;
use Test::More;
use JobqTest;

my $node = jobq_node('dropdb', conf => "jobq.database = 'jobs_db'", create_extension => 0);

# jobs_db with jobq, a handler, and a job run by the workers
sub make_jobs_db
{
	$node->safe_psql('postgres', 'CREATE DATABASE jobs_db');
	$node->safe_psql(
		'jobs_db', q{
CREATE EXTENSION jobq;
CREATE FUNCTION h(j jobq.jobs) RETURNS jsonb LANGUAGE sql AS $$ SELECT '{"ok": true}'::jsonb $$;
SELECT jobq.register('t', handler => 'h(jobq.jobs)'::regprocedure);
});
	my $id = $node->safe_psql('jobs_db', "SELECT jobq.enqueue('t')");
	return poll_within($node, "SELECT status FROM jobq.jobs WHERE id = '$id'", '2', 60,
		'jobs_db');
}

# jobq's processes connected to jobs_db
my $connected_q =
  "SELECT count(*) FROM pg_stat_activity WHERE datname = 'jobs_db' AND backend_type IN ('jobq worker', 'jobq notifier')";

sub connected
{
	return $node->safe_psql('postgres', $connected_q);
}

ok(make_jobs_db(), 'a job runs in jobs_db');
ok(poll_within($node, $connected_q, '3', 60),
	'two workers and the notifier are connected to jobs_db');
my $pids = activity_worker_pids($node);

# ---- commands that cannot succeed leave the workers alone ----
$node->safe_psql('postgres', 'CREATE ROLE someone LOGIN');
my ($ret, $out, $err) = $node->psql('postgres', 'DROP DATABASE jobs_db',
	extra_params => [ '-U', 'someone' ]);
like($err, qr/must be owner of database jobs_db/, 'a user who does not own jobs_db cannot drop it');
($ret, $out, $err) = $node->psql('postgres', "BEGIN; DROP DATABASE jobs_db; COMMIT;");
like($err, qr/DROP DATABASE cannot run inside a transaction block/,
	'DROP DATABASE in a transaction block fails');
is(activity_worker_pids($node), $pids, '... and neither stopped the workers');

# ---- a DROP that fails: the workers come back ----
# a session connected to jobs_db makes PostgreSQL refuse the DROP (after 5 s)
my $stay = $node->background_psql('jobs_db');
$stay->query_safe('SELECT 1');
($ret, $out, $err) = $node->psql('postgres', 'DROP DATABASE jobs_db');
like($err, qr/database "jobs_db" is being accessed by other users\s+DETAIL:  There is 1 other session using the database/,
	'DROP DATABASE fails because of the other session only, not jobq\'s');
ok(poll_within($node, $connected_q, '3', 60),
	'after the failed DROP the workers and the notifier connect again');
my $again = $node->safe_psql('jobs_db', "SELECT jobq.enqueue('t')");
ok(poll_within($node, "SELECT status FROM jobq.jobs WHERE id = '$again'", '2', 60, 'jobs_db'),
	'and run jobs');
$stay->quit;

# ---- RENAME: at top level it parks the workers until the name is back ----
($ret, $out, $err) = $node->psql('postgres', 'ALTER DATABASE jobs_db RENAME TO jobs_db_old');
is($ret, 0, 'ALTER DATABASE jobs_db RENAME succeeds while jobq serves it') or diag($err);
is(connected(), '0', 'nothing is connected under the old name');
($ret, $out, $err) = $node->psql('postgres', 'ALTER DATABASE jobs_db_old RENAME TO jobs_db');
is($ret, 0, 'renaming it back succeeds') or diag($err);
ok(poll_within($node, $connected_q, '3', 60),
	'and the workers and the notifier connect again');
# in a transaction block it could roll back after the workers left: they are
# not parked, and PostgreSQL refuses the rename as it always did
($ret, $out, $err) = $node->psql('postgres',
	'BEGIN; ALTER DATABASE jobs_db RENAME TO jobs_db_old; ROLLBACK;');
like($err, qr/database "jobs_db" is being accessed by other users/,
	'a RENAME in a transaction block is refused while the workers are connected');
my $after_rename = $node->safe_psql('jobs_db', "SELECT jobq.enqueue('t')");
ok(poll_within($node, "SELECT status FROM jobq.jobs WHERE id = '$after_rename'", '2', 60, 'jobs_db'),
	'and the workers still run jobs');

# ---- DROP DATABASE succeeds ----
my $offset = -s $node->logfile;
($ret, $out, $err) = $node->psql('postgres', 'DROP DATABASE jobs_db');
is($ret, 0, 'DROP DATABASE jobs_db succeeds while jobq serves it') or diag($err);
is(connected(), '0', 'nothing is connected to jobs_db');
ok( poll_within(
		$node,
		"SELECT count(*) FROM pg_stat_activity WHERE backend_type = 'jobq worker'",
		'0', 60),
	'the workers are parked, not connected');
sleep 3;    # parked workers must not retry connections in a loop
my $log = log_since($node, $offset);
unlike($log, qr/database "jobs_db" does not exist/, 'no worker tried to connect to the dropped database');
like($log, qr/waiting for it/, 'the parked workers say why they wait');

# ---- CREATE DATABASE brings them back ----
ok(make_jobs_db(), 'after CREATE DATABASE jobs_db (and the extension) jobs run again');

log_has_no_crash($node, 'dropdb');
$node->stop;
done_testing();
