// Providers (SPEC 7), forwarded auth tokens (SPEC 9) and pre-warm hooks
// (issue 6), against a real HTTP server started here on 127.0.0.1.
//
// The server's routes are /<route>/<tag>: ok (200 JSON), fail (500), bad
// (400), busy (429), timeout408 (408), slow (answers after SLOW_MS, longer
// than the providers' timeout), hang (never answers), close (drops the
// connection), text (200, not JSON), switch (status and delay chosen by the
// test), unit, unitflaky and unitswitch (a unit's output bytes, or an error
// for one unit), health (health_url probes), warm (pre-warm hooks).
// Every request is recorded with its headers, body and arrival time, so the
// tests count the calls each provider got.
//
// Covered: fallback from a 500 to the next provider; 429, 408, timeouts,
// closed and refused connections falling through; all providers failing
// (UpstreamError 502, Timeout 504, retried per max_attempts); a 400 failing
// the job at once with no fallback and no retry (whole jobs and unit jobs);
// the circuit breaker counting consecutive failures, opening after
// failure_threshold, skipping the open provider (CircuitOpen 503 when
// nothing is left), one trial call after open_for (half_open), reopening on
// a failed trial and closing on a good one, with provider_health() and
// jobq_breaker_state in jobq.metrics(); a trial call that is lost (worker
// terminated, job cancelled) not leaving the breaker stuck; cancel() of a
// running provider job stopping the call; the request body and headers;
// traceparent carrying the job's trace id; Authorization: Bearer <token>
// for jobs enqueued with jobq.auth_token (enqueue and enqueue_many), else
// the provider's own Authorization header, and no header injection through
// the token; the token kept apart (jobq.job_tokens, unreadable by client and
// admin roles), never in jobq.jobs, NOTIFY payloads, error messages or the
// server log, and erased when the job ends (completed, failed, failed after
// retries, cancelled, lost worker); unit jobs whose checkpoints are exactly
// the bytes the provider answered, resumed by retry(); the mock provider
// (deterministic failure_rate, output, latency, healthy); health_url
// probes; argument checks; pre-warm hooks fired once when a queue goes from
// empty to non-empty, not again within min_interval, breaker-protected,
// not for jobs that are not due.
//
// Names (job types, providers, queues, roles) start with pv_; the other node
// test files use other names, so the files can share one database.  Server
// settings are not changed here (other files rely on jobq.retry_delay being
// its default 1 s), so retried jobs simply wait for that backoff.  Timing
// assertions compare arrival times recorded by the HTTP server with the
// configured intervals and hold however slow the machine is; waits poll
// with generous bounds.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import crypto from 'node:crypto';
import fs from 'node:fs';
import http from 'node:http';
import path from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import pg from 'pg';
import { JOB_TIMEOUT, closedPort, connConfig, dbHelpers, waitFor, withStoreLock } from './lib.mjs';

const QUEUE = 'pv_q';
const SLOW_MS = 5_000; // the slow route answers after this; provider timeouts are shorter
const OPEN_FOR_MS = 5_000; // the breaker test's open_for
const TRIAL_TIMEOUT_MS = 10_000; // timeout of the providers whose trial call is lost
const TOL_MS = 150; // clock tolerance between this process and the server's workers
const TRACEPARENT_RE = /^00-([0-9a-f]{32})-([0-9a-f]{16})-01$/;
const ERROR_KEYS = ['attempt', 'checkpoints', 'errors', 'status', 'success', 'traceId'];

let pool;
let server;
let base; // http://127.0.0.1:<port>
let refusedUrl; // a port nobody listens on
const requests = []; // every request the server got
const modes = new Map(); // switch route: tag -> { status, delayMs }
const pendingTimers = new Set();
const tokens = []; // every bearer token used here, for the leak checks
const { q, one, job, waitJob, metricsText } = dbHelpers(() => pool);

const describe = (row) => `status ${row.status}, attempts ${row.attempts}, result ${
  JSON.stringify(row.result)}, error ${JSON.stringify(row.error)}`;

// enqueue (through client c, default the pool); opts: payload, queue, units,
// maxAttempts, traceId, runAt (seconds from now)
async function enqueue(type, opts = {}, c = pool) {
  const r = await c.query(
    `SELECT jobq.enqueue($1, $2::jsonb, queue => $3, units => $4, max_attempts => $5,
                         trace_id => $6,
                         run_at => CASE WHEN $7::float8 IS NULL THEN NULL
                                        ELSE now() + $7::float8 * interval '1 s' END) AS id`,
    [type, JSON.stringify(opts.payload ?? {}), opts.queue ?? QUEUE, opts.units ?? null,
      opts.maxAttempts ?? null, opts.traceId ?? null, opts.runAt ?? null]);
  return r.rows[0].id;
}

// enqueue in a transaction that sets jobq.auth_token (SET LOCAL); inTxn(c, id)
// runs before the commit
async function enqueueWithToken(type, token, opts = {}, inTxn = null) {
  const c = await pool.connect();
  try {
    await c.query('BEGIN');
    await c.query(`SELECT set_config('jobq.auth_token', $1, true)`, [token]);
    const id = await enqueue(type, opts, c);
    if (inTxn) await inTxn(c, id);
    await c.query('COMMIT');
    return id;
  } catch (e) {
    await c.query('ROLLBACK').catch(() => {});
    throw e;
  } finally {
    c.release();
  }
}

function newToken(label) {
  const t = `pv-${label}-${crypto.randomBytes(12).toString('hex')}`;
  tokens.push(t);
  return t;
}

async function tokenRows(id) {
  return Number((await one('SELECT count(*) AS n FROM jobq.job_tokens WHERE job_id = $1', [id])).n);
}

async function health(name) {
  return (await one('SELECT jobq.provider_health($1) AS h', [name])).h;
}

// the sample value of jobq_breaker_state{endpoint=name,state=state}, or undefined
function breakerGauge(text, name, state) {
  const line = text.split('\n').find(
    (l) => l.startsWith(`jobq_breaker_state{endpoint="${name}",state="${state}"} `));
  return line === undefined ? undefined : Number(line.split(' ').pop());
}

function checkErrorShape(row, { code, status, attempt }) {
  assert.ok(row.error, `the job has an error: ${describe(row)}`);
  assert.deepEqual(Object.keys(row.error).sort(), ERROR_KEYS, `error keys: ${JSON.stringify(row.error)}`);
  assert.equal(row.error.success, false);
  assert.equal(row.error.traceId, row.trace_id, 'error.traceId is the job trace id');
  assert.equal(row.error.errors[0].code, code, `error code: ${JSON.stringify(row.error)}`);
  assert.equal(row.error.status, status, `error status: ${JSON.stringify(row.error)}`);
  if (attempt !== undefined) assert.equal(row.error.attempt, attempt, 'error.attempt');
}

// ---------------------------------------------------------------- the server

// requests to /route/tag (for one job when jobId is given)
function hits(route, tag, jobId) {
  return requests.filter((r) => r.route === route && r.tag === tag
    && (jobId === undefined || (r.json && r.json.job_id === jobId)));
}

function later(ms, fn) {
  const t = setTimeout(() => {
    pendingTimers.delete(t);
    fn();
  }, ms);
  pendingTimers.add(t);
}

function sendJson(res, status, obj, rec) {
  if (res.destroyed || res.writableEnded) return;
  const body = JSON.stringify(obj);
  res.writeHead(status, { 'Content-Type': 'application/json', 'Content-Length': Buffer.byteLength(body) });
  res.end(body);
  if (rec) rec.doneAt = Date.now();
}

function unitAnswer(rec, res) {
  const bytes = Buffer.concat([
    Buffer.from(`unit ${rec.json.unit_id} of ${rec.json.job_id}: `),
    crypto.randomBytes(24),
    Buffer.from([0, 255, 10, 13, 0x80]),
  ]);
  rec.answer = bytes;
  res.writeHead(200, { 'Content-Type': 'application/octet-stream', 'Content-Length': bytes.length });
  res.end(bytes);
  rec.doneAt = Date.now();
}

