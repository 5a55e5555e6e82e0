// Validation before enqueue (SPEC 10, issue 6): jobq.add_validator,
// jobq.set_validation_threshold and jobq.validate; enqueue and enqueue_many
// rejected with SQLSTATE 23514 and the validate() JSON as the error detail,
// with no job created; argument checks (22023) for validator signatures,
// weights, thresholds and scores outside [0, 1].
//
// Job types start with va_ and the validator functions live in schema
// va_fns; the other node test files use other names, so the files can
// share one database.  None of the job types here is registered for the
// in-server workers: accepted jobs stay Queued and are cancelled at the end.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import pg from 'pg';
import { connConfig, dbHelpers } from './lib.mjs';

let pool;
const accepted = []; // job ids to cancel at the end
const { q, one } = dbHelpers(() => pool);

async function validate(type, payload) {
  return (await one('SELECT jobq.validate($1, $2::jsonb) AS v', [type, JSON.stringify(payload)])).v;
}

async function enqueue(type, payload) {
  const { id } = await one(`SELECT jobq.enqueue($1, $2::jsonb, queue => 'va_q') AS id`,
    [type, JSON.stringify(payload)]);
  accepted.push(id);
  return id;
}

async function jobCount(type) {
  return Number((await one('SELECT count(*) AS n FROM jobq.jobs WHERE job_type = $1', [type])).n);
}

const close = (a, b, why) => assert.ok(Math.abs(a - b) < 1e-5, `${why}: ${a} is not ${b}`);

// assert that promise p fails with SQLSTATE code; returns the error
async function rejectsWith(p, code, why) {
  let err;
  await assert.rejects(p, (e) => {
    err = e;
    return true;
  }, why);
  assert.equal(err.code, code, `${why}: SQLSTATE ${code}, got ${err.code} (${err.message})`);
  return err;
}

before(async () => {
  pool = new pg.Pool({ ...connConfig(), max: 4 });
  await q('DROP SCHEMA IF EXISTS va_fns CASCADE');
  await q('CREATE SCHEMA va_fns');
  await q(`
    -- 1 when the payload has a non-empty "title", else 0
    CREATE FUNCTION va_fns.has_title(p jsonb) RETURNS real LANGUAGE sql IMMUTABLE AS
      $$ SELECT CASE WHEN coalesce(p->>'title', '') <> '' THEN 1 ELSE 0 END::real $$;
    -- shorter texts score higher: 1 - length/100, floored at 0
    CREATE FUNCTION va_fns.short_text(p jsonb) RETURNS real LANGUAGE sql IMMUTABLE AS
      $$ SELECT greatest(0, 1 - length(coalesce(p->>'text', '')) / 100.0)::real $$;
    -- the payload's own "q" (a quality score)
    CREATE FUNCTION va_fns.quality(p jsonb) RETURNS real LANGUAGE sql IMMUTABLE AS
      $$ SELECT coalesce((p->>'q')::real, 0) $$;
    CREATE FUNCTION va_fns.half(p jsonb) RETURNS real LANGUAGE sql IMMUTABLE AS $$ SELECT 0.5::real $$;
    CREATE FUNCTION va_fns.too_high(p jsonb) RETURNS real LANGUAGE sql IMMUTABLE AS $$ SELECT 1.5::real $$;
    CREATE FUNCTION va_fns.negative(p jsonb) RETURNS real LANGUAGE sql IMMUTABLE AS $$ SELECT -0.1::real $$;
    CREATE FUNCTION va_fns.nan(p jsonb) RETURNS real LANGUAGE sql IMMUTABLE AS $$ SELECT 'NaN'::real $$;
    CREATE FUNCTION va_fns.null_score(p jsonb) RETURNS real LANGUAGE sql IMMUTABLE AS $$ SELECT NULL::real $$;
    -- wrong signatures
    CREATE FUNCTION va_fns.returns_int(p jsonb) RETURNS int LANGUAGE sql AS $$ SELECT 1 $$;
    CREATE FUNCTION va_fns.returns_float8(p jsonb) RETURNS float8 LANGUAGE sql AS $$ SELECT 1.0::float8 $$;
    CREATE FUNCTION va_fns.takes_text(p text) RETURNS real LANGUAGE sql AS $$ SELECT 1::real $$;
    CREATE FUNCTION va_fns.takes_two(p jsonb, n int) RETURNS real LANGUAGE sql AS $$ SELECT 1::real $$;
    CREATE FUNCTION va_fns.takes_none() RETURNS real LANGUAGE sql AS $$ SELECT 1::real $$;
    CREATE FUNCTION va_fns.returns_set(p jsonb) RETURNS SETOF real LANGUAGE sql AS $$ SELECT 1::real $$;
    CREATE PROCEDURE va_fns.a_procedure(p jsonb) LANGUAGE sql AS $$ SELECT 1 $$;
    -- a validator with an overload that also accepts one jsonb argument
    CREATE FUNCTION va_fns.overloaded(p jsonb) RETURNS real LANGUAGE sql IMMUTABLE AS $$ SELECT 0.9::real $$;
    CREATE FUNCTION va_fns.overloaded(p jsonb, strict_mode boolean DEFAULT false) RETURNS real
      LANGUAGE sql IMMUTABLE AS $$ SELECT 0.1::real $$;
  `);
  // the documentation example's three layers: weights 3, 1, 2
  await q(`SELECT jobq.add_validator('va_doc', 'va_fns.has_title(jsonb)', 3, 'title')`);
  await q(`SELECT jobq.add_validator('va_doc', 'va_fns.short_text(jsonb)', 1, 'length')`);
  await q(`SELECT jobq.add_validator('va_doc', 'va_fns.quality(jsonb)', 2)`); // name defaults to the function's
});

