// Structured errors and trace ids (SPEC 8, 12, 14; issue 5).  Every failure
// path leaves one shape in jobq.jobs.error:
//   {"traceId","success":false,"status","errors":[{"code","message"}],
//    "attempt","checkpoints"}
// with exactly those keys, status a number (the code's HTTP status), attempt
// the attempt that failed, checkpoints the number of stored units and
// traceId the job's trace id.  Paths: jobq.fail() with a code, a handler's
// error (retried), a handler's 22023 (ValidationError, not retried), a
// result over the size limit, an internal error, a handler timeout, cancel
// of a running handler, the sweep of a stale external job, a unit handler
// failing after some units, and a checkpoint store that is down.  Trace
// ids given at enqueue, taken from SET jobq.traceparent, or generated are
// what the handler sees and what the error carries.  Expected failures
// leave no ERROR line in the server log; an internal error is logged once
// with the job id and trace id.
//
// Job types and queues start with er_; the other node test files use other
// names, so the files can share one database.  All waits poll with generous
// bounds: the tests assert what happens, not how fast.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import crypto from 'node:crypto';
import fs from 'node:fs';
import path from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import pg from 'pg';
import { JOB_TIMEOUT, closedPort, connConfig, dbHelpers, waitFor, withStoreLock } from './lib.mjs';

const QUEUE = 'er_q';
const EXT_QUEUE = 'er_ext_q';
const ERROR_KEYS = ['attempt', 'checkpoints', 'errors', 'status', 'success', 'traceId'];
const TRACE_RE = /^[0-9a-f]{32}$/;
const STORE_SETTINGS = ['jobq.checkpoint_url', 'jobq.store_retries', 'jobq.store_timeout'];

let pool;
// everything that identifies this file's jobs in the server log
const myJobs = new Map(); // job id -> trace id
const internal = {}; // the job that failed with InternalError: { id, trace }
let storeChanged = false; // this file changed store settings with ALTER SYSTEM
const { q, one, job, waitJob } = dbHelpers(() => pool);

const describe = (row) => `status ${row.status}, attempts ${row.attempts}, error ${
  JSON.stringify(row.error)}`;

const randomTrace = () => crypto.randomBytes(16).toString('hex');

// enqueue through the pool (or client c); remembers the job for the log check
async function enqueue(type, opts = {}, c = pool) {
  const r = await c.query(`SELECT jobq.enqueue($1, $2::jsonb, queue => $3, units => $4,
                                               max_attempts => $5, trace_id => $6) AS id`,
  [type, JSON.stringify(opts.payload ?? {}), opts.queue ?? QUEUE, opts.units ?? null,
    opts.maxAttempts ?? null, opts.traceId ?? null]);
  const { id } = r.rows[0];
  const row = await one('SELECT trace_id FROM jobq.jobs WHERE id = $1', [id]);
  myJobs.set(id, row.trace_id);
  return id;
}

// claim job id as the external worker `worker` (its type is not registered)
async function claimExternal(id, worker = 'er-ext-worker') {
  await waitFor(`external claim of ${id}`, async () => {
    const r = await q('SELECT id FROM jobq.claim($1, $2, 10)', [EXT_QUEUE, worker]);
    // this file's external jobs are claimed one at a time; a job of an
    // earlier test still queued is failed out of the way
    for (const row of r.rows) {
      if (row.id !== id) await q(`SELECT jobq.fail($1, 'cleared', retry => false)`, [row.id]);
    }
    return r.rows.some((row) => row.id === id);
  }, 60_000);
}

