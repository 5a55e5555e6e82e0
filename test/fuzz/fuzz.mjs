// The jobq fuzz test (issue 7: "no input may crash a backend", SPEC section
// 8's SQLSTATEs, tenancy and secrets under hostile input).
//
//   JOBQ_PGHOST=/path/to/sock JOBQ_PGPORT=5432 node test/fuzz/fuzz.mjs
//
// Environment:
//   JOBQ_PGHOST, JOBQ_PGPORT  the server (a throwaway cluster: the run creates
//                             roles and jobs and leaves them there)
//   FUZZ_DB                   database with CREATE EXTENSION jobq (contrib_regression)
//   FUZZ_SEED, FUZZ_CALLS     PRNG seed (default 20261127) and number of calls (5000)
//   FUZZ_PGDATA               the data directory, to check the checkpoint store
//                             and look for files named after fuzz values
//   FUZZ_LOG                  the server log, to look for crashes and secrets
//   FUZZ_SKIP_HIJACK=1        skip the in-server worker search_path phase
//   FUZZ_WORKER_WAIT_S        how long that phase waits for the workers (120)
//
// What it does.  The callable functions of schema jobq are read from the
// catalog (so functions added later are fuzzed too).  Each of FUZZ_CALLS
// steps calls one of them, as one of four sessions: the superuser, a client
// role with tenant A, a worker role, an admin role, with each argument
// plausible or hostile (NULL, boundary integers, 100k-character and
// unicode/RTL/emoji/combining/control-character text, quotes, path
// traversal and file:// / gopher:// URLs, malformed, 10000-deep and
// over-the-limit JSON, invalid/random/real/another tenant's uuids, empty,
// NULL-holding, multi-dimensional, odd-lower-bound and 10000-element arrays,
// negative/huge/mixed-sign intervals, unrelated regprocedures, ...).  Some
// steps fuzz the session settings jobq reads (jobq.user_id,
// request.jwt.claims, jobq.traceparent, jobq.auth_token), some pass an
// argument of the wrong type, some run the call in a transaction that is
// rolled back.
//
// Every argument is sent as a bind parameter with an explicit cast.  The
// casts are first tried alone ("SELECT $1::uuid, ..."): an error there is
// PostgreSQL rejecting the value (22P02, 22003, 54001, ...), allowed.  An
// error of the call itself must be one of SPEC section 8 (22023 42704 P0002
// 55000 42501 54000 23514), or 54001 (stack depth, absurd JSON nesting), or
// for a wrong-type call 42883/42725; anything else (XX000 above all) is a
// finding.  So is a lost connection, a secret in a result, a job of another
// tenant changed, a forwarded token with a control character accepted.
//
// Afterwards (TAP, one line per check): the server is up and was not
// restarted, its log has no crash / PANIC / TRAP and no planted secret, the
// sentinel jobs of tenant B (every state, one with a checkpoint and a
// forwarded token) and the fixture configuration are unchanged, every job
// the client enqueued with tenant A belongs to A, the checkpoint store holds
// only <uuid>/jobs/<uuid>/units/unit_<n>.output files, no file anywhere is
// named after a fuzz value, and a rolled-back checkpoint never destroyed a
// recorded one.  Then (worker_hijack.mjs) a role that may create objects in
// schema public plants look-alike operators and functions there and the
// in-server workers run jobs: none may be called.
import crypto from 'node:crypto';
import fs from 'node:fs';
import path from 'node:path';
import pg from 'pg';

import {
  MARK, arrayLiteral, hostileArray, hostileBooleans, hostileBytea, hostileInts, hostileIntervals,
  hostileJson, hostileReals, hostileRegprocedures, hostileRoles, hostileStrings, hostileTimestamps, makeRng,
} from './values.mjs';
import { workerHijack } from './worker_hijack.mjs';

const env = process.env;
const SEED = Number(env.FUZZ_SEED ?? 20261127);
const CALLS = Number(env.FUZZ_CALLS ?? 5000);
const DB = env.FUZZ_DB ?? 'contrib_regression';
const PGDATA = env.FUZZ_PGDATA || null;
const LOG = env.FUZZ_LOG || null;

const TENANT_A = 'aaaaaaaa-0000-4000-8000-000000000001';
const TENANT_B = 'bbbbbbbb-0000-4000-8000-000000000002';
const SECRET = 'FUZZSECRET';
const SPEC_STATES = new Set(['22023', '42704', 'P0002', '55000', '42501', '54000', '23514']);
const ARG_STATES = new Set(['54001']); // stack depth: absurd JSON nesting
const WRONG_TYPE_STATES = new Set(['42883', '42725', '42804', '42846']);
const UUID_RE = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/;
const CONTROL_RE = /[\u0000-\u001f\u007f]/;

// ---- TAP ----

let tapN = 0;
let tapFailed = 0;
function ok(cond, desc, diag = []) {
  tapN++;
  console.log(`${cond ? 'ok' : 'not ok'} ${tapN} - ${desc}`);
  if (!cond) {
    tapFailed++;
    for (const d of diag) console.log(`#   ${String(d).replace(/\n/g, '\n#   ')}`);
  }
}
function skip(desc, why) {
  tapN++;
  console.log(`ok ${tapN} - ${desc} # SKIP ${why}`);
}
function note(msg) {
  console.log(`# ${msg}`);
}
const short = (v, n = 120) => {
  if (v === null || v === undefined) return 'NULL';
  const s = String(v);
  const printable = s.replace(/[\u0000-\u001f\u007f]/g, (c) => `\\x${c.charCodeAt(0).toString(16).padStart(2, '0')}`);
  return printable.length > n ? `${printable.slice(0, n)}…(${s.length} chars)` : printable;
};

// ---- sessions ----

function connConfig(user) {
  return { host: env.JOBQ_PGHOST, port: Number(env.JOBQ_PGPORT), database: DB, user };
}

const ROLE_USERS = {
  su: 'postgres', client: 'jobq_fuzz_client', worker: 'jobq_fuzz_worker', admin: 'jobq_fuzz_admin',
};

class Session {
  constructor(name) {
    this.name = name;
    this.user = ROLE_USERS[name];
    this.client = null;
    this.lost = [];
  }