after(async () => {
  if (!pool) return;
  for (const id of accepted) await q('SELECT jobq.cancel($1)', [id]).catch(() => {});
  await q(`DELETE FROM jobq.validators WHERE job_type LIKE 'va\\_%'`).catch(() => {});
  await q(`DELETE FROM jobq.validation_thresholds WHERE job_type LIKE 'va\\_%'`).catch(() => {});
  await q('DROP SCHEMA IF EXISTS va_fns CASCADE').catch(() => {});
  await pool.end();
});

test('validate(): the JSON shape, the weighted score, per-layer scores and weights, the default threshold 0.5', async () => {
  const v = await validate('va_doc', { title: 'Report', text: 'x'.repeat(20), q: 0.25 });
  assert.deepEqual(Object.keys(v).sort(), ['layers', 'passed', 'score', 'threshold']);
  assert.equal(typeof v.score, 'number');
  assert.equal(typeof v.passed, 'boolean');
  close(v.threshold, 0.5, 'the default threshold');
  assert.equal(v.layers.length, 3);
  for (const l of v.layers) assert.deepEqual(Object.keys(l).sort(), ['name', 'score', 'weight']);
  const byName = Object.fromEntries(v.layers.map((l) => [l.name, l]));
  assert.deepEqual(Object.keys(byName).sort(), ['length', 'quality', 'title'],
    'layers are named by add_validator\'s name, else the function\'s name');
  close(byName.title.score, 1, 'title score');
  close(byName.title.weight, 3, 'title weight');
  close(byName.length.score, 0.8, 'length score');
  close(byName.length.weight, 1, 'length weight');
  close(byName.quality.score, 0.25, 'quality score');
  close(byName.quality.weight, 2, 'quality weight');
  // (3 * 1 + 1 * 0.8 + 2 * 0.25) / (3 + 1 + 2)
  close(v.score, (3 + 0.8 + 0.5) / 6, 'the weighted mean of the layers');
  assert.equal(v.passed, true);

  const low = await validate('va_doc', { text: 'y'.repeat(90), q: 0.1 });
  // (3 * 0 + 1 * 0.1 + 2 * 0.1) / 6 = 0.05
  close(low.score, 0.05, 'low score');
  assert.equal(low.passed, false);

  const none = await validate('va_no_validators', { anything: true });
  assert.equal(none.passed, true, 'a job type without validators passes');
  assert.deepEqual(none.layers, []);
});