// The one error shape, and the expected values in it.
function checkError(row, want) {
  const e = row.error;
  assert.ok(e && typeof e === 'object', `the job has an error: ${describe(row)}`);
  assert.deepEqual(Object.keys(e).sort(), ERROR_KEYS,
    `the error has exactly the SPEC keys: ${JSON.stringify(e)}`);
  assert.equal(e.success, false, 'success is false');
  assert.equal(typeof e.status, 'number', 'status is a number');
  assert.ok(Number.isInteger(e.attempt), 'attempt is an integer');
  assert.ok(Number.isInteger(e.checkpoints), 'checkpoints is an integer');
  assert.ok(Array.isArray(e.errors) && e.errors.length === 1, 'errors is a one-element array');
  assert.deepEqual(Object.keys(e.errors[0]).sort(), ['code', 'message'], 'errors[0] has code, message');
  assert.equal(typeof e.errors[0].message, 'string');
  assert.ok(e.errors[0].message.length > 0, 'the message says something');
  assert.match(e.traceId, TRACE_RE, 'traceId is 32 lowercase hex');
  assert.equal(e.traceId, row.trace_id, "traceId is the job's trace_id");
  assert.equal(e.errors[0].code, want.code, `code: ${JSON.stringify(e)}`);
  assert.equal(e.status, want.status, `status: ${JSON.stringify(e)}`);
  assert.equal(e.attempt, want.attempt, `attempt: ${JSON.stringify(e)}`);
  assert.equal(e.checkpoints, want.checkpoints ?? 0, `checkpoints: ${JSON.stringify(e)}`);
  if (want.message) assert.match(e.errors[0].message, want.message);
  if (want.traceId) assert.equal(e.traceId, want.traceId, 'traceId is the expected trace id');
  if (row.status === 3 || row.status === 4) {
    assert.equal(row.error_message, e.errors[0].message, 'error_message is the same message');
  }
}

async function newSessionSetting(name) {
  const c = new pg.Client(connConfig());
  await c.connect();
  try {
    return (await c.query('SELECT current_setting($1) AS v', [name])).rows[0].v;
  } finally {
    await c.end();
  }
}

// ALTER SYSTEM the given settings (RESET for null), reload, and wait until
// they are in effect: new sessions see them; the idle workers get a moment
// to act on the reload signal (they reload before they claim).
async function applySettings(settings) {
  for (const [name, value] of Object.entries(settings)) {
    if (value === null) await q(`ALTER SYSTEM RESET ${name}`);
    else await q(`ALTER SYSTEM SET ${name} = '${String(value).replace(/'/g, "''")}'`);
  }
  await q('SELECT pg_reload_conf()');
  const url = settings['jobq.checkpoint_url'] ?? '';
  await waitFor(`jobq.checkpoint_url = '${url}' in new sessions`,
    async () => (await newSessionSetting('jobq.checkpoint_url')) === url, 30_000);
  await sleep(1500);
}

// The server log: $WORK/node/server.log (test/run.sh), else next to the
// data directory, else pg_current_logfile().
async function serverLog() {
  const candidates = [];
  if (process.env.WORK) candidates.push(path.join(process.env.WORK, 'node', 'server.log'));
  const r = await one(`SELECT current_setting('data_directory') AS d, pg_current_logfile() AS f`);
  candidates.push(path.join(path.dirname(r.d), 'server.log'));
  if (r.f) candidates.push(path.isAbsolute(r.f) ? r.f : path.join(r.d, r.f));
  for (const f of candidates) {
    try {
      return { file: f, text: fs.readFileSync(f, 'utf8') };
    } catch {
      // try the next one
    }
  }
  return null;
}

// ---------------------------------------------------------------- setup