function handle(rec, req, res) {
  const echo = { route: rec.route, tag: rec.tag, job_id: rec.json?.job_id ?? null,
    unit_id: rec.json?.unit_id ?? null };
  switch (rec.route) {
    case 'ok':
      return sendJson(res, 200, echo, rec);
    case 'fail':
      return sendJson(res, 500, { error: 'provider broke' }, rec);
    case 'bad':
      return sendJson(res, 400, { error: 'bad request' }, rec);
    case 'busy':
      res.setHeader('Retry-After', '1');
      return sendJson(res, 429, { error: 'slow down' }, rec);
    case 'timeout408':
      return sendJson(res, 408, { error: 'request timeout' }, rec);
    case 'slow':
      return later(SLOW_MS, () => sendJson(res, 200, echo, rec));
    case 'hang':
      return undefined; // until the client goes away or the server closes
    case 'close':
      return req.socket.destroy();
    case 'text':
      res.writeHead(200, { 'Content-Type': 'text/plain' });
      return res.end('this is not JSON');
    case 'switch': {
      const m = modes.get(rec.tag) ?? { status: 500 };
      if (m.hang) return undefined;
      return later(m.delayMs ?? 0, () => sendJson(res, m.status, echo, rec));
    }
    case 'unit':
      return unitAnswer(rec, res);
    case 'unitswitch':
      if (rec.json?.unit_id === modes.get(rec.tag)?.badUnit) return sendJson(res, 400, { error: 'bad unit' }, rec);
      return unitAnswer(rec, res);
    case 'unitflaky':
      if (rec.json?.unit_id === 2) return sendJson(res, 500, { error: 'not unit 2' }, rec);
      return unitAnswer(rec, res);
    case 'health':
      return sendJson(res, rec.tag === 'up' ? 200 : 503, { up: rec.tag === 'up' }, rec);
    case 'warm':
      return sendJson(res, 200, { warming: rec.tag }, rec);
    default:
      return sendJson(res, 404, { error: 'no such route' }, rec);
  }
}

async function startServer() {
  server = http.createServer((req, res) => {
    const chunks = [];
    req.on('data', (c) => chunks.push(c));
    req.on('end', () => {
      const body = Buffer.concat(chunks).toString('utf8');
      const [, route = '', tag = ''] = req.url.split('/');
      let json = null;
      try {
        json = body ? JSON.parse(body) : null;
      } catch {
        json = null;
      }
      const rec = { route, tag, method: req.method, headers: req.headers, rawHeaders: req.rawHeaders,
        body, json, at: Date.now() };
      requests.push(rec);
      // when the client goes away (a cancelled call, a timeout, a dead worker)
      res.on('close', () => {
        rec.closedAt = Date.now();
      });
      handle(rec, req, res);
    });
  });
  server.keepAliveTimeout = 1000;
  await new Promise((resolve) => server.listen(0, '127.0.0.1', resolve));
  base = `http://127.0.0.1:${server.address().port}`;
  refusedUrl = `http://127.0.0.1:${await closedPort()}/refused`;
}

async function provider(name, url, opts = {}) {
  await q(`SELECT jobq.create_provider($1, $2, kind => $3, health_url => $4, headers => $5::jsonb,
                                       timeout => $6::interval, failure_threshold => $7,
                                       open_for => $8::interval, options => $9::jsonb)`,
  [name, url, opts.kind ?? 'http', opts.healthUrl ?? null, JSON.stringify(opts.headers ?? {}),
    opts.timeout ?? '10 s', opts.failureThreshold ?? 100, opts.openFor ?? '30 s',
    JSON.stringify(opts.options ?? {})]);
}

async function register(type, providers, opts = {}) {
  await q(`SELECT jobq.register($1, providers => $2::text[], queue => $3, max_attempts => $4)`,
    [type, providers, opts.queue ?? QUEUE, opts.maxAttempts ?? null]);
}

// ---------------------------------------------------------------- setup

before(async () => {
  pool = new pg.Pool({ ...connConfig(), max: 6 });
  await startServer();
  const u = (route, tag) => `${base}/${route}/${tag}`;

  // fallback and fall-through
  await provider('pv_fb_primary', u('fail', 'fb'));
  await provider('pv_fb_secondary', u('ok', 'fb'));
  await register('pv_fallback', ['pv_fb_primary', 'pv_fb_secondary'], { maxAttempts: 1 });
  await provider('pv_ft_busy', u('busy', 'ft'));
  await provider('pv_ft_408', u('timeout408', 'ft'));
  await provider('pv_ft_slow', u('slow', 'ft'), { timeout: '1 s' });
  await provider('pv_ft_close', u('close', 'ft'));
  await provider('pv_ft_refused', refusedUrl);
  await provider('pv_ft_last', u('ok', 'ft'));
  await register('pv_fallthrough', ['pv_ft_busy', 'pv_ft_408', 'pv_ft_slow', 'pv_ft_close', 'pv_ft_refused',
    'pv_ft_last'], { maxAttempts: 1 });
  await provider('pv_af_busy', u('busy', 'af'));
  await provider('pv_af_fail', u('fail', 'af'));
  await register('pv_allfail', ['pv_af_busy', 'pv_af_fail'], { maxAttempts: 2 });
  await provider('pv_to_fail', u('fail', 'to'));
  await provider('pv_to_slow', u('slow', 'to'), { timeout: '1 s' });
  await register('pv_timeout', ['pv_to_fail', 'pv_to_slow'], { maxAttempts: 1 });
  await provider('pv_tx_text', u('text', 'tx'));
  await register('pv_notjson', ['pv_tx_text'], { maxAttempts: 1 });
  // 4xx
  await provider('pv_bad_primary', u('bad', 'bad'));
  await provider('pv_bad_secondary', u('ok', 'bad'));
  await register('pv_bad', ['pv_bad_primary', 'pv_bad_secondary'], { maxAttempts: 3 });
  // breaker
  await provider('pv_br', u('switch', 'br'), { failureThreshold: 3, openFor: `${OPEN_FOR_MS} ms` });
  await provider('pv_br_backup', u('ok', 'br'));
  await register('pv_breaker', ['pv_br', 'pv_br_backup'], { maxAttempts: 1 });
  await register('pv_breaker_solo', ['pv_br'], { maxAttempts: 1 });
  await provider('pv_cons', u('switch', 'cons'), { failureThreshold: 3, openFor: '60 s' });
  await provider('pv_cons_backup', u('ok', 'cons'));
  await register('pv_consecutive', ['pv_cons', 'pv_cons_backup'], { maxAttempts: 1 });
  for (const tag of ['lost', 'cancelled']) {
    await provider(`pv_trial_${tag}`, u('switch', `trial_${tag}`),
      { failureThreshold: 1, openFor: `${OPEN_FOR_MS} ms`, timeout: `${TRIAL_TIMEOUT_MS} ms` });
    await register(`pv_trial_${tag}`, [`pv_trial_${tag}`], { maxAttempts: 1 });
  }
  await provider('pv_cancel_prov', u('hang', 'cancel'), { timeout: '40 s' });
  await register('pv_cancel', ['pv_cancel_prov'], { maxAttempts: 1 });
  // trace and auth
  await provider('pv_trace_prov', u('ok', 'trace'));
  await register('pv_trace', ['pv_trace_prov'], { maxAttempts: 1 });
  await provider('pv_auth_prov', u('ok', 'auth'), {
    headers: { Authorization: 'Basic cHJvdmlkZXI6b3duLWNyZWRlbnRpYWxz', 'X-Provider-Key': 'pk-1' },
  });
  await register('pv_auth', ['pv_auth_prov'], { maxAttempts: 1 });
  await provider('pv_auth_badprov', u('bad', 'auth'));
  await register('pv_auth_bad', ['pv_auth_badprov'], { maxAttempts: 3 });
  await provider('pv_auth_failprov', u('fail', 'auth'));
  await register('pv_auth_retry', ['pv_auth_failprov'], { maxAttempts: 2 });
  await provider('pv_auth_hangprov', u('hang', 'auth'), { timeout: '120 s' });
  await register('pv_auth_lost', ['pv_auth_hangprov'], { maxAttempts: 1 });
  // units
  await provider('pv_unit_flaky', u('unitflaky', 'u'));
  await provider('pv_unit_prov', u('unit', 'u'));
  await register('pv_units', ['pv_unit_flaky', 'pv_unit_prov'], { maxAttempts: 1 });
  await provider('pv_us_prov', u('unitswitch', 'us'));
  await provider('pv_us_backup', u('unit', 'usb'));
  await register('pv_units_bad', ['pv_us_prov', 'pv_us_backup'], { maxAttempts: 3 });
  // mock
  await provider('pv_mock_half', null, {
    kind: 'mock', failureThreshold: 1_000_000, options: { failure_rate: 0.5, fail_status: 503 },
  });
  await register('pv_mock', ['pv_mock_half'], { maxAttempts: 1 });
  await provider('pv_mock_out', null, { kind: 'mock', options: { output: { answer: 42, list: [1, 'two'] } } });
  await register('pv_mock_output', ['pv_mock_out'], { maxAttempts: 1 });
  await provider('pv_mock_slow', null, { kind: 'mock', timeout: '1 s', options: { latency_ms: 4000 } });
  await register('pv_mock_timeout', ['pv_mock_slow'], { maxAttempts: 1 });
  await provider('pv_mock_sick', null, { kind: 'mock', options: { healthy: false } });
});

