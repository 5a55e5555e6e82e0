// Progress in real time (SPEC 11, issue 5): a node `pg` client LISTENs on
// jobq_progress and checks what arrives, for a unit job run by the
// in-server workers, a whole-job handler, and an external worker's
// jobq.progress() calls.  Every payload must have exactly the SPEC's fields
// with the right types and never carry a job's payload, result or error.
// Also: notifications are sent at commit (a rolled-back progress() sends
// nothing), a 20,000-character message is cut to keep the payload under
// PostgreSQL's 8000-byte limit, and jobq.notify_progress = off silences it.
//
// "Nothing arrived" is never judged by waiting a while: after the action
// under test commits, a marker is queued the way jobq queues its own
// notifications (jobq._notify of a made-up row).  They are sent in queue
// order, so once the marker is here, anything the action sent is here too.
//
// Job types and queues start with pr_; the other node test files use other
// names, so the files can share one database.  All waits poll with generous
// bounds: the tests assert what happens, not how fast.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import crypto from 'node:crypto';
import { setTimeout as sleep } from 'node:timers/promises';
import pg from 'pg';
import { JOB_TIMEOUT, connConfig, dbHelpers, waitFor, withStoreLock } from './lib.mjs';

const QUEUE = 'pr_q';
const EXT_QUEUE = 'pr_ext_q';
const SPEC_KEYS = ['job_id', 'job_type', 'message', 'percent', 'status', 'units_done',
  'units_total', 'user_id'];
const UUID_RE = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/;

// secret-looking strings put in payloads and results: they must never be
// seen on the channel
const SECRET = `sk_live_${crypto.randomBytes(16).toString('hex')}`;
const RESULT_SECRET = `rs_${crypto.randomBytes(16).toString('hex')}`;

let pool;
let listener;
const MARKER_TYPE = `pr_marker_${process.pid}`;
const received = []; // every jobq_progress notification: { raw, json }
const markers = new Set();
let waiters = [];
const { q, one, waitJob } = dbHelpers(() => pool);

// the notifications received so far for one job, in arrival order
const notesFor = (id) => received.filter((n) => n.json && n.json.job_id === id);

// wait until the notifications of job id satisfy pred
async function waitNotes(what, id, pred, timeoutMs = JOB_TIMEOUT) {
  return waitFor(what, () => {
    const notes = notesFor(id);
    return pred(notes) ? notes : null;
  }, timeoutMs, 50);
}

// Send a marker through jobq's own path and wait for it: jobq hands its
// notifications to the jobq notifier, which sends them in the order their
// transactions queued them, so once the marker (queued after the action
// under test committed) is here, anything the action sent is here too.
// notify_progress is forced on for the marker's own transaction.
async function flush() {
  const tag = crypto.randomUUID();
  await q(`BEGIN; SET LOCAL jobq.notify_progress = on;
    SELECT jobq._notify(jsonb_populate_record(NULL::jobq.jobs, jsonb_build_object(
      'id', '${tag}', 'user_id', '${tag}', 'job_type', '${MARKER_TYPE}', 'status', 0)));
    COMMIT`);
  await waitFor(`marker ${tag}`, () => markers.has(tag), 60_000, 20);
}

// Wait until a new session sees a setting changed with ALTER SYSTEM + reload.
async function waitForSetting(name, value) {
  await waitFor(`${name} = ${value} in new sessions`, async () => {
    const c = new pg.Client(connConfig());
    await c.connect();
    try {
      return (await c.query('SELECT current_setting($1) AS v', [name])).rows[0].v === value;
    } finally {
      await c.end();
    }
  }, 30_000);
}

