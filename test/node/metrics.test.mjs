// jobq.metrics() and jobq.queue_stats (SPEC 12, issue 5).  The metrics text
// must be Prometheus text exposition (format 0.0.4): it is checked with the
// npm parser parse-prometheus-text-format and with a strict line-by-line
// parser written here from the format's rules (metric and label names,
// label value escaping, HELP/TYPE once per family and before its samples,
// samples of a family together, no duplicate series, numeric values, LF
// line ends).  Then the numbers: jobs by queue and status, depth, oldest
// queued age, the completed/enqueued counters, the per-worker processed
// counters, checkpoint counters, and queue_stats per job type.
//
// Job types and queues start with me_ and carry a per-run suffix, so the
// queues are fresh and the other node test files (same database) never
// touch them.  Counters are shared with those files, so only growth "by at
// least" is asserted.  All waits poll with generous bounds.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import crypto from 'node:crypto';
import { createRequire } from 'node:module';
import { setTimeout as sleep } from 'node:timers/promises';
import pg from 'pg';
import { JOB_TIMEOUT, connConfig, dbHelpers, waitFor, withStoreLock } from './lib.mjs';

const require = createRequire(import.meta.url);
const parsePrometheusTextFormat = require('parse-prometheus-text-format');

const RUN = crypto.randomBytes(4).toString('hex');

let pool;
const { q, one, metricsText } = dbHelpers(() => pool);

// ---------------------------------------------------------------- strict parser

const METRIC_NAME = /^[a-zA-Z_:][a-zA-Z0-9_:]*$/;
const LABEL_NAME = /^[a-zA-Z_][a-zA-Z0-9_]*$/;
const TYPES = new Set(['counter', 'gauge', 'histogram', 'summary', 'untyped']);
// Go's strconv.ParseFloat accepts these (as Prometheus does)
const FLOAT = /^(?:[+-]?(?:\d+\.?\d*|\.\d+)(?:[eE][+-]?\d+)?|[+-]?Inf|NaN)$/;

function unescapeHelp(s, line) {
  let out = '';
  for (let i = 0; i < s.length; i++) {
    if (s[i] !== '\\') {
      out += s[i];
      continue;
    }
    const n = s[++i];
    if (n === '\\') out += '\\';
    else if (n === 'n') out += '\n';
    else throw new Error(`bad escape \\${n ?? ''} in HELP: ${JSON.stringify(line)}`);
  }
  return out;
}

// parse `{a="x",b="y"}` starting at s[i] === '{'; returns [labels, next index]
function parseLabels(s, i, line) {
  const labels = {};
  const bad = (why) => new Error(`${why} at column ${i}: ${JSON.stringify(line)}`);
  i++; // '{'
  for (;;) {
    if (s[i] === '}') return [labels, i + 1];
    let j = i;
    while (j < s.length && /[a-zA-Z0-9_]/.test(s[j])) j++;
    const name = s.slice(i, j);
    if (!LABEL_NAME.test(name)) throw bad(`bad label name "${name}"`);
    if (name in labels) throw bad(`label "${name}" twice`);
    if (s[j] !== '=' || s[j + 1] !== '"') throw bad('expected ="');
    i = j + 2;
    let value = '';
    for (;;) {
      if (i >= s.length) throw bad('unterminated label value');
      const ch = s[i];
      if (ch === '"') break;
      if (ch === '\\') {
        const n = s[i + 1];
        if (n === '\\') value += '\\';
        else if (n === '"') value += '"';
        else if (n === 'n') value += '\n';
        else throw bad(`bad escape \\${n ?? ''} in a label value`);
        i += 2;
        continue;
      }
      if (ch === '\n') throw bad('raw newline in a label value');
      value += ch;
      i++;
    }
    labels[name] = value;
    i++; // closing quote
    if (s[i] === ',') {
      i++;
      continue;
    }
    if (s[i] !== '}') throw bad('expected , or }');
  }
}