after(async () => {
  for (const t of pendingTimers) clearTimeout(t);
  if (server) {
    server.closeAllConnections();
    await new Promise((resolve) => server.close(resolve));
  }
  if (pool) {
    await q(`DROP OWNED BY pv_client_role`).catch(() => {});
    await q(`DROP ROLE IF EXISTS pv_client_role`).catch(() => {});
    await q(`DROP OWNED BY pv_admin_role`).catch(() => {});
    await q(`DROP ROLE IF EXISTS pv_admin_role`).catch(() => {});
    await pool.end();
  }
});

// ---------------------------------------------------------------- arguments

test('create_provider, drop_provider, provider_health and register: argument checks', async () => {
  const bad = [
    [`SELECT jobq.create_provider('', 'http://127.0.0.1/')`, 'empty name'],
    [`SELECT jobq.create_provider(NULL, 'http://127.0.0.1/')`, 'NULL name'],
    [`SELECT jobq.create_provider('pv_arg', 'http://127.0.0.1/', kind => 'grpc')`, 'unknown kind'],
    [`SELECT jobq.create_provider('pv_arg', 'ftp://127.0.0.1/x')`, 'not http(s)'],
    [`SELECT jobq.create_provider('pv_arg', 'file:///etc/passwd')`, 'file URL'],
    [`SELECT jobq.create_provider('pv_arg', NULL)`, 'http provider without url'],
    [`SELECT jobq.create_provider('pv_arg', 'http://127.0.0.1/', health_url => 'gopher://x/')`, 'bad health_url'],
    [`SELECT jobq.create_provider('pv_arg', 'http://127.0.0.1/', headers => '[]')`, 'headers not an object'],
    [`SELECT jobq.create_provider('pv_arg', 'http://127.0.0.1/', headers => '{"X-N": 1}')`, 'header not a string'],
    [`SELECT jobq.create_provider('pv_arg', 'http://127.0.0.1/', headers => jsonb_build_object('X-A', E'a\\r\\nX-B: b'))`, 'header with CRLF'],
    [`SELECT jobq.create_provider('pv_arg', 'http://127.0.0.1/', timeout => '-1 s')`, 'negative timeout'],
    [`SELECT jobq.create_provider('pv_arg', 'http://127.0.0.1/', timeout => '0')`, 'zero timeout'],
    [`SELECT jobq.create_provider('pv_arg', 'http://127.0.0.1/', failure_threshold => 0)`, 'failure_threshold 0'],
    [`SELECT jobq.create_provider('pv_arg', 'http://127.0.0.1/', open_for => '-5 s')`, 'negative open_for'],
    [`SELECT jobq.create_provider('pv_arg', 'http://127.0.0.1/', options => '{"failure_rate": 0.1}')`, 'mock option on http'],
    [`SELECT jobq.create_provider('pv_arg', kind => 'mock', options => '{"failure_rate": 1.5}')`, 'failure_rate > 1'],
    [`SELECT jobq.create_provider('pv_arg', kind => 'mock', options => '{"fail_status": 200}')`, 'fail_status not 4xx/5xx'],
    [`SELECT jobq.create_provider('pv_arg', kind => 'mock', options => '{"bogus": 1}')`, 'unknown mock option'],
    [`SELECT jobq.register('pv_arg_type', providers => ARRAY[]::text[])`, 'empty chain'],
    [`SELECT jobq.register('pv_arg_type', providers => ARRAY['pv_fb_primary', NULL])`, 'NULL in chain'],
  ];
  for (const [sql, why] of bad) {
    await assert.rejects(q(sql), (e) => e.code === '22023', `${why}: 22023`);
  }
  await assert.rejects(q(`SELECT jobq.provider_health('pv_no_such_provider')`),
    (e) => e.code === '42704', 'provider_health of an unknown provider: 42704');
  await assert.rejects(q(`SELECT jobq.register('pv_arg_type', providers => ARRAY['pv_no_such_provider'])`),
    (e) => e.code === '42704', 'register with an unknown provider: 42704');
  assert.equal(Number((await one(`SELECT count(*) AS n FROM jobq.providers WHERE name = 'pv_arg'`)).n), 0,
    'no provider was created by the failed calls');

  // create is an upsert; drop says whether there was one
  await provider('pv_arg', `${base}/ok/one`);
  await provider('pv_arg', `${base}/ok/two`, { timeout: '3 s' });
  const row = await one(`SELECT url, timeout FROM jobq.providers WHERE name = 'pv_arg'`);
  assert.equal(row.url, `${base}/ok/two`, 'create_provider replaced the url');
  assert.equal((await one(`SELECT jobq.drop_provider('pv_arg') AS d`)).d, true);
  assert.equal((await one(`SELECT jobq.drop_provider('pv_arg') AS d`)).d, false);
  await assert.rejects(q(`SELECT jobq.drop_provider('')`), (e) => e.code === '22023');

  // health of a provider that was never called: closed, healthy, no failures
  assert.deepEqual(await health('pv_trace_prov'),
    { name: 'pv_trace_prov', state: 'closed', healthy: true, failures: 0 });
});

// ---------------------------------------------------------------- fallback

test('fallback: primary answers 500, the secondary 200; the job gets the secondary\'s result', async () => {
  const id = await enqueue('pv_fallback', { payload: { n: 1, s: 'fallback ✓' } });
  const row = await waitJob(id);
  assert.equal(row.status, 2, describe(row));
  assert.deepEqual(row.result, { route: 'ok', tag: 'fb', job_id: id, unit_id: null },
    'the result is the secondary\'s JSON body');
  const p = hits('fail', 'fb', id);
  const s = hits('ok', 'fb', id);
  assert.equal(p.length, 1, 'the primary was called once');
  assert.equal(s.length, 1, 'the secondary was called once');
  assert.ok(p[0].at <= s[0].at, 'the primary was called first');

  // the request: POST of {"job_id","job_type","user_id","payload","unit_id","attempt"}
  for (const r of [p[0], s[0]]) {
    assert.equal(r.method, 'POST');
    assert.match(r.headers['content-type'], /^application\/json/);
    assert.deepEqual(Object.keys(r.json).sort(),
      ['attempt', 'job_id', 'job_type', 'payload', 'unit_id', 'user_id']);
    assert.equal(r.json.job_id, id);
    assert.equal(r.json.job_type, 'pv_fallback');
    assert.equal(r.json.user_id, row.user_id);
    assert.deepEqual(r.json.payload, { n: 1, s: 'fallback ✓' });
    assert.equal(r.json.unit_id, null);
    assert.equal(r.json.attempt, 1);
  }
  const h = await health('pv_fb_primary');
  assert.equal(h.state, 'closed', 'one failure does not open a breaker with failure_threshold 100');
  assert.equal(h.failures, 1, 'the primary\'s failure was counted');
  assert.equal((await health('pv_fb_secondary')).failures, 0);
});