// Exactly the SPEC's fields, each of the right type.
function checkShape(note) {
  const p = note.json;
  assert.deepEqual(Object.keys(p).sort(), SPEC_KEYS,
    `payload has exactly the SPEC fields: ${note.raw}`);
  assert.match(p.job_id, UUID_RE, 'job_id is a uuid string');
  assert.match(p.user_id, UUID_RE, 'user_id is a uuid string');
  assert.equal(typeof p.job_type, 'string', 'job_type is a string');
  assert.ok(Number.isInteger(p.status) && p.status >= 0 && p.status <= 4,
    `status is an integer status code: ${note.raw}`);
  assert.ok(Number.isInteger(p.percent) && p.percent >= 0 && p.percent <= 100,
    `percent is an integer in 0..100: ${note.raw}`);
  assert.ok(p.message === null || typeof p.message === 'string',
    `message is a string or null: ${note.raw}`);
  assert.ok(Number.isInteger(p.units_done) && p.units_done >= 0,
    `units_done is a non-negative integer: ${note.raw}`);
  assert.ok(p.units_total === null || (Number.isInteger(p.units_total) && p.units_total > 0),
    `units_total is a positive integer or null: ${note.raw}`);
  assert.ok(Buffer.byteLength(note.raw) < 8000, 'payload under 8000 bytes');
}

// nothing of the job's payload, result or error on the channel
function checkNoSecrets(notes) {
  for (const n of notes) {
    assert.ok(!n.raw.includes(SECRET), `the payload's secret is not in ${n.raw}`);
    assert.ok(!n.raw.includes(RESULT_SECRET), `the result's secret is not in ${n.raw}`);
    for (const k of ['payload', 'result', 'error', 'error_message', 'trace_id', 'locked_by']) {
      assert.ok(!(k in n.json), `no "${k}" field in ${n.raw}`);
    }
  }
}

// A job claimed by this test as an external worker (type pr_ext is not
// registered, so the in-server workers leave it alone).
async function claimExternal(payload = {}) {
  const user = crypto.randomUUID();
  const id = (await one(`SELECT jobq.enqueue('pr_ext', $1::jsonb, user_id => $2, queue => $3) AS id`,
    [JSON.stringify(payload), user, EXT_QUEUE])).id;
  const claimed = await waitFor(`claim of ${id}`, async () => {
    const r = await q(`SELECT id FROM jobq.claim($1, 'pr-ext-worker', 1, ARRAY['pr_ext'])`, [EXT_QUEUE]);
    // the queue holds only this file's jobs, and they are claimed one at a
    // time in id order; finish any other claimed job and try again
    for (const row of r.rows) {
      if (row.id !== id) await q('SELECT jobq.complete($1)', [row.id]);
    }
    return r.rows.some((row) => row.id === id);
  }, 30_000);
  assert.ok(claimed);
  return { id, user };
}

// ---------------------------------------------------------------- setup

before(async () => {
  assert.ok(process.env.JOBQ_PGHOST && process.env.JOBQ_PGPORT,
    'JOBQ_PGHOST and JOBQ_PGPORT are set (test/run.sh suite_node)');
  pool = new pg.Pool({ ...connConfig(), max: 4 });

  listener = new pg.Client(connConfig());
  await listener.connect();
  listener.on('notification', (msg) => {
    if (msg.channel !== 'jobq_progress') return;
    let json = null;
    try {
      json = JSON.parse(msg.payload);
    } catch {
      json = null;
    }
    if (json && json.job_type === MARKER_TYPE) {
      markers.add(json.job_id);
      return;
    }
    received.push({ raw: msg.payload, json, pid: msg.processId, at: performance.now() });
  });
  await listener.query('LISTEN jobq_progress');

  await q(`
    -- a unit's output; a short pause so that units are told apart in time
    CREATE OR REPLACE FUNCTION pr_unit(j jobq.jobs, n int) RETURNS bytea
      LANGUAGE plpgsql AS $$
      BEGIN
        PERFORM pg_sleep(0.02);
        RETURN convert_to(format('unit %s of %s', n, j.id), 'UTF8');
      END $$;
    CREATE OR REPLACE FUNCTION pr_final(j jobq.jobs) RETURNS jsonb
      LANGUAGE sql AS $$
        SELECT jsonb_build_object('units', j.units_total, 'token', j.payload->>'result_token') $$;
    -- reports progress twice, then fails if the payload says so
    CREATE OR REPLACE FUNCTION pr_steps(j jobq.jobs) RETURNS jsonb
      LANGUAGE plpgsql AS $$
      BEGIN
        PERFORM jobq.progress(j.id, 25, 'a quarter');
        PERFORM jobq.progress(j.id, 75, 'three quarters');
        IF (j.payload->>'fail')::boolean THEN
          RAISE EXCEPTION 'pr steps failed';
        END IF;
        RETURN '{"steps": 2}';
      END $$;
    CREATE OR REPLACE FUNCTION pr_whole(j jobq.jobs) RETURNS jsonb
      LANGUAGE sql AS $$
        SELECT jsonb_build_object('ok', true, 'token', j.payload->>'result_token') $$;
  `);
  await q(`SELECT jobq.register('pr_units', unit_handler => 'pr_unit(jobq.jobs,int)'::regprocedure,
                                finalizer => 'pr_final(jobq.jobs)'::regprocedure, queue => $1)`,
  [QUEUE]);
  await q(`SELECT jobq.register('pr_whole', 'pr_whole(jobq.jobs)'::regprocedure, queue => $1)`,
    [QUEUE]);
  await q(`SELECT jobq.register('pr_steps', 'pr_steps(jobq.jobs)'::regprocedure, queue => $1,
                                max_attempts => 1)`, [QUEUE]);
});