  async connect() {
    for (let attempt = 0; ; attempt++) {
      const c = new pg.Client(connConfig(this.user));
      c.on('error', () => {}); // reported through the failing query
      try {
        await c.connect();
        await c.query(`SET statement_timeout = '60s'; SET lock_timeout = '20s'; SET client_min_messages = warning`);
        if (this.name === 'client') await c.query(`SET jobq.user_id = '${TENANT_A}'`);
        this.client = c;
        return;
      } catch (e) {
        c.end().catch(() => {});
        if (attempt >= 60) throw e;
        await new Promise((r) => setTimeout(r, 1000));
      }
    }
  }

  // { rows } or { error: {code, message} }; a lost connection is recorded
  // and the session reconnects
  async run(sql, params = []) {
    try {
      const r = await this.client.query({ text: sql, values: params, rowMode: 'array' });
      return { rows: r.rows, fields: r.fields.map((f) => f.name) };
    } catch (e) {
      // no SQLSTATE (a socket error), or the server ending the session
      const lost = !e.code || !/^[0-9A-Z]{5}$/.test(e.code) || /^(57P0[123]|08)/.test(e.code);
      if (lost && !this.client._ending) {
        this.lost.push({ sql: short(sql, 300), code: e.code ?? '-', message: e.message });
        this.client.end().catch(() => {});
        await this.connect();
        return { error: { code: e.code ?? 'LOST', message: e.message }, lost: true };
      }
      return { error: { code: e.code ?? '?', message: e.message } };
    }
  }

  async end() {
    if (this.client) await this.client.end().catch(() => {});
  }
}

// ---- the functions to fuzz ----

async function loadCatalog(su) {
  const r = await su.run(`
    SELECT p.proname, p.oid::regprocedure::text, p.pronargs, p.pronargdefaults, p.proretset,
           (SELECT coalesce(array_agg(a.n ORDER BY a.o), '{}')
              FROM unnest(coalesce(p.proargnames, array_fill(''::text, ARRAY[p.pronargs])),
                          coalesce(p.proargmodes::text[], array_fill('i'::text, ARRAY[p.pronargs])))
                   WITH ORDINALITY AS a(n, m, o)
             WHERE a.m IN ('i', 'b', 'v')),
           (SELECT array_agg(format_type(t.t, NULL) ORDER BY t.o)
              FROM unnest(p.proargtypes::oid[]) WITH ORDINALITY AS t(t, o))
      FROM pg_proc p
     WHERE p.pronamespace = 'jobq'::regnamespace AND p.prokind = 'f' AND p.proname !~ '^_'
     ORDER BY 1, 2`);
  if (r.error) throw new Error(`catalog: ${r.error.message}`);
  const catalog = r.rows.map(([name, sig, nargs, ndefaults, retset, names, types]) => ({
    name, sig, nargs, ndefaults, retset, names: names ?? [], types: types ?? [], roles: [],
  }));
  // which of the four sessions may execute each function
  for (const f of catalog) {
    for (const [role, user] of Object.entries(ROLE_USERS)) {
      const p = await su.run(`SELECT has_function_privilege($1, $2::regprocedure, 'EXECUTE')
                                     AND has_schema_privilege($1, 'jobq', 'USAGE')`, [user, f.sig]);
      if (p.rows?.[0]?.[0]) f.roles.push(role);
    }
  }
  return catalog;
}

// ---- value generation ----

const rng = makeRng(SEED);
const H = {
  text: hostileStrings(),
  json: hostileJson(),
  int: hostileInts(),
  interval: hostileIntervals(),
  ts: hostileTimestamps(),
  real: hostileReals(),
  bool: hostileBooleans(),
  bytea: hostileBytea(rng),
  regproc: hostileRegprocedures(),
  role: hostileRoles(),
};
const BAD_UUIDS = ['', ' ', 'not-a-uuid', '00000000-0000-0000-0000-00000000000', '{' + TENANT_A + '}',
  TENANT_A.toUpperCase(), TENANT_A.replace(/-/g, ''), `${TENANT_A} `, 'g'.repeat(36),
  '00000000-0000-0000-0000-000000000000', 'ffffffff-ffff-ffff-ffff-ffffffffffff', "'; DROP TABLE jobq.jobs; --",
  `../../${MARK}`, TENANT_B, TENANT_A];

const HOLDER_FNS = new Set(['heartbeat', 'progress', 'complete', 'complete_many', 'fail', 'checkpoint',
  'checkpoint_data', 'checkpoints', 'cancel', 'retry', 'status']);
const CONFIG_FNS = new Set(['register', 'unregister', 'add_validator', 'set_validation_threshold']);
const ENQUEUE_TYPES = ['fuzz', 'fuzz', 'fuzz-unit', 'fuzz-val', 'fuzz-rej', 'fuzz-vout', 'fuzz-prov'];
const CONFIG_TYPES = ['fuzz-cfg-1', 'fuzz-cfg-2', 'fuzz-cfg-3'];

const state = {
  pool: [], // ids of jobs the run made (most recent last)
  held: [], // { id, worker, units } of jobs claimed in the run
  clientIds: new Set(), // ids the client enqueued while its tenant was A
  sentinels: {}, // name -> id
  exposure: {}, // role -> sentinel ids it is given
  clientTenant: TENANT_A, // the client's tenant right now (null: fuzzed)
  rollbackChecks: [], // { what, ok, detail }
  tokenFindings: [],
  secretFindings: [],
  tenantFindings: [],
};

function poolId() {
  if (state.pool.length === 0) return rng.uuid();
  const recent = state.pool.slice(-60);
  return rng.pick(recent);
}

function someUuid(role, hostile) {
  const exposed = state.exposure[role] ?? [];
  const r = rng.next();
  if (exposed.length && r < (hostile ? 0.15 : 0.1)) return rng.pick(exposed);
  if (hostile && r < 0.45) return rng.pick(BAD_UUIDS);
  if (r < 0.8) return poolId();
  return rng.uuid();
}

function goodInt(name) {
  switch (name) {
    case 'unit_id': return String(rng.int(1, 3));
    case 'units': return String(rng.int(1, 4));
    case 'percent': return String(rng.int(0, 100));
    case 'priority': return String(rng.int(-3, 3));
    case 'max_jobs': return String(rng.int(0, 5));
    case 'max_attempts': case 'failure_threshold': return String(rng.int(1, 5));
    default: return String(rng.int(0, 5));
  }
}

