// The in-server workers and objects in schema public (issue 7: "what
// PostgreSQL asks of SECURITY DEFINER code", applied to code that runs as the
// bootstrap superuser).
//
// jobq's SQL functions pin search_path (test/pgtap/06_definer_hijack.sql),
// but the background workers run their own queries (registry, providers,
// pre-warm hooks, claims, completions) as the bootstrap superuser with the
// server's default search_path ("$user", public).  A role that may create
// objects in schema public (every role, in a database created before
// PostgreSQL 15 or after GRANT CREATE ON SCHEMA public) can put there an
// operator or function that is a better match than pg_catalog's for what a
// worker query uses (numeric * integer, integer ^ integer, exact-type
// overloads of format(), unnest(), array_position(), ...).  If a worker
// query picks one up, the planted code runs as superuser.
//
// This phase plants such look-alikes, each of which records the call (who,
// as which backend) and then does what pg_catalog's would, makes the
// workers load the registry, a provider, a pre-warm hook, and run a handler
// job, a unit job with a finalizer, a provider job and a failing job, and
// checks that no look-alike was ever called.
import pg from 'pg';

const EVIL = 'jobq_fuzz_evil';
const QUEUE = 'fuzz-hj-q';
const TYPES = ['fuzz-hj-h', 'fuzz-hj-u', 'fuzz-hj-p', 'fuzz-hj-f'];

// name(args) -> [result, SQL returning what pg_catalog's would]
const FUNCTIONS = [
  ['format(text, text)', 'text', 'pg_catalog.format($1, $2)'],
  ['format(text, text, text)', 'text', 'pg_catalog.format($1, $2, $3)'],
  ['format(text, text, timestamptz)', 'text', 'pg_catalog.format($1, $2, $3)'],
  ['format(text, integer, integer)', 'text', 'pg_catalog.format($1, $2, $3)'],
  ['jsonb_build_object(text, text)', 'jsonb', 'pg_catalog.jsonb_build_object($1, $2)'],
  ['jsonb_build_object(text, jsonb)', 'jsonb', 'pg_catalog.jsonb_build_object($1, $2)'],
  ['array_position(uuid[], uuid)', 'integer', 'pg_catalog.array_position($1, $2)'],
  ['array_length(text[], integer)', 'integer', 'pg_catalog.array_length($1, $2)'],
  ['cardinality(text[])', 'integer', 'pg_catalog.cardinality($1)'],
  ['concat(text, text)', 'text', 'pg_catalog.concat($1, $2)'],
  ['to_jsonb(text)', 'jsonb', 'pg_catalog.to_jsonb($1)'],
];
const SET_FUNCTIONS = [
  ['unnest(uuid[])', 'uuid', 'pg_catalog.unnest($1)'],
  ['unnest(jsonb[])', 'jsonb', 'pg_catalog.unnest($1)'],
  ['unnest(text[])', 'text', 'pg_catalog.unnest($1)'],
];
// operator, left, right, result, SQL of pg_catalog's
const OPERATORS = [
  ['*', 'numeric', 'integer', 'numeric', '$1 OPERATOR(pg_catalog.*) $2::numeric'],
  ['+', 'numeric', 'integer', 'numeric', '$1 OPERATOR(pg_catalog.+) $2::numeric'],
  ['-', 'numeric', 'integer', 'numeric', '$1 OPERATOR(pg_catalog.-) $2::numeric'],
  ['/', 'numeric', 'integer', 'numeric', '$1 OPERATOR(pg_catalog./) $2::numeric'],
  ['^', 'integer', 'integer', 'double precision', '$1::float8 OPERATOR(pg_catalog.^) $2::float8'],
  ['*', 'interval', 'integer', 'interval', '$1 OPERATOR(pg_catalog.*) $2::float8'],
];