after(async () => {
  try {
    if (pool) {
      await q('ALTER SYSTEM RESET jobq.notify_progress');
      await q('SELECT pg_reload_conf()');
    }
  } finally {
    if (listener) await listener.end();
    if (pool) await pool.end();
  }
});

// ---------------------------------------------------------------- tests

test('a 10-unit job: claim, one notification per unit in order, completion; no payload or result', async () => {
  await withStoreLock('shared', async () => {
    const user = crypto.randomUUID();
    const units = 10;
    const id = (await one(`SELECT jobq.enqueue('pr_units', $1::jsonb, user_id => $2, queue => $3,
                                               units => $4, max_attempts => 1) AS id`,
    [JSON.stringify({ api_key: SECRET, result_token: RESULT_SECRET }), user, QUEUE, units])).id;

    const job = await waitJob(id);
    assert.equal(job.status, 2, `the job completed: ${JSON.stringify(job.error)}`);
    assert.equal(job.result.token, RESULT_SECRET, 'the result holds the result secret');
    await flush();
    const notes = notesFor(id);

    for (const n of notes) {
      checkShape(n);
      assert.equal(n.json.user_id, user, 'user_id is the job owner');
      assert.equal(n.json.job_type, 'pr_units', 'job_type');
      assert.equal(n.json.units_total, units, 'units_total');
    }
    checkNoSecrets(notes);

    const statuses = notes.map((n) => n.json.status);
    assert.deepEqual(statuses, [...Array(units + 1).fill(1), 2],
      `claim, ${units} units, completion: ${notes.map((n) => n.raw).join('\n')}`);

    const running = notes.filter((n) => n.json.status === 1);
    assert.deepEqual(running.map((n) => n.json.units_done), [...Array(units + 1).keys()],
      'units_done goes 0, 1, ..., 10 in order');
    const percents = running.map((n) => n.json.percent);
    for (let i = 1; i < percents.length; i++) {
      assert.ok(percents[i] > percents[i - 1], `percent increases: ${percents}`);
    }
    assert.equal(percents[0], 0, 'percent 0 at the claim');
    assert.equal(percents.at(-1), 100, 'percent 100 after the last unit');
    for (const n of running.slice(1)) {
      assert.equal(n.json.message, `${n.json.units_done} of ${units} units done`,
        'a unit notification says "N of M units done"');
    }

    const done = notes.at(-1).json;
    assert.equal(done.status, 2);
    assert.equal(done.percent, 100, 'percent 100 at completion');
    assert.equal(done.units_done, units, 'units_done = units at completion');
  });
});

test('a whole-job handler: its claim and its completion each notify', async () => {
  const user = crypto.randomUUID();
  const id = (await one(`SELECT jobq.enqueue('pr_whole', $1::jsonb, user_id => $2, queue => $3) AS id`,
    [JSON.stringify({ password: SECRET, result_token: RESULT_SECRET }), user, QUEUE])).id;
  const job = await waitJob(id);
  assert.equal(job.status, 2, `the job completed: ${JSON.stringify(job.error)}`);
  assert.equal(job.result.token, RESULT_SECRET);
  await flush();
  const notes = notesFor(id);
  notes.forEach(checkShape);
  checkNoSecrets(notes);
  assert.deepEqual(notes.map((n) => n.json.status), [1, 2],
    `one notification at the claim, one at completion: ${notes.map((n) => n.raw).join('\n')}`);
  for (const n of notes) {
    assert.equal(n.json.user_id, user);
    assert.equal(n.json.job_type, 'pr_whole');
    assert.equal(n.json.units_total, null, 'units_total is null for a whole job');
    assert.equal(n.json.units_done, 0);
  }
  assert.equal(notes[1].json.percent, 100, 'percent 100 at completion');
});