test('set_validation_threshold() moves the bar; a score equal to the threshold passes', async () => {
  const payload = { title: 'T', text: 'x'.repeat(50), q: 0.5 }; // (3 + 0.5 + 1) / 6 = 0.75
  close((await validate('va_doc', payload)).score, 0.75, 'score');
  await q(`SELECT jobq.set_validation_threshold('va_doc', 0.8)`);
  let v = await validate('va_doc', payload);
  close(v.threshold, 0.8, 'the new threshold');
  assert.equal(v.passed, false, '0.75 < 0.8');
  await q(`SELECT jobq.set_validation_threshold('va_doc', 0.7)`);
  v = await validate('va_doc', payload);
  close(v.threshold, 0.7, 'threshold replaced');
  assert.equal(v.passed, true, '0.75 >= 0.7');

  await q(`SELECT jobq.add_validator('va_edge', 'va_fns.half(jsonb)')`);
  v = await validate('va_edge', {});
  close(v.score, 0.5, 'score');
  close(v.threshold, 0.5, 'the default threshold');
  assert.equal(v.passed, true, 'a score equal to the threshold passes ("below the threshold" rejects)');
  await enqueue('va_edge', {});
  await q(`SELECT jobq.set_validation_threshold('va_edge', 0)`);
  assert.equal((await validate('va_edge', {})).passed, true);
  await q(`SELECT jobq.set_validation_threshold('va_edge', 1)`);
  assert.equal((await validate('va_edge', {})).passed, false);

  for (const bad of ['1.5', '-0.1', 'NaN', 'Infinity']) {
    await rejectsWith(q(`SELECT jobq.set_validation_threshold('va_edge', $1::real)`, [bad]), '22023',
      `threshold ${bad}`);
  }
  await rejectsWith(q(`SELECT jobq.set_validation_threshold('va_edge', NULL)`), '22023', 'NULL threshold');
  await rejectsWith(q(`SELECT jobq.set_validation_threshold('', 0.5)`), '22023', 'empty job type');
  await rejectsWith(q(`SELECT jobq.set_validation_threshold(NULL, 0.5)`), '22023', 'NULL job type');
  close((await validate('va_edge', {})).threshold, 1, 'the failed calls changed nothing');
});

test('enqueue below the threshold: 23514 with the validate() JSON as detail, and no job', async () => {
  await q(`SELECT jobq.set_validation_threshold('va_doc', 0.6)`);
  const bad = { text: 'z'.repeat(40), q: 0.9 }; // (0 + 0.6 + 1.8) / 6 = 0.4
  const before = await jobCount('va_doc');
  const err = await rejectsWith(enqueue('va_doc', bad), '23514', 'rejected payload');
  assert.match(err.message, /va_doc/, 'the message names the job type');
  assert.ok(err.detail, 'the error has a detail');
  const detail = JSON.parse(err.detail);
  assert.deepEqual(detail, await validate('va_doc', bad), 'the detail is the validate() JSON');
  close(detail.score, 0.4, 'score in the detail');
  close(detail.threshold, 0.6, 'threshold in the detail');
  assert.equal(detail.passed, false);
  assert.equal(detail.layers.length, 3, 'per-layer scores in the detail');
  assert.equal(await jobCount('va_doc'), before, 'no job was created');

  // inside a transaction: the failed enqueue leaves nothing behind a savepoint
  const c = await pool.connect();
  try {
    await c.query('BEGIN');
    await c.query('SAVEPOINT s');
    await assert.rejects(c.query(`SELECT jobq.enqueue('va_doc', $1::jsonb)`, [JSON.stringify(bad)]),
      (e) => e.code === '23514');
    await c.query('ROLLBACK TO SAVEPOINT s');
    const n = (await c.query(`SELECT count(*) AS n FROM jobq.jobs WHERE job_type = 'va_doc'`)).rows[0].n;
    assert.equal(Number(n), before);
    await c.query('COMMIT');
  } finally {
    c.release();
  }

  // a passing payload is enqueued
  const good = { title: 'Fine', text: 'short', q: 0.9 };
  assert.equal((await validate('va_doc', good)).passed, true);
  const id = await enqueue('va_doc', good);
  const row = await one('SELECT job_type, payload, status FROM jobq.jobs WHERE id = $1', [id]);
  assert.deepEqual(row, { job_type: 'va_doc', payload: good, status: 0 });
  assert.equal(await jobCount('va_doc'), before + 1);
});

test('enqueue_many: one payload below the threshold rejects the whole batch, naming payloads[i]', async () => {
  await q(`SELECT jobq.set_validation_threshold('va_doc', 0.6)`);
  const good = { title: 'A', text: 'ok', q: 1 };
  const bad = { text: 'x'.repeat(100), q: 0 };
  const before = await jobCount('va_doc');
  const err = await rejectsWith(
    q(`SELECT jobq.enqueue_many('va_doc', $1::jsonb[], queue => 'va_q')`,
      [[good, good, bad, good].map((p) => JSON.stringify(p))]),
    '23514', 'the batch is rejected');
  assert.match(err.message, /payloads\[3\]/, `the message names payloads[3]: ${err.message}`);
  const detail = JSON.parse(err.detail);
  assert.equal(detail.passed, false);
  close(detail.score, 0, 'the bad payload\'s score');
  assert.equal(await jobCount('va_doc'), before, 'no job of the batch was created');

  const ids = (await q(`SELECT jobq.enqueue_many('va_doc', $1::jsonb[], queue => 'va_q') AS id`,
    [[good, good].map((p) => JSON.stringify(p))])).rows.map((r) => r.id);
  accepted.push(...ids);
  assert.equal(ids.length, 2, 'a batch of passing payloads is enqueued');
  assert.equal(await jobCount('va_doc'), before + 2);
});