function goodText(fn, name) {
  switch (name) {
    case 'job_type': return rng.pick(CONFIG_FNS.has(fn) ? CONFIG_TYPES : ENQUEUE_TYPES);
    case 'queue':
      if (fn === 'register') return 'fuzz-cfg-q';
      if (fn === 'set_prewarm_hook' || fn === 'drop_prewarm_hook') return rng.pick(['fuzz-hook-1', 'fuzz-hook-2']);
      return rng.pick(['fuzz-q', 'fuzz-q', 'fuzz-q2', 'default']);
    case 'worker': return rng.pick(['fw1', 'fw2']);
    case 'name':
      if (fn === 'add_validator') return rng.pick(['v1', 'v2']);
      if (fn === 'provider_health') return rng.pick(['fuzz-p1', 'fuzz-p2', 'fuzz-mock']);
      return rng.pick(['fuzz-p1', 'fuzz-p2']);
    case 'url': case 'health_url': return rng.pick([`http://127.0.0.1:9/${MARK}`, 'https://127.0.0.1:9/x']);
    case 'kind': return rng.pick(['mock', 'http']);
    case 'method': return rng.pick(['POST', 'get', 'PUT']);
    case 'code': return rng.pick(['HandlerError', 'Timeout', 'BadRequest', 'x']);
    case 'dedupe_key': return rng.pick(['dk1', 'dk2']);
    case 'trace_id': return rng.hex(32);
    default: return rng.pick(['boom', 'step 1 of 3', 'ok', `m${rng.int(0, 99)}`]);
  }
}

function goodJson(name) {
  if (name === 'headers') return rng.pick(['{}', `{"X-Key": "${SECRET}-header"}`, `{"Authorization": "Bearer ${SECRET}-provider"}`]);
  if (name === 'options') return rng.pick(['{}', '{"failure_rate": 0.1}', '{"latency_ms": 1}', '{"healthy": false}']);
  return rng.pick(['{}', '{"a": 1}', `{"n": ${rng.int(0, 1000)}}`, '{"nested": {"k": [1, 2, {"x": "y"}]}}']);
}

function goodInterval(name) {
  if (name === 'stale_after' || name === 'older_than') return rng.pick(['1 hour', '7 days', '1 s']);
  return rng.pick(['30 s', '1 min', '1 s']);
}

function goodRegproc(name) {
  switch (name) {
    case 'handler': return 'fuzzfn.h(jobq.jobs)';
    case 'unit_handler': return 'fuzzfn.uh(jobq.jobs,integer)';
    case 'finalizer': return 'fuzzfn.fin(jobq.jobs)';
    default: return 'fuzzfn.v(jsonb)';
  }
}

// A value for one argument: the text to bind (or null).  ctx.job, when
// set, is a job a worker holds: its id, holder and units are used.
function valueFor(type, name, fn, role, mode, ctx = {}) {
  const hostile = mode === 'hostile' && rng.chance(0.75);
  if (mode === 'hostile' && rng.chance(0.15)) return null;
  if (ctx.job && !hostile) {
    if (name === 'job_id') return ctx.job.id;
    if (name === 'worker') return ctx.job.worker;
    if (name === 'unit_id') return String(rng.int(1, Math.max(1, ctx.job.units ?? 1)));
    if (name === 'job_ids') return arrayLiteral([ctx.job.id]);
  }
  if (mode === 'good' && name === 'user_id') return role === 'client' && rng.chance(0.5) ? TENANT_A : null;
  if (mode === 'good' && (name === 'run_at' || name === 'results' || name === 'job_types' || name === 'providers'
    || name === 'finalizer' || name === 'health_url' || name === 'dedupe_key' || name === 'trace_id')
    && rng.chance(0.6)) return null;
  switch (type) {
    case 'uuid': return someUuid(role, hostile);
    case 'uuid[]':
      if (hostile) return hostileArray(rng, () => someUuid(role, true), 5000);
      return arrayLiteral(Array.from({ length: rng.int(1, 3) }, () => someUuid(role, false)));
    case 'integer': case 'bigint': case 'smallint':
      return hostile ? rng.pick(H.int) : goodInt(name);
    case 'text':
      return hostile ? rng.pick(H.text) : goodText(fn, name);
    case 'text[]':
      if (hostile) return hostileArray(rng, () => rng.pick(H.text), 10_000);
      if (name === 'providers') return arrayLiteral([rng.pick(['fuzz-p1', 'fuzz-mock'])]);
      return arrayLiteral([rng.pick(ENQUEUE_TYPES)]);
    case 'jsonb': case 'json':
      return hostile ? rng.pick(H.json) : goodJson(name);
    case 'jsonb[]':
      if (hostile) return hostileArray(rng, () => rng.pick(H.json.filter((j) => j.length < 2000)), 10_000);
      return arrayLiteral(Array.from({ length: rng.int(1, 3) }, () => goodJson(name)));
    case 'interval': return hostile ? rng.pick(H.interval) : goodInterval(name);
    case 'timestamp with time zone': return hostile ? rng.pick(H.ts) : rng.pick(['now', '2000-01-01']);
    case 'boolean': return hostile ? rng.pick(H.bool) : rng.pick(['true', 'false']);
    case 'bytea': return hostile ? rng.pick(H.bytea) : '\\x' + rng.hex(2 * rng.int(1, 32));
    case 'regprocedure': return hostile ? rng.pick(H.regproc) : goodRegproc(name);
    case 'real': case 'double precision':
      return hostile ? rng.pick(H.real) : rng.pick(['0.5', '1', '0.25']);
    case 'regrole': return hostile ? rng.pick(H.role) : 'jobq_fuzz_victim';
    default: return hostile ? rng.pick(H.text) : 'x';
  }
}

const WRONG_TYPES = ['integer', 'uuid', 'text[]', 'jsonb', 'boolean', 'bytea', 'interval'];

// ---- outcome bookkeeping ----

const stats = new Map(); // "fn" -> { calls, ok, cast, spec: Map(code -> n), bad: [] , byRole: {} }
function statFor(fn) {
  if (!stats.has(fn)) stats.set(fn, { calls: 0, ok: 0, cast: 0, codes: new Map(), bad: [], roles: new Set() });
  return stats.get(fn);
}