before(async () => {
  assert.ok(process.env.JOBQ_PGHOST && process.env.JOBQ_PGPORT,
    'JOBQ_PGHOST and JOBQ_PGPORT are set (test/run.sh suite_node)');
  pool = new pg.Pool({ ...connConfig(), max: 4 });
  await q(`
    -- what the handler sees
    CREATE OR REPLACE FUNCTION er_ok(j jobq.jobs) RETURNS jsonb LANGUAGE sql AS $$
      SELECT jsonb_build_object('trace', current_setting('jobq.trace_id'),
                                'job', current_setting('jobq.job_id')) $$;
    -- a handler's own error, naming the attempt and the trace id it sees
    CREATE OR REPLACE FUNCTION er_boom(j jobq.jobs) RETURNS jsonb LANGUAGE plpgsql AS $$
      BEGIN
        RAISE EXCEPTION 'er boom attempt % trace %', j.attempts, current_setting('jobq.trace_id');
      END $$;
    CREATE OR REPLACE FUNCTION er_invalid(j jobq.jobs) RETURNS jsonb LANGUAGE plpgsql AS $$
      BEGIN
        RAISE EXCEPTION 'er invalid input %', j.payload->>'n' USING ERRCODE = '22023';
      END $$;
    CREATE OR REPLACE FUNCTION er_internal(j jobq.jobs) RETURNS jsonb LANGUAGE plpgsql AS $$
      BEGIN
        RAISE EXCEPTION 'er internal trouble' USING ERRCODE = 'XX000';
      END $$;
    CREATE OR REPLACE FUNCTION er_big(j jobq.jobs) RETURNS jsonb LANGUAGE sql AS $$
      SELECT jsonb_build_object('big', repeat('x', 1100000)) $$;
    CREATE OR REPLACE FUNCTION er_sleep(j jobq.jobs) RETURNS jsonb LANGUAGE plpgsql AS $$
      BEGIN
        PERFORM pg_sleep(coalesce((j.payload->>'sleep')::float8, 60));
        RETURN '{"slept": true}';
      END $$;
    CREATE OR REPLACE FUNCTION er_unit(j jobq.jobs, n int) RETURNS bytea LANGUAGE plpgsql AS $$
      BEGIN
        IF n = (j.payload->>'fail_at')::int THEN
          RAISE EXCEPTION 'er unit % failed', n;
        END IF;
        RETURN convert_to(format('er unit %s', n), 'UTF8');
      END $$;
    CREATE OR REPLACE FUNCTION er_final(j jobq.jobs) RETURNS jsonb LANGUAGE sql AS $$
      SELECT jsonb_build_object('units', j.units_total) $$;
  `);
  const reg = [
    ['er_ok', 'er_ok', {}],
    ['er_boom', 'er_boom', { max_attempts: 3 }],
    ['er_boom1', 'er_boom', { max_attempts: 1 }],
    ['er_invalid', 'er_invalid', { max_attempts: 3 }],
    ['er_internal', 'er_internal', { max_attempts: 1 }],
    ['er_big', 'er_big', { max_attempts: 3 }],
    ['er_timeout', 'er_sleep', { max_attempts: 1, timeout: '1 second' }],
    ['er_cancel', 'er_sleep', { max_attempts: 1 }],
  ];
  for (const [type, fn, o] of reg) {
    await q(`SELECT jobq.register($1, $2::regprocedure, queue => $3, max_attempts => $4,
                                  timeout => $5::interval)`,
    [type, `${fn}(jobq.jobs)`, QUEUE, o.max_attempts ?? null, o.timeout ?? null]);
  }
  await q(`SELECT jobq.register('er_units', unit_handler => 'er_unit(jobq.jobs,int)'::regprocedure,
                                finalizer => 'er_final(jobq.jobs)'::regprocedure, queue => $1,
                                max_attempts => 1)`, [QUEUE]);
});

after(async () => {
  try {
    if (pool && storeChanged) {
      for (const name of STORE_SETTINGS) await q(`ALTER SYSTEM RESET ${name}`);
      await q('SELECT pg_reload_conf()');
    }
  } finally {
    if (pool) await pool.end();
  }
});

// ---------------------------------------------------------------- trace ids

test('trace id given at enqueue: stored, seen by the handler as jobq.trace_id', async () => {
  const tid = randomTrace();
  const id = await enqueue('er_ok', { traceId: tid });
  const row = await waitJob(id);
  assert.equal(row.status, 2, describe(row));
  assert.equal(row.trace_id, tid);
  assert.deepEqual(row.result, { trace: tid, job: id },
    'the handler sees jobq.trace_id and jobq.job_id');

  const upper = randomTrace().toUpperCase();
  const id2 = await enqueue('er_ok', { traceId: upper });
  const row2 = await waitJob(id2);
  assert.equal(row2.trace_id, upper.toLowerCase(), 'a given trace id is stored in lowercase');
  assert.equal(row2.result.trace, upper.toLowerCase());
});

test('trace id from SET jobq.traceparent: stored, seen by the handler', async () => {
  const tid = randomTrace();
  const c = new pg.Client(connConfig());
  await c.connect();
  let id;
  try {
    await c.query(`SET jobq.traceparent = '00-${tid}-${crypto.randomBytes(8).toString('hex')}-01'`);
    id = await enqueue('er_ok', {}, c);
  } finally {
    await c.end();
  }
  const row = await waitJob(id);
  assert.equal(row.status, 2, describe(row));
  assert.equal(row.trace_id, tid, "the traceparent's trace id");
  assert.equal(row.result.trace, tid, 'the handler sees it');
});

