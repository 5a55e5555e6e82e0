// Shared by the gateway's tests and benchmark: the database (started by
// test/run.sh or bench/run.sh through test/pg.sh), tokens, a gateway process
// per test file, WebSocket clients, and a job driver that works both with the
// real jobq extension and with the stand-in schema.
import { spawn } from 'node:child_process';
import crypto from 'node:crypto';
import fs from 'node:fs';
import net from 'node:net';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import pg from 'pg';
import WebSocket from 'ws';

export { pg };

const here = path.dirname(fileURLToPath(import.meta.url));
export const GATEWAY_DIR = path.resolve(here, '..');
export const BIN = process.env.GW_BIN || path.join(GATEWAY_DIR, 'jobq-gateway');
export const PGHOST = process.env.GW_PGHOST || '127.0.0.1';
export const PGPORT = Number(process.env.GW_PGPORT || 5432);
export const PGDATA = process.env.GW_PGDATA;
export const MODE = process.env.GW_MODE || 'schema';
export const ARTIFACTS = process.env.GW_ARTIFACTS || path.join(here, 'artifacts');

export const SECRET = 'test-secret-' + crypto.randomBytes(24).toString('hex');
const scratch = fs.mkdtempSync(path.join(process.env.GW_SCRATCH || os.tmpdir(), 'gw-'));
export const SECRET_FILE = path.join(scratch, 'secret');
fs.writeFileSync(SECRET_FILE, SECRET + '\n', { mode: 0o600 });
export const RSA = crypto.generateKeyPairSync('rsa', { modulusLength: 2048 });
export const PUBLIC_KEY_FILE = path.join(scratch, 'public.pem');
fs.writeFileSync(PUBLIC_KEY_FILE, RSA.publicKey.export({ type: 'spki', format: 'pem' }));

export const sleep = (ms) => new Promise((r) => setTimeout(r, ms));
export const uuid = () => crypto.randomUUID();

// promise, or a rejection naming what() after ms (the timer does not outlive it)
export function withTimeout(promise, ms, what) {
  let timer;
  const timeout = new Promise((_, reject) => {
    timer = setTimeout(() => reject(new Error('timed out waiting for ' + (typeof what === 'function' ? what() : what))), ms);
  });
  return Promise.race([promise, timeout]).finally(() => clearTimeout(timer));
}

const b64url = (buf) => Buffer.from(buf).toString('base64url');

// A signed JWT. claims default to {sub, exp in an hour}; alg HS256 or RS256.
export function token(claims, { alg = 'HS256', secret = SECRET, key = RSA.privateKey } = {}) {
  const body = { exp: Math.floor(Date.now() / 1000) + 3600, iat: Math.floor(Date.now() / 1000), ...claims };
  for (const k of Object.keys(body)) if (body[k] === undefined) delete body[k];
  const input = b64url(JSON.stringify({ alg, typ: 'JWT' })) + '.' + b64url(JSON.stringify(body));
  const sig = alg === 'HS256'
    ? crypto.createHmac('sha256', secret).update(input).digest()
    : crypto.createSign('RSA-SHA256').update(input).sign(key);
  return input + '.' + b64url(sig);
}

export async function freePort() {
  return new Promise((resolve, reject) => {
    const srv = net.createServer();
    srv.listen(0, '127.0.0.1', () => {
      const { port } = srv.address();
      srv.close(() => resolve(port));
    });
    srv.on('error', reject);
  });
}

export const databaseUrl = (user = 'jobq_gateway') =>
  `postgresql://${user}@127.0.0.1:${PGPORT}/gwtest`;

