# The example external worker in C (examples/worker.c, built by test/deps.sh)
# drains jobs of a type no in-server worker runs, through the SQL API alone.
use strict;
use warnings;

use FindBin;
use lib $FindBin::RealBin;
use JobqTest;
use PostgreSQL::Test::Utils;
use Test::More;

my $worker = "$ENV{JOBQ_ROOT}/examples/worker";
plan skip_all => "examples/worker is not built (make -C examples)" unless -x $worker;

my $node = jobq_node('example');
$node->safe_psql('postgres', q{
  SELECT count(*) FROM jobq.enqueue_many('sum',
      ARRAY(SELECT jsonb_build_object('numbers', jsonb_build_array(g, g, 1))
              FROM generate_series(1, 40) g), queue => 'ext');
  SELECT jobq.enqueue('sum', '{"x": 1}', queue => 'ext');
});

my $connstr = $node->connstr('postgres');
my ($stdout, $stderr);
my $ok = IPC::Run::run([ $worker, $connstr, 'ext', 'sum', '--exit-when-idle' ],
  '>', \$stdout, '2>', \$stderr);
ok($ok, 'the example worker exits cleanly once the queue is empty') or diag($stderr);
like($stdout, qr/completed 40 jobs/, 'it reports the 40 jobs it completed');

is($node->safe_psql('postgres',
    q{SELECT count(*) FROM jobq.jobs WHERE job_type = 'sum' AND status = 2}),
  '40', 'every job with numbers is Completed');
is($node->safe_psql('postgres',
    q{SELECT bool_and((result->>'sum')::numeric = (payload->'numbers'->>0)::numeric * 2 + 1)
        FROM jobq.jobs WHERE job_type = 'sum' AND status = 2}),
  't', 'with the sum of its numbers as the result');
is($node->safe_psql('postgres',
    q{SELECT status || ' ' || (error->'errors'->0->>'code') FROM jobq.jobs
       WHERE job_type = 'sum' AND payload ? 'x'}),
  '3 ValidationError', 'the job without numbers is Failed by the worker, not retried');
is($node->safe_psql('postgres',
    q{SELECT count(*) FROM jobq.jobs WHERE job_type = 'sum' AND locked_by IS NOT NULL}),
  '0', 'no job is left held');

$node->stop;
done_testing();