test('add_validator: a wrong signature raises 22023', async () => {
  const wrong = ['va_fns.returns_int(jsonb)', 'va_fns.returns_float8(jsonb)', 'va_fns.takes_text(text)',
    'va_fns.takes_two(jsonb, int)', 'va_fns.takes_none()', 'va_fns.returns_set(jsonb)',
    'va_fns.a_procedure(jsonb)'];
  for (const fn of wrong) {
    await rejectsWith(q(`SELECT jobq.add_validator('va_sig', $1::regprocedure)`, [fn]), '22023', fn);
  }
  await rejectsWith(q(`SELECT jobq.add_validator('va_sig', NULL)`), '22023', 'NULL validator');
  await rejectsWith(q(`SELECT jobq.add_validator('', 'va_fns.half(jsonb)')`), '22023', 'empty job type');
  await rejectsWith(q(`SELECT jobq.add_validator(NULL, 'va_fns.half(jsonb)')`), '22023', 'NULL job type');
  assert.equal(Number((await one(`SELECT count(*) AS n FROM jobq.validators WHERE job_type = 'va_sig'`)).n), 0,
    'nothing was added');
  assert.equal((await validate('va_sig', {})).layers.length, 0);
});

test('add_validator: a weight that is not a positive number raises 22023; NULL means the default 1', async () => {
  for (const w of ['0', '-1', 'NaN', 'Infinity', '-Infinity']) {
    await rejectsWith(q(`SELECT jobq.add_validator('va_weight', 'va_fns.half(jsonb)', $1::real)`, [w]),
      '22023', `weight ${w}`);
  }
  assert.equal(Number((await one(`SELECT count(*) AS n FROM jobq.validators WHERE job_type = 'va_weight'`)).n), 0);
  await q(`SELECT jobq.add_validator('va_weight', 'va_fns.half(jsonb)', NULL, 'h')`);
  const v = await validate('va_weight', {});
  assert.equal(v.layers.length, 1);
  close(v.layers[0].weight, 1, 'NULL weight is the default 1');
  // the same name again replaces the layer
  await q(`SELECT jobq.add_validator('va_weight', 'va_fns.quality(jsonb)', 4, 'h')`);
  const v2 = await validate('va_weight', { q: 0.3 });
  assert.equal(v2.layers.length, 1, 'same name: replaced, not added');
  close(v2.layers[0].weight, 4, 'new weight');
  close(v2.layers[0].score, 0.3, 'new function');
});

test('a validator returning a score outside [0, 1] (1.5, -0.1, NaN, NULL): 22023 from validate and enqueue, no job', async () => {
  for (const fn of ['too_high', 'negative', 'nan', 'null_score']) {
    const type = `va_range_${fn}`;
    await q(`SELECT jobq.add_validator($1, $2::regprocedure)`, [type, `va_fns.${fn}(jsonb)`]);
    await rejectsWith(validate(type, {}), '22023', `validate with ${fn}`);
    await rejectsWith(enqueue(type, {}), '22023', `enqueue with ${fn}`);
    await rejectsWith(q(`SELECT jobq.enqueue_many($1, ARRAY['{}']::jsonb[])`, [type]), '22023',
      `enqueue_many with ${fn}`);
    assert.equal(await jobCount(type), 0, `no ${type} job`);
  }
});

test('the validator added is the one called, even when its name is overloaded', async () => {
  // va_fns.overloaded(jsonb) answers 0.9; an overload (jsonb, boolean DEFAULT
  // false) answers 0.1.  add_validator took the regprocedure of the first.
  await q(`SELECT jobq.add_validator('va_overload', 'va_fns.overloaded(jsonb)'::regprocedure)`);
  const v = await validate('va_overload', {});
  close(v.score, 0.9, 'the score of va_fns.overloaded(jsonb)');
  await enqueue('va_overload', {});
});