test('progress() inside a handler: sent with the completion, dropped when the handler fails', async () => {
  const ok = (await one(`SELECT jobq.enqueue('pr_steps', '{}', queue => $1) AS id`, [QUEUE])).id;
  const bad = (await one(`SELECT jobq.enqueue('pr_steps', '{"fail": true}', queue => $1) AS id`,
    [QUEUE])).id;
  const okRow = await waitJob(ok);
  const badRow = await waitJob(bad);
  assert.equal(okRow.status, 2, JSON.stringify(okRow.error));
  assert.equal(badRow.status, 3, 'the failing handler failed the job');
  await flush();
  const okNotes = notesFor(ok);
  okNotes.forEach(checkShape);
  assert.deepEqual(okNotes.map((n) => [n.json.status, n.json.percent, n.json.message]),
    [[1, 0, null], [1, 25, 'a quarter'], [1, 75, 'three quarters'], [2, 100, 'three quarters']],
    `claim, the handler's two progress() calls, completion:\n${okNotes.map((n) => n.raw).join('\n')}`);
  const badNotes = notesFor(bad);
  badNotes.forEach(checkShape);
  assert.deepEqual(badNotes.map((n) => [n.json.status, n.json.percent]), [[1, 0], [3, 0]],
    `the failed handler's progress() is rolled back with it:\n${badNotes.map((n) => n.raw).join('\n')}`);
  assert.ok(badNotes.every((n) => !n.raw.includes('pr steps failed')), 'the error is not on the channel');
});

test('an external worker: claim, progress(id, 40, msg), complete each notify, in order', async () => {
  const { id, user } = await claimExternal({ token: SECRET });
  await q(`SELECT jobq.progress($1, 40, 'msg')`, [id]);
  await q(`SELECT jobq.progress($1, 75, NULL)`, [id]);
  await q(`SELECT jobq.complete($1, $2::jsonb)`, [id, JSON.stringify({ token: RESULT_SECRET })]);
  await flush();
  const notes = notesFor(id);
  notes.forEach(checkShape);
  checkNoSecrets(notes);
  assert.deepEqual(notes.map((n) => [n.json.status, n.json.percent]),
    [[1, 0], [1, 40], [1, 75], [2, 100]],
    `claim, progress 40, progress 75, completion: ${notes.map((n) => n.raw).join('\n')}`);
  const p40 = notes[1].json;
  assert.equal(p40.message, 'msg', 'the message of progress()');
  assert.equal(p40.user_id, user);
  assert.equal(p40.job_type, 'pr_ext');
  assert.equal(p40.job_id, id);
  assert.equal(notes[2].json.message, 'msg', 'a NULL message keeps the previous one');
});