function record(fn, role, outcome, allowed, detail) {
  const s = statFor(fn);
  s.calls++;
  s.roles.add(role);
  if (outcome === 'ok') s.ok++;
  else if (outcome === 'cast') s.cast++;
  else s.codes.set(outcome, (s.codes.get(outcome) ?? 0) + 1);
  if (!allowed) s.bad.push(`${role}: ${detail}`);
}

// ---- checks on results ----

function checkResult(fn, role, res, args) {
  const text = JSON.stringify(res.rows);
  if (text && text.includes(SECRET)) state.secretFindings.push(`${fn} as ${role} returned a planted secret`);
  if (role === 'client' && state.clientTenant === TENANT_A) {
    const ui = res.fields.indexOf('user_id');
    if (ui >= 0) {
      for (const row of res.rows) {
        if (row[ui] !== null && row[ui] !== TENANT_A) {
          state.tenantFindings.push(`${fn} as client (tenant A) returned a row of user ${row[ui]}: ${short(args.join(', '), 300)}`);
        }
      }
    }
  }
}

function collectIds(fn, role, res) {
  if (!res.rows) return;
  const idCol = res.fields.indexOf('id') >= 0 ? res.fields.indexOf('id')
    : (fn === 'enqueue' || fn === 'enqueue_many' ? 0 : -1);
  if (idCol < 0) return;
  for (const row of res.rows) {
    const id = row[idCol];
    if (typeof id === 'string' && UUID_RE.test(id)) {
      if (!Object.values(state.sentinels).includes(id)) state.pool.push(id);
      if ((fn === 'enqueue' || fn === 'enqueue_many') && role === 'client' && state.clientTenant === TENANT_A) {
        state.clientIds.add(id);
      }
    }
  }
  if (state.pool.length > 5000) state.pool.splice(0, state.pool.length - 2000);
  if (fn === 'claim') {
    const [ii, wi, ui] = ['id', 'locked_by', 'units_total'].map((c) => res.fields.indexOf(c));
    for (const row of res.rows) {
      if (ii >= 0 && wi >= 0) state.held.push({ id: row[ii], worker: row[wi], units: ui >= 0 ? row[ui] : null });
    }
    if (state.held.length > 500) state.held.splice(0, state.held.length - 200);
  }
}

// ---- one fuzzed call ----

async function oneCall(sessions, catalog, step) {
  const f = rng.pick(catalog);
  // mostly a role that may call it (to get past the privilege check), else any
  const role = rng.chance(0.75) ? rng.pick(f.roles) : rng.pick(['su', 'client', 'worker', 'admin']);
  const mode = rng.chance(0.35) ? 'good' : 'hostile';
  const required = f.nargs - f.ndefaults;
  // plausible calls of the worker API mostly name a job a worker holds
  const ctx = {};
  if (HOLDER_FNS.has(f.name) && state.held.length && rng.chance(0.7)) ctx.job = rng.pick(state.held.slice(-40));
  const args = [];
  const casts = [];
  const parts = [];
  for (let i = 0; i < f.nargs; i++) {
    if (i >= required && !rng.chance(0.6)) continue;
    const type = f.types[i];
    const name = f.names[i] || `arg${i + 1}`;
    args.push(valueFor(type, name, f.name, role, mode, ctx));
    casts.push(type);
    const ref = `$${args.length}`;
    parts.push(i < required ? `${ref}::${type}` : `"${name}" => ${ref}::${type}`);
  }
  let wrongType = false;
  if (args.length && rng.chance(0.02)) {
    const k = rng.int(0, args.length - 1);
    const wrong = rng.pick(WRONG_TYPES.filter((t) => t !== casts[k]));
    parts[k] = parts[k].replace(/::[^:]+$/, `::${wrong}`);
    casts[k] = wrong;
    args[k] = { integer: '1', uuid: TENANT_A, 'text[]': '{a}', jsonb: '{}', boolean: 'true', bytea: '\\x00', interval: '1 s' }[wrong];
    wrongType = true;
  } else if (args.length && rng.chance(0.03)) {
    // no casts at all: the server infers the types from the signature
    for (let k = 0; k < parts.length; k++) parts[k] = parts[k].replace(/::[^:]+$/, '');
  }
  const sql = `SELECT * FROM jobq.${f.name}(${parts.join(', ')}) AS r LIMIT 200`;
  const s = sessions[role];
  const detail = () => `jobq.${f.name}(${args.map((a) => short(a, 60)).join(', ')})`;

  if (args.length) {
    const probe = await s.run(`SELECT ${casts.map((c, k) => `$${k + 1}::${c}`).join(', ')}`, args);
    if (probe.error) {
      const allowed = !probe.lost && !/^XX/.test(probe.error.code);
      record(f.name, role, 'cast', allowed, `cast ${probe.error.code} ${probe.error.message}: ${detail()}`);
      return;
    }
  }

  // a few calls run in a transaction that is rolled back: they must leave
  // nothing behind (checked on the recorded checkpoints of the jobs they name)
  const rollback = rng.chance(0.05);
  let before = null;
  const named = args.filter((a) => typeof a === 'string' && UUID_RE.test(a));
  if (rollback) {
    before = await checkpointDigest(sessions.su, named);
    await s.run('BEGIN');
  }
  const res = await s.run(sql, args);
  if (rollback) {
    await s.run('ROLLBACK');
    const after = await checkpointDigest(sessions.su, named);
    for (const [k, v] of before) {
      if (v === 'ok' && after.get(k) !== 'ok') {
        state.rollbackChecks.push({ ok: false, what: `step ${step}: a rolled-back ${detail()} as ${role} left checkpoint ${k} ${after.get(k)}` });
      }
    }
    if (before.size) state.rollbackChecks.push({ ok: true });
  }

  if (res.error) {
    const code = res.error.code;
    const allowed = !res.lost && (wrongType ? WRONG_TYPE_STATES.has(code) || SPEC_STATES.has(code)
      : SPEC_STATES.has(code) || ARG_STATES.has(code));
    record(f.name, role, code, allowed, `${code} ${short(res.error.message, 200)}: ${detail()}`);
    return;
  }
  // (a "wrong" type may be implicitly castable to the right one: success is fine)
  record(f.name, role, 'ok', true, detail());
  checkResult(f.name, role, res, args);
  if (!rollback) collectIds(f.name, role, res);
}

