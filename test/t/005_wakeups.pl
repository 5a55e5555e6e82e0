
# Which commits wake an idle in-server worker (SPEC 5).  The workers poll
# once a minute here, so only a wake-up can run a job within the 30 s the
# test waits.
#  - jobq.register wakes one: jobs enqueued before their type was registered
#    run at once, not at the worker's next poll.
#  - an enqueue of a type no worker serves (left to external workers) wakes
#    none: otherwise every enqueue makes an idle worker poll for nothing.
use strict;
use warnings;

use PostgreSQL::Test::Cluster;
use PostgreSQL::Test::Utils;
use Test::More;
use JobqTest;

my $node = jobq_node(
	'wakeups', conf => "jobq.poll_interval_min = '60s'
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

# Each poll of a worker reports its activity (state "active", then "idle"),
# which moves state_change in pg_stat_activity.
sub last_poll
{
	return $node->safe_psql('postgres',
		"SELECT max(state_change) FROM pg_stat_activity WHERE backend_type = 'jobq worker'");
}
sleep 1;    # worker_status says idle during a poll too: let the first polls end
my $before = last_poll();
for my $i (1 .. 10)
{
	$node->safe_psql('postgres', "SELECT jobq.enqueue('late', jsonb_build_object('i', $i))");
}
sleep 3;
is(last_poll(), $before, 'ten enqueues of a type no worker serves made no worker poll');
my $id = $node->safe_psql('postgres',
	"SELECT id FROM jobq.jobs WHERE job_type = 'late' ORDER BY id LIMIT 1");
is($node->safe_psql('postgres', "SELECT count(*) FROM jobq.jobs WHERE status = 0"),
	'10', 'and the jobs stay Queued');

$node->safe_psql('postgres',
	"SELECT jobq.register('late', handler => 'h_late(jobq.jobs)'::regprocedure)");
ok(poll_within($node, "SELECT count(*) FROM jobq.jobs WHERE job_type = 'late' AND status = 2", '10', 30),
	'after register commits, a woken worker runs them well before its next poll');
isnt(last_poll(), $before, 'and the worker polled (the control for the check above)');
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

log_has_no_crash($node, 'wakeups');
$node->stop;
done_testing();