test('every status change notifies: checkpoint(), fail with retry, fail, retry(), sweep, cancel', async () => {
  await withStoreLock('shared', async () => {
    const user = crypto.randomUUID();
    const id = (await one(`SELECT jobq.enqueue('pr_ext', $1::jsonb, user_id => $2, queue => $3,
                                               units => 3, max_attempts => 2) AS id`,
    [JSON.stringify({ secret: SECRET }), user, EXT_QUEUE])).id;
    const claim = () => waitFor(`claim of ${id}`, async () => {
      const r = await q(`SELECT id FROM jobq.claim($1, 'pr-ext-worker', 1, ARRAY['pr_ext'])`, [EXT_QUEUE]);
      for (const row of r.rows) if (row.id !== id) await q('SELECT jobq.complete($1)', [row.id]);
      return r.rows.some((row) => row.id === id);
    }, 60_000);

    await claim(); // 0 -> 1
    await q(`SELECT jobq.checkpoint($1, 1, '\\x0102'::bytea)`, [id]); // a unit stored
    await q(`SELECT jobq.fail($1, 'pr first failure')`, [id]); // 1 -> 0 (backoff)
    await claim(); // 0 -> 1, once due
    await q(`SELECT jobq.fail($1, 'pr second failure')`, [id]); // 1 -> 3 (no attempts left)
    assert.equal((await one('SELECT jobq.retry($1) AS ok', [id])).ok, true); // 3 -> 0
    await claim(); // 0 -> 1
    await q(`UPDATE jobq.jobs SET heartbeat_at = now() - interval '1 hour' WHERE id = $1`, [id]);
    await q(`SELECT jobq.sweep('30 minutes')`); // 1 -> 0 (attempts left after retry)
    assert.equal((await one('SELECT jobq.cancel($1) AS ok', [id])).ok, true); // 0 -> 4
    await flush();

    const notes = notesFor(id);
    notes.forEach(checkShape);
    checkNoSecrets(notes);
    for (const n of notes) {
      assert.equal(n.json.user_id, user);
      assert.equal(n.json.job_type, 'pr_ext');
      assert.equal(n.json.units_total, 3);
    }
    assert.deepEqual(notes.map((n) => n.json.status), [1, 1, 0, 1, 3, 0, 1, 0, 4],
      `claim, checkpoint, requeue, claim, Failed, retry, claim, sweep, Cancelled:\n${
        notes.map((n) => n.raw).join('\n')}`);
    const ckpt = notes[1].json;
    assert.deepEqual([ckpt.units_done, ckpt.percent, ckpt.message], [1, 33, '1 of 3 units done'],
      'checkpoint() reports the unit done');
    for (const n of notes) {
      assert.ok(!n.raw.includes('pr first failure') && !n.raw.includes('pr second failure'),
        `the job's error is not on the channel: ${n.raw}`);
    }
  });
});

test('progress() sends at commit: a rolled-back progress() sends nothing', async () => {
  const { id } = await claimExternal();
  const c = await pool.connect();
  try {
    await c.query('BEGIN');
    await c.query(`SELECT jobq.progress($1, 55, 'rolled back')`, [id]);
    await flush(); // committed by another session while the progress is pending
    assert.equal(notesFor(id).filter((n) => n.json.percent === 55).length, 0,
      'nothing is sent before commit');
    await c.query('ROLLBACK');
  } finally {
    c.release();
  }
  await q(`SELECT jobq.progress($1, 60, 'committed')`, [id]);
  await flush();
  const notes = notesFor(id);
  assert.equal(notes.filter((n) => n.json.percent === 55 || n.json.message === 'rolled back').length,
    0, `no notification of the rolled-back progress(): ${notes.map((n) => n.raw).join('\n')}`);
  assert.deepEqual(notes.map((n) => [n.json.percent, n.json.message]),
    [[0, null], [60, 'committed']], 'the claim and the committed progress() only');
  const row = await one('SELECT progress_percent, status_message FROM jobq.jobs WHERE id = $1', [id]);
  assert.deepEqual(row, { progress_percent: 60, status_message: 'committed' });
  await q('SELECT jobq.complete($1)', [id]);
});

// progress() with a 20,000-character message: the notification still
// arrives, under 8000 bytes, valid JSON, its message a prefix of the
// original that fills most of the room (cut, not dropped)
async function checkLongMessage(message) {
  const { id } = await claimExternal();
  try {
    await q('SELECT jobq.progress($1, 33, $2)', [id, message]);
    await flush();
    const note = notesFor(id).find((n) => n.json && n.json.percent === 33);
    assert.ok(note, 'the notification of the long message arrived');
    checkShape(note);
    const bytes = Buffer.byteLength(note.raw, 'utf8');
    assert.ok(bytes < 8000, `payload is ${bytes} bytes`);
    assert.ok(note.json.message.length < message.length, 'the message was cut');
    assert.ok(message.startsWith(note.json.message),
      'the cut message is a prefix of the original (cut on a character boundary)');
    assert.ok(!note.json.message.includes('\uFFFD'), 'no broken character');
    assert.ok(bytes > 6000,
      `the cut message still fills most of the 8000 bytes (payload ${bytes} bytes, message ${
        Buffer.byteLength(note.json.message, 'utf8')} bytes): ${note.raw.slice(0, 300)}`);
    const row = await one('SELECT status_message FROM jobq.jobs WHERE id = $1', [id]);
    assert.equal(row.status_message, message, 'status_message keeps the whole message');
  } finally {
    await q('SELECT jobq.complete($1)', [id]);
  }
}