// "job/unit" -> 'ok' or the SQLSTATE checkpoint_data answers, for the
// recorded checkpoints of the given jobs
async function checkpointDigest(su, ids) {
  const out = new Map();
  if (!ids.length) return out;
  const r = await su.run(
    'SELECT job_id::text, unit_id FROM jobq.unit_checkpoints WHERE job_id = ANY ($1::uuid[]) AND stored', [ids]);
  for (const [job, unit] of r.rows ?? []) {
    const d = await su.run('SELECT length(jobq.checkpoint_data($1, $2))', [job, unit]);
    out.set(`${job}/${unit}`, d.error ? d.error.code : 'ok');
  }
  return out;
}

// A unit job held by the worker role, so that the fuzzed worker calls
// (checkpoint above all) also reach their success paths.
async function heldUnitJob(sessions) {
  const units = rng.int(1, 4);
  const e = await sessions.su.run(`SELECT jobq.enqueue('fuzz', $1, queue => 'fuzz-held', units => $2)`,
    [JSON.stringify({ units }), units]);
  if (e.error) return;
  const worker = rng.pick(['fw1', 'fw2']);
  const c = await sessions.worker.run(`SELECT id, locked_by, units_total FROM jobq.claim('fuzz-held', $1)`, [worker]);
  for (const [id, w, u] of c.rows ?? []) {
    state.pool.push(id);
    state.held.push({ id, worker: w, units: u });
  }
}

// ---- fuzzing the session settings jobq reads ----

async function settingsStep(sessions) {
  const c = sessions.client;
  const which = rng.int(0, 4);
  const call = async (label, sql, params = []) => {
    const r = await c.run(sql, params);
    const code = r.error ? r.error.code : 'ok';
    const allowed = !r.lost && (code === 'ok' || SPEC_STATES.has(code) || ARG_STATES.has(code));
    record(label, 'client', code, allowed, `${code} ${r.error ? short(r.error.message, 200) : ''}: ${short(params.join(', '), 200)}`);
    return r;
  };
  if (which === 0) {
    // a hostile tenant (never '' and never tenant B: those would be legitimate)
    const v = rng.pick([...BAD_UUIDS.filter((u) => u.trim() !== '' && u !== TENANT_B), rng.uuid(), `{${TENANT_A}}`, 'x'.repeat(100_000)]);
    state.clientTenant = null;
    await c.run(`SELECT set_config('jobq.user_id', $1, false)`, [v]);
    await call('settings: jobq.user_id / current_user_id', 'SELECT jobq.current_user_id()');
    // a job enqueued now belongs to whatever tenant v names: not tracked as A's
    await call('settings: jobq.user_id / enqueue', `SELECT jobq.enqueue('fuzz', '{}', queue => 'fuzz-q')`);
  } else if (which === 1) {
    // hostile JWT claims, with no jobq.user_id: only calls that cannot touch the sentinels
    const claims = rng.pick(H.json.filter((j) => !j.includes(TENANT_B)));
    state.clientTenant = null;
    await c.run(`SELECT set_config('jobq.user_id', '', false), set_config('request.jwt.claims', $1, false)`, [claims]);
    await call('settings: request.jwt.claims / current_user_id', 'SELECT jobq.current_user_id()');
    await call('settings: request.jwt.claims / depth', 'SELECT jobq.depth()');
    await call('settings: request.jwt.claims / validate', `SELECT jobq.validate('fuzz-val', '{}')`);
  } else if (which === 2) {
    const tp = rng.pick([...H.text, '00-' + rng.hex(32) + '-' + rng.hex(16) + '-01', '00-' + '0'.repeat(32) + '-' + rng.hex(16) + '-01']);
    await c.run(`SELECT set_config('jobq.traceparent', $1, false)`, [tp]);
    const r = await call('settings: jobq.traceparent / enqueue', `SELECT jobq.enqueue('fuzz', '{}', queue => 'fuzz-q')`);
    if (!r.error) {
      state.pool.push(r.rows[0][0]);
      state.clientIds.add(r.rows[0][0]);
    }
  } else {
    // a forwarded token: plain (with the secret marker) or hostile
    const plain = rng.chance(0.4);
    const token = plain ? `${SECRET}-token-${rng.hex(8)}` : rng.pick(H.text.filter((t) => t !== ''));
    const set = await c.run(`SET jobq.auth_token = ${c.client.escapeLiteral(token)}`);
    if (set.error) {
      record('settings: jobq.auth_token / SET', 'client', set.error.code,
        !set.lost && SPEC_STATES.has(set.error.code), `${set.error.code} ${short(set.error.message)}: ${short(token)}`);
    } else {
      const many = rng.chance(0.5);
      const r = await call(`settings: jobq.auth_token / ${many ? 'enqueue_many' : 'enqueue'}`,
        many ? `SELECT * FROM jobq.enqueue_many('fuzz-prov', ARRAY['{}', '{"b": 2}']::jsonb[], queue => 'fuzz-q')`
          : `SELECT jobq.enqueue('fuzz-prov', '{}', queue => 'fuzz-q')`);
      if (!r.error) {
        const ids = r.rows.map((row) => row[0]);
        for (const id of ids) { state.pool.push(id); state.clientIds.add(id); }
        const kept = await sessions.su.run('SELECT token FROM jobq.job_tokens WHERE job_id = ANY ($1::uuid[])', [ids]);
        if (CONTROL_RE.test(token)) {
          state.tokenFindings.push(`a token with a control character was accepted (${short(token)}), kept: ${kept.rows?.length ?? '?'} row(s)`);
        } else if (plain && (kept.rows ?? []).length !== ids.length) {
          state.tokenFindings.push(`a plain token was not kept for ${ids.length} provider job(s): ${kept.rows?.length} row(s)`);
        }
      }
      await c.run(`SET jobq.auth_token = ''`);
    }
  }
  await c.run(`SELECT set_config('jobq.user_id', '${TENANT_A}', false), set_config('request.jwt.claims', '', false),
                      set_config('jobq.traceparent', '', false)`);
  state.clientTenant = TENANT_A;
}

// ---- set-up: roles, fixtures, sentinels ----