// Start jobq-gateway on a free port; resolves once /healthz says the database is up.
export async function startGateway(args = [], { env = {}, waitForDatabase = true } = {}) {
  const port = await freePort();
  const log = [];
  const proc = spawn(BIN, [
    '--port', String(port), '--database-url', databaseUrl(),
    '--jwt-secret-file', SECRET_FILE, '--jwt-public-key-file', PUBLIC_KEY_FILE,
    '--log-level', 'debug', ...args,
  ], { env: { PATH: process.env.PATH, ...env }, stdio: ['ignore', 'pipe', 'pipe'] });
  proc.stdout.on('data', (d) => log.push(d.toString()));
  proc.stderr.on('data', (d) => log.push(d.toString()));
  const exited = new Promise((r) => proc.on('exit', (code, signal) => r({ code, signal })));
  // never outlive the test process, whatever way it ends
  const reap = () => { if (proc.exitCode === null && proc.signalCode === null) proc.kill('SIGKILL'); };
  process.on('exit', reap);
  exited.then(() => process.off('exit', reap));
  const gw = {
    port, proc, exited,
    base: `http://127.0.0.1:${port}`,
    log: () => log.join(''),
    hub(query) { return `ws://127.0.0.1:${port}/hubs/jobs?${new URLSearchParams(query)}`; },
    async health() {
      const r = await fetch(`http://127.0.0.1:${port}/healthz`);
      return { status: r.status, body: await r.json() };
    },
    async stop(signal = 'SIGTERM') {
      if (proc.exitCode === null && proc.signalCode === null) proc.kill(signal);
      return exited;
    },
  };
  const deadline = Date.now() + 15000;
  for (;;) {
    if (proc.exitCode !== null) throw new Error('jobq-gateway exited:\n' + gw.log());
    try {
      const h = await gw.health();
      if (!waitForDatabase || h.body.database === 'up') return gw;
    } catch { /* not listening yet */ }
    if (Date.now() > deadline) { await gw.stop('SIGKILL'); throw new Error('jobq-gateway did not start:\n' + gw.log()); }
    await sleep(50);
  }
}

// A WebSocket client that records every message; next()/until() wait for them.
export function connect(url, options = {}) {
  const ws = new WebSocket(url, options);
  const messages = [];
  const waiters = [];
  ws.on('message', (data) => {
    const m = JSON.parse(data.toString());
    m.receivedAt = performance.now();
    messages.push(m);
    for (const w of [...waiters]) w();
  });
  ws.on('close', () => { for (const w of [...waiters]) w(); });
  const client = {
    ws, messages,
    opened: new Promise((resolve, reject) => {
      ws.once('open', resolve);
      ws.once('error', reject);
      ws.once('unexpected-response', (req, res) => {
        let body = '';
        res.on('data', (d) => { body += d; });
        res.on('end', () => {
          const err = new Error(`HTTP ${res.statusCode}`);
          err.status = res.statusCode;
          err.headers = res.headers;
          err.body = body;
          reject(err);
        });
      });
    }),
    closed: new Promise((resolve) => ws.on('close', (code, reason) => resolve({ code, reason: reason.toString() }))),
    // wait until pred(messages) is truthy
    until(pred, timeout = 10000, what = 'condition') {
      return new Promise((resolve, reject) => {
        const check = () => {
          const v = pred(messages);
          if (v) { clearTimeout(t); waiters.splice(waiters.indexOf(check), 1); resolve(v); }
        };
        const t = setTimeout(() => {
          waiters.splice(waiters.indexOf(check), 1);
          reject(new Error(`timed out waiting for ${what}; got ${JSON.stringify(messages.map(({ receivedAt, ...m }) => m)).slice(0, 2000)}`));
        }, timeout);
        waiters.push(check);
        check();
      });
    },
    snapshot(timeout) { return client.until((ms) => ms.find((m) => m.type === 'snapshot'), timeout, 'snapshot'); },
    progress(jobId) { return messages.filter((m) => m.type === 'progress' && (!jobId || m.job_id === jobId)); },
    close() { ws.terminate(); },
  };
  return client;
}

// ---------------------------------------------------------------- the database

export async function superuser() {
  const c = new pg.Client({ host: PGHOST, port: PGPORT, user: 'postgres', database: 'gwtest' });
  await c.connect();
  return c;
}

const NOTIFY_ROW = `SELECT pg_notify('jobq_progress', json_build_object(
    'job_id', id, 'user_id', user_id, 'job_type', job_type, 'status', status,
    'percent', progress_percent, 'message', status_message,
    'units_done', units_done, 'units_total', units_total)::text)
  FROM jobq.jobs WHERE id = $1`;

// Drives jobs through their states and makes sure each change is NOTIFYed once:
// by jobq itself when the installed extension sends jobq_progress, else here,
// from the row, in the same transaction (as the extension does at commit).
export class Jobs {
  constructor(db) { this.db = db; this.queue = 'gw-' + uuid().slice(0, 8); this.extensionNotifies = null; }