test('a savepoint rolled back drops its progress(); the rest of the transaction is sent', async () => {
  const { id } = await claimExternal();
  const c = await pool.connect();
  try {
    await c.query('BEGIN');
    await c.query(`SELECT jobq.progress($1, 10, 'kept before')`, [id]);
    await c.query('SAVEPOINT s');
    await c.query(`SELECT jobq.progress($1, 20, 'rolled back')`, [id]);
    await c.query('ROLLBACK TO SAVEPOINT s');
    await c.query('SAVEPOINT t');
    await c.query(`SELECT jobq.progress($1, 30, 'released')`, [id]);
    await c.query('RELEASE SAVEPOINT t');
    await c.query('COMMIT');
  } finally {
    c.release();
  }
  await flush();
  assert.deepEqual(notesFor(id).map((n) => [n.json.percent, n.json.message]),
    [[0, null], [10, 'kept before'], [30, 'released']],
    'the claim, then the progress() calls that committed, in order');
});

test('claims and completions are sent by the jobq notifier, not by the committing session', async () => {
  const notifier = await one(`SELECT pid FROM pg_stat_activity WHERE backend_type = 'jobq notifier'
                                AND datname = current_database()`);
  assert.ok(notifier, 'a jobq notifier runs in this database');
  const { id } = await claimExternal();
  const session = (await one('SELECT jobq.complete($1) AS ok, pg_backend_pid() AS pid', [id])).pid;
  await flush();
  const notes = notesFor(id);
  assert.deepEqual(notes.map((n) => n.json.status), [1, 2], 'claim and completion');
  assert.ok(notes.every((n) => n.pid === notifier.pid),
    `sent by the notifier (${notifier.pid}), not the session (${session}): ${notes.map((n) => n.pid)}`);
});

test('the notifier killed: events queued before it restarts are sent by the next one', async () => {
  const old = await one(`SELECT pid FROM pg_stat_activity WHERE backend_type = 'jobq notifier'
                           AND datname = current_database()`);
  assert.ok(old, 'a jobq notifier runs');
  await q('SELECT pg_terminate_backend($1)', [old.pid]);
  await waitFor('the notifier to exit', async () =>
    !(await one('SELECT 1 AS x FROM pg_stat_activity WHERE pid = $1', [old.pid])), 30_000, 20);
  // queued while no notifier runs (it is restarted after a second)
  const { id } = await claimExternal();
  await q(`SELECT jobq.progress($1, 45, 'while down')`, [id]);
  await flush();
  const now = await one(`SELECT pid FROM pg_stat_activity WHERE backend_type = 'jobq notifier'
                           AND datname = current_database()`);
  assert.ok(now && now.pid !== old.pid, 'a new notifier runs');
  assert.deepEqual(notesFor(id).map((n) => [n.json.status, n.json.percent]), [[1, 0], [1, 45]],
    'the claim and the progress() queued while the notifier was down both arrived, in order');
});

test('jobq.notify_interval: while events keep coming, the notifier sends one batch per interval', async () => {
  await withStoreLock('shared', async () => {
    try {
      await q("ALTER SYSTEM SET jobq.notify_interval = '1s'");
      await q('SELECT pg_reload_conf()');
      await waitForSetting('jobq.notify_interval', '1s');
      await sleep(1500); // the notifier reloads at the top of its loop
      await flush();
      await sleep(1500); // and is quiet again: the next event goes out at once

      const { id } = await claimExternal();
      const [claim] = await waitNotes('the claim notification', id, (n) => n.length >= 1);
      // the notifier now pauses for the interval; these commit during the pause
      for (const p of [10, 20, 30]) await q('SELECT jobq.progress($1, $2)', [id, p]);
      const notes = await waitNotes('three progress notifications', id, (n) => n.length >= 4);
      assert.deepEqual(notes.map((n) => n.json.percent), [0, 10, 20, 30], 'all of them, in order');
      const held = notes[1].at - claim.at;
      assert.ok(held >= 500,
        `the progress events waited for the end of the interval: ${held.toFixed(0)} ms after the claim's`);
    } finally {
      await q('ALTER SYSTEM RESET jobq.notify_interval');
      await q('SELECT pg_reload_conf()');
    }
  });
});