test('generated trace ids: 32 lowercase hex, distinct, seen by the handler', async () => {
  const ids = [await enqueue('er_ok'), await enqueue('er_ok')];
  const rows = [];
  for (const id of ids) rows.push(await waitJob(id));
  for (const row of rows) {
    assert.equal(row.status, 2, describe(row));
    assert.match(row.trace_id, TRACE_RE);
    assert.equal(row.result.trace, row.trace_id, 'the handler sees the generated trace id');
  }
  assert.notEqual(rows[0].trace_id, rows[1].trace_id, 'each job gets its own trace id');
});

test('the error carries the trace id the handler saw: given, traceparent, generated', async () => {
  const given = randomTrace();
  const parent = randomTrace();
  const c = new pg.Client(connConfig());
  await c.connect();
  let viaParent;
  try {
    await c.query(`SET jobq.traceparent = '00-${parent}-${crypto.randomBytes(8).toString('hex')}-01'`);
    viaParent = await enqueue('er_boom1', {}, c);
  } finally {
    await c.end();
  }
  const viaGiven = await enqueue('er_boom1', { traceId: given });
  const generated = await enqueue('er_boom1');
  for (const [id, expect] of [[viaGiven, given], [viaParent, parent], [generated, null]]) {
    const row = await waitJob(id);
    assert.equal(row.status, 3, describe(row));
    const trace = expect ?? row.trace_id;
    assert.match(trace, TRACE_RE);
    checkError(row, {
      code: 'HandlerError', status: 500, attempt: 1, traceId: trace,
      message: new RegExp(`^er boom attempt 1 trace ${trace}$`),
    });
  }
});

test('enqueue_many under SET jobq.traceparent: the whole batch in that trace', async () => {
  const tid = randomTrace();
  const c = new pg.Client(connConfig());
  await c.connect();
  let ids;
  try {
    await c.query(`SET jobq.traceparent = '00-${tid}-${crypto.randomBytes(8).toString('hex')}-01'`);
    ids = (await c.query(`SELECT id FROM jobq.enqueue_many('er_ok', ARRAY['{}', '{}', '{}']::jsonb[],
                                                           queue => $1) AS id`, [QUEUE])).rows.map((r) => r.id);
  } finally {
    await c.end();
  }
  assert.equal(ids.length, 3);
  for (const id of ids) {
    const row = await waitJob(id);
    myJobs.set(id, row.trace_id);
    assert.equal(row.status, 2, describe(row));
    assert.equal(row.trace_id, tid);
    assert.equal(row.result.trace, tid, 'each handler sees the trace id');
  }
});

test('a trace id that is not 32 hex digits, or a bad traceparent, raises 22023', async () => {
  for (const bad of ['xyz', 'g'.repeat(32), 'a'.repeat(31), 'a'.repeat(33)]) {
    await assert.rejects(q(`SELECT jobq.enqueue('er_ok', trace_id => $1, queue => $2)`, [bad, QUEUE]),
      (e) => e.code === '22023', `trace_id ${bad} is refused with 22023`);
  }
  const c = new pg.Client(connConfig());
  await c.connect();
  try {
    await c.query(`SET jobq.traceparent = 'not-a-traceparent'`);
    await assert.rejects(c.query(`SELECT jobq.enqueue('er_ok', queue => $1)`, [QUEUE]),
      (e) => e.code === '22023', 'a malformed jobq.traceparent is refused with 22023');
  } finally {
    await c.end();
  }
});

// ---------------------------------------------------------------- jobq.fail()

test('fail() with code UpstreamError and no retry: Failed, status 502', async () => {
  const id = await enqueue('er_ext', { queue: EXT_QUEUE, maxAttempts: 3 });
  await claimExternal(id);
  await q(`SELECT jobq.fail($1, 'er upstream said no', code => 'UpstreamError', retry => false)`, [id]);
  const row = await job(id);
  assert.equal(row.status, 3, 'Failed without retry');
  assert.ok(row.completed_at, 'completed_at is set');
  checkError(row, { code: 'UpstreamError', status: 502, attempt: 1, message: /^er upstream said no$/ });
});