test('429, 408, a timeout, a dropped connection and a refused connection count as failures and fall through', async () => {
  const id = await enqueue('pv_fallthrough', { payload: { n: 2 } });
  const row = await waitJob(id);
  assert.equal(row.status, 2, describe(row));
  assert.deepEqual(row.result, { route: 'ok', tag: 'ft', job_id: id, unit_id: null });
  const routes = ['busy', 'timeout408', 'slow', 'close', 'ok'];
  for (const route of routes) {
    assert.equal(hits(route, 'ft', id).length, 1, `the ${route} provider was called once`);
  }
  const order = routes.map((r) => hits(r, 'ft', id)[0].at);
  assert.deepEqual([...order].sort((a, b) => a - b), order, 'called in chain order');
  assert.ok(hits('slow', 'ft', id)[0].closedAt - hits('slow', 'ft', id)[0].at < SLOW_MS,
    'the slow call was given up at the provider\'s timeout');
  const failing = ['pv_ft_busy', 'pv_ft_408', 'pv_ft_slow', 'pv_ft_close', 'pv_ft_refused'];
  for (const name of failing) {
    const h = await health(name);
    assert.equal(h.failures, 1, `${name}: one failure counted (${JSON.stringify(h)})`);
    assert.equal(h.state, 'closed', `${name} below its failure_threshold stays closed`);
  }
  assert.equal((await health('pv_ft_last')).failures, 0);
  const m = await metricsText();
  for (const name of failing) {
    assert.match(m, new RegExp(`^jobq_breaker_failures_total\\{endpoint="${name}"\\} 1$`, 'm'),
      `jobq_breaker_failures_total counts ${name}'s failure`);
  }
});

test('all providers failing: UpstreamError 502, retried per max_attempts, every provider called each attempt', async () => {
  const id = await enqueue('pv_allfail', { payload: { n: 3 } });
  const row = await waitJob(id, [2, 3, 4]);
  assert.equal(row.status, 3, describe(row));
  assert.equal(row.attempts, 2, 'two attempts (max_attempts 2)');
  checkErrorShape(row, { code: 'UpstreamError', status: 502, attempt: 2 });
  assert.match(row.error_message, /pv_af_busy: HTTP 429/, 'the message names the 429');
  assert.match(row.error_message, /pv_af_fail: HTTP 500/, 'the message names the 500');
  const busy = hits('busy', 'af', id);
  const fail = hits('fail', 'af', id);
  assert.equal(busy.length, 2, 'the first provider was called in both attempts');
  assert.equal(fail.length, 2, 'the second provider was called in both attempts');
  assert.deepEqual(busy.map((r) => r.json.attempt), [1, 2], 'the body carries the attempt number');
  assert.ok(busy[1].at - fail[0].at >= 1000 - TOL_MS,
    'the second attempt waited for the retry backoff (jobq.retry_delay, 1 s)');
});

test('all providers failing, the last one by timing out: Timeout 504', async () => {
  const id = await enqueue('pv_timeout');
  const row = await waitJob(id);
  assert.equal(row.status, 3, describe(row));
  assert.equal(row.attempts, 1);
  checkErrorShape(row, { code: 'Timeout', status: 504, attempt: 1 });
  assert.equal(hits('fail', 'to', id).length, 1);
  assert.equal(hits('slow', 'to', id).length, 1);
});

test('a 2xx answer that is not JSON does not complete a whole job', async () => {
  const id = await enqueue('pv_notjson');
  const row = await waitJob(id);
  assert.equal(row.status, 3, describe(row));
  assert.equal(row.result, null);
  checkErrorShape(row, { code: 'UpstreamError', status: 502, attempt: 1 });
});

test('a 400 fails the job at once: status 400, BadRequest, no fallback, no retry', async () => {
  const id = await enqueue('pv_bad', { payload: { n: 4 } });
  const row = await waitJob(id);
  assert.equal(row.status, 3, describe(row));
  assert.equal(row.attempts, 1, 'not retried although max_attempts is 3');
  checkErrorShape(row, { code: 'BadRequest', status: 400, attempt: 1 });
  assert.equal(hits('bad', 'bad', id).length, 1, 'the primary was called once');
  // give a wrongly scheduled retry or fallback time to show up
  await sleep(2500);
  assert.equal(hits('bad', 'bad', id).length, 1, 'and never again');
  assert.equal(hits('ok', 'bad').length, 0, 'the secondary was never called');
  assert.equal((await job(id)).status, 3);
  const h = await health('pv_bad_primary');
  assert.equal(h.state, 'closed');
  assert.equal(h.failures, 0, 'a 400 does not count against the provider');
});

// ---------------------------------------------------------------- breaker

test('circuit breaker: opens after failure_threshold failures, is skipped, one trial after open_for, reopens, closes', async (t) => {
  const br = () => hits('switch', 'br');
  // no call to pv_br may arrive while its breaker is open
  const checkNoCallWhileOpen = (openedBy) => {
    for (const r of br().filter((x) => x.at > openedBy.at)) {
      assert.ok(r.at >= openedBy.at + OPEN_FOR_MS - TOL_MS,
        `pv_br was called ${r.at - openedBy.at} ms after its breaker opened (open_for ${OPEN_FOR_MS} ms)`);
    }
  };
  modes.set('br', { status: 500 });

  // three failing calls (failure_threshold 3); each job completes through the backup
  for (let i = 1; i <= 3; i++) {
    const id = await enqueue('pv_breaker', { payload: { i } });
    const row = await waitJob(id);
    assert.equal(row.status, 2, describe(row));
    assert.equal(row.result.route, 'ok', 'completed by the backup');
    assert.equal(hits('switch', 'br', id).length, 1, `job ${i} called pv_br`);
    const h = await health('pv_br');
    if (i < 3) assert.deepEqual(h, { name: 'pv_br', state: 'closed', healthy: true, failures: i });
  }
  const opened = br()[2];
  assert.deepEqual(await health('pv_br'), { name: 'pv_br', state: 'open', healthy: false, failures: 3 },
    'open after 3 consecutive failures');
  let m = await metricsText();
  assert.equal(breakerGauge(m, 'pv_br', 'open'), 1, 'jobq_breaker_state{state="open"} is 1');
  assert.equal(breakerGauge(m, 'pv_br', 'closed'), 0);
  assert.equal(breakerGauge(m, 'pv_br', 'half_open'), 0);

  // while open: skipped, the chain falls through; alone in its chain: CircuitOpen 503
  const skipped = await enqueue('pv_breaker', { payload: { i: 4 } });
  const solo = await enqueue('pv_breaker_solo', { payload: { i: 5 } });
  const skippedRow = await waitJob(skipped);
  const soloRow = await waitJob(solo);
  assert.equal(skippedRow.status, 2, describe(skippedRow));
  assert.equal(skippedRow.result.route, 'ok');
  checkNoCallWhileOpen(opened);
  const backupAt = hits('ok', 'br', skipped)[0].at;
  if (backupAt < opened.at + OPEN_FOR_MS - 500) {
    assert.equal(hits('switch', 'br', skipped).length, 0, 'the open provider was not called');
    assert.equal(soloRow.status, 3, describe(soloRow));
    assert.equal(hits('switch', 'br', solo).length, 0, 'the open provider was not called');
    checkErrorShape(soloRow, { code: 'CircuitOpen', status: 503, attempt: 1 });
  } else {
    t.diagnostic('the machine was too slow to run the jobs within open_for; skipped-call checks left out');
  }

  // after open_for: exactly one trial call; it fails, so the breaker opens again
  await sleep(Math.max(0, opened.at + OPEN_FOR_MS + 500 - Date.now()));
  const trialFail = await enqueue('pv_breaker', { payload: { i: 6 } });
  const trialFailRow = await waitJob(trialFail);
  assert.equal(trialFailRow.status, 2, describe(trialFailRow));
  assert.equal(hits('switch', 'br', trialFail).length, 1, 'one trial call went out');
  assert.equal(trialFailRow.result.route, 'ok', 'the trial failed; the backup did the job');
  const reopened = br()[br().length - 1];
  const h = await health('pv_br');
  assert.equal(h.state, 'open', `a failed trial opens the breaker again: ${JSON.stringify(h)}`);
  assert.equal(h.healthy, false);
  const afterReopen = await enqueue('pv_breaker', { payload: { i: 7 } });
  assert.equal((await waitJob(afterReopen)).status, 2);
  checkNoCallWhileOpen(reopened);

  // the provider recovers (and answers slowly, so half_open can be seen)
  modes.set('br', { status: 200, delayMs: 2500 });
  await sleep(Math.max(0, reopened.at + OPEN_FOR_MS + 500 - Date.now()));
  const a = await enqueue('pv_breaker', { payload: { i: 8 } });
  const b = await enqueue('pv_breaker', { payload: { i: 9 } });
  const states = new Set();
  await waitFor('jobs 8 and 9 to end', async () => {
    states.add((await health('pv_br')).state);
    const rows = await Promise.all([job(a), job(b)]);
    return rows.every((r) => [2, 3, 4].includes(r.status));
  }, JOB_TIMEOUT, 50);
  assert.ok(states.has('half_open'), `provider_health showed half_open during the trial (saw ${[...states]})`);
  for (const id of [a, b]) assert.equal((await job(id)).status, 2, describe(await job(id)));
  const trial = br().find((r) => r.at > reopened.at);
  assert.ok(trial, 'a trial call went out');
  assert.ok(trial.doneAt, 'the trial was answered');
  const during = br().filter((r) => r !== trial && r.at > reopened.at && r.at < trial.doneAt);
  assert.equal(during.length, 0, 'no other call while the trial call was out (exactly one trial)');
  assert.equal((await job(trial.json.job_id)).result.route, 'switch', 'the trial\'s answer is the job\'s result');
  assert.deepEqual(await health('pv_br'), { name: 'pv_br', state: 'closed', healthy: true, failures: 0 },
    'a good trial closes the breaker');
  m = await metricsText();
  assert.equal(breakerGauge(m, 'pv_br', 'closed'), 1, 'jobq_breaker_state{state="closed"} is 1');
  assert.equal(breakerGauge(m, 'pv_br', 'open'), 0);

  // closed: calls go out again
  modes.set('br', { status: 200 });
  const c = await enqueue('pv_breaker', { payload: { i: 10 } });
  const cRow = await waitJob(c);
  assert.equal(cRow.status, 2);
  assert.equal(cRow.result.route, 'switch', 'the recovered provider does the job');
  assert.equal(hits('ok', 'br', c).length, 0, 'the backup was not needed');
});


