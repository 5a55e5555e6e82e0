
# Unit jobs and their checkpoints in the default file store
# ($PGDATA/jobq_checkpoints), through crashes, corruption and sweeps
# (SPEC 5, 6, 12):
#
#  (a) kill -9 of the worker mid-job: the job resumes, no unit counted in
#      units_done runs again;
#  (b) a corrupted and a deleted unit file: those units run again and the
#      finalizer still gets the right bytes, with and without a crash, and
#      with outputs too big to fetch ahead (the finalizer meets the damage);
#      a record whose upload finished just before a crash is adopted;
#      cancel, a handler error and a crash in the finalizer all resume
#      without re-running stored units;
#  (c) jobq.sweep(): stale external holders lose their jobs (requeued or
#      failed with the checkpoint count), fresh ones and live in-server
#      workers never do;
#  (d) pg_cron runs the sweep (the only slow part: cron fires once a minute);
#  (e) jobq.purge() deletes old jobs, their records and (soon) their files.
#
# Unit handler runs are counted with RAISE LOG lines in the server log, which
# neither a rollback nor a crash can undo.  Every wait polls with generous
# bounds: this runs on small, busy VMs and asserts what happens, not how fast.
use strict;
use warnings;

use PostgreSQL::Test::Cluster;
use PostgreSQL::Test::Utils;
use Test::More;
use Time::HiRes qw(usleep time);
use JobqTest;

# Not jobq_node(): cron.host needs $node->host before the node starts, and
# the extensions are created with the setup below.
my $node = PostgreSQL::Test::Cluster->new('checkpoints');
$node->init;
$node->append_conf('postgresql.conf', $JobqTest::BASE_CONF);
$node->append_conf(
	'postgresql.conf', qq{
# the base settings plus pg_cron (the later setting wins)
shared_preload_libraries = 'jobq, pg_cron'
# PostgreSQL::Test::Cluster turns this off; crash recovery is tested here
restart_after_crash = on
# a failed attempt is retried after 3 s (doubling)
jobq.retry_delay = '3s'
cron.database_name = 'postgres'
# the node listens on a Unix socket only: pg_cron connects through it
cron.host = '@{[ $node->host ]}'
});
$node->start;

# ---------------------------------------------------------------- helpers

# unit -> how many times the handler ran it for job $id, from the server log
sub unit_runs
{
	my ($id, $offset) = @_;
	my $log = slurp_file($node->logfile, $offset);
	my %runs;
	$runs{$1}++ while $log =~ /unit-run \Q$id\E (\d+)\b/g;
	return \%runs;
}

sub runs_string
{
	my ($runs) = @_;
	return join(' ', map { "$_:$runs->{$_}" } sort { $a <=> $b } keys %$runs);
}

# the path of a unit's file in the default store
sub unit_file
{
	my ($id, $n) = @_;
	my $user = $node->safe_psql('postgres', "SELECT user_id FROM jobq.jobs WHERE id = '$id'");
	return $node->data_dir . "/jobq_checkpoints/$user/jobs/$id/units/unit_$n.output";
}

# flip every byte of a file in place: same size, different content
sub corrupt_file
{
	my ($path) = @_;
	open(my $fh, '+<:raw', $path) or die "open $path: $!";
	local $/;
	my $data = <$fh>;
	seek($fh, 0, 0);
	print $fh ($data ^ ("\xff" x length($data)));
	close($fh);
	return length($data);
}

sub job_state
{
	my ($id, $cols) = @_;
	return $node->safe_psql('postgres', "SELECT $cols FROM jobq.jobs WHERE id = '$id'");
}

# ---------------------------------------------------------------- setup