// Parse text exposition format 0.0.4 strictly; returns Map name -> family
// { name, help, type, samples: [{ name, labels, value }] }.
function parseStrict(text) {
  if (text.length > 0 && !text.endsWith('\n')) throw new Error('the text does not end with a line feed');
  if (text.includes('\r')) throw new Error('carriage return in the text');
  const families = new Map();
  const seenSeries = new Set();
  const closed = new Set(); // families whose samples are over
  let current = null; // family whose samples come now
  const family = (name) => {
    if (!families.has(name)) families.set(name, { name, help: null, type: null, samples: [] });
    return families.get(name);
  };
  const lines = text.split('\n');
  lines.pop(); // after the final '\n'
  for (const line of lines) {
    if (line === '') continue;
    if (line.startsWith('#')) {
      const m = line.match(/^# (HELP|TYPE) (\S+) ?(.*)$/);
      if (!m) continue; // a plain comment
      const [, kind, name, rest] = m;
      if (!METRIC_NAME.test(name)) throw new Error(`bad metric name in ${JSON.stringify(line)}`);
      const f = family(name);
      if (kind === 'HELP') {
        if (f.help !== null) throw new Error(`second HELP for ${name}`);
        f.help = unescapeHelp(rest, line);
      } else {
        if (f.type !== null) throw new Error(`second TYPE for ${name}`);
        if (f.samples.length > 0) throw new Error(`TYPE for ${name} after its samples`);
        if (!TYPES.has(rest)) throw new Error(`unknown type in ${JSON.stringify(line)}`);
        f.type = rest;
      }
      continue;
    }
    let i = 0;
    while (i < line.length && /[a-zA-Z0-9_:]/.test(line[i])) i++;
    const name = line.slice(0, i);
    if (!METRIC_NAME.test(name)) throw new Error(`bad sample line ${JSON.stringify(line)}`);
    let labels = {};
    if (line[i] === '{') [labels, i] = parseLabels(line, i, line);
    const rest = line.slice(i);
    const vm = rest.match(/^[ \t]+(\S+)(?:[ \t]+(-?\d+))?[ \t]*$/);
    if (!vm) throw new Error(`bad value part in ${JSON.stringify(line)}`);
    if (!FLOAT.test(vm[1])) throw new Error(`bad value "${vm[1]}" in ${JSON.stringify(line)}`);
    // histogram/summary samples would belong to their base family; jobq
    // exports neither, so a sample's family is its own name
    const f = family(name);
    if (current !== f) {
      if (closed.has(name)) throw new Error(`samples of ${name} are not together`);
      if (current) closed.add(current.name);
      current = f;
    }
    const key = `${name}${JSON.stringify(Object.entries(labels).sort())}`;
    if (seenSeries.has(key)) throw new Error(`duplicate series ${key}`);
    seenSeries.add(key);
    f.samples.push({ name, labels, value: vm[1] === 'NaN' ? NaN : Number(vm[1].replace('Inf', 'Infinity')) });
  }
  return families;
}

// both parsers; returns { strict: Map, npm: [] }
function parseBoth(text) {
  const strict = parseStrict(text);
  const npm = parsePrometheusTextFormat(text);
  return { strict, npm };
}

// the value of the one sample of family `name` whose labels include `labels`
function sample(strict, name, labels = {}) {
  const f = strict.get(name);
  if (!f) return undefined;
  const s = f.samples.filter((x) => Object.entries(labels).every(([k, v]) => x.labels[k] === v));
  assert.ok(s.length <= 1, `one ${name} sample for ${JSON.stringify(labels)}`);
  return s[0]?.value;
}

const sum = (strict, name) => (strict.get(name)?.samples ?? []).reduce((a, s) => a + s.value, 0);

// ---------------------------------------------------------------- setup

before(async () => {
  assert.ok(process.env.JOBQ_PGHOST && process.env.JOBQ_PGPORT,
    'JOBQ_PGHOST and JOBQ_PGPORT are set (test/run.sh suite_node)');
  pool = new pg.Pool({ ...connConfig(), max: 4 });
  await q(`CREATE OR REPLACE FUNCTION me_ok(j jobq.jobs) RETURNS jsonb LANGUAGE sql AS $$
             SELECT '{"ok": true}'::jsonb $$`);
});

after(async () => {
  if (pool) await pool.end();
});

// ---------------------------------------------------------------- tests

test('jobq.metrics() is Prometheus text: both parsers agree, HELP and TYPE everywhere', async () => {
  // a live queue, so the per-queue families have samples
  const queue = `me_live_${RUN}`;
  const id = (await one(`SELECT jobq.enqueue('me_idle', '{}', queue => $1) AS id`, [queue])).id;
  try {
    const text = await metricsText();
    assert.ok(text.endsWith('\n'), 'the text ends with a line feed');
    const { strict, npm } = parseBoth(text);

    const expected = ['jobq_jobs', 'jobq_queue_depth', 'jobq_oldest_queued_age_seconds',
      'jobq_workers', 'jobq_worker_jobs_processed_total', 'jobq_worker_jobs_failed_total',
      'jobq_jobs_enqueued_total', 'jobq_jobs_completed_total', 'jobq_jobs_failed_total',
      'jobq_checkpoint_bytes_total', 'jobq_checkpoint_failures_total'];
    for (const name of expected) assert.ok(strict.has(name), `family ${name} is exported`);

    for (const f of strict.values()) {
      assert.ok(f.help && f.help.trim().length > 0, `${f.name} has a HELP text`);
      assert.ok(f.type, `${f.name} has a TYPE`);
      if (f.type === 'counter') assert.match(f.name, /_total$/, `counter ${f.name} ends in _total`);
      if (f.name.endsWith('_total')) assert.equal(f.type, 'counter', `${f.name} is a counter`);
      for (const s of f.samples) {
        assert.ok(Number.isFinite(s.value), `${f.name} ${JSON.stringify(s.labels)} is a number`);
        if (f.type === 'counter') assert.ok(s.value >= 0, `counter ${f.name} is not negative`);
      }
    }

    // the npm parser sees the same families, types, help and samples
    const npmByName = new Map(npm.map((f) => [f.name, f]));
    assert.deepEqual([...npmByName.keys()].sort(), [...strict.keys()].sort(),
      'both parsers find the same families');
    for (const f of strict.values()) {
      const n = npmByName.get(f.name);
      assert.equal(n.type, f.type.toUpperCase(), `${f.name}: same type`);
      assert.equal(n.help, f.help, `${f.name}: same help`);
      assert.deepEqual(n.metrics.map((m) => [m.labels ?? {}, Number(m.value)]),
        f.samples.map((s) => [s.labels, s.value]), `${f.name}: same samples`);
    }

    // workers: one sample per state, summing to the configured number
    const workers = Number((await one(`SELECT current_setting('jobq.workers') AS n`)).n);
    assert.equal(sum(strict, 'jobq_workers'), workers, 'jobq_workers sums to jobq.workers');
    assert.equal(sample(strict, 'jobq_jobs', { queue, status: 'queued' }), 1);
  } finally {
    await q('SELECT jobq.cancel($1)', [id]);
  }
});

test('label values with a quote, a backslash and a newline are escaped and parse back', async () => {
  const queue = `me_we"ird\\q\n${RUN}`;
  const id = (await one(`SELECT jobq.enqueue('me_idle', '{}', queue => $1) AS id`, [queue])).id;
  try {
    const text = await metricsText();
    const escaped = `me_we\\"ird\\\\q\\n${RUN}`;
    assert.ok(text.includes(`jobq_jobs{queue="${escaped}",status="queued"} 1\n`),
      `the queue name is escaped as ${escaped}`);
    const { strict, npm } = parseBoth(text);
    assert.equal(sample(strict, 'jobq_jobs', { queue, status: 'queued' }), 1,
      'the strict parser reads the label back exactly');
    assert.equal(sample(strict, 'jobq_jobs', { queue, status: 'processing' }), 0);
    assert.equal(sample(strict, 'jobq_queue_depth', { queue }), 1);
    assert.ok(sample(strict, 'jobq_oldest_queued_age_seconds', { queue }) >= 0);
    const npmJobs = npm.find((f) => f.name === 'jobq_jobs');
    assert.ok(npmJobs.metrics.some((m) => m.labels.queue === queue && m.labels.status === 'queued'
      && Number(m.value) === 1), 'the npm parser reads the label back exactly');
    // every line of the text is one whole sample or comment: the newline
    // in the queue name did not split a line
    for (const line of text.split('\n')) {
      assert.ok(line === '' || line.startsWith('#') || /^[a-zA-Z_:][a-zA-Z0-9_:]*(\{.*\})? \S+$/.test(line),
        `a whole line: ${JSON.stringify(line)}`);
    }
  } finally {
    await q('SELECT jobq.cancel($1)', [id]);
  }
});

test('N jobs in a fresh queue: jobs, depth, oldest age, queue_stats; after they run, the counters', async () => {
  const queue = `me_fresh_${RUN}`;
  const typeA = `me_a_${RUN}`; // run by the in-server workers once registered
  const typeB = `me_b_${RUN}`; // never registered: left to this test as an external worker
  const N = 12;
  const before0 = parseStrict(await metricsText());

  const tEnqueue = Date.now();
  await q(`SELECT jobq.enqueue_many($1, array_fill('{}'::jsonb, ARRAY[$2::int]), queue => $3)`,
    [typeA, N, queue]);
  const bIds = [];
  for (let i = 0; i < 3; i++) {
    bIds.push((await one(`SELECT jobq.enqueue($1, '{}', queue => $2) AS id`, [typeB, queue])).id);
  }
  await sleep(1200); // let the oldest job age a little

  let m = parseStrict(await metricsText());
  const elapsed = (Date.now() - tEnqueue) / 1000;
  assert.equal(sample(m, 'jobq_jobs', { queue, status: 'queued' }), N + 3, 'queued = N + 3');
  assert.equal(sample(m, 'jobq_jobs', { queue, status: 'processing' }), 0);
  assert.equal(sample(m, 'jobq_queue_depth', { queue }), N + 3, 'depth = N + 3');
  assert.equal(Number((await one('SELECT jobq.depth($1) AS d', [queue])).d), N + 3,
    'jobq.depth() agrees');
  const age = sample(m, 'jobq_oldest_queued_age_seconds', { queue });
  assert.ok(age >= 1 && age <= elapsed + 1, `oldest queued age ${age} s (waited ${elapsed} s)`);
  assert.ok(sample(m, 'jobq_jobs_enqueued_total') - sample(before0, 'jobq_jobs_enqueued_total') >= N + 3,
    'jobq_jobs_enqueued_total grew by at least N + 3');

  // one B job running (claimed externally), one failed, one cancelled
  // B jobs are claimed in id order (same priority and run_at order)
  const claim = async (id) => {
    const r = await q(`SELECT id FROM jobq.claim($1, 'me-ext', 1, ARRAY[$2])`, [queue, typeB]);
    assert.deepEqual(r.rows.map((row) => row.id), [id], 'claimed the expected B job');
  };
  await claim(bIds[0]);
  await q(`SELECT jobq.fail($1, 'me failed', retry => false)`, [bIds[0]]);
  await claim(bIds[1]);
  await q('SELECT jobq.cancel($1)', [bIds[2]]);

  m = parseStrict(await metricsText());
  assert.equal(sample(m, 'jobq_jobs', { queue, status: 'queued' }), N);
  assert.equal(sample(m, 'jobq_jobs', { queue, status: 'processing' }), 1);
  assert.equal(sample(m, 'jobq_queue_depth', { queue }), N + 1, 'depth counts due queued + processing');

  const stats = async () => {
    const r = await q(`SELECT job_type, queued, processing, completed, failed, cancelled,
                              extract(epoch FROM oldest_queued_age)::float8 AS age
                         FROM jobq.queue_stats WHERE queue = $1 ORDER BY job_type`, [queue]);
    return Object.fromEntries(r.rows.map((row) => [row.job_type, row]));
  };
  let s = await stats();
  assert.deepEqual(Object.keys(s).sort(), [typeA, typeB].sort(), 'one row per job type');
  const counts = (row) => ['queued', 'processing', 'completed', 'failed', 'cancelled']
    .map((k) => Number(row[k]));
  assert.deepEqual(counts(s[typeA]), [N, 0, 0, 0, 0], `${typeA}: N queued`);
  assert.deepEqual(counts(s[typeB]), [0, 1, 0, 1, 1], `${typeB}: 1 processing, 1 failed, 1 cancelled`);
  assert.ok(s[typeA].age >= 1, `oldest_queued_age of ${typeA} (${s[typeA].age} s)`);
  assert.equal(s[typeB].age, null, `no queued ${typeB} job: oldest_queued_age is NULL`);

  // now let the in-server workers run the A jobs
  const before1 = parseStrict(await metricsText());
  await q(`SELECT jobq.register($1, 'me_ok(jobq.jobs)'::regprocedure, queue => $2)`, [typeA, queue]);
  await waitFor(`the ${N} jobs of ${typeA} to complete`, async () => {
    const r = await one(`SELECT count(*) FILTER (WHERE status = 2)::int AS done,
                                count(*) FILTER (WHERE status IN (3, 4))::int AS bad
                           FROM jobq.jobs WHERE queue = $1 AND job_type = $2`, [queue, typeA]);
    assert.equal(r.bad, 0, 'no A job failed');
    return r.done === N;
  }, JOB_TIMEOUT);
  await q('SELECT jobq.complete($1)', [bIds[1]]);

  m = parseStrict(await metricsText());
  assert.ok(sample(m, 'jobq_jobs_completed_total') - sample(before1, 'jobq_jobs_completed_total') >= N + 1,
    'jobq_jobs_completed_total grew by at least N + 1');
  assert.ok(sum(m, 'jobq_worker_jobs_processed_total') - sum(before1, 'jobq_worker_jobs_processed_total') >= N,
    'the workers processed-jobs counters grew by at least N in all');
  assert.ok(sample(m, 'jobq_jobs_failed_total') - sample(before0, 'jobq_jobs_failed_total') >= 1,
    'jobq_jobs_failed_total grew');
  assert.ok(sample(m, 'jobq_jobs_cancelled_total') - sample(before0, 'jobq_jobs_cancelled_total') >= 1,
    'jobq_jobs_cancelled_total grew');
  assert.ok(!(sample(m, 'jobq_jobs', { queue, status: 'queued' }) > 0), 'nothing queued any more');
  assert.ok(!(sample(m, 'jobq_queue_depth', { queue }) > 0), 'depth 0');

  s = await stats();
  assert.deepEqual(counts(s[typeA]), [0, 0, N, 0, 0], `${typeA}: N completed`);
  assert.deepEqual(counts(s[typeB]), [0, 0, 1, 1, 1], `${typeB}: 1 completed, 1 failed, 1 cancelled`);
  assert.equal(s[typeA].age, null, 'no queued job: oldest_queued_age is NULL');
  assert.equal(Number((await one('SELECT jobq.depth($1) AS d', [queue])).d), 0);
});

test('a job due later is queued but not in the depth', async () => {
  const queue = `me_later_${RUN}`;
  const id = (await one(`SELECT jobq.enqueue('me_idle', '{}', queue => $1,
                                             run_at => now() + interval '1 hour') AS id`, [queue])).id;
  try {
    const m = parseStrict(await metricsText());
    assert.equal(sample(m, 'jobq_jobs', { queue, status: 'queued' }), 1);
    assert.equal(sample(m, 'jobq_queue_depth', { queue }), 0, 'not due: not in the depth');
    assert.equal(sample(m, 'jobq_oldest_queued_age_seconds', { queue }), 0, 'no due job waits');
  } finally {
    await q('SELECT jobq.cancel($1)', [id]);
  }
});

test('checkpoint counters grow with an uploaded checkpoint', async () => {
  await withStoreLock('shared', async () => {
    const queue = `me_ckpt_${RUN}`;
    const id = (await one(`SELECT jobq.enqueue('me_idle', '{}', queue => $1, units => 2) AS id`,
      [queue])).id;
    try {
      await waitFor(`claim of ${id}`, async () => (await q(`SELECT id FROM jobq.claim($1, 'me-ext')`,
        [queue])).rows.length === 1);
      const before0 = parseStrict(await metricsText());
      const data = crypto.randomBytes(1234);
      await q('SELECT jobq.checkpoint($1, 1, $2)', [id, data]);
      const m = parseStrict(await metricsText());
      assert.ok(sample(m, 'jobq_checkpoints_total') - sample(before0, 'jobq_checkpoints_total') >= 1,
        'jobq_checkpoints_total grew');
      assert.ok(sample(m, 'jobq_checkpoint_bytes_total') - sample(before0, 'jobq_checkpoint_bytes_total')
        >= 1234, 'jobq_checkpoint_bytes_total grew by the checkpoint size');
    } finally {
      await q('SELECT jobq.cancel($1)', [id]);
    }
  });
});

test('the strict parser rejects what the format forbids', () => {
  // a self-check, so that the assertions above mean something
  const bad = [
    'm{q="a\nb"} 1\n', // raw newline in a label value
    'm{q="a"b"} 1\n', // unescaped quote
    'm{q="a\\x"} 1\n', // unknown escape
    'm 1', // no final line feed
    '# TYPE m gauge\n# TYPE m gauge\nm 1\n', // TYPE twice
    'm 1\n# TYPE m gauge\n', // TYPE after samples
    'm 1\nn 1\nm 2\n', // samples not together
    'm{a="1"} 1\nm{a="1"} 2\n', // duplicate series
    'm one\n', // not a number
    '1m 1\n', // bad name
  ];
  for (const text of bad) assert.throws(() => parseStrict(text), `rejects ${JSON.stringify(text)}`);
  const good = parseStrict('# HELP m a \\\\ b\\n c\n# TYPE m counter\nm_total 1\nm{a="x\\"y\\\\z\\n"} +Inf 123\n');
  assert.equal(good.get('m').help, 'a \\ b\n c');
  assert.equal(good.get('m').samples[0].labels.a, 'x"y\\z\n');
});