test('the breaker counts consecutive failures: a success in between resets the count', async () => {
  const run = async (status) => {
    modes.set('cons', { status });
    const id = await enqueue('pv_consecutive');
    const row = await waitJob(id);
    assert.equal(row.status, 2, describe(row));
    return row;
  };
  await run(500);
  await run(500);
  assert.equal((await health('pv_cons')).failures, 2);
  const ok = await run(200);
  assert.equal(ok.result.route, 'switch');
  assert.deepEqual(await health('pv_cons'), { name: 'pv_cons', state: 'closed', healthy: true, failures: 0 },
    'a success resets the consecutive failures');
  await run(500);
  await run(500);
  assert.equal((await health('pv_cons')).state, 'closed', '2 failures after a success: still closed');
  await run(500);
  assert.equal((await health('pv_cons')).state, 'open', 'the third consecutive failure opens it');
  const before = hits('switch', 'cons').length;
  const skipped = await run(200);
  assert.equal(skipped.result.route, 'ok', 'while open (open_for 60 s) the backup does the job');
  assert.equal(hits('switch', 'cons').length, before, 'and the open provider is not called');
});

// A half-open breaker's trial call whose worker is lost (or whose job is
// cancelled) must not leave the provider skipped for ever: once the trial
// call's own timeout and open_for have passed, another trial goes out.
async function lostTrial(t, tag, lose) {
  const name = `pv_trial_${tag}`;
  const route = `trial_${tag}`;
  modes.set(route, { status: 500 });
  const j1 = await enqueue(name);
  const r1 = await waitJob(j1);
  assert.equal(r1.status, 3, describe(r1));
  const [opened] = hits('switch', route, j1);
  assert.equal((await health(name)).state, 'open', 'failure_threshold 1: open after one failure');

  modes.set(route, { hang: true });
  await sleep(Math.max(0, opened.at + OPEN_FOR_MS + 500 - Date.now()));
  const j2 = await enqueue(name);
  const [trial] = await waitFor('the trial call', () => {
    const h = hits('switch', route, j2);
    return h.length ? h : null;
  });
  assert.equal((await health(name)).state, 'half_open', 'half_open while the trial call is out');
  await lose(j2);
  if (trial.closedAt !== undefined && trial.closedAt >= trial.at + TRIAL_TIMEOUT_MS - TOL_MS) {
    t.diagnostic('the trial call timed out before it could be lost; the check is weaker');
  }
  const r2 = await waitJob(j2);
  assert.ok([3, 4].includes(r2.status), describe(r2));

  // the provider is back; after the lost trial's timeout and open_for, it gets a new trial
  modes.set(route, { status: 200 });
  await sleep(Math.max(0, trial.at + TRIAL_TIMEOUT_MS + OPEN_FOR_MS + 1000 - Date.now()));
  const j3 = await enqueue(name);
  const r3 = await waitJob(j3);
  assert.equal(r3.status, 2, `the provider is tried again after the lost trial: ${describe(r3)}; `
    + `provider_health ${JSON.stringify(await health(name))}`);
  assert.equal(hits('switch', route, j3).length, 1);
  assert.equal((await health(name)).state, 'closed');
}

test('a half-open trial whose worker is terminated does not leave the breaker stuck', async (t) => {
  await lostTrial(t, 'lost', async (id) => {
    const { pid } = await waitFor('the worker running the trial',
      () => one('SELECT pid FROM jobq.worker_status WHERE job_id = $1', [id]));
    assert.equal((await one('SELECT pg_terminate_backend($1) AS ok', [pid])).ok, true);
    await waitFor('the lost job to end', async () => {
      await q('SELECT jobq.sweep()');
      return [3, 4].includes((await job(id)).status);
    }, JOB_TIMEOUT, 500);
    await waitFor('the terminated worker to be replaced', async () => {
      const r = await one('SELECT count(*) AS n FROM jobq.worker_status WHERE pid <> $1', [pid]);
      return Number(r.n) >= 2;
    });
  });
});

test('a half-open trial whose job is cancelled does not leave the breaker stuck', async (t) => {
  await lostTrial(t, 'cancelled', async (id) => {
    assert.equal((await one('SELECT jobq.cancel($1) AS c', [id])).c, true);
  });
});

test('cancel of a running provider job stops the provider call (SPEC 3: the worker is interrupted, not waited out)', async () => {
  const id = await enqueue('pv_cancel');
  const [call] = await waitFor('the provider call', () => {
    const h = hits('hang', 'cancel', id);
    return h.length ? h : null;
  });
  assert.equal((await one('SELECT jobq.cancel($1) AS c', [id])).c, true);
  assert.equal((await job(id)).status, 4, 'Cancelled at once');
  // "within about a second"; 15 s leaves room for a busy machine (the call's own timeout is 40 s)
  await waitFor('the provider call to be abandoned after cancel()', () => call.closedAt !== undefined, 15_000);
  await waitFor('the worker to let go of the cancelled job', async () =>
    Number((await one('SELECT count(*) AS n FROM jobq.worker_status WHERE job_id = $1', [id])).n) === 0, 15_000);
  const row = await job(id);
  assert.equal(row.status, 4, describe(row));
  assert.equal(row.result, null);
});

// ---------------------------------------------------------------- trace and auth

test('traceparent carries the job\'s trace id (given at enqueue or generated)', async () => {
  const given = crypto.randomBytes(16).toString('hex');
  const id1 = await enqueue('pv_trace', { traceId: given });
  const id2 = await enqueue('pv_trace');
  for (const [id, expect] of [[id1, given], [id2, null]]) {
    const row = await waitJob(id);
    assert.equal(row.status, 2, describe(row));
    if (expect) assert.equal(row.trace_id, expect);
    const [r] = hits('ok', 'trace', id);
    assert.ok(r, 'the provider was called');
    const m = TRACEPARENT_RE.exec(r.headers.traceparent ?? '');
    assert.ok(m, `traceparent is 00-<32 hex>-<16 hex>-01: ${r.headers.traceparent}`);
    assert.equal(m[1], row.trace_id, 'its trace id is the job\'s trace_id');
    assert.notEqual(m[2], '0000000000000000', 'the parent id is not all zeros');
  }
});