$node->safe_psql(
	'postgres', q{
CREATE EXTENSION jobq;
CREATE EXTENSION pg_cron;

-- a unit's output: bytes that depend on job and unit, 1 kB (16 * reps bytes)
CREATE FUNCTION ck_bytes(id uuid, n int, reps int DEFAULT 64) RETURNS bytea
  LANGUAGE sql IMMUTABLE AS $$ SELECT decode(repeat(md5(id::text || ':' || n), reps), 'hex') $$;
-- what unit n of job j should hold: 1 kB, or 13 MB with payload {"big": true}
CREATE FUNCTION unit_bytes(j jobq.jobs, n int) RETURNS bytea LANGUAGE sql IMMUTABLE AS $$
  SELECT ck_bytes(j.id, n, CASE WHEN (j.payload->>'big')::bool THEN 13 * 65536 ELSE 64 END) $$;

-- units that take a little while
CREATE FUNCTION slow_unit(j jobq.jobs, n int) RETURNS bytea LANGUAGE plpgsql AS $$
BEGIN
  RAISE LOG 'unit-run % %', j.id, n;
  PERFORM pg_sleep(0.1);
  RETURN unit_bytes(j, n);
END $$;

-- Until the test opens the job's gate, unit payload.wait waits and unit
-- payload.fail raises an error.
CREATE TABLE gate (job_id uuid PRIMARY KEY);
CREATE FUNCTION gated_unit(j jobq.jobs, n int) RETURNS bytea LANGUAGE plpgsql AS $$
BEGIN
  RAISE LOG 'unit-run % %', j.id, n;
  IF n = (j.payload->>'fail')::int AND NOT EXISTS (SELECT 1 FROM gate g WHERE g.job_id = j.id) THEN
    RAISE EXCEPTION 'unit % fails until the gate opens', n;
  END IF;
  WHILE n = (j.payload->>'wait')::int AND NOT EXISTS (SELECT 1 FROM gate g WHERE g.job_id = j.id) LOOP
    PERFORM pg_sleep(0.1);
  END LOOP;
  RETURN unit_bytes(j, n);
END $$;

-- reads every unit back and lists the units whose bytes are wrong
CREATE FUNCTION check_final(j jobq.jobs) RETURNS jsonb LANGUAGE sql AS $$
  SELECT jsonb_build_object(
           'units', count(*),
           'bad', coalesce(jsonb_agg(u ORDER BY u)
                    FILTER (WHERE sha256(jobq.checkpoint_data(j.id, u)) IS DISTINCT FROM sha256(unit_bytes(j, u))),
                  '[]'))
    FROM generate_series(1, j.units_total) u $$;

-- a finalizer that waits until the gate opens
CREATE FUNCTION gated_final(j jobq.jobs) RETURNS jsonb LANGUAGE plpgsql AS $$
BEGIN
  RAISE LOG 'finalizer-run %', j.id;
  WHILE NOT EXISTS (SELECT 1 FROM gate g WHERE g.job_id = j.id) LOOP
    PERFORM pg_sleep(0.1);
  END LOOP;
  RETURN check_final(j);
END $$;

SELECT jobq.register('slow_units', unit_handler => 'slow_unit(jobq.jobs,int)'::regprocedure,
                     finalizer => 'check_final(jobq.jobs)'::regprocedure);
SELECT jobq.register('gated_units', unit_handler => 'gated_unit(jobq.jobs,int)'::regprocedure,
                     finalizer => 'check_final(jobq.jobs)'::regprocedure);
SELECT jobq.register('gated_final', unit_handler => 'gated_unit(jobq.jobs,int)'::regprocedure,
                     finalizer => 'gated_final(jobq.jobs)'::regprocedure);

CREATE FUNCTION sleepy(j jobq.jobs) RETURNS jsonb LANGUAGE plpgsql AS $$
BEGIN PERFORM pg_sleep(600); RETURN '{}'; END $$;
SELECT jobq.register('sleepy', handler => 'sleepy(jobq.jobs)'::regprocedure);
});
ok(poll_within($node, "SELECT count(*) FROM jobq.worker_status WHERE state = 'idle'", '2'),
	'two idle in-server workers');
is($node->safe_psql('postgres', "SHOW jobq.checkpoint_url"), '', 'the default store is in use');

# ---------------------------------------------------------------- (a) kill -9 mid-job

