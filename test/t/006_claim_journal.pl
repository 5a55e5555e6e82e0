
# The claim journal (src/claims.c).  The workers commit their claims without
# waiting for the WAL flush; a claim lost in a crash would give the job its
# attempt back, so each worker keeps the ids and attempts of its running
# batch in pg_stat_tmp/jobq_claims.<slot>, and at start every worker counts
# the attempt of each listed job that is Queued again with one attempt fewer.
#
# Part 1 writes journals by hand (a crash that loses a claim cannot be timed
# from a test) and restarts the server.  Part 2 checks what the workers
# write.  Part 3 is the real thing: a handler that kills its backend while
# the WAL writer is held back, so its claim is most likely lost.
use strict;
use warnings;

use PostgreSQL::Test::Cluster;
use PostgreSQL::Test::Utils;
use Test::More;
use JobqTest;

my $node = jobq_node('claim_journal', conf => "restart_after_crash = on");
my $journals = $node->data_dir . '/pg_stat_tmp';

# ---- part 1: journals written by hand ----
# the type has no registration, so no worker claims these jobs
my %job;
for my $name (qw(lost last torn counted other retried))
{
	my $max = $name eq 'last' ? 1 : 3;
	$job{$name} = $node->safe_psql('postgres',
		"SELECT jobq.enqueue('nobody_runs_me', max_attempts => $max)");
}
# 'counted' already had its attempt counted (attempts 1 in the row)
$node->safe_psql('postgres',
	"UPDATE jobq.jobs SET attempts = 1 WHERE id = '$job{counted}'");
# 'last' and 'lost' carry a forwarded auth token
$node->safe_psql('postgres',
	"INSERT INTO jobq.job_tokens VALUES ('$job{last}', 'secret-a'), ('$job{lost}', 'secret-b')");
$node->stop('fast');

ok(-d $journals, 'pg_stat_tmp exists');
# slot 7 does not exist (jobq.workers = 2): read, then removed
append_to_file("$journals/jobq_claims.7",
	"jobq claims 1\n$job{lost} 1\n$job{last} 1\n$job{counted} 1\nend\n");
# a torn write: no end line, so the whole file is ignored
append_to_file("$journals/jobq_claims.8", "jobq claims 1\n$job{torn} 1\n$job{other} 1\n");
# two journals list 'other' (both workers read both): counted once.  What
# follows an end line is left over from a longer batch, and ignored.
# 'retried' was retried while it ran (jobq.retry sets attempts to 0).
unlink("$journals/jobq_claims.0");
append_to_file("$journals/jobq_claims.0",
	"jobq claims 1\n$job{other} 1\n$job{retried} 3\nend\n$job{torn} 1\n");
append_to_file("$journals/jobq_claims.9", "jobq claims 1\n$job{other} 1\nend\n");
my $offset = -s $node->logfile;
$node->start;

ok( poll_within(
		$node,
		"SELECT count(*) FROM jobq.worker_status WHERE state = 'idle'",
		'2', 60),
	'two idle workers after the restart');
my $q = "SELECT concat_ws('|', status, attempts, error->'errors'->0->>'code') FROM jobq.jobs WHERE id = ";
is($node->safe_psql('postgres', "$q'$job{lost}'"),
	'0|1|WorkerLost', 'a job whose claim was lost is Queued with its attempt counted');
is($node->safe_psql('postgres', "$q'$job{last}'"),
	'3|1|WorkerLost', 'a job whose lost claim was its last attempt is Failed (WorkerLost)');
is($node->safe_psql('postgres', "$q'$job{counted}'"),
	'0|1', 'a job whose attempt is already counted is left alone');
is($node->safe_psql('postgres', "$q'$job{torn}'"),
	'0|0', 'a torn journal is ignored');
is($node->safe_psql('postgres', "$q'$job{other}'"),
	'0|1|WorkerLost', 'a job in two journals is counted once');
is($node->safe_psql('postgres', "$q'$job{retried}'"),
	'0|0', 'a job retried while it ran is left alone');
ok(!-e "$journals/jobq_claims.7" && !-e "$journals/jobq_claims.9",
	'the journals of slots beyond jobq.workers are removed');