test('Authorization: Bearer <token> for a job enqueued with jobq.auth_token, the provider\'s own header otherwise', async () => {
  const token = newToken('auth');
  const listener = new pg.Client(connConfig());
  const notes = [];
  await listener.connect();
  listener.on('notification', (n) => notes.push(n.payload));
  await listener.query('LISTEN jobq_progress');
  try {
    const withToken = await enqueueWithToken('pv_auth', token, { payload: { who: 'user' } }, async (c, id) => {
      const r = await c.query('SELECT token FROM jobq.job_tokens WHERE job_id = $1', [id]);
      assert.deepEqual(r.rows, [{ token }], 'the token is kept in jobq.job_tokens');
      const j = await c.query('SELECT to_jsonb(j)::text AS t FROM jobq.jobs j WHERE id = $1', [id]);
      assert.ok(!j.rows[0].t.includes(token), 'the token is not in jobq.jobs');
    });
    const without = await enqueue('pv_auth', { payload: { who: 'nobody' } });
    for (const id of [withToken, without]) {
      const row = await waitJob(id);
      assert.equal(row.status, 2, describe(row));
      assert.ok(!JSON.stringify(row).includes(token), 'the token is not in the finished job row');
    }
    const [a] = hits('ok', 'auth', withToken);
    assert.equal(a.headers.authorization, `Bearer ${token}`, 'the forwarded token');
    const authHeaders = a.rawHeaders.filter((h, i) => i % 2 === 0 && h.toLowerCase() === 'authorization');
    assert.equal(authHeaders.length, 1, 'the token replaced the configured Authorization header');
    assert.equal(a.headers['x-provider-key'], 'pk-1', 'the other configured headers are still sent');
    const [b] = hits('ok', 'auth', without);
    assert.equal(b.headers.authorization, 'Basic cHJvdmlkZXI6b3duLWNyZWRlbnRpYWxz',
      'without a token: the provider\'s configured Authorization');
    assert.equal(b.headers['x-provider-key'], 'pk-1');

    assert.equal(await tokenRows(withToken), 0, 'the token is erased when the job completes');
    await waitFor('progress notifications of the job', () => notes.some((n) => n.includes(withToken)));
    await sleep(300);
    assert.ok(notes.every((n) => !n.includes(token)), 'no NOTIFY payload carries the token');
  } finally {
    await listener.end();
  }
});

test('enqueue_many with jobq.auth_token: every job forwards the token, which goes when each ends', async () => {
  const token = newToken('many');
  const c = await pool.connect();
  let ids;
  try {
    await c.query('BEGIN');
    await c.query(`SELECT set_config('jobq.auth_token', $1, true)`, [token]);
    ids = (await c.query(`SELECT jobq.enqueue_many('pv_auth', ARRAY['{"m": 1}', '{"m": 2}']::jsonb[],
                                                   queue => $1) AS id`, [QUEUE])).rows.map((r) => r.id);
    await c.query('COMMIT');
  } finally {
    c.release();
  }
  assert.equal(ids.length, 2);
  for (const id of ids) {
    const row = await waitJob(id);
    assert.equal(row.status, 2, describe(row));
    assert.equal(hits('ok', 'auth', id)[0].headers.authorization, `Bearer ${token}`);
    assert.equal(await tokenRows(id), 0);
  }
});

test('a token with CR/LF cannot inject headers into the provider call', async () => {
  const token = newToken('crlf');
  const evil = `${token}\r\nX-Injected: yes`;
  let id;
  try {
    id = await enqueueWithToken('pv_auth', evil);
  } catch (e) {
    assert.equal(e.code, '22023', `rejected with 22023, not ${e.code}: ${e.message}`);
    return;
  }
  const row = await waitJob(id);
  const calls = hits('ok', 'auth', id);
  for (const r of calls) {
    assert.equal(r.headers['x-injected'], undefined,
      `the token's CR/LF injected a header into the provider call: ${JSON.stringify(r.rawHeaders)}`);
  }
  assert.ok([2, 3].includes(row.status), describe(row));
  assert.equal(await tokenRows(id), 0);
});

test('the token is erased when the job fails at once, fails after retries, or is cancelled; never in errors', async () => {
  // a 400: failed at once
  const t1 = newToken('bad');
  const bad = await enqueueWithToken('pv_auth_bad', t1);
  let row = await waitJob(bad);
  assert.equal(row.status, 3, describe(row));
  checkErrorShape(row, { code: 'BadRequest', status: 400, attempt: 1 });
  assert.equal(hits('bad', 'auth', bad)[0].headers.authorization, `Bearer ${t1}`);
  assert.equal(await tokenRows(bad), 0, 'erased when the job failed');
  assert.ok(!JSON.stringify(row).includes(t1), 'the token is in no column, error or message');

  // 500 twice: the token survives the requeue, then goes with the final failure
  const t2 = newToken('retry');
  const retried = await enqueueWithToken('pv_auth_retry', t2);
  row = await waitJob(retried);
  assert.equal(row.status, 3, describe(row));
  assert.equal(row.attempts, 2);
  const calls = hits('fail', 'auth', retried);
  assert.deepEqual(calls.map((r) => r.json.attempt), [1, 2]);
  assert.deepEqual(calls.map((r) => r.headers.authorization), [`Bearer ${t2}`, `Bearer ${t2}`],
    'the retried attempt forwards the token too');
  assert.equal(await tokenRows(retried), 0, 'erased when the job failed for good');
  assert.ok(!JSON.stringify(row).includes(t2));

  // cancelled before it ran
  const t3 = newToken('cancel');
  const cancelled = await enqueueWithToken('pv_auth', t3, { runAt: 3600 });
  assert.equal(await tokenRows(cancelled), 1, 'kept while the job waits');
  assert.equal((await one('SELECT jobq.cancel($1) AS c', [cancelled])).c, true);
  assert.equal(await tokenRows(cancelled), 0, 'erased when the job is cancelled');

  // a job type that does not run on providers keeps no token
  const t4 = newToken('ext');
  const ext = await enqueueWithToken('pv_ext_no_providers', t4, { queue: 'pv_ext_q' });
  assert.equal(await tokenRows(ext), 0, 'no token kept for a job type without providers');
  await q('SELECT jobq.cancel($1)', [ext]);
});

test('the token is erased when the worker running the job is lost', async () => {
  const token = newToken('lost');
  const id = await enqueueWithToken('pv_auth_lost', token);
  const [call] = await waitFor('the hanging provider to be called', () => {
    const h = hits('hang', 'auth', id);
    return h.length ? h : null;
  });
  assert.equal(call.headers.authorization, `Bearer ${token}`);
  const { pid } = await waitFor('the worker running the job', () =>
    one('SELECT pid FROM jobq.worker_status WHERE job_id = $1', [id]));
  assert.equal((await one('SELECT pg_terminate_backend($1) AS ok', [pid])).ok, true);
  const row = await waitFor('the lost job to be Failed', async () => {
    await q('SELECT jobq.sweep()');
    const r = await job(id);
    return r.status === 3 ? r : null;
  }, JOB_TIMEOUT, 500);
  checkErrorShape(row, { code: 'WorkerLost', status: 500, attempt: 1 });
  assert.equal(await tokenRows(id), 0, 'erased when the lost job failed');
  await waitFor('the terminated worker to be replaced', async () => {
    const r = await one(`SELECT count(*) AS n FROM jobq.worker_status WHERE pid <> $1`, [pid]);
    return Number(r.n) >= 2;
  });
});