my ($a_job, $b1_job);    # for the purge at the end
{
	my $offset = -s $node->logfile;
	my $id = $node->safe_psql('postgres',
		"SELECT jobq.enqueue('slow_units', units => 40, max_attempts => 3)");
	$a_job = $id;
	ok(poll_within($node, "SELECT units_done >= 10 FROM jobq.jobs WHERE id = '$id'", 't'),
		'(a) the 40-unit job got at least 10 units done');
	my ($done, $pid) = split /\|/,
	  $node->safe_psql('postgres',
		"SELECT j.units_done, w.pid FROM jobq.jobs j JOIN jobq.worker_status w ON w.job_id = j.id
		  WHERE j.id = '$id'");
	ok(defined $pid && $pid =~ /^\d+$/, "(a) worker $pid runs it, $done units done");
	cmp_ok($done, '<', 40, '(a) the job is still mid-way when the worker is killed');
	ok(kill('KILL', $pid), "(a) kill -9 of worker $pid with $done units done");

	ok(poll_within($node, "SELECT status FROM jobq.jobs WHERE id = '$id'", '2'),
		'(a) the job completes after the crash restart');
	is(job_state($id, 'attempts'), '2', '(a) on attempt 2');
	is(job_state($id, "result->>'units' || ',' || (result->'bad')::text"),
		'40,[]', '(a) the finalizer read all 40 units with the right bytes');
	is(job_state($id, 'units_done'), '40', '(a) units_done = 40');
	is( $node->safe_psql('postgres',
			"SELECT count(*) FROM jobq.checkpoints('$id') c
			  WHERE c.bytes = 1024 AND c.sha256 = encode(sha256(ck_bytes('$id', c.unit_id)), 'hex')"),
		'40',
		'(a) checkpoints() lists the 40 units with the right sizes and hashes');

	my $runs = unit_runs($id, $offset);
	note('(a) runs per unit: ' . runs_string($runs));
	is(scalar(grep { ($runs->{$_} // 0) >= 1 } 1 .. 40), 40, '(a) every unit ran');
	is_deeply([ grep { $runs->{$_} != 1 } 1 .. $done ],
		[], "(a) none of the $done units counted before the kill ran again");
	my @twice = grep { $runs->{$_} > 1 } 1 .. 40;
	cmp_ok(scalar(@twice), '<=', 1,
		'(a) at most one unit (the one in flight) ran twice: ' . join(',', @twice));
	is_deeply([ grep { $runs->{$_} > 2 } 1 .. 40 ], [], '(a) no unit ran three times');
	ok(!grep({ $_ <= $done } @twice), '(a) the unit that ran twice was not yet counted as done');
}

# ---------------------------------------------------------------- (b) corrupt and missing blobs

# open job $id's gate
sub open_gate
{
	my ($id) = @_;
	$node->safe_psql('postgres', "INSERT INTO gate VALUES ('$id') ON CONFLICT DO NOTHING");
}

# do the checkpoints of job $id list units 1..$n with the right hashes?
sub checkpoints_right
{
	my ($id) = @_;
	return $node->safe_psql('postgres',
		"SELECT string_agg(c.unit_id::text, ',' ORDER BY c.unit_id)
		   FROM jobq.checkpoints('$id') c JOIN jobq.jobs j ON j.id = '$id'
		  WHERE c.sha256 = encode(sha256(unit_bytes(j, c.unit_id)), 'hex')
		    AND c.bytes = length(unit_bytes(j, c.unit_id))");
}

# No crash: while unit 5 waits at the gate, unit 1's file is corrupted (same
# size) and unit 2's deleted.  The runner checks every output before the
# finalizer runs and runs those two units again.
{
	my $offset = -s $node->logfile;
	my $id = $node->safe_psql('postgres',
		"SELECT jobq.enqueue('gated_units', '{\"wait\": 5}', units => 8, max_attempts => 1)");
	$b1_job = $id;
	my $pid = wait_handler_sleeping($node, $id);
	ok($pid, '(b1) unit 5 waits at the gate');
	is(job_state($id, 'units_done'), '4', '(b1) units 1-4 are done');
	my $f1 = unit_file($id, 1);
	my $f2 = unit_file($id, 2);
	is(corrupt_file($f1), 1024, '(b1) unit 1 file corrupted in place, same size');
	ok(unlink($f2), '(b1) unit 2 file deleted');
	open_gate($id);

	ok(poll_within($node, "SELECT status FROM jobq.jobs WHERE id = '$id'", '2'), '(b1) the job completes');
	is(job_state($id, 'attempts'), '1', '(b1) in its one attempt');
	is(job_state($id, "(result->'bad')::text"), '[]',
		'(b1) the finalizer read the right bytes for every unit');
	is(checkpoints_right($id), '1,2,3,4,5,6,7,8', '(b1) all 8 checkpoints are listed with the right hashes');
	is( $node->safe_psql('postgres',
			"SELECT pg_read_binary_file('$f1') = ck_bytes('$id', 1)
			    AND pg_read_binary_file('$f2') = ck_bytes('$id', 2)"),
		't', '(b1) the files of units 1 and 2 hold the right bytes again');

	my $runs = unit_runs($id, $offset);
	note('(b1) runs per unit: ' . runs_string($runs));
	is_deeply($runs, { 1 => 2, 2 => 2, map { $_ => 1 } 3 .. 8 },
		'(b1) units 1 and 2 ran twice, every other unit once');

	# checkpoint_data itself refuses a corrupted or missing blob
	corrupt_file($f1);
	my ($ret, $out, $err) = $node->psql('postgres',
		"DO \$\$ BEGIN PERFORM jobq.checkpoint_data('$id', 1);
		   EXCEPTION WHEN data_corrupted THEN RAISE NOTICE 'sqlstate XX001: %', SQLERRM; END \$\$");
	like($err, qr/sqlstate XX001: checkpoint of unit 1 of job \S+ does not match its sha256/,
		'(b1) checkpoint_data of a corrupted blob raises XX001 naming the unit');
	unlink($f2);
	($ret, $out, $err) = $node->psql('postgres',
		"DO \$\$ BEGIN PERFORM jobq.checkpoint_data('$id', 2);
		   EXCEPTION WHEN data_corrupted THEN RAISE NOTICE 'sqlstate XX001: %', SQLERRM; END \$\$");
	like($err, qr/sqlstate XX001: checkpoint of unit 2 of job \S+ is missing from the store/,
		'(b1) checkpoint_data of a missing blob raises XX001');
}

# With a crash: the same damage, then kill -9 of the worker at the gate.  On
# restart the runner drops unit 2 (missing), keeps unit 1 (right size), and
# the check before the finalizer catches unit 1's wrong hash.
{
	my $offset = -s $node->logfile;
	my $id = $node->safe_psql('postgres',
		"SELECT jobq.enqueue('gated_units', '{\"wait\": 5}', units => 8, max_attempts => 3)");
	my $pid = wait_handler_sleeping($node, $id);
	ok($pid, '(b2) unit 5 waits at the gate');
	is(job_state($id, 'units_done'), '4', '(b2) units 1-4 are done');
	corrupt_file(unit_file($id, 1));
	unlink(unit_file($id, 2));
	ok(kill('KILL', $pid), "(b2) kill -9 of worker $pid");
	ok(poll_within($node, "SELECT count(*) FROM jobq.worker_status", '2'), '(b2) the workers are back');
	open_gate($id);

	ok(poll_within($node, "SELECT status FROM jobq.jobs WHERE id = '$id'", '2'),
		'(b2) the job completes after the crash restart');
	is(job_state($id, 'attempts'), '2', '(b2) on attempt 2');
	is(job_state($id, "(result->'bad')::text"), '[]',
		'(b2) the finalizer read the right bytes for every unit');
	is(checkpoints_right($id), '1,2,3,4,5,6,7,8', '(b2) all 8 checkpoints are listed with the right hashes');
	my $runs = unit_runs($id, $offset);
	note('(b2) runs per unit: ' . runs_string($runs));
	is_deeply($runs, { 1 => 2, 2 => 2, 3 => 1, 4 => 1, 5 => 2, 6 => 1, 7 => 1, 8 => 1 },
		'(b2) units 1, 2 (damaged) and 5 (in flight) ran twice, the others once');
}

# Outputs too big to fetch ahead (5 x 13 MB > 64 MB): the finalizer itself
# meets the damage through checkpoint_data (XX001), and the runner re-runs
# the unit it names, then calls the finalizer again.
{
	my $offset = -s $node->logfile;
	my $id = $node->safe_psql('postgres',
		"SELECT jobq.enqueue('gated_units', '{\"wait\": 5, \"big\": true}', units => 5, max_attempts => 1)");
	my $pid = wait_handler_sleeping($node, $id);
	ok($pid, '(b3) unit 5 of a job with 13 MB units waits at the gate');
	is(corrupt_file(unit_file($id, 1)), 13 * 1024 * 1024, '(b3) unit 1 file (13 MB) corrupted in place');
	ok(unlink(unit_file($id, 2)), '(b3) unit 2 file deleted');
	open_gate($id);
	ok(poll_within($node, "SELECT status FROM jobq.jobs WHERE id = '$id'", '2'), '(b3) the job completes');
	is(job_state($id, "attempts || ',' || (result->'bad')::text"), '1,[]',
		'(b3) in one attempt, and the finalizer got the right bytes for every unit');
	is(checkpoints_right($id), '1,2,3,4,5', '(b3) all 5 checkpoints are listed with the right hashes');
	my $runs = unit_runs($id, $offset);
	note('(b3) runs per unit: ' . runs_string($runs));
	is_deeply($runs, { 1 => 2, 2 => 2, 3 => 1, 4 => 1, 5 => 1 },
		'(b3) units 1 and 2 ran twice, the others once');
}

# A blob whose upload finished just before a crash counts: a record not yet
# marked stored is adopted when the blob's hash matches, and dropped (the
# unit runs again) when it does not.  The state after such a crash is made
# by hand on a failed job, then jobq.retry() runs it.
{
	my $offset = -s $node->logfile;
	my $id = $node->safe_psql('postgres',
		"SELECT jobq.enqueue('gated_units', '{\"fail\": 3}', units => 4, max_attempts => 1)");
	ok(poll_within($node, "SELECT status FROM jobq.jobs WHERE id = '$id'", '3'), '(b4) the job fails at unit 3');
	is(job_state($id, "units_done || ',' || (error->>'checkpoints') || ',' || (error->'errors'->0->>'code')"),
		'2,2,HandlerError', '(b4) with 2 checkpoints');
	$node->safe_psql('postgres',
		"UPDATE jobq.unit_checkpoints SET stored = false WHERE job_id = '$id' AND unit_id IN (1, 2)");
	corrupt_file(unit_file($id, 1));
	open_gate($id);
	is($node->safe_psql('postgres', "SELECT jobq.retry('$id')"), 't', '(b4) retry');
	ok(poll_within($node, "SELECT status FROM jobq.jobs WHERE id = '$id'", '2'), '(b4) the retried job completes');
	is(job_state($id, "(result->'bad')::text"), '[]', '(b4) with the right bytes for every unit');
	is(checkpoints_right($id), '1,2,3,4', '(b4) all 4 checkpoints are listed with the right hashes');
	my $runs = unit_runs($id, $offset);
	note('(b4) runs per unit: ' . runs_string($runs));
	is_deeply($runs, { 1 => 2, 2 => 1, 3 => 2, 4 => 1 },
		'(b4) unit 2 (unstored record, intact blob) was adopted; unit 1 (corrupt blob) and unit 3 (failed) ran again');
}

# cancel stops a unit job at once and keeps its checkpoints; retry resumes
{
	my $offset = -s $node->logfile;
	my $id = $node->safe_psql('postgres',
		"SELECT jobq.enqueue('gated_units', '{\"wait\": 5}', units => 8)");
	ok(wait_handler_sleeping($node, $id), '(b5) unit 5 waits at the gate');
	is($node->safe_psql('postgres', "SELECT jobq.cancel('$id')"), 't', '(b5) cancel');
	ok(poll_within($node, "SELECT count(*) FROM jobq.worker_status WHERE job_id = '$id'", '0', 60),
		'(b5) the worker lets go of the job');
	is(job_state($id, 'status'), '4', '(b5) the job is Cancelled');
	is(checkpoints_right($id), '1,2,3,4', '(b5) its checkpoints 1-4 are kept');
	open_gate($id);
	is($node->safe_psql('postgres', "SELECT jobq.retry('$id')"), 't', '(b5) retry');
	ok(poll_within($node, "SELECT status FROM jobq.jobs WHERE id = '$id'", '2'), '(b5) the retried job completes');
	is(job_state($id, "(result->'bad')::text"), '[]', '(b5) with the right bytes for every unit');
	my $runs = unit_runs($id, $offset);
	note('(b5) runs per unit: ' . runs_string($runs));
	is_deeply($runs, { 1 => 1, 2 => 1, 3 => 1, 4 => 1, 5 => 2, 6 => 1, 7 => 1, 8 => 1 },
		'(b5) units 1-4 did not run again; unit 5 (cancelled in flight) did');
}

# A handler error requeues the job (attempts left); the next attempt resumes
# after the units already stored.
{
	my $offset = -s $node->logfile;
	my $id = $node->safe_psql('postgres',
		"SELECT jobq.enqueue('gated_units', '{\"fail\": 4}', units => 6, max_attempts => 3)");
	ok( poll_within($node,
			"SELECT status || ',' || (error->'errors'->0->>'code') || ',' || (error->>'checkpoints')
			   FROM jobq.jobs WHERE id = '$id'",
			'0,HandlerError,3'),
		'(b6) unit 4 fails: the job is requeued with 3 checkpoints');
	open_gate($id);
	ok(poll_within($node, "SELECT status FROM jobq.jobs WHERE id = '$id'", '2'), '(b6) the job completes');
	my $attempts = job_state($id, 'attempts');
	cmp_ok($attempts, '>=', 2, "(b6) on attempt $attempts");
	is(job_state($id, "(result->'bad')::text"), '[]', '(b6) with the right bytes for every unit');
	my $runs = unit_runs($id, $offset);
	note('(b6) runs per unit: ' . runs_string($runs));
	is_deeply($runs, { 1 => 1, 2 => 1, 3 => 1, 4 => $attempts, 5 => 1, 6 => 1 },
		'(b6) units 1-3 did not run again; unit 4 ran once per attempt');
}

# kill -9 while the finalizer runs: every unit is stored, none runs again
{
	my $offset = -s $node->logfile;
	my $id = $node->safe_psql('postgres',
		"SELECT jobq.enqueue('gated_final', '{}', units => 6, max_attempts => 3)");
	my $pid = wait_handler_sleeping($node, $id);
	ok($pid, '(b7) the finalizer waits at the gate');
	is(job_state($id, "status || ',' || units_done"), '1,6', '(b7) all 6 units are done');
	ok(kill('KILL', $pid), "(b7) kill -9 of worker $pid in the finalizer");
	ok(poll_within($node, "SELECT count(*) FROM jobq.worker_status", '2'), '(b7) the workers are back');
	open_gate($id);
	ok(poll_within($node, "SELECT status FROM jobq.jobs WHERE id = '$id'", '2'), '(b7) the job completes');
	is(job_state($id, "attempts || ',' || (result->'bad')::text"), '2,[]',
		'(b7) on attempt 2, with the right bytes for every unit');
	my $runs = unit_runs($id, $offset);
	note('(b7) runs per unit: ' . runs_string($runs));
	is_deeply($runs, { map { $_ => 1 } 1 .. 6 }, '(b7) no unit ran again');
	my $log = slurp_file($node->logfile, $offset);
	my $finals = () = $log =~ /finalizer-run \Q$id\E/g;
	is($finals, 2, '(b7) the finalizer ran twice');
}

# ---------------------------------------------------------------- (c) sweep

{
	# external workers: job types nobody registered, in queue q
	my $a_id = $node->safe_psql('postgres',
		"SELECT jobq.enqueue('ext', '{\"n\": 1}', queue => 'q', units => 4, max_attempts => 3)");
	my $b_id = $node->safe_psql('postgres',
		"SELECT jobq.enqueue('ext', '{\"n\": 2}', queue => 'q', units => 4, max_attempts => 1)");
	my $c_id = $node->safe_psql('postgres',
		"SELECT jobq.enqueue('ext', '{\"n\": 3}', queue => 'q', units => 4, max_attempts => 3)");
	is($node->safe_psql('postgres', "SELECT id FROM jobq.claim('q', 'ext-1')"), $a_id, '(c) ext-1 claims A');
	is($node->safe_psql('postgres', "SELECT id FROM jobq.claim('q', 'ext-2')"), $b_id, '(c) ext-2 claims B');
	is($node->safe_psql('postgres', "SELECT id FROM jobq.claim('q', 'ext-3')"), $c_id, '(c) ext-3 claims C');
	$node->safe_psql('postgres', qq{
		SELECT jobq.checkpoint('$a_id', u, ck_bytes('$a_id', u)) FROM generate_series(1, 2) u;
		SELECT jobq.checkpoint('$b_id', u, ck_bytes('$b_id', u)) FROM generate_series(1, 3) u;
	});
	is($node->safe_psql('postgres', "SELECT jobq.sweep('1 hour')"), '0',
		'(c) sweep with a long stale_after takes nothing');

	# A and B go silent; C keeps heartbeating
	sleep(3);
	my $swept = $node->safe_psql('postgres',
		"SELECT jobq.heartbeat('$c_id', 'ext-3'); SELECT jobq.sweep('2 seconds')");
	is($swept, "t\n2", '(c) C heartbeats; sweep takes the 2 silent jobs');

	is(job_state($a_id, "status || ',' || attempts || ',' || (locked_by IS NULL) || ',' || (run_at <= now())"),
		'0,1,true,true', '(c) A (attempts left) is Queued again, unlocked, due');
	is(job_state($a_id, "error->'errors'->0->>'code' || ',' || (error->>'checkpoints') || ',' || (error->>'status')"),
		'WorkerLost,2,500', '(c) A: error WorkerLost with its 2 checkpoints');
	like(job_state($a_id, 'error_message'), qr/no heartbeat from ext-1/, '(c) A: the message names the lost holder');
	is(job_state($b_id, "status || ',' || (completed_at IS NOT NULL)"), '3,true',
		'(c) B (no attempts left) is Failed');
	is(job_state($b_id, "error->'errors'->0->>'code' || ',' || (error->>'checkpoints') || ',' || (error->>'attempt')"),
		'WorkerLost,3,1', '(c) B: error WorkerLost with its 3 checkpoints, attempt 1');
	is(job_state($c_id, "status || ',' || locked_by"), '1,ext-3', '(c) C is still held by ext-3');

	# the old holder of A has lost it
	is($node->safe_psql('postgres', "SELECT jobq.heartbeat('$a_id', 'ext-1')"), 'f',
		'(c) heartbeat of the old holder returns false');
	my ($ret, $out, $err) = $node->psql('postgres',
		"SELECT jobq.complete('$a_id', '{}', 'ext-1')");
	isnt($ret, 0, '(c) complete by the old holder fails');

	# A resumes from its checkpoints with a new holder
	is($node->safe_psql('postgres', "SELECT id || ',' || attempts FROM jobq.claim('q', 'ext-4')"),
		"$a_id,2", '(c) ext-4 claims A again, attempt 2');
	is( $node->safe_psql('postgres',
			"SELECT string_agg(unit_id::text, ',' ORDER BY unit_id) FROM jobq.checkpoints('$a_id')"),
		'1,2', '(c) A keeps its checkpoints 1 and 2');
	is( $node->safe_psql('postgres',
			"SELECT bool_and(jobq.checkpoint_data('$a_id', u) = ck_bytes('$a_id', u)) FROM generate_series(1, 2) u"),
		't', '(c) and their data');
	is( $node->safe_psql('postgres',
			"SELECT jobq.checkpoint_data('$a_id', 3) IS NULL"),
		't', '(c) unit 3 has no checkpoint yet');
	$node->safe_psql('postgres', qq{
		SELECT jobq.checkpoint('$a_id', u, ck_bytes('$a_id', u)) FROM generate_series(3, 4) u;
		SELECT jobq.complete('$a_id', '{"done": true}', 'ext-4');
		SELECT jobq.complete('$c_id', '{"done": true}', 'ext-3');
	});
	is(job_state($a_id, "status || ',' || units_done"), '2,4', '(c) A completes with 4 units');

	($ret, $out, $err) = $node->psql('postgres', "SELECT jobq.sweep('-1 s')");
	like($err, qr/stale_after must not be negative/, '(c) a negative stale_after is refused');

	# a live in-server holder is never taken, whatever its heartbeat
	my $s_id = $node->safe_psql('postgres', "SELECT jobq.enqueue('sleepy')");
	my $pid = wait_handler_sleeping($node, $s_id);
	ok($pid, '(c) a long handler runs in an in-server worker');
	$node->safe_psql('postgres',
		"UPDATE jobq.jobs SET heartbeat_at = now() - interval '1 day' WHERE id = '$s_id'");
	is($node->safe_psql('postgres', "SELECT jobq.sweep('0 s')"), '0',
		"(c) sweep('0 s') takes nothing from a live in-server worker");
	is($node->safe_psql('postgres', "SELECT jobq.sweep()"), '0', '(c) nor does sweep()');
	like(job_state($s_id, "status || ',' || locked_by"), qr/^1,jobq:/, '(c) the job is still Processing in the worker');
	is($node->safe_psql('postgres', "SELECT jobq.cancel('$s_id')"), 't', '(c) cancel it');
	ok(poll_within($node, "SELECT status FROM jobq.jobs WHERE id = '$s_id'", '4'), '(c) it is Cancelled');
	ok(poll_within($node, "SELECT count(*) FROM jobq.worker_status WHERE job_id IS NULL", '2'),
		'(c) both workers are free again');
}

# ---------------------------------------------------------------- (d) pg_cron

{
	my $cmd = q{SELECT jobq.sweep('1 second')};
	my $id = $node->safe_psql('postgres',
		"SELECT jobq.enqueue('ext', queue => 'cronq', units => 2, max_attempts => 3)");
	is($node->safe_psql('postgres', "SELECT id FROM jobq.claim('cronq', 'ext-cron')"), $id,
		'(d) an external worker claims a job and goes silent');
	$node->safe_psql('postgres', "SELECT jobq.checkpoint('$id', 1, ck_bytes('$id', 1))");
	sleep(2);
	$node->safe_psql('postgres',
		"SELECT cron.schedule('jobq-sweep', '* * * * *', \$c\$$cmd\$c\$)");
	my $t0 = time;
	# cron fires at the start of each minute: give it a few
	ok( poll_within($node,
			"SELECT count(*) > 0 FROM cron.job_run_details d JOIN cron.job j USING (jobid)
			  WHERE j.jobname = 'jobq-sweep' AND d.status = 'succeeded' AND d.command = \$c\$$cmd\$c\$",
			't', 200),
		'(d) pg_cron ran the sweep successfully');
	note(sprintf('(d) first successful cron run after %.0f s', time - $t0));
	ok( poll_within($node,
			"SELECT status || ',' || (error->'errors'->0->>'code') || ',' || (error->>'checkpoints')
			   FROM jobq.jobs WHERE id = '$id'",
			'0,WorkerLost,1', 200),
		'(d) the stale job was requeued by the cron sweep, with its checkpoint count');
	$node->safe_psql('postgres', "SELECT cron.unschedule('jobq-sweep')");
}

# ---------------------------------------------------------------- (e) purge

# purge deletes old terminal jobs with their checkpoint records at once; the
# idle workers then delete their files.  Newer jobs keep theirs.
{
	my $a_dir = unit_file($a_job, 1) =~ s{/units/unit_1\.output$}{}r;
	my $b1_file = unit_file($b1_job, 3);
	ok(-d $a_dir, "(e) job (a)'s directory is there");
	$node->safe_psql('postgres',
		"UPDATE jobq.jobs SET completed_at = now() - interval '30 days' WHERE id = '$a_job'");
	is($node->safe_psql('postgres', "SELECT jobq.purge('7 days')"), '1', '(e) purge deletes the one old job');
	is( $node->safe_psql('postgres',
			"SELECT (SELECT count(*) FROM jobq.jobs WHERE id = '$a_job') || ','
			     || (SELECT count(*) FROM jobq.unit_checkpoints WHERE job_id = '$a_job')"),
		'0,0', '(e) its row and checkpoint records are gone');
	my $start = time;
	usleep(100_000) while -e $a_dir && time - $start < 60;
	ok(!-e $a_dir, "(e) the workers deleted its files and directory");
	ok(-f $b1_file, '(e) a newer job keeps its files');
	is(checkpoints_right($b1_job), '1,2,3,4,5,6,7,8', '(e) and its checkpoints');
}

# The deletion queue as a crash would leave it.  A lease counts an attempt:
# an entry whose earlier attempts all ended with their worker (attempts at
# the limit of 20) is given up with a WARNING, not leased forever.  A NULL
# among the URIs is skipped.
{
	my $offset = -s $node->logfile;
	my ($given_up, $null_uri) = split /\|/, $node->safe_psql(
		'postgres', q{
INSERT INTO jobq.blob_deletions (job_id, uris, attempts)
  VALUES (gen_random_uuid(), ARRAY['file:///nonexistent/jobq-test/unit_1.output'], 20),
         (gen_random_uuid(), ARRAY[NULL, NULL]::text[], 0)
  RETURNING job_id
}) =~ s/\n/|/r;
	ok( poll_within(
			$node,
			"SELECT count(*) FROM jobq.blob_deletions WHERE job_id IN ('$given_up', '$null_uri')",
			'0', 60),
		'(e) both entries leave the deletion queue');
	my $log = log_since($node, $offset);
	like($log, qr/WARNING:  jobq: gave up deleting the blobs of purged job \Q$given_up\E after 20 attempts/,
		'(e) the entry whose attempts ran out is given up with a WARNING');
	unlike($log, qr/(?:WARNING|LOG|ERROR):  jobq: .*\Q$null_uri\E/,
		'(e) the entry with NULL URIs is done without a word');
	unlike($log, qr/ERROR:.*(?:purged|blob)/, '(e) and neither raised an error');
}

# ---------------------------------------------------------------- the log

{
	my $log = slurp_file($node->logfile);
	unlike($log, qr/PANIC/, 'no PANIC in the server log');
	unlike($log, qr/was terminated by signal (?:11|6|7)\b/, 'no process died of SIGSEGV/SIGABRT/SIGBUS');
}

$node->stop;
done_testing();