test('a 20,000-character ASCII message is cut: payload under 8000 bytes, valid JSON, a prefix', async () => {
  await checkLongMessage('m'.repeat(20_000));
});

test('a 20,000-character message that grows when escaped and encoded is cut, not dropped', async () => {
  // quotes, backslashes, newlines and tabs double when JSON-escaped; é, €
  // and the emoji take 2, 3 and 4 bytes in UTF-8
  const unit = 'a"b\\c\né€\t😀'; // 10 characters (code points)
  const message = unit.repeat(2000);
  assert.equal([...message].length, 20_000);
  await checkLongMessage(message);
});

test('SET jobq.notify_progress = off in a session: its progress() and complete() send nothing', async () => {
  const { id } = await claimExternal();
  const c = await pool.connect();
  try {
    await c.query('SET jobq.notify_progress = off');
    await c.query(`SELECT jobq.progress($1, 70, 'quiet')`, [id]);
    await c.query('RESET jobq.notify_progress');
    await c.query(`SELECT jobq.progress($1, 71, 'loud')`, [id]);
    await c.query('SET jobq.notify_progress = off');
    await c.query('SELECT jobq.complete($1)', [id]);
    await c.query('RESET jobq.notify_progress');
  } finally {
    c.release();
  }
  await flush();
  const notes = notesFor(id);
  assert.deepEqual(notes.map((n) => [n.json.status, n.json.percent, n.json.message]),
    [[1, 0, null], [1, 71, 'loud']],
    `only the claim and the progress() made with notify_progress on: ${
      notes.map((n) => n.raw).join('\n')}`);
  const row = await one('SELECT status, progress_percent FROM jobq.jobs WHERE id = $1', [id]);
  assert.deepEqual(row, { status: 2, progress_percent: 100 }, 'the quiet calls did their work');
});

test('ALTER SYSTEM SET jobq.notify_progress = off: the in-server workers send nothing', async () => {
  await withStoreLock('shared', async () => {
    try {
      await q('ALTER SYSTEM SET jobq.notify_progress = off');
      await q('SELECT pg_reload_conf()');
      await waitForSetting('jobq.notify_progress', 'off');
      // the reload signal has reached every process; give the idle workers
      // a moment to act on it (they reload at the top of their loop, before
      // claiming)
      await sleep(1500);

      const ids = [];
      for (let i = 0; i < 4; i++) {
        ids.push((await one(`SELECT jobq.enqueue('pr_whole', '{}', queue => $1) AS id`, [QUEUE])).id);
      }
      ids.push((await one(`SELECT jobq.enqueue('pr_units', '{}', queue => $1, units => 3) AS id`,
        [QUEUE])).id);
      for (const id of ids) {
        const job = await waitJob(id);
        assert.equal(job.status, 2, `job ${id} completed: ${JSON.stringify(job.error)}`);
      }
      await flush();
      for (const id of ids) {
        assert.deepEqual(notesFor(id).map((n) => n.raw), [],
          `no notification for job ${id} while jobq.notify_progress is off`);
      }
    } finally {
      await q('ALTER SYSTEM RESET jobq.notify_progress');
      await q('SELECT pg_reload_conf()');
    }

    // and back on: notifications flow again
    await waitForSetting('jobq.notify_progress', 'on');
    await sleep(1500);
    const id = (await one(`SELECT jobq.enqueue('pr_whole', '{}', queue => $1) AS id`, [QUEUE])).id;
    await waitJob(id);
    await flush();
    assert.deepEqual(notesFor(id).map((n) => n.json.status), [1, 2],
      'after RESET the claim and completion notify again');
  });
});

test('every notification seen on the channel is valid JSON with exactly the SPEC fields', async () => {
  await flush();
  assert.ok(received.length > 0);
  for (const n of received) {
    assert.ok(n.json !== null, `valid JSON: ${n.raw.slice(0, 200)}`);
    checkShape(n);
  }
  checkNoSecrets(received);
});