test('jobq.job_tokens is readable by neither client nor admin roles', async () => {
  await q(`DO $$ BEGIN
             IF NOT EXISTS (SELECT 1 FROM pg_roles WHERE rolname = 'pv_client_role') THEN
               CREATE ROLE pv_client_role NOLOGIN; END IF;
             IF NOT EXISTS (SELECT 1 FROM pg_roles WHERE rolname = 'pv_admin_role') THEN
               CREATE ROLE pv_admin_role NOLOGIN; END IF;
           END $$`);
  await q(`SELECT jobq.grant_client('pv_client_role')`);
  await q(`SELECT jobq.grant_admin('pv_admin_role')`);
  for (const role of ['pv_client_role', 'pv_admin_role']) {
    const c = await pool.connect();
    try {
      await c.query('BEGIN');
      await c.query(`SET LOCAL ROLE ${role}`);
      await assert.rejects(c.query('SELECT token FROM jobq.job_tokens'),
        (e) => e.code === '42501', `${role} may not read jobq.job_tokens`);
      await c.query('ROLLBACK');
    } finally {
      c.release();
    }
  }
});

// ---------------------------------------------------------------- units

test('a unit job through the HTTP chain: each unit is one call, its body is the checkpoint', async () => {
  await withStoreLock('shared', async () => {
    const token = newToken('units');
    const id = await enqueueWithToken('pv_units', token, { units: 4, payload: { doc: 'd-1' } });
    const row = await waitJob(id);
    assert.equal(row.status, 2, describe(row));
    assert.deepEqual(row.result, { units: 4 }, 'without a finalizer the result is {"units": N}');
    assert.equal(row.units_done, 4);
    assert.equal(row.progress_percent, 100);
    const flaky = hits('unitflaky', 'u', id);
    const good = hits('unit', 'u', id);
    assert.deepEqual(flaky.map((r) => r.json.unit_id), [1, 2, 3, 4], 'the first provider was asked for every unit');
    assert.deepEqual(good.map((r) => r.json.unit_id), [2], 'unit 2 fell through to the second provider');
    const answered = new Map();
    for (const r of [...flaky, ...good]) {
      assert.equal(r.json.job_id, id);
      assert.equal(r.json.job_type, 'pv_units');
      assert.deepEqual(r.json.payload, { doc: 'd-1' });
      assert.equal(r.json.attempt, 1);
      assert.equal(TRACEPARENT_RE.exec(r.headers.traceparent)?.[1], row.trace_id, 'traceparent on every unit call');
      assert.equal(r.headers.authorization, `Bearer ${token}`, 'the token on every unit call');
      if (r.answer) answered.set(r.json.unit_id, r.answer);
    }
    const cps = (await q('SELECT unit_id, bytes, sha256 FROM jobq.checkpoints($1) ORDER BY unit_id', [id])).rows;
    assert.deepEqual(cps.map((c) => c.unit_id), [1, 2, 3, 4], 'one checkpoint per unit');
    for (let u = 1; u <= 4; u++) {
      const data = (await one('SELECT jobq.checkpoint_data($1, $2) AS d', [id, u])).d;
      const want = answered.get(u);
      assert.ok(Buffer.isBuffer(data) && data.equals(want),
        `checkpoint_data of unit ${u} is exactly the bytes the provider answered`);
      assert.equal(Number(cps[u - 1].bytes), want.length);
      assert.equal(cps[u - 1].sha256, crypto.createHash('sha256').update(want).digest('hex'));
    }
    assert.equal(await tokenRows(id), 0, 'the token is erased when the unit job completes');
  });
});

test('a unit job whose provider answers 400 for one unit fails at once; retry() resumes after the stored units', async () => {
  await withStoreLock('shared', async () => {
    modes.set('us', { badUnit: 3 });
    const id = await enqueue('pv_units_bad', { units: 4 });
    let row = await waitJob(id);
    assert.equal(row.status, 3, describe(row));
    assert.equal(row.attempts, 1, 'a 400 is not retried');
    checkErrorShape(row, { code: 'BadRequest', status: 400, attempt: 1 });
    assert.equal(row.error.checkpoints, 2, 'the error counts the two stored units');
    assert.equal(row.units_done, 2);
    assert.deepEqual(hits('unitswitch', 'us', id).map((r) => r.json.unit_id), [1, 2, 3]);
    assert.equal(hits('unit', 'usb', id).length, 0, 'no fallback after a 400');
    const firstAnswers = new Map(hits('unitswitch', 'us', id).filter((r) => r.answer)
      .map((r) => [r.json.unit_id, r.answer]));

    modes.set('us', {});
    assert.equal((await one('SELECT jobq.retry($1) AS r', [id])).r, true);
    row = await waitJob(id);
    assert.equal(row.status, 2, describe(row));
    const calls = hits('unitswitch', 'us', id);
    assert.deepEqual(calls.map((r) => r.json.unit_id), [1, 2, 3, 3, 4],
      'after retry() only units 3 and 4 were asked for');
    const answers = new Map([...firstAnswers, ...calls.slice(3).map((r) => [r.json.unit_id, r.answer])]);
    for (let u = 1; u <= 4; u++) {
      const data = (await one('SELECT jobq.checkpoint_data($1, $2) AS d', [id, u])).d;
      assert.ok(data.equals(answers.get(u)), `unit ${u}'s checkpoint is the provider's answer`);
    }
  });
});

// ---------------------------------------------------------------- mock

test('mock provider: failure_rate 0.5 is deterministic per request; output, latency and healthy options', async () => {
  const ids = [];
  for (let i = 0; i < 24; i++) ids.push(await enqueue('pv_mock', { payload: { i } }));
  const first = new Map();
  for (const id of ids) {
    const row = await waitJob(id);
    assert.ok([2, 3].includes(row.status), describe(row));
    first.set(id, row);
  }
  const failed = ids.filter((id) => first.get(id).status === 3);
  const done = ids.filter((id) => first.get(id).status === 2);
  assert.ok(failed.length > 0 && done.length > 0,
    `failure_rate 0.5 fails some requests and not others (${failed.length} of ${ids.length} failed)`);
  for (const id of failed) {
    checkErrorShape(first.get(id), { code: 'UpstreamError', status: 502, attempt: 1 });
    assert.match(first.get(id).error_message, /pv_mock_half: HTTP 503/, 'fail_status 503');
  }
  for (const id of done) {
    const { result } = first.get(id);
    assert.equal(result.provider, 'pv_mock_half', 'without output the mock echoes the request');
    assert.equal(result.echo.job_id, id);
    assert.equal(result.echo.attempt, 1);
  }
  // run every job again as attempt 1, i.e. with the same request: retry()
  // resets attempts; completed jobs are marked Failed first (test-only
  // UPDATE as superuser) so that retry() accepts them
  await q('UPDATE jobq.jobs SET status = 3 WHERE id = ANY ($1::uuid[])', [done]);
  for (const id of ids) assert.equal((await one('SELECT jobq.retry($1) AS r', [id])).r, true);
  for (const id of ids) {
    const row = await waitJob(id);
    const was = first.get(id);
    assert.equal(row.status, was.status, `same request, same outcome (job ${id})`);
    assert.equal(row.attempts, 1);
    if (row.status === 2) assert.deepEqual(row.result, was.result, 'same answer');
  }

  // output: the configured JSON is the result
  const out = await enqueue('pv_mock_output');
  const outRow = await waitJob(out);
  assert.equal(outRow.status, 2, describe(outRow));
  assert.deepEqual(outRow.result, { answer: 42, list: [1, 'two'] });

  // latency_ms over the timeout: Timeout 504
  const slow = await enqueue('pv_mock_timeout');
  const slowRow = await waitJob(slow);
  assert.equal(slowRow.status, 3, describe(slowRow));
  checkErrorShape(slowRow, { code: 'Timeout', status: 504, attempt: 1 });

  // healthy: false
  const h = await health('pv_mock_sick');
  assert.equal(h.healthy, false, 'options.healthy false makes the mock unhealthy');
  assert.equal(h.state, 'closed');
});

// ---------------------------------------------------------------- health_url