async function setup(su) {
  const steps = [
    `DO $$ BEGIN
       IF NOT EXISTS (SELECT FROM pg_roles WHERE rolname = 'jobq_fuzz_client') THEN CREATE ROLE jobq_fuzz_client LOGIN; END IF;
       IF NOT EXISTS (SELECT FROM pg_roles WHERE rolname = 'jobq_fuzz_worker') THEN CREATE ROLE jobq_fuzz_worker LOGIN; END IF;
       IF NOT EXISTS (SELECT FROM pg_roles WHERE rolname = 'jobq_fuzz_admin') THEN CREATE ROLE jobq_fuzz_admin LOGIN; END IF;
       IF NOT EXISTS (SELECT FROM pg_roles WHERE rolname = 'jobq_fuzz_victim') THEN CREATE ROLE jobq_fuzz_victim NOLOGIN; END IF;
     END $$`,
    `SELECT jobq.grant_client('jobq_fuzz_client'), jobq.grant_worker('jobq_fuzz_worker'), jobq.grant_admin('jobq_fuzz_admin')`,
    `CREATE SCHEMA IF NOT EXISTS fuzzfn`,
    `GRANT USAGE ON SCHEMA fuzzfn TO PUBLIC`,
    `CREATE OR REPLACE FUNCTION fuzzfn.h(j jobq.jobs) RETURNS jsonb LANGUAGE sql AS $$ SELECT '{"ok": true}'::jsonb $$`,
    `CREATE OR REPLACE FUNCTION fuzzfn.uh(j jobq.jobs, unit int) RETURNS bytea LANGUAGE sql AS $$ SELECT int4send(unit) $$`,
    `CREATE OR REPLACE FUNCTION fuzzfn.fin(j jobq.jobs) RETURNS jsonb LANGUAGE sql AS $$ SELECT '{"final": true}'::jsonb $$`,
    `CREATE OR REPLACE FUNCTION fuzzfn.h_wrong(p jsonb) RETURNS jsonb LANGUAGE sql AS $$ SELECT p $$`,
    `CREATE OR REPLACE FUNCTION fuzzfn.v(p jsonb) RETURNS real LANGUAGE sql AS $$ SELECT 0.7::real $$`,
    `CREATE OR REPLACE FUNCTION fuzzfn.v_low(p jsonb) RETURNS real LANGUAGE sql AS $$ SELECT 0.1::real $$`,
    `CREATE OR REPLACE FUNCTION fuzzfn.v_out(p jsonb) RETURNS real LANGUAGE sql AS $$ SELECT 2::real $$`,
    `SELECT jobq.create_provider('fuzz-mock', kind => 'mock')`,
    // provider and unit types served by no worker (their queues are not in the vocabulary)
    `SELECT jobq.register('fuzz-prov', providers => ARRAY['fuzz-mock'], queue => 'fuzz-hidden-prov')`,
    `SELECT jobq.register('fuzz-unit', unit_handler => 'fuzzfn.uh(jobq.jobs,integer)', finalizer => 'fuzzfn.fin(jobq.jobs)', queue => 'fuzz-hidden-unit')`,
    `SELECT jobq.add_validator('fuzz-val', 'fuzzfn.v(jsonb)')`,
    `SELECT jobq.set_validation_threshold('fuzz-val', 0.5)`,
    `SELECT jobq.add_validator('fuzz-rej', 'fuzzfn.v_low(jsonb)')`,
    `SELECT jobq.set_validation_threshold('fuzz-rej', 0.5)`,
    `SELECT jobq.add_validator('fuzz-vout', 'fuzzfn.v_out(jsonb)')`,
  ];
  for (const sql of steps) {
    const r = await su.run(sql);
    if (r.error) throw new Error(`setup: ${sql}: ${r.error.message}`);
  }

  // sentinels: tenant B's jobs in every state, in queues nobody names, and
  // with timestamps that keep sweep() and purge() away from them
  // (names unique per run, not drawn from the seeded PRNG: a second run on
  // the same server gets new sentinels and the same sequence of calls)
  const q = `fuzz-sentinel-${crypto.randomUUID()}`;
  const one = async (sql, params) => {
    const r = await su.run(sql, params);
    if (r.error) throw new Error(`sentinel: ${sql}: ${r.error.message}`);
    return r.rows[0]?.[0];
  };
  const S = state.sentinels;
  S.queued = await one(`SELECT jobq.enqueue('fuzz-sentinel', '{"sentinel": "queued"}', $1, $2, units => 2, dedupe_key => $2)`, [TENANT_B, `${q}-q`]);
  S.processing = await one(`SELECT jobq.enqueue('fuzz-sentinel', '{"sentinel": "processing"}', $1, $2, units => 2)`, [TENANT_B, `${q}-p`]);
  await one(`SELECT count(*) FROM jobq.claim($1, 'fuzz-sentinel-holder')`, [`${q}-p`]);
  await one(`SELECT jobq.checkpoint($1, 1, '\\x5e471ee1')`, [S.processing]);
  S.completed = await one(`SELECT jobq.enqueue('fuzz-sentinel', '{"sentinel": "completed"}', $1, $2)`, [TENANT_B, `${q}-d`]);
  await one(`SELECT count(*) FROM jobq.claim($1, 'fuzz-sentinel-holder')`, [`${q}-d`]);
  await one(`SELECT jobq.complete($1, '{"r": 1}', 'fuzz-sentinel-holder')`, [S.completed]);
  S.failed = await one(`SELECT jobq.enqueue('fuzz-sentinel', '{"sentinel": "failed"}', $1, $2)`, [TENANT_B, `${q}-f`]);
  await one(`SELECT count(*) FROM jobq.claim($1, 'fuzz-sentinel-holder')`, [`${q}-f`]);
  await one(`SELECT jobq.fail($1, 'sentinel', retry => false, worker => 'fuzz-sentinel-holder')`, [S.failed]);
  S.cancelled = await one(`SELECT jobq.enqueue('fuzz-sentinel', '{"sentinel": "cancelled"}', $1, $2)`, [TENANT_B, `${q}-c`]);
  await one(`SELECT jobq.cancel($1)`, [S.cancelled]);
  await one(`UPDATE jobq.jobs SET heartbeat_at = now() + interval '100 years' WHERE id = $1 RETURNING 1`, [S.processing]);
  await one(`UPDATE jobq.jobs SET completed_at = now() + interval '100 years' WHERE id = ANY ($1::uuid[]) RETURNING 1`,
    [[S.completed, S.failed, S.cancelled]]);
  await one(`INSERT INTO jobq.job_tokens VALUES ($1, '${SECRET}-sentinel-token') RETURNING 1`, [S.queued]);

  state.exposure = {
    client: Object.values(S), // tenant A: every one must be P0002
    worker: [S.queued, S.completed, S.failed, S.cancelled], // no transition applies to them
    admin: [],
    su: [],
  };
}