  static async open() {
    const j = new Jobs(await superuser());
    if (MODE === 'extension') j.extensionNotifies = await j.#probe();
    return j;
  }

  async close() { await this.db.end(); }

  // Does jobq.progress() send jobq_progress by itself?
  async #probe() {
    const listener = await superuser();
    let seen = false;
    const user = uuid();
    listener.on('notification', (n) => { if (n.payload.includes(user)) seen = true; });
    await listener.query('LISTEN jobq_progress');
    const id = await this.#enqueueExt(user, 'gw_probe', null);
    await this.db.query('SELECT jobq.progress($1, 1, $2)', [id, 'probe']);
    await sleep(500);
    await this.db.query('SELECT jobq.cancel($1)', [id]);
    await listener.end();
    return seen;
  }

  async #enqueueExt(user, type, units) {
    const { rows: [{ id }] } = await this.db.query(
      'SELECT jobq.enqueue($1, $2::jsonb, $3::uuid, $4, units => $5) AS id',
      [type, '{}', user, this.queue, units]);
    const { rows } = await this.db.query('SELECT id FROM jobq.claim($1, $2, 1, ARRAY[$3])', [this.queue, 'gw-tests', type]);
    if (rows.length !== 1 || rows[0].id !== id) throw new Error('claim did not return the new job');
    return id;
  }

  async #tx(id, sql, params) {
    await this.db.query('BEGIN');
    try {
      await this.db.query(sql, params);
      if (!this.extensionNotifies) await this.db.query(NOTIFY_ROW, [id]);
      await this.db.query('COMMIT');
    } catch (e) {
      await this.db.query('ROLLBACK');
      throw e;
    }
  }

  // A Processing job of user (status 1, percent 0).
  async start(user, { type = 'gw_test', units = null, notify = true } = {}) {
    let id;
    if (MODE === 'extension') id = await this.#enqueueExt(user, type, units);
    else {
      ({ rows: [{ id }] } = await this.db.query(
        'INSERT INTO jobq.jobs (user_id, job_type, status, units_total, units_done) VALUES ($1, $2, 1, $3, $4) RETURNING id',
        [user, type, units, units === null ? null : 0]));
    }
    if (notify && !this.extensionNotifies) await this.db.query(NOTIFY_ROW, [id]);
    return id;
  }

  // A Queued job (status 0); no event.
  async queued(user, { type = 'gw_test' } = {}) {
    if (MODE === 'extension') {
      const { rows: [{ id }] } = await this.db.query(
        'SELECT jobq.enqueue($1, $2::jsonb, $3::uuid, $4) AS id', [type, '{}', user, this.queue + '-idle']);
      return id;
    }
    const { rows: [{ id }] } = await this.db.query(
      'INSERT INTO jobq.jobs (user_id, job_type, status) VALUES ($1, $2, 0) RETURNING id', [user, type]);
    return id;
  }

  async progress(id, percent, message = null, unitsDone = undefined) {
    if (MODE === 'extension') {
      // jobq.progress sets percent and message; units_done belongs to unit jobs run by jobq
      return this.#tx(id, 'SELECT jobq.progress($1, $2, $3)', [id, percent, message]);
    }
    return this.#tx(id,
      'UPDATE jobq.jobs SET progress_percent = $2, status_message = $3, units_done = coalesce($4, units_done) WHERE id = $1',
      [id, percent, message, unitsDone ?? null]);
  }

  async complete(id) {
    if (MODE === 'extension') return this.#tx(id, "SELECT jobq.complete($1, '{}'::jsonb)", [id]);
    return this.#tx(id,
      "UPDATE jobq.jobs SET status = 2, progress_percent = 100, status_message = 'done', units_done = units_total WHERE id = $1",
      [id]);
  }

  async cancel(id) {
    if (MODE === 'extension') return this.#tx(id, 'SELECT jobq.cancel($1)', [id]);
    return this.#tx(id, 'UPDATE jobq.jobs SET status = 4 WHERE id = $1', [id]);
  }

  // Raw NOTIFY, for payloads jobq would never send.
  async notify(payload) {
    await this.db.query("SELECT pg_notify('jobq_progress', $1)", [typeof payload === 'string' ? payload : JSON.stringify(payload)]);
  }
}