test('provider_health probes health_url with a GET', async () => {
  await provider('pv_hc_up', `${base}/ok/hc`, { healthUrl: `${base}/health/up`, headers: { 'X-Probe': 'p' } });
  await provider('pv_hc_down', `${base}/ok/hc`, { healthUrl: `${base}/health/down` });
  await provider('pv_hc_refused', `${base}/ok/hc`, { healthUrl: refusedUrl, timeout: '2 s' });
  assert.deepEqual(await health('pv_hc_up'), { name: 'pv_hc_up', state: 'closed', healthy: true, failures: 0 });
  assert.equal((await health('pv_hc_down')).healthy, false, 'a 503 from health_url: unhealthy');
  assert.equal((await health('pv_hc_refused')).healthy, false, 'a refused health_url: unhealthy');
  const probes = hits('health', 'up');
  assert.ok(probes.length >= 1);
  assert.equal(probes[0].method, 'GET');
  assert.equal(probes[0].headers['x-probe'], 'p', 'the probe sends the provider\'s headers');
  assert.equal(hits('ok', 'hc').length, 0, 'the probe does not call the provider itself');
});

// ---------------------------------------------------------------- pre-warm

test('pre-warm hooks: called once when the queue goes from empty to non-empty, not again within min_interval', async (t) => {
  const MIN_INTERVAL_MS = 8_000;
  await provider('pv_warm_prov', `${base}/ok/warm`);
  await register('pv_warm', ['pv_warm_prov'], { queue: 'pv_warm_q', maxAttempts: 1 });
  await assert.rejects(q(`SELECT jobq.set_prewarm_hook('pv_warm_q', 'ftp://127.0.0.1/')`),
    (e) => e.code === '22023', 'a hook URL must be http(s)');
  await assert.rejects(q(`SELECT jobq.set_prewarm_hook('pv_warm_q', $1, method => 'TRACE')`, [`${base}/warm/x`]),
    (e) => e.code === '22023', 'unknown method');
  await q(`SELECT jobq.set_prewarm_hook('pv_warm_q', $1, method => 'POST', headers => '{"X-Warm": "yes"}',
                                        body => '{"scale": 1}', min_interval => $2::interval,
                                        timeout => '5 s')`,
  [`${base}/warm/inserver`, `${MIN_INTERVAL_MS} ms`]);
  // a queue nobody serves in-server: its jobs stay queued, so it stays non-empty
  await q(`SELECT jobq.set_prewarm_hook('pv_warm_ext_q', $1, method => 'GET', min_interval => '1 s')`,
    [`${base}/warm/external`]);
  // the workers re-read an empty hook list at most every 5 s
  await sleep(6500);
  assert.equal(hits('warm', 'inserver').length, 0, 'not called while the queue is empty');
  assert.equal(hits('warm', 'external').length, 0, 'not called while the queue is empty');

  // empty -> non-empty: one call
  const j1 = await enqueue('pv_warm', { queue: 'pv_warm_q' });
  const ext = await enqueue('pv_warm_ext_type', { queue: 'pv_warm_ext_q' });
  assert.equal((await waitJob(j1)).status, 2);
  const [first] = await waitFor('the in-server queue\'s hook', () => {
    const h = hits('warm', 'inserver');
    return h.length ? h : null;
  });
  assert.equal(first.method, 'POST');
  assert.equal(first.headers['x-warm'], 'yes', 'the hook\'s headers');
  assert.equal(first.body, '{"scale": 1}', 'the hook\'s body');
  const [extHook] = await waitFor('the external queue\'s hook', () => {
    const h = hits('warm', 'external');
    return h.length ? h : null;
  });
  assert.equal(extHook.method, 'GET');

  // emptied and non-empty again within min_interval: no call
  await sleep(1500); // the workers poll the empty queue
  const j2 = await enqueue('pv_warm', { queue: 'pv_warm_q' });
  const j2row = await waitJob(j2);
  assert.equal(j2row.status, 2);
  if (new Date(j2row.started_at).getTime() < first.at + MIN_INTERVAL_MS - 500) {
    await sleep(500);
    assert.equal(hits('warm', 'inserver').length, 1, 'not called again within min_interval');
  } else {
    t.diagnostic('the second job ran after min_interval; the within-interval check was left out');
  }

  // after min_interval, emptied, non-empty again: called again
  await sleep(Math.max(0, first.at + MIN_INTERVAL_MS + 1000 - Date.now()));
  const j3 = await enqueue('pv_warm', { queue: 'pv_warm_q' });
  assert.equal((await waitJob(j3)).status, 2);
  const calls = await waitFor('the second hook call', () => {
    const h = hits('warm', 'inserver');
    return h.length >= 2 ? h : null;
  });
  for (let i = 1; i < calls.length; i++) {
    assert.ok(calls[i].at - calls[i - 1].at >= MIN_INTERVAL_MS - TOL_MS,
      `hook calls ${calls[i].at - calls[i - 1].at} ms apart, min_interval ${MIN_INTERVAL_MS} ms`);
  }

  // the external queue stayed non-empty all along: still one call, min_interval (1 s) long past
  assert.equal(hits('warm', 'external').length, 1, 'one call per empty -> non-empty transition, not per poll');
  const m = await metricsText();
  assert.equal(breakerGauge(m, 'prewarm:pv_warm_q', 'closed'), 1, 'the hook has a breaker in the metrics');

  assert.equal((await one(`SELECT jobq.drop_prewarm_hook('pv_warm_q') AS d`)).d, true);
  assert.equal((await one(`SELECT jobq.drop_prewarm_hook('pv_warm_ext_q') AS d`)).d, true);
  assert.equal((await one(`SELECT jobq.drop_prewarm_hook('pv_warm_ext_q') AS d`)).d, false);
  await q('SELECT jobq.cancel($1)', [ext]);
});

test('pre-warm hooks are breaker-protected, and only due jobs count', async () => {
  await q(`SELECT jobq.set_prewarm_hook('pv_warm_fail_q', $1, min_interval => '0')`, [`${base}/fail/warmfail`]);
  await q(`SELECT jobq.set_prewarm_hook('pv_warm_future_q', $1, min_interval => '0')`, [`${base}/warm/future`]);
  await sleep(6500); // the workers re-read an empty hook list at most every 5 s
  const future = await enqueue('pv_warm_ext_type', { queue: 'pv_warm_future_q', runAt: 3600 });
  // five failing calls (the hooks' failure_threshold is 5) open the hook's breaker
  for (let i = 1; i <= 5; i++) {
    const id = await enqueue('pv_warm_ext_type', { queue: 'pv_warm_fail_q' });
    await waitFor(`failing hook call ${i}`, () => hits('fail', 'warmfail').length >= i);
    await q('SELECT jobq.cancel($1)', [id]);
    await sleep(1500); // the workers poll the empty queue
  }
  assert.equal(hits('fail', 'warmfail').length, 5);
  const m = await metricsText();
  assert.equal(breakerGauge(m, 'prewarm:pv_warm_fail_q', 'open'), 1, 'the hook\'s breaker is open');
  const id = await enqueue('pv_warm_ext_type', { queue: 'pv_warm_fail_q' });
  await sleep(3000);
  assert.equal(hits('fail', 'warmfail').length, 5, 'the open hook is not called');
  await q('SELECT jobq.cancel($1)', [id]);
  assert.equal(hits('warm', 'future').length, 0, 'a queue with only future jobs is not warmed');
  await q('SELECT jobq.cancel($1)', [future]);
  await q(`SELECT jobq.drop_prewarm_hook('pv_warm_fail_q')`);
  await q(`SELECT jobq.drop_prewarm_hook('pv_warm_future_q')`);
});

// ---------------------------------------------------------------- leaks

test('no forwarded token is left in jobq.job_tokens or written to the server log', async () => {
  const r = await one(`SELECT count(*) AS n FROM jobq.job_tokens t JOIN jobq.jobs j ON j.id = t.job_id
                        WHERE j.job_type LIKE 'pv\\_%'`);
  assert.equal(Number(r.n), 0, 'every job of this file has ended: no token left');
  const logFile = path.join(path.dirname(process.env.JOBQ_PGHOST), 'server.log');
  if (!fs.existsSync(logFile)) return;
  const log = fs.readFileSync(logFile, 'utf8');
  for (const t of tokens) assert.ok(!log.includes(t), `token ${t.slice(0, 12)}… is not in the server log`);
  assert.ok(!log.includes('cHJvdmlkZXI6b3duLWNyZWRlbnRpYWxz'), 'the provider\'s credentials are not in the log');
});