test('fail() with a code the table does not know: status 500, the code kept', async () => {
  const id = await enqueue('er_ext', { queue: EXT_QUEUE, maxAttempts: 1 });
  await claimExternal(id);
  await q(`SELECT jobq.fail($1, 'er odd failure', code => 'ErQuirkyCode')`, [id]);
  const row = await job(id);
  assert.equal(row.status, 3, 'Failed: no attempts left');
  checkError(row, { code: 'ErQuirkyCode', status: 500, attempt: 1 });
});

test('fail() with retry: requeued with run_at moved forward, then attempt 2 fails for good', async () => {
  const id = await enqueue('er_ext', { queue: EXT_QUEUE, maxAttempts: 2 });
  await claimExternal(id);
  // in one transaction, so that now() is a time before the fail()
  const c = await pool.connect();
  let mid;
  try {
    await c.query('BEGIN');
    await c.query(`SELECT jobq.fail($1, 'er first try')`, [id]);
    mid = (await c.query(`SELECT *, run_at > now() AS later FROM jobq.jobs WHERE id = $1`, [id])).rows[0];
    await c.query('COMMIT');
  } finally {
    c.release();
  }
  assert.equal(mid.status, 0, 'back to Queued');
  assert.equal(mid.later, true, 'run_at moved into the future (backoff)');
  assert.equal(mid.completed_at, null);
  checkError(mid, { code: 'HandlerError', status: 500, attempt: 1, message: /^er first try$/ });

  await claimExternal(id); // due after the backoff
  await q(`SELECT jobq.fail($1, 'er second try', code => 'Conflict')`, [id]);
  const row = await job(id);
  assert.equal(row.status, 3);
  checkError(row, { code: 'Conflict', status: 409, attempt: 2, message: /^er second try$/ });
});

test('fail() of a unit job counts its stored checkpoints', async () => {
  await withStoreLock('shared', async () => {
    const id = await enqueue('er_ext', { queue: EXT_QUEUE, maxAttempts: 1, units: 5 });
    await claimExternal(id);
    await q(`SELECT jobq.checkpoint($1, 1, '\\x01'::bytea), jobq.checkpoint($1, 2, '\\x02'::bytea)`, [id]);
    await q(`SELECT jobq.fail($1, 'er not there', code => 'NotFound')`, [id]);
    const row = await job(id);
    assert.equal(row.status, 3);
    checkError(row, { code: 'NotFound', status: 404, attempt: 1, checkpoints: 2 });
  });
});

// ---------------------------------------------------------------- handlers

test("a handler's RAISE EXCEPTION: HandlerError 500, retried up to max_attempts with backoff", async () => {
  const id = await enqueue('er_boom');
  const row = await waitJob(id, [3, 4]);
  assert.equal(row.status, 3, describe(row));
  assert.equal(row.attempts, 3, 'three attempts (max_attempts 3)');
  checkError(row, {
    code: 'HandlerError', status: 500, attempt: 3,
    message: new RegExp(`^er boom attempt 3 trace ${row.trace_id}$`),
  });
  // retries were due after a backoff of jobq.retry_delay (1 s), doubling:
  // the last requeue put run_at at least 1 s + 2 s after the enqueue
  const gap = await one(`SELECT extract(epoch FROM run_at - created_at) * 1000 AS ms
                           FROM jobq.jobs WHERE id = $1`, [id]);
  assert.ok(Number(gap.ms) >= 2990, `run_at moved forward by the backoff (${gap.ms} ms)`);
});

test('a handler raising 22023: ValidationError 400, not retried', async () => {
  const id = await enqueue('er_invalid', { payload: { n: 7 } });
  const row = await waitJob(id);
  assert.equal(row.status, 3, describe(row));
  assert.equal(row.attempts, 1, 'no retry for bad input');
  checkError(row, { code: 'ValidationError', status: 400, attempt: 1, message: /^er invalid input 7$/ });
});

test('a handler result over jobq.max_payload_bytes: PayloadTooLarge 413, not retried', async () => {
  const id = await enqueue('er_big');
  const row = await waitJob(id);
  assert.equal(row.status, 3, describe(row));
  assert.equal(row.attempts, 1, 'no retry');
  assert.equal(row.result, null, 'no result stored');
  checkError(row, { code: 'PayloadTooLarge', status: 413, attempt: 1 });
});

