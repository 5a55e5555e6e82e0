
# jobq.register wakes an idle worker at commit (SPEC 5): jobs enqueued before
# their type was registered run at once, not at the worker's next poll.  The
# workers poll once a minute here, so only a wake-up can run the job within
# the 30 s the test waits.
use strict;
use warnings;

use PostgreSQL::Test::Cluster;
use PostgreSQL::Test::Utils;
use Test::More;
use JobqTest;

my $node = jobq_node(
	'register_wakes', conf => "jobq.poll_interval_min = '60s'
jobq.poll_interval_max = '60s'");
# workers that started before CREATE EXTENSION look for it again only after
# a minute: restart, so that they find it at once
$node->restart;

$node->safe_psql(
	'postgres', q{
CREATE FUNCTION h_late(j jobq.jobs) RETURNS jsonb LANGUAGE sql AS $$ SELECT '{"late": true}'::jsonb $$;
});
ok(poll_within($node, "SELECT count(*) FROM jobq.worker_status WHERE state = 'idle'", '2', 30),
	'both workers are idle, polling once a minute');

# the enqueue wakes a worker, which finds nothing it may claim and sleeps again
my $id = $node->safe_psql('postgres', "SELECT jobq.enqueue('late')");
sleep 1;
is($node->safe_psql('postgres', "SELECT status FROM jobq.jobs WHERE id = '$id'"),
	'0', 'a job of an unregistered type stays Queued');

$node->safe_psql('postgres',
	"SELECT jobq.register('late', handler => 'h_late(jobq.jobs)'::regprocedure)");
ok(poll_within($node, "SELECT status FROM jobq.jobs WHERE id = '$id'", '2', 30),
	'after register commits, a woken worker runs it well before its next poll');
is($node->safe_psql('postgres', "SELECT result->>'late' FROM jobq.jobs WHERE id = '$id'"),
	'true', 'with its result');

# a rolled-back registration changes nothing and runs nothing
$id = $node->safe_psql('postgres', "SELECT jobq.enqueue('never')");
$node->safe_psql('postgres', q{
BEGIN;
SELECT jobq.register('never', handler => 'h_late(jobq.jobs)'::regprocedure);
ROLLBACK;
});
sleep 2;
is($node->safe_psql('postgres', "SELECT status FROM jobq.jobs WHERE id = '$id'"),
	'0', 'a job whose registration rolled back stays Queued');

log_has_no_crash($node, 'register_wakes');
$node->stop;
done_testing();