async function sentinelDigest(su) {
  const ids = Object.values(state.sentinels);
  const r = await su.run(`
    SELECT md5(string_agg(x, '|' ORDER BY x)) FROM (
      SELECT 'job ' || to_jsonb(j)::text AS x FROM jobq.jobs j WHERE j.id = ANY ($1::uuid[])
      UNION ALL SELECT 'ckpt ' || to_jsonb(c)::text FROM jobq.unit_checkpoints c WHERE c.job_id = ANY ($1::uuid[])
      UNION ALL SELECT 'token ' || to_jsonb(t)::text FROM jobq.job_tokens t WHERE t.job_id = ANY ($1::uuid[])
      UNION ALL SELECT 'reg ' || to_jsonb(g)::text FROM jobq.registrations g WHERE g.job_type IN ('fuzz-prov', 'fuzz-unit')
      UNION ALL SELECT 'prov ' || to_jsonb(p)::text FROM jobq.providers p WHERE p.name = 'fuzz-mock'
      UNION ALL SELECT 'val ' || to_jsonb(v)::text FROM jobq.validators v WHERE v.job_type IN ('fuzz-val', 'fuzz-rej', 'fuzz-vout')
      UNION ALL SELECT 'thr ' || to_jsonb(t)::text FROM jobq.validation_thresholds t WHERE t.job_type IN ('fuzz-val', 'fuzz-rej')) s`,
  [ids]);
  return r.error ? `error ${r.error.code}` : r.rows[0][0];
}

// ---- files ----

function walk(dir, depth, visit) {
  let entries;
  try {
    entries = fs.readdirSync(dir, { withFileTypes: true });
  } catch {
    return;
  }
  for (const e of entries) {
    const p = path.join(dir, e.name);
    visit(p, e);
    if (e.isDirectory() && !e.isSymbolicLink() && depth > 0) walk(p, depth - 1, visit);
  }
}

function checkStore() {
  const root = path.join(PGDATA, 'jobq_checkpoints');
  const bad = [];
  const uuid = '[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}';
  const fileRe = new RegExp(`^${uuid}/jobs/${uuid}/units/unit_[0-9]+\\.output$`);
  const dirRe = new RegExp(`^${uuid}(/jobs(/${uuid}(/units)?)?)?$`);
  let files = 0;
  if (!fs.existsSync(root)) return { files, bad };
  walk(root, 10, (p, e) => {
    const rel = path.relative(root, p);
    if (e.isDirectory()) {
      if (!dirRe.test(rel)) bad.push(`directory ${rel}`);
    } else {
      files++;
      if (!fileRe.test(rel)) bad.push(`${e.isSymbolicLink() ? 'symlink' : 'file'} ${rel}`);
    }
  });
  return { files, bad };
}

function findMarked() {
  const found = [];
  const look = (p) => { if (path.basename(p).includes(MARK)) found.push(p); };
  if (PGDATA) {
    walk(PGDATA, 20, look);
    walk(path.dirname(PGDATA), 3, look);
  }
  walk('/tmp', 3, look);
  walk('/', 1, look);
  walk('/etc', 1, look);
  return [...new Set(found)];
}

// ---- main ----