test('a handler raising XX000: InternalError 500', async () => {
  const id = await enqueue('er_internal');
  const row = await waitJob(id);
  assert.equal(row.status, 3, describe(row));
  checkError(row, { code: 'InternalError', status: 500, attempt: 1, message: /er internal trouble/ });
  internal.id = id;
  internal.trace = row.trace_id;
});

test('a handler running past its timeout: Timeout 504', async () => {
  const id = await enqueue('er_timeout', { payload: { sleep: 120 } });
  const row = await waitJob(id, [3, 4], 100_000);
  assert.equal(row.status, 3, describe(row));
  checkError(row, { code: 'Timeout', status: 504, attempt: 1 });
});

test('cancel of a running handler: Cancelled 409 in error, the worker is freed', async () => {
  const id = await enqueue('er_cancel', { payload: { sleep: 300 } });
  await waitFor(`the handler of ${id} sleeping in a worker`, async () => {
    const r = await one(`SELECT w.pid FROM jobq.worker_status w JOIN pg_stat_activity a ON a.pid = w.pid
                          WHERE w.job_id = $1 AND a.wait_event = 'PgSleep'`, [id]);
    return r?.pid;
  }, JOB_TIMEOUT);
  assert.equal((await one('SELECT jobq.cancel($1) AS ok', [id])).ok, true);
  const row = await job(id);
  assert.equal(row.status, 4, 'Cancelled');
  assert.ok(row.completed_at, 'completed_at is set');
  checkError(row, { code: 'Cancelled', status: 409, attempt: 1 });
  // the handler is interrupted, not waited out (it would sleep 300 s)
  await waitFor('the worker to let go of the cancelled job', async () => {
    const r = await one('SELECT count(*)::int AS n FROM jobq.worker_status WHERE job_id = $1', [id]);
    return r.n === 0;
  }, 120_000);
  const after = await job(id);
  assert.equal(after.status, 4, 'still Cancelled');
  assert.deepEqual(after.error, row.error, 'the error written by cancel() stays');
});

test('a unit handler failing at unit 3: HandlerError with checkpoints = 2', async () => {
  await withStoreLock('shared', async () => {
    const id = await enqueue('er_units', { units: 5, payload: { fail_at: 3 } });
    const row = await waitJob(id);
    assert.equal(row.status, 3, describe(row));
    assert.equal(row.units_done, 2);
    checkError(row, { code: 'HandlerError', status: 500, attempt: 1, checkpoints: 2, message: /er unit 3 failed/ });
  });
});

// ---------------------------------------------------------------- sweep, store

test('sweep of a stale external job: WorkerLost with the checkpoint count', async () => {
  await withStoreLock('shared', async () => {
    // no attempts left: Failed
    const id = await enqueue('er_ext', { queue: EXT_QUEUE, maxAttempts: 1, units: 4 });
    await claimExternal(id, 'er-lost-worker');
    for (const n of [1, 2, 3]) {
      await q('SELECT jobq.checkpoint($1, $2, $3::bytea)', [id, n, Buffer.from(`er unit ${n}`)]);
    }
    // attempts left: back to Queued, with the same error shape
    const id2 = await enqueue('er_ext', { queue: EXT_QUEUE, maxAttempts: 2, units: 2 });
    await claimExternal(id2, 'er-lost-worker');
    await q('SELECT jobq.checkpoint($1, 1, $2::bytea)', [id2, Buffer.from('er unit 1')]);

    // the holder went silent an hour ago; the sweep only takes jobs silent
    // for 30 minutes, so other files' external jobs are left alone
    await q(`UPDATE jobq.jobs SET heartbeat_at = now() - interval '1 hour' WHERE id = ANY ($1)`,
      [[id, id2]]);
    const swept = (await one(`SELECT jobq.sweep('30 minutes') AS n`)).n;
    assert.ok(swept >= 2, `sweep() reports the jobs it released (${swept})`);

    const row = await job(id);
    assert.equal(row.status, 3, `no attempts left: Failed (${describe(row)})`);
    assert.ok(row.completed_at);
    checkError(row, { code: 'WorkerLost', status: 500, attempt: 1, checkpoints: 3 });
    assert.match(row.error.errors[0].message, /er-lost-worker/, 'the message names the lost holder');

    const row2 = await job(id2);
    assert.equal(row2.status, 0, `attempts left: Queued again (${describe(row2)})`);
    checkError(row2, { code: 'WorkerLost', status: 500, attempt: 1, checkpoints: 1 });
    await claimExternal(id2);
    await q(`SELECT jobq.fail($1, 'cleared', retry => false)`, [id2]);
  });
});