my $log = log_since($node, $offset);
like($log, qr/ignoring the incomplete claim journal "pg_stat_tmp\/jobq_claims.8"/,
	'the torn journal is logged');
like($log, qr/counted the attempt of 3 jobs whose claim was lost in a crash/,
	'the counted attempts are logged');
is( $node->safe_psql(
		'postgres',
		"SELECT count(*) FROM jobq.jobs WHERE id IN ('$job{lost}', '$job{last}', '$job{other}')
		   AND error->'errors'->0->>'message' = 'the worker running this job was lost'"),
	'3',
	'the error says the worker was lost');

is($node->safe_psql('postgres', "SELECT string_agg(token, ',') FROM jobq.job_tokens"),
	'secret-b', 'the Failed job\'s forwarded token is erased, the Queued one\'s kept');

# ---- part 2: what the workers write ----
$node->safe_psql(
	'postgres', q{
CREATE TABLE seen (journal text);
-- reads this worker's journal while its batch runs
CREATE FUNCTION h_look(j jobq.jobs) RETURNS jsonb LANGUAGE plpgsql AS $$
BEGIN
  INSERT INTO seen SELECT string_agg(pg_read_file('pg_stat_tmp/' || f), '~')
    FROM pg_ls_dir('pg_stat_tmp') f WHERE f LIKE 'jobq_claims.%';
  RETURN NULL;
END $$;
SELECT jobq.register('look', handler => 'h_look(jobq.jobs)'::regprocedure);
});
my $look = $node->safe_psql('postgres', "SELECT jobq.enqueue('look', max_attempts => 5)");
ok( poll_within(
		$node, "SELECT status FROM jobq.jobs WHERE id = '$look'", '2', 60),
	'the job that reads the journals completes');
like($node->safe_psql('postgres', 'SELECT journal FROM seen'),
	qr/jobq claims 1\n\Q$look\E 1\nend\n/,
	'while its handler runs, the job is in its worker\'s journal with attempt 1');
ok( poll_within(
		$node,
		"SELECT count(*) FROM pg_ls_dir('pg_stat_tmp') f
		  WHERE f LIKE 'jobq_claims.%' AND pg_read_file('pg_stat_tmp/' || f) LIKE '%$look%'
		    AND pg_read_file('pg_stat_tmp/' || f) NOT LIKE E'jobq claims 1\\nend\\n%'",
		'0', 60),
	'after the batch, no journal lists the job');

# ---- part 3: a handler that crashes the server, with its claim most likely lost ----
# The WAL writer writes an asynchronous commit within wal_writer_delay; with
# 10 s, the claim's commit record is still in the WAL buffers when the
# handler kills its backend, unless something else flushes the WAL.
$node->safe_psql(
	'postgres', q{
ALTER SYSTEM SET wal_writer_delay = '10s';
SELECT pg_reload_conf();
CREATE FUNCTION h_poison(j jobq.jobs) RETURNS jsonb LANGUAGE plpgsql AS $$
BEGIN
  EXECUTE format('COPY (SELECT 1) TO PROGRAM %L', 'kill -9 ' || pg_backend_pid());
  RETURN '{}';
END $$;
SELECT jobq.register('poison', handler => 'h_poison(jobq.jobs)'::regprocedure);
});
sleep 1;
$offset = -s $node->logfile;
my $poison = $node->safe_psql('postgres', "SELECT jobq.enqueue('poison', max_attempts => 2)");
my $ended = poll_within($node,
	"SELECT concat_ws('|', status, attempts, error->'errors'->0->>'code') FROM jobq.jobs WHERE id = '$poison'",
	'3|2|WorkerLost', 120);
ok($ended, 'the poison job ends Failed (WorkerLost) after its two attempts');
$log = log_since($node, $offset);
my $restarts = () = $log =~ /all server processes terminated; reinitializing/g;
is($restarts, 2, 'it crashed the server twice, once per attempt');
$node->safe_psql('postgres', "SELECT jobq.unregister('poison')") if $ended;
# which way the attempts were counted depends on what else flushed the WAL
my $lost = () = $log =~ /whose claim was lost in a crash/g;
note("attempts counted from the journal: $lost of 2");

log_has_no_crash($node, 'claim_journal');
$node->stop('fast', fail_ok => 1) or $node->stop('immediate', fail_ok => 1);
done_testing();