export async function workerHijack({ su, connConfig, ok, note, short }) {
  const must = async (session, sql, params) => {
    const r = session.run ? await session.run(sql, params) : await session.query(sql, params).then(
      (x) => ({ rows: x.rows }), (e) => ({ error: { code: e.code, message: e.message } }));
    if (r.error) throw new Error(`${short(sql, 200)}: ${r.error.code} ${r.error.message}`);
    return r.rows;
  };
  let evil;
  try {
    await must(su, `DO $$ BEGIN
        IF NOT EXISTS (SELECT FROM pg_roles WHERE rolname = '${EVIL}') THEN CREATE ROLE ${EVIL} LOGIN; END IF;
      END $$`);
    // what every role could do in a database created before PostgreSQL 15
    await must(su, `GRANT CREATE ON SCHEMA public TO ${EVIL}`);
    await must(su, `CREATE OR REPLACE FUNCTION fuzzfn.h_fail(j jobq.jobs) RETURNS jsonb LANGUAGE plpgsql
                    AS $$ BEGIN RAISE EXCEPTION 'planned failure of a fuzz handler'; END $$`);

    evil = new pg.Client(connConfig(EVIL));
    evil.on('error', () => {});
    await evil.connect();
    await must(evil, `CREATE TABLE IF NOT EXISTS public.jobq_fuzz_hijacked (
        what text, by_user text, is_super boolean, backend text, at timestamptz DEFAULT clock_timestamp())`);
    await must(evil, `GRANT INSERT, SELECT ON public.jobq_fuzz_hijacked TO PUBLIC`);
    await must(evil, `CREATE OR REPLACE FUNCTION public.jobq_fuzz_note(what text) RETURNS void LANGUAGE sql AS $$
        INSERT INTO public.jobq_fuzz_hijacked (what, by_user, is_super, backend)
        SELECT what, r.rolname, r.rolsuper,
               (SELECT a.backend_type FROM pg_catalog.pg_stat_activity a
                 WHERE a.pid OPERATOR(pg_catalog.=) pg_catalog.pg_backend_pid())
          FROM pg_catalog.pg_roles r WHERE r.rolname OPERATOR(pg_catalog.=) CURRENT_USER $$`);
    // functions first: creating the operators afterwards resets every
    // cached plan, so the workers plan their queries again with all of them
    for (const [sig, result, body] of FUNCTIONS) {
      await must(evil, `CREATE OR REPLACE FUNCTION public.${sig} RETURNS ${result} LANGUAGE plpgsql AS $f$
          BEGIN PERFORM public.jobq_fuzz_note('${sig}'); RETURN ${body}; END $f$`);
    }
    for (const [sig, result, body] of SET_FUNCTIONS) {
      await must(evil, `CREATE OR REPLACE FUNCTION public.${sig} RETURNS SETOF ${result} LANGUAGE plpgsql AS $f$
          BEGIN PERFORM public.jobq_fuzz_note('${sig}'); RETURN QUERY SELECT ${body}; END $f$`);
    }
    let n = 0;
    for (const [op, left, right, result, body] of OPERATORS) {
      n++;
      await must(evil, `CREATE OR REPLACE FUNCTION public.jobq_fuzz_op${n}(${left}, ${right}) RETURNS ${result}
          LANGUAGE plpgsql AS $f$ BEGIN PERFORM public.jobq_fuzz_note('operator ${op} (${left}, ${right})');
          RETURN ${body}; END $f$`);
      await must(evil, `DO $d$ BEGIN
          IF NOT EXISTS (SELECT FROM pg_operator o WHERE o.oprname = '${op}' AND o.oprnamespace = 'public'::regnamespace
                           AND o.oprleft = '${left}'::regtype AND o.oprright = '${right}'::regtype) THEN
            CREATE OPERATOR public.${op} (LEFTARG = ${left}, RIGHTARG = ${right}, FUNCTION = public.jobq_fuzz_op${n});
          END IF; END $d$`);
    }
    await must(evil, 'TRUNCATE public.jobq_fuzz_hijacked');
    // the trap works: a session that does not pin its search_path calls it
    const probe = await evil.query(`SELECT (EXTRACT(EPOCH FROM interval '1 s') * 1000)::int8`).then(
      () => null, (e) => e);
    const probed = (await evil.query('SELECT count(*)::int AS n FROM public.jobq_fuzz_hijacked')).rows[0].n;
    ok(probe === null && probed > 0, 'look-alikes in schema public are live for a session with the default search_path',
      [probe ? probe.message : `${probed} call(s) recorded`]);
    await must(evil, 'TRUNCATE public.jobq_fuzz_hijacked');

    // make the workers load the registry, a provider and a pre-warm hook,
    // and run each kind of job
    await must(su, `SELECT jobq.register('fuzz-hj-h', 'fuzzfn.h(jobq.jobs)', queue => '${QUEUE}', timeout => '1 min')`);
    await must(su, `SELECT jobq.register('fuzz-hj-u', unit_handler => 'fuzzfn.uh(jobq.jobs,integer)',
                                         finalizer => 'fuzzfn.fin(jobq.jobs)', queue => '${QUEUE}')`);
    await must(su, `SELECT jobq.register('fuzz-hj-p', providers => ARRAY['fuzz-mock'], queue => '${QUEUE}')`);
    await must(su, `SELECT jobq.register('fuzz-hj-f', 'fuzzfn.h_fail(jobq.jobs)', queue => '${QUEUE}', max_attempts => 1)`);
    await must(su, `SELECT jobq.set_prewarm_hook('${QUEUE}', 'http://127.0.0.1:9/fuzz-warm', min_interval => '0')`);
    const ids = [];
    ids.push((await must(su, `SELECT jobq.enqueue('fuzz-hj-h', '{"a": 1}', queue => '${QUEUE}')`))[0][0]);
    ids.push((await must(su, `SELECT jobq.enqueue('fuzz-hj-u', '{"u": 1}', queue => '${QUEUE}', units => 3)`))[0][0]);
    ids.push((await must(su, `SELECT jobq.enqueue('fuzz-hj-p', '{"p": 1}', queue => '${QUEUE}')`))[0][0]);
    ids.push((await must(su, `SELECT jobq.enqueue('fuzz-hj-f', '{"f": 1}', queue => '${QUEUE}')`))[0][0]);
    let states = [];
    const deadline = Date.now() + 1000 * Number(process.env.FUZZ_WORKER_WAIT_S ?? 120);
    while (Date.now() < deadline) {
      states = await must(su, 'SELECT job_type, status FROM jobq.jobs WHERE id = ANY ($1::uuid[]) ORDER BY job_type', [ids]);
      if (states.length === ids.length && states.every(([, s]) => s >= 2)) break;
      await new Promise((r) => setTimeout(r, 250));
    }
    const expected = { 'fuzz-hj-f': 3, 'fuzz-hj-h': 2, 'fuzz-hj-p': 2, 'fuzz-hj-u': 2 };
    ok(states.length === ids.length && states.every(([t, s]) => expected[t] === s),
      'the in-server workers ran a handler job, a unit job with finalizer, a provider job and a failing job',
      [`states: ${JSON.stringify(states)}`]);

    const calls = (await evil.query(`SELECT what, by_user, is_super, backend, count(*)::int AS n
                                       FROM public.jobq_fuzz_hijacked GROUP BY 1, 2, 3, 4 ORDER BY 1`)).rows;
    ok(calls.length === 0,
      'the in-server workers never call a look-alike that a role put in schema public (on their default search_path)',
      calls.map((c) => `${c.what} called ${c.n} time(s) as ${c.by_user} (superuser: ${c.is_super}) by a "${c.backend}" backend`));
  } catch (e) {
    ok(false, 'the in-server worker search_path phase ran', [e.message]);
  } finally {
    if (evil) await evil.end().catch(() => {});
    for (const t of TYPES) await su.run('SELECT jobq.unregister($1)', [t]);
    await su.run(`SELECT jobq.drop_prewarm_hook('${QUEUE}')`);
    await su.run(`DROP OWNED BY ${EVIL} CASCADE`);
    await su.run(`REVOKE CREATE ON SCHEMA public FROM ${EVIL}`);
    const dropped = await su.run(`DROP ROLE IF EXISTS ${EVIL}`);
    if (dropped.error) note(`could not drop role ${EVIL}: ${dropped.error.message}`);
  }
}