test('a unit job whose checkpoint store is down: StoreError 502', async () => {
  await withStoreLock('exclusive', async () => {
    const port = await closedPort();
    try {
      storeChanged = true;
      await applySettings({
        'jobq.checkpoint_url': `http://127.0.0.1:${port}/x`,
        'jobq.store_retries': 0,
        'jobq.store_timeout': '1s',
      });
      const id = await enqueue('er_units', { units: 3 });
      const row = await waitJob(id);
      assert.equal(row.status, 3, describe(row));
      assert.equal(row.units_done, 0);
      checkError(row, { code: 'StoreError', status: 502, attempt: 1, checkpoints: 0 });
    } finally {
      await applySettings(Object.fromEntries(STORE_SETTINGS.map((n) => [n, null])));
    }
    // and with the store back, the same job type works
    const ok = await enqueue('er_units', { units: 2 });
    const row = await waitJob(ok);
    assert.equal(row.status, 2, `the store is back: ${describe(row)}`);
  });
});

// ---------------------------------------------------------------- the log

// The log as entries: a message line and the DETAIL/HINT/CONTEXT/STATEMENT
// lines of the same process that follow it.
function logEntries(text) {
  const entries = [];
  const head = /^\S+ \S+ \S+ \[(\d+)\] ([A-Z]+):/;
  for (const line of text.split('\n')) {
    const m = line.match(head);
    const last = entries.at(-1);
    if (m && last && m[1] === last.pid && /^(DETAIL|HINT|CONTEXT|STATEMENT|QUERY|LOCATION)$/.test(m[2])) {
      last.text += `\n${line}`;
    } else if (m) {
      entries.push({ pid: m[1], level: m[2], text: line });
    } else if (last) {
      last.text += `\n${line}`; // a continuation of a multi-line message
    }
  }
  return entries;
}

test('expected failures leave no ERROR line; the internal error is logged once with job and trace', async (t) => {
  const log = await serverLog();
  if (!log) {
    t.skip('the server log is not readable from here');
    return;
  }
  const entries = logEntries(log.text);
  const mine = ['er boom', 'er invalid', 'er upstream', 'er odd failure', 'er first try',
    'er second try', 'er not there', 'er unit', 'er internal trouble', 'er-lost-worker',
    ...myJobs.keys(), ...myJobs.values()];
  const noisy = entries.filter((e) => e.level === 'ERROR' && mine.some((m) => e.text.includes(m)));
  assert.deepEqual(noisy.map((e) => e.text), [], `no ERROR entry about this file's jobs in ${log.file}`);

  // the internal error: logged once, below ERROR, with its job id and trace id
  assert.ok(internal.id, 'the InternalError test ran');
  const about = entries.filter((e) => e.text.includes(internal.id));
  assert.equal(about.length, 1, `one log entry about job ${internal.id}:\n${
    about.map((e) => e.text).join('\n')}`);
  assert.match(about[0].text, /er internal trouble/);
  assert.notEqual(about[0].level, 'ERROR', 'logged below ERROR');
  assert.ok(about[0].text.includes(internal.trace),
    `the entry carries the trace id ${internal.trace}:\n${about[0].text}`);
});

test('every log entry about a job carries its trace id (issue 5: store failure, internal error)', async (t) => {
  const log = await serverLog();
  if (!log) {
    t.skip('the server log is not readable from here');
    return;
  }
  const entries = logEntries(log.text);
  const missing = [];
  let seen = 0;
  for (const [id, trace] of myJobs) {
    for (const e of entries.filter((x) => x.text.includes(id))) {
      seen++;
      if (!e.text.includes(trace)) missing.push(`job ${id} (trace ${trace}):\n${e.text}`);
    }
  }
  assert.ok(seen >= 2, 'the store failure and the internal error were logged');
  assert.deepEqual(missing, [], 'log entries naming a job without its trace id');
});