async function main() {
  note(`jobq fuzz: seed ${SEED}, ${CALLS} calls, database ${DB} at ${env.JOBQ_PGHOST}:${env.JOBQ_PGPORT}`);
  const logStart = LOG && fs.existsSync(LOG) ? fs.statSync(LOG).size : 0;
  const sessions = { su: new Session('su') };
  await sessions.su.connect();
  const started = (await sessions.su.run('SELECT pg_postmaster_start_time()::text')).rows[0][0];

  try {
    await setup(sessions.su);
    ok(true, 'set-up: roles, fixtures and tenant B\'s sentinel jobs');
  } catch (e) {
    ok(false, 'set-up: roles, fixtures and tenant B\'s sentinel jobs', [e.message]);
    console.log(`1..${tapN}`);
    process.exit(1);
  }
  for (const name of ['client', 'worker', 'admin']) {
    sessions[name] = new Session(name);
    await sessions[name].connect();
  }
  const digestBefore = await sentinelDigest(sessions.su);
  const catalog = await loadCatalog(sessions.su);
  note(`fuzzing ${catalog.length} functions: ${catalog.map((f) => f.name).join(', ')}`);

  // a scripted case first: a checkpoint rolled back after a recorded one
  {
    const w = sessions.worker;
    const id = (await sessions.su.run(`SELECT jobq.enqueue('fuzz-unit', units => 2, queue => 'fuzz-rb')`)).rows[0][0];
    await w.run(`SELECT count(*) FROM jobq.claim('fuzz-rb', 'fw1')`);
    await w.run(`SELECT jobq.checkpoint($1, 1, '\\x0a0b')`, [id]);
    const before = await checkpointDigest(sessions.su, [id]);
    await w.run('BEGIN');
    await w.run(`SELECT jobq.checkpoint($1, 1, '\\x0c0d0e')`, [id]);
    await w.run('ROLLBACK');
    const after = await checkpointDigest(sessions.su, [id]);
    state.rollbackChecks.push(before.get(`${id}/1`) === 'ok' && after.get(`${id}/1`) === 'ok'
      ? { ok: true }
      : { ok: false, what: `scripted: checkpoint(${id}, 1) rolled back after a recorded one: checkpoint_data now ${after.get(`${id}/1`)}` });
    state.pool.push(id);
  }

  const t0 = Date.now();
  for (let step = 1; step <= CALLS; step++) {
    const r = rng.next();
    if (r < 0.04) await settingsStep(sessions);
    else if (r < 0.07) await heldUnitJob(sessions);
    else await oneCall(sessions, catalog, step);
    if (step % 1000 === 0) note(`${step} calls, ${((Date.now() - t0) / 1000).toFixed(0)} s`);
  }

  // ---- per-function outcomes ----
  for (const [fn, s] of [...stats.entries()].sort((a, b) => a[0].localeCompare(b[0]))) {
    const codes = [...s.codes.entries()].sort().map(([c, n]) => `${c}×${n}`).join(' ');
    ok(s.bad.length === 0,
      `${fn}: ${s.calls} calls as ${[...s.roles].sort().join('/')} (ok ${s.ok}, rejected casts ${s.cast}${codes ? `, ${codes}` : ''}) all ended as allowed`,
      [`${s.bad.length} unexpected outcome(s), the first ones:`, ...s.bad.slice(0, 12).map((b) => short(b, 400))]);
  }
  const called = new Set(stats.keys());
  const never = catalog.filter((f) => !called.has(f.name)).map((f) => f.name);
  if (CALLS >= 40 * catalog.length) {
    ok(never.length === 0, 'every function of schema jobq was called', [`never called: ${never.join(', ')}`]);
  } else {
    skip('every function of schema jobq was called', `only ${CALLS} calls for ${catalog.length} functions`);
  }

  const lost = Object.values(sessions).flatMap((s) => s.lost.map((l) => `${s.name}: ${l.code} ${l.message} during ${l.sql}`));
  ok(lost.length === 0, 'no session lost its connection (no backend crashed)', lost.slice(0, 10));
  ok(state.secretFindings.length === 0, 'no result carried a planted secret (tokens, provider headers)', state.secretFindings.slice(0, 10));
  ok(state.tenantFindings.length === 0, 'the client with tenant A never got a row of another user', state.tenantFindings.slice(0, 10));
  ok(state.tokenFindings.length === 0, 'no forwarded token with a control character was accepted, plain ones were kept',
    state.tokenFindings.slice(0, 10));
  const rbBad = state.rollbackChecks.filter((c) => !c.ok);
  ok(rbBad.length === 0,
    `rolled-back calls left every recorded checkpoint readable (${state.rollbackChecks.length} checked)`,
    rbBad.slice(0, 10).map((c) => c.what));

  // ---- rows that must not have changed ----
  const digestAfter = await sentinelDigest(sessions.su);
  ok(digestAfter === digestBefore, 'tenant B\'s sentinel jobs, their checkpoint and token, and the fixture configuration are unchanged',
    [`before ${digestBefore}`, `after  ${digestAfter}`]);
  const sck = await sessions.su.run('SELECT encode(jobq.checkpoint_data($1, 1), \'hex\')', [state.sentinels.processing]);
  ok(!sck.error && sck.rows[0][0] === '5e471ee1', 'the sentinel\'s checkpoint still reads back and verifies',
    [sck.error ? `${sck.error.code} ${sck.error.message}` : `got ${sck.rows[0][0]}`]);
  const owners = await sessions.su.run(
    'SELECT count(*) FILTER (WHERE user_id <> $2), count(*) FROM jobq.jobs WHERE id = ANY ($1::uuid[])',
    [[...state.clientIds], TENANT_A]);
  ok(!owners.error && Number(owners.rows[0][0]) === 0,
    `every job the client enqueued with tenant A belongs to A (${state.clientIds.size} jobs)`,
    [owners.error ? owners.error.message : `${owners.rows[0][0]} of ${owners.rows[0][1]} belong to someone else`]);
  const tokens = await sessions.su.run(`SELECT count(*) FROM jobq.job_tokens WHERE token ~ '[[:cntrl:]]'`);
  ok(!tokens.error && Number(tokens.rows[0][0]) === 0, 'jobq.job_tokens holds no token with a control character',
    [tokens.error ? tokens.error.message : `${tokens.rows[0][0]} such token(s)`]);

  // ---- the in-server workers and objects in schema public ----
  if (env.FUZZ_SKIP_HIJACK === '1') skip('in-server workers never call a look-alike from schema public', 'FUZZ_SKIP_HIJACK=1');
  else await workerHijack({ su: sessions.su, connConfig, ok, note, short });

  // ---- the server ----
  const alive = await sessions.su.run('SELECT pg_postmaster_start_time()::text');
  ok(!alive.error && alive.rows[0][0] === started, 'the server is up and was not restarted (no crash recovery)',
    [alive.error ? alive.error.message : `started ${started}, now ${alive.rows[0][0]}`]);
  for (const s of Object.values(sessions)) await s.end();

  if (LOG && fs.existsSync(LOG)) {
    const text = fs.readFileSync(LOG, 'utf8').slice(logStart);
    const crash = text.split('\n').filter((l) =>
      /terminated by signal|PANIC|TRAP:|was terminated by exception|server process \(PID \d+\) exited|core dumped|stack smashing|double free|corrupted size/.test(l));
    ok(crash.length === 0, 'server log: no crash, PANIC, TRAP or terminated backend', crash.slice(0, 10));
    const leaked = text.split('\n').filter((l) => l.includes(SECRET));
    ok(leaked.length === 0, 'server log: no planted secret (forwarded tokens, provider headers)', leaked.slice(0, 5).map((l) => short(l, 300)));
  } else {
    skip('server log: no crash, PANIC, TRAP or terminated backend', 'FUZZ_LOG not set or not readable');
    skip('server log: no planted secret', 'FUZZ_LOG not set or not readable');
  }

  if (PGDATA && fs.existsSync(PGDATA)) {
    const { files, bad } = checkStore();
    ok(bad.length === 0, `the checkpoint store holds only <uuid>/jobs/<uuid>/units/unit_<n>.output files (${files} files)`, bad.slice(0, 10));
    const marked = findMarked();
    ok(marked.length === 0, `no file or directory anywhere is named after a fuzz value (${MARK})`, marked.slice(0, 10));
  } else {
    skip('the checkpoint store holds only <uuid>/jobs/<uuid>/units/unit_<n>.output files', 'FUZZ_PGDATA not set or not readable');
    skip(`no file or directory anywhere is named after a fuzz value (${MARK})`, 'FUZZ_PGDATA not set or not readable');
  }

  note(`${CALLS} calls in ${((Date.now() - t0) / 1000).toFixed(0)} s; ${tapFailed} of ${tapN} checks failed`);
  console.log(`1..${tapN}`);
  process.exitCode = tapFailed ? 1 : 0;
}

main().catch((e) => {
  ok(false, 'the fuzz run itself', [e.stack]);
  console.log(`1..${tapN}`);
  process.exit(1);
});
