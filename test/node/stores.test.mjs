// Checkpoint stores (SPEC 5, 6, 12) against real servers: the file store,
// S3 (s3rver, behind a proxy that checks SigV4 since s3rver does not), Azure
// Blob (Azurite, SharedKey and SAS) and a plain HTTP store (a tiny node
// server).  Every object jobq writes is checked with an
// independent client: it exists under exactly
// {prefix}/{user_id}/jobs/{job_id}/units/unit_{n}.output and holds exactly
// the bytes the unit handler produced.  Also: the checkpoint API used by an
// external worker, stores that are down or fail mid-job, purge deleting
// blobs, and secrets staying secret.  Tests named "BUG:" show bugs.
//
// Store settings are changed with ALTER SYSTEM + pg_reload_conf() and reset
// at the end of every test, so tests do not depend on each other.  All waits
// poll with generous bounds: the tests assert what happens, not how fast.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import crypto from 'node:crypto';
import fs from 'node:fs';
import http from 'node:http';
import net from 'node:net';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { setTimeout as sleep } from 'node:timers/promises';
import pg from 'pg';
import { closedPort, connConfig, dbHelpers, makeWaitFor } from './lib.mjs';
import {
  S3Client, CreateBucketCommand, ListObjectsV2Command, GetObjectCommand,
} from '@aws-sdk/client-s3';
import {
  BlobServiceClient, StorageSharedKeyCredential, generateBlobSASQueryParameters,
  ContainerSASPermissions, SASProtocol,
} from '@azure/storage-blob';

const here = path.dirname(fileURLToPath(import.meta.url));
const BIN = path.resolve(here, '..', 'node_modules', '.bin');

const AZ_ACCOUNT = 'devstoreaccount1';
const AZ_KEY = 'Eby8vdM02xNOcqFlqUwJPLlmEtlCDXJ1OUzFT50uSRZ6IFsuFq2UVErCz4I6tq/K1SZFPTOtr/KBHBeksoGMGw==';
const AZ_CONTAINER = 'jobq-ckpt';
const S3_BUCKET = 'jobq-ckpt';
const S3_BUCKET2 = 'jobq-ext';

// every store setting a test may touch; all are reset after each test
const STORE_SETTINGS = [
  'jobq.checkpoint_url', 'jobq.s3_endpoint', 'jobq.s3_region', 'jobq.s3_access_key_id',
  'jobq.s3_secret_access_key', 'jobq.azure_endpoint', 'jobq.azure_account_key',
  'jobq.azure_sas_token', 'jobq.http_store_headers', 'jobq.store_timeout', 'jobq.store_retries',
  'jobq.max_checkpoint_bytes',
];

let pool;
let listener; // LISTEN jobq_progress
const notes = []; // the payloads it received
let tmpRoot;
const procs = [];
let azurite; // { port, endpoint, service, container }
let s3; // { port, endpoint (the proxy, for jobq), client (s3rver, for the tests), proxy }
let httpStore; // { port, server, objects: Map, requests: [], failPutsFrom, failDeletes }
const HTTP_SECRET = `Bearer tok-${crypto.randomBytes(12).toString('hex')}`;
const secretsUsed = [HTTP_SECRET]; // secret values given to the server by these tests

// ---------------------------------------------------------------- helpers

// waits here poll every 200 ms unless told otherwise
const waitFor = makeWaitFor(200);
const { q, one, waitJob } = dbHelpers(() => pool, { waitFor });

const sha256 = (buf) => crypto.createHash('sha256').update(buf).digest('hex');

function describeJob(row) {
  return `status ${row.status}, attempts ${row.attempts}, units_done ${row.units_done}, `
    + `error ${JSON.stringify(row.error)}`;
}

// Apply store settings with ALTER SYSTEM and wait until they are in effect.
// The workers reload their configuration at the top of their loop, woken by
// the SIGHUP the postmaster forwards; once this session sees the new URL the
// signal has been sent to every process, and a short pause lets the idle
// workers act on it.
async function configure(settings) {
  for (const [name, value] of Object.entries(settings)) {
    await q(`ALTER SYSTEM SET ${name} = '${String(value).replace(/'/g, "''")}'`);
  }
  await settle(settings['jobq.checkpoint_url'] ?? '');
}

async function resetStore() {
  for (const name of STORE_SETTINGS) await q(`ALTER SYSTEM RESET ${name}`);
  await settle('');
}

async function settle(url) {
  await q('SELECT pg_reload_conf()');
  await waitFor(`jobq.checkpoint_url = '${url}' to be in effect`, async () => {
    const r = await one("SELECT current_setting('jobq.checkpoint_url') AS u");
    return r.u === url;
  }, 30_000, 50);
  await sleep(1000);
}

async function register(type, queue = 'default') {
  await q(`SELECT jobq.register($1, unit_handler => 'ck_unit(jobq.jobs,int)'::regprocedure,
                                finalizer => 'ck_final(jobq.jobs)'::regprocedure, queue => $2)`,
  [type, queue]);
}

async function enqueue(type, user, units, opts = {}) {
  const r = await one(`SELECT jobq.enqueue($1, $2::jsonb, user_id => $3, units => $4,
                                            max_attempts => $5, queue => $6) AS id`,
  [type, JSON.stringify(opts.payload ?? {}), user, units, opts.maxAttempts ?? null,
    opts.queue ?? 'default']);
  return r.id;
}

// what the unit handler produces for units 1..n of job id (ck_bytes is pure)
async function expectedOutputs(id, n) {
  const r = await q('SELECT u, ck_bytes($1, u) AS b FROM generate_series(1, $2) u ORDER BY u',
    [id, n]);
  return r.rows.map((row) => row.b);
}

// unit -> number of handler runs
async function runCounts(id) {
  const r = await q('SELECT unit, count(*)::int AS n FROM ck_runs WHERE job_id = $1 GROUP BY unit',
    [id]);
  return Object.fromEntries(r.rows.map((row) => [row.unit, row.n]));
}

const unitKey = (prefix, user, id, n) =>
  `${prefix ? `${prefix}/` : ''}${user}/jobs/${id}/units/unit_${n}.output`;

// start a server process; resolves with the port it prints once listening
function startServer(name, cmd, args, portRe) {
  return new Promise((resolve, reject) => {
    const proc = spawn(cmd, args, { stdio: ['ignore', 'pipe', 'pipe'] });
    procs.push(proc);
    let out = '';
    const timer = setTimeout(() => reject(new Error(`${name} did not start: ${out}`)), 90_000);
    const onData = (d) => {
      out += d.toString();
      const m = out.match(portRe);
      if (m) {
        clearTimeout(timer);
        resolve({ proc, port: Number(m[1]) });
      }
    };
    proc.stdout.on('data', onData);
    proc.stderr.on('data', onData);
    proc.on('exit', (code) => {
      clearTimeout(timer);
      reject(new Error(`${name} exited with ${code}: ${out}`));
    });
  });
}

function stopProcess(proc) {
  return new Promise((resolve) => {
    if (proc.exitCode !== null || proc.signalCode !== null) return resolve();
    const timer = setTimeout(() => { proc.kill('SIGKILL'); }, 10_000);
    proc.once('exit', () => { clearTimeout(timer); resolve(); });
    proc.kill('SIGTERM');
  });
}

// The plain HTTP store: PUT/GET/HEAD/DELETE into a Map, every request's
// method, path and headers recorded; failPutsFrom = k answers 503 to PUTs
// of unit k and later; failDeletes answers 503 to every DELETE.
function startHttpStore() {
  const store = { objects: new Map(), requests: [], failPutsFrom: Infinity, failDeletes: false };
  store.server = http.createServer((req, res) => {
    const chunks = [];
    req.on('data', (c) => chunks.push(c));
    req.on('end', () => {
      const key = decodeURIComponent(new URL(req.url, 'http://x').pathname).replace(/^\//, '');
      store.requests.push({ method: req.method, key, headers: { ...req.headers } });
      const unit = Number((key.match(/unit_(\d+)\.output$/) || [])[1]);
      if (req.method === 'PUT') {
        if (unit >= store.failPutsFrom) {
          res.writeHead(503).end('unavailable');
          return;
        }
        store.objects.set(key, Buffer.concat(chunks));
        res.writeHead(201).end();
      } else if (req.method === 'GET' || req.method === 'HEAD') {
        const obj = store.objects.get(key);
        if (!obj) {
          res.writeHead(404).end();
          return;
        }
        res.writeHead(200, { 'Content-Type': 'application/octet-stream', 'Content-Length': obj.length });
        res.end(req.method === 'GET' ? obj : undefined);
      } else if (req.method === 'DELETE') {
        if (store.failDeletes) {
          res.writeHead(503).end('unavailable');
          return;
        }
        const had = store.objects.delete(key);
        res.writeHead(had ? 204 : 404).end();
      } else {
        res.writeHead(405).end();
      }
    });
  });
  return new Promise((resolve) => {
    store.server.listen(0, '127.0.0.1', () => {
      store.port = store.server.address().port;
      resolve(store);
    });
  });
}

// s3rver does not check SigV4 signatures, so jobq's S3 requests go through
// this proxy, which checks each one the way S3 does (signature, scope,
// signed x-amz-* headers, payload hash) and answers 403 on a mismatch, or
// forwards the request to s3rver.
function checkSigV4(req, body, { accessKeyId, secret, region }) {
  const auth = req.headers.authorization || '';
  const m = auth.match(/^AWS4-HMAC-SHA256 Credential=([^/]+)\/(\d{8})\/([^/]+)\/([^/]+)\/aws4_request, ?SignedHeaders=([^, ]+), ?Signature=([0-9a-f]{64})$/);
  if (!m) return `malformed Authorization header: ${auth}`;
  const [, id, date, reg, service, signedHeaders, signature] = m;
  if (id !== accessKeyId) return `unknown access key id ${id}`;
  if (reg !== region || service !== 's3') return `wrong credential scope ${reg}/${service}`;
  const amzDate = req.headers['x-amz-date'];
  if (!amzDate || !amzDate.startsWith(date)) return 'x-amz-date is missing or not the scope date';
  const names = signedHeaders.split(';');
  if (!names.includes('host')) return 'host is not signed';
  for (const h of Object.keys(req.headers)) {
    if (h.startsWith('x-amz-') && !names.includes(h)) return `${h} is not signed`;
  }
  const payloadHash = req.headers['x-amz-content-sha256'];
  if (!payloadHash) return 'x-amz-content-sha256 is missing';
  if (payloadHash !== sha256(body)) return 'x-amz-content-sha256 is not the hash of the body';
  const url = new URL(req.url, 'http://x');
  const enc = (x) => encodeURIComponent(x).replace(/[!'()*]/g, (c) => `%${c.charCodeAt(0).toString(16).toUpperCase()}`);
  const query = [...url.searchParams].map(([k, v]) => `${enc(k)}=${enc(v)}`).sort().join('&');
  const headers = names.map((n) => `${n}:${String(req.headers[n] ?? '').trim().replace(/\s+/g, ' ')}\n`).join('');
  const canonical = [req.method, url.pathname, query, headers, signedHeaders, payloadHash].join('\n');
  const scope = `${date}/${reg}/${service}/aws4_request`;
  const toSign = ['AWS4-HMAC-SHA256', amzDate, scope, sha256(canonical)].join('\n');
  const hmac = (k, d) => crypto.createHmac('sha256', k).update(d).digest();
  const key = hmac(hmac(hmac(hmac(`AWS4${secret}`, date), reg), service), 'aws4_request');
  return crypto.createHmac('sha256', key).update(toSign).digest('hex') === signature
    ? null : 'SignatureDoesNotMatch';
}

function startSigV4Proxy(targetPort, creds) {
  const proxy = { requests: [] };
  proxy.server = http.createServer((req, res) => {
    const chunks = [];
    req.on('data', (c) => chunks.push(c));
    req.on('end', () => {
      const body = Buffer.concat(chunks);
      const problem = checkSigV4(req, body, creds);
      proxy.requests.push({ method: req.method, url: req.url, problem });
      if (problem) {
        res.writeHead(403, { 'Content-Type': 'application/xml' })
          .end(`<Error><Code>SignatureDoesNotMatch</Code><Message>${problem}</Message></Error>`);
        return;
      }
      const fwd = http.request({
        host: '127.0.0.1',
        port: targetPort,
        method: req.method,
        path: req.url,
        headers: { ...req.headers, host: `127.0.0.1:${targetPort}` },
      }, (r) => {
        res.writeHead(r.statusCode, r.headers);
        r.pipe(res);
      });
      fwd.on('error', (e) => res.writeHead(502).end(String(e)));
      fwd.end(body);
    });
  });
  return new Promise((resolve) => {
    proxy.server.listen(0, '127.0.0.1', () => {
      proxy.port = proxy.server.address().port;
      resolve(proxy);
    });
  });
}

// ---- independent views of each store: list(keyPrefix) -> keys, get(key) -> Buffer

function fileView(dir) {
  const walk = (d) => (fs.existsSync(d) ? fs.readdirSync(d, { withFileTypes: true }) : [])
    .flatMap((e) => (e.isDirectory() ? walk(path.join(d, e.name)) : [path.join(d, e.name)]));
  return {
    list: async (prefix) => walk(dir).map((f) => path.relative(dir, f)).filter((k) => k.startsWith(prefix)),
    get: async (key) => fs.readFileSync(path.join(dir, key)),
    uri: (key) => `file://${dir}/${key}`,
  };
}

function s3View(bucket) {
  return {
    list: async (prefix) => {
      const keys = [];
      let token;
      do {
        const r = await s3.client.send(new ListObjectsV2Command({
          Bucket: bucket, Prefix: prefix, ContinuationToken: token,
        }));
        for (const o of r.Contents ?? []) keys.push(o.Key);
        token = r.IsTruncated ? r.NextContinuationToken : undefined;
      } while (token);
      return keys;
    },
    get: async (key) => {
      const r = await s3.client.send(new GetObjectCommand({ Bucket: bucket, Key: key }));
      return Buffer.from(await r.Body.transformToByteArray());
    },
    uri: (key) => `s3://${bucket}/${key}`,
  };
}

function azureView() {
  return {
    list: async (prefix) => {
      const keys = [];
      for await (const b of azurite.container.listBlobsFlat({ prefix })) keys.push(b.name);
      return keys;
    },
    get: async (key) => azurite.container.getBlockBlobClient(key).downloadToBuffer(),
    uri: (key) => `azure://${AZ_ACCOUNT}/${AZ_CONTAINER}/${key}`,
  };
}

function httpView() {
  return {
    list: async (prefix) => [...httpStore.objects.keys()].filter((k) => k.startsWith(prefix)),
    get: async (key) => {
      const obj = httpStore.objects.get(key);
      if (!obj) throw new Error(`no object ${key} in the HTTP store`);
      return obj;
    },
    uri: (key) => `http://127.0.0.1:${httpStore.port}/${key}`,
  };
}

// ---------------------------------------------------------------- setup

before(async () => {
  assert.ok(process.env.JOBQ_PGHOST && process.env.JOBQ_PGPORT,
    'JOBQ_PGHOST and JOBQ_PGPORT are set (test/run.sh suite_node)');
  tmpRoot = fs.mkdtempSync(path.join(os.tmpdir(), 'jobq-stores-'));
  pool = new pg.Pool({ ...connConfig(), max: 4 });

  listener = new pg.Client(connConfig());
  await listener.connect();
  listener.on('notification', (n) => {
    try {
      notes.push(JSON.parse(n.payload));
    } catch (e) {
      notes.push({ unparsable: n.payload });
    }
  });
  await listener.query('LISTEN jobq_progress');

  const azDir = path.join(tmpRoot, 'azurite');
  const s3Dir = path.join(tmpRoot, 's3rver');
  fs.mkdirSync(azDir);
  fs.mkdirSync(s3Dir);
  const [az, s3p, hs] = await Promise.all([
    startServer('azurite', path.join(BIN, 'azurite-blob'),
      ['--blobHost', '127.0.0.1', '--blobPort', '0', '--location', azDir,
        '--skipApiVersionCheck', '--disableTelemetry', '--silent'],
      /listens on http:\/\/127\.0\.0\.1:(\d+)/),
    startServer('s3rver', path.join(BIN, 's3rver'),
      ['-d', s3Dir, '-a', '127.0.0.1', '-p', '0', '--configure-bucket', S3_BUCKET],
      /listening on 127\.0\.0\.1:(\d+)/),
    startHttpStore(),
  ]);
  httpStore = hs;

  const azEndpoint = `http://127.0.0.1:${az.port}/${AZ_ACCOUNT}`;
  const service = new BlobServiceClient(azEndpoint,
    new StorageSharedKeyCredential(AZ_ACCOUNT, AZ_KEY));
  const container = service.getContainerClient(AZ_CONTAINER);
  await container.create();
  azurite = { ...az, endpoint: azEndpoint, service, container };

  const s3Endpoint = `http://127.0.0.1:${s3p.port}`;
  const client = new S3Client({
    endpoint: s3Endpoint,
    region: 'us-east-1',
    forcePathStyle: true,
    credentials: { accessKeyId: 'S3RVER', secretAccessKey: 'S3RVER' },
  });
  await client.send(new CreateBucketCommand({ Bucket: S3_BUCKET2 }));
  const proxy = await startSigV4Proxy(s3p.port,
    { accessKeyId: 'S3RVER', secret: 'S3RVER', region: 'us-east-1' });
  // jobq talks to s3rver through the SigV4-checking proxy; the tests directly
  s3 = { ...s3p, endpoint: `http://127.0.0.1:${proxy.port}`, client, proxy };

  await q(`
    CREATE TABLE IF NOT EXISTS ck_runs (job_id uuid, unit int, at timestamptz DEFAULT clock_timestamp());
    -- a unit's output: binary, from 8 kB (unit 1) to 200 kB (unit 5); unit 2 is empty
    CREATE OR REPLACE FUNCTION ck_bytes(id uuid, n int) RETURNS bytea
      LANGUAGE sql IMMUTABLE AS $$
        SELECT CASE WHEN n = 2 THEN ''::bytea
                    ELSE decode(repeat(md5(id::text || ':' || n), n * n * 500), 'hex') END $$;
    CREATE OR REPLACE FUNCTION ck_unit(j jobq.jobs, n int) RETURNS bytea
      LANGUAGE plpgsql AS $$
      BEGIN
        INSERT INTO ck_runs (job_id, unit) VALUES (j.id, n);
        RETURN ck_bytes(j.id, n);
      END $$;
    -- fails at unit 3 until the job is let through
    CREATE TABLE IF NOT EXISTS ck_pass (job_id uuid PRIMARY KEY);
    CREATE OR REPLACE FUNCTION ck_flaky(j jobq.jobs, n int) RETURNS bytea
      LANGUAGE plpgsql AS $$
      BEGIN
        INSERT INTO ck_runs (job_id, unit) VALUES (j.id, n);
        IF n = 3 AND NOT EXISTS (SELECT 1 FROM ck_pass p WHERE p.job_id = j.id) THEN
          RAISE EXCEPTION 'unit 3 fails until let through';
        END IF;
        RETURN ck_bytes(j.id, n);
      END $$;
    -- reads every unit back through jobq.checkpoint_data
    CREATE OR REPLACE FUNCTION ck_final(j jobq.jobs) RETURNS jsonb
      LANGUAGE plpgsql AS $$
      DECLARE shas text[] := '{}'; b bytea;
      BEGIN
        FOR i IN 1..j.units_total LOOP
          b := jobq.checkpoint_data(j.id, i);
          shas := shas || coalesce(encode(sha256(b), 'hex'), 'null');
        END LOOP;
        RETURN jsonb_build_object('units', j.units_total, 'sha256', to_jsonb(shas));
      END $$;
  `);
  await resetStore();
});

after(async () => {
  try {
    if (pool) await resetStore();
  } finally {
    if (pool) await pool.end();
    if (listener) await listener.end();
    await Promise.all(procs.map(stopProcess));
    for (const srv of [httpStore?.server, s3?.proxy?.server]) {
      if (srv) await new Promise((r) => { srv.closeAllConnections(); srv.close(r); });
    }
    if (tmpRoot) fs.rmSync(tmpRoot, { recursive: true, force: true });
  }
});

// ---------------------------------------------------------------- the store round trip

// Run a 5-unit job through the current store and check everything about
// its checkpoints with the independent view; then purge it and check that
// the idle workers delete its blobs.
async function roundTrip(type, view, prefix, opts = {}) {
  const units = 5;
  await register(type);
  const user = crypto.randomUUID();
  const id = await enqueue(type, user, units);
  const job = await waitJob(id);
  assert.equal(job.status, 2, `job completed (${describeJob(job)})`);
  assert.equal(job.attempts, 1, 'one attempt');
  assert.equal(job.units_done, units, 'units_done = units');
  assert.equal(job.progress_percent, 100);

  const expected = await expectedOutputs(id, units);
  assert.equal(expected[1].length, 0, 'unit 2 produces an empty output');
  assert.deepEqual(job.result, { units, sha256: expected.map(sha256) },
    'the finalizer read every unit back with checkpoint_data, byte for byte');

  const cps = (await q('SELECT * FROM jobq.checkpoints($1)', [id])).rows;
  assert.deepEqual(cps.map((c) => c.unit_id), [1, 2, 3, 4, 5], 'checkpoints() lists units 1..5');
  for (const c of cps) {
    const key = unitKey(prefix, user, id, c.unit_id);
    const want = expected[c.unit_id - 1];
    assert.equal(Number(c.bytes), want.length, `unit ${c.unit_id}: bytes`);
    assert.equal(c.sha256, sha256(want), `unit ${c.unit_id}: sha256`);
    assert.equal(c.uri, view.uri(key), `unit ${c.unit_id}: uri names the object`);
  }

  const jobPrefix = unitKey(prefix, user, id, 1).replace(/unit_1\.output$/, '');
  const keys = (await view.list(`${prefix ? `${prefix}/` : ''}${user}/`)).sort();
  assert.deepEqual(keys, [1, 2, 3, 4, 5].map((n) => unitKey(prefix, user, id, n)).sort(),
    `the store holds exactly the 5 objects under ${jobPrefix} (no temp or stray objects)`);
  for (let n = 1; n <= units; n++) {
    const got = await view.get(unitKey(prefix, user, id, n));
    assert.ok(got.equals(expected[n - 1]),
      `unit ${n}: the object's ${got.length} bytes are the handler's ${expected[n - 1].length} bytes`);
    assert.equal(sha256(got), cps[n - 1].sha256, `unit ${n}: the object's sha256 is the recorded one`);
  }
  assert.deepEqual(await runCounts(id), { 1: 1, 2: 1, 3: 1, 4: 1, 5: 1 }, 'each unit ran once');

  // NOTIFY jobq_progress: one per stored unit, then the completion
  const mine = await waitFor(`the completion notification of job ${id}`, async () => {
    const ns = notes.filter((n) => n.job_id === id);
    return ns.some((n) => n.status === 2) ? ns : null;
  }, 30_000);
  const unitDone = mine.filter((n) => n.status === 1 && n.units_done > 0).map((n) => n.units_done);
  assert.deepEqual([...new Set(unitDone)], [1, 2, 3, 4, 5],
    `a progress notification after each unit (${JSON.stringify(unitDone)})`);
  const last = mine[mine.length - 1];
  assert.deepEqual([last.status, last.units_done, last.units_total, last.percent], [2, 5, 5, 100],
    'the last notification is the completion with 5 of 5 units');
  assert.equal(last.user_id, user);

  if (opts.afterJob) await opts.afterJob({ id, user, keys });

  // purge: the row and its checkpoint records go at once, the blobs soon after
  await q("UPDATE jobq.jobs SET completed_at = now() - interval '30 days' WHERE id = $1", [id]);
  const purged = await one("SELECT jobq.purge('7 days') AS n");
  assert.ok(Number(purged.n) >= 1, 'purge deleted the old job');
  assert.equal((await one('SELECT count(*)::int AS n FROM jobq.jobs WHERE id = $1', [id])).n, 0,
    'the job row is gone');
  assert.equal(
    (await one('SELECT count(*)::int AS n FROM jobq.unit_checkpoints WHERE job_id = $1', [id])).n, 0,
    'its checkpoint records are gone');
  await waitFor(`the blobs of purged job ${id} to be deleted from the store`,
    async () => (await view.list(`${prefix ? `${prefix}/` : ''}${user}/`)).length === 0, 60_000);
  await waitFor('blob_deletions to be empty for the job', async () =>
    (await one('SELECT count(*)::int AS n FROM jobq.blob_deletions WHERE job_id = $1', [id])).n === 0);
  return { id, user };
}

test('file store: file:///dir round trip and purge', async () => {
  const dir = fs.mkdtempSync(path.join(tmpRoot, 'files-'));
  try {
    await configure({ 'jobq.checkpoint_url': `file://${dir}/` });
    const { id, user } = await roundTrip('ck_file', fileView(dir), '');
    assert.ok(!fs.existsSync(path.join(dir, user, 'jobs', id)),
      'purge removed the job directory of the file store too');
  } finally {
    await resetStore();
  }
});

test('S3 store (s3rver behind a SigV4-checking proxy): round trip and purge', async () => {
  try {
    s3.proxy.requests.length = 0;
    await configure({
      'jobq.checkpoint_url': `s3://${S3_BUCKET}/ckpt/s3/`,
      'jobq.s3_endpoint': s3.endpoint,
      'jobq.s3_region': 'us-east-1',
      'jobq.s3_access_key_id': 'S3RVER',
      'jobq.s3_secret_access_key': 'S3RVER',
    });
    await roundTrip('ck_s3', s3View(S3_BUCKET), 'ckpt/s3');
    const methods = new Set(s3.proxy.requests.map((r) => r.method));
    assert.ok(['PUT', 'GET', 'DELETE'].every((m) => methods.has(m)), `PUT, GET and DELETE seen (${[...methods]})`);
    assert.deepEqual(s3.proxy.requests.filter((r) => r.problem), [],
      'every request jobq sent carried a valid SigV4 signature and payload hash');
  } finally {
    await resetStore();
  }
});

test('Azure store (Azurite, SharedKey): round trip and purge', async () => {
  try {
    await configure({
      'jobq.checkpoint_url': `azure://${AZ_ACCOUNT}/${AZ_CONTAINER}/ckpt/az-key`,
      'jobq.azure_endpoint': azurite.endpoint,
      'jobq.azure_account_key': AZ_KEY,
    });
    await roundTrip('ck_az_key', azureView(), 'ckpt/az-key', {
      afterJob: async ({ keys }) => {
        const props = await azurite.container.getBlockBlobClient(keys[0]).getProperties();
        assert.equal(props.blobType, 'BlockBlob', 'objects are block blobs');
      },
    });
  } finally {
    await resetStore();
  }
});

test('Azure store (Azurite, container SAS token): round trip and purge', async () => {
  const sas = generateBlobSASQueryParameters({
    containerName: AZ_CONTAINER,
    permissions: ContainerSASPermissions.parse('racwdl'),
    startsOn: new Date(Date.now() - 10 * 60_000),
    expiresOn: new Date(Date.now() + 2 * 3600_000),
    protocol: SASProtocol.HttpsAndHttp,
  }, new StorageSharedKeyCredential(AZ_ACCOUNT, AZ_KEY));
  secretsUsed.push(sas.signature);
  try {
    // no account key: only the SAS token (given with its leading '?') can work
    await configure({
      'jobq.checkpoint_url': `azure://${AZ_ACCOUNT}/${AZ_CONTAINER}/ckpt/az-sas`,
      'jobq.azure_endpoint': azurite.endpoint,
      'jobq.azure_sas_token': `?${sas.toString()}`,
    });
    await roundTrip('ck_az_sas', azureView(), 'ckpt/az-sas');
  } finally {
    await resetStore();
  }
});

test('HTTP store: round trip, configured headers on every request, purge', async () => {
  try {
    httpStore.requests.length = 0;
    await configure({
      'jobq.checkpoint_url': `http://127.0.0.1:${httpStore.port}/store/ckpt/`,
      'jobq.http_store_headers': JSON.stringify({ Authorization: HTTP_SECRET, 'X-Jobq-Test': 'yes' }),
    });
    const { id } = await roundTrip('ck_http', httpView(), 'store/ckpt');
    const mine = httpStore.requests.filter((r) => r.key.includes(id));
    const methods = new Set(mine.map((r) => r.method));
    assert.ok(methods.has('PUT') && methods.has('DELETE'), `PUT and DELETE seen (${[...methods]})`);
    assert.equal(mine.filter((r) => r.method === 'PUT').length, 5, 'one PUT per unit');
    assert.equal(mine.filter((r) => r.method === 'DELETE').length, 5, 'one DELETE per unit at purge');
    for (const r of mine) {
      assert.equal(r.headers.authorization, HTTP_SECRET, `${r.method} ${r.key} carries Authorization`);
      assert.equal(r.headers['x-jobq-test'], 'yes', `${r.method} ${r.key} carries X-Jobq-Test`);
    }
  } finally {
    await resetStore();
  }
});

test('default store ($PGDATA/jobq_checkpoints) round trip', async () => {
  // the default URL is empty; read the files through the server's data directory
  const dataDir = (await one('SHOW data_directory')).data_directory;
  const dir = path.join(dataDir, 'jobq_checkpoints');
  await resetStore();
  await roundTrip('ck_default', fileView(dir), '');
});

// A retried job checks what each store holds (HEAD: the object's size) and
// runs only the missing units: units 1 and 2 must not run again.
test('every store: a failed job resumes from its stored units after retry', async () => {
  const dir = fs.mkdtempSync(path.join(tmpRoot, 'resume-'));
  const sas = generateBlobSASQueryParameters({
    containerName: AZ_CONTAINER,
    permissions: ContainerSASPermissions.parse('racwdl'),
    expiresOn: new Date(Date.now() + 2 * 3600_000),
  }, new StorageSharedKeyCredential(AZ_ACCOUNT, AZ_KEY));
  secretsUsed.push(sas.signature);
  const stores = {
    file: { 'jobq.checkpoint_url': `file://${dir}` },
    s3: {
      'jobq.checkpoint_url': `s3://${S3_BUCKET}/resume`,
      'jobq.s3_endpoint': s3.endpoint,
      'jobq.s3_access_key_id': 'S3RVER',
      'jobq.s3_secret_access_key': 'S3RVER',
    },
    azure_key: {
      'jobq.checkpoint_url': `azure://${AZ_ACCOUNT}/${AZ_CONTAINER}/resume-key`,
      'jobq.azure_endpoint': azurite.endpoint,
      'jobq.azure_account_key': AZ_KEY,
    },
    azure_sas: {
      'jobq.checkpoint_url': `azure://${AZ_ACCOUNT}/${AZ_CONTAINER}/resume-sas`,
      'jobq.azure_endpoint': azurite.endpoint,
      'jobq.azure_sas_token': sas.toString(),
    },
    http: {
      'jobq.checkpoint_url': `http://127.0.0.1:${httpStore.port}/resume`,
      'jobq.http_store_headers': JSON.stringify({ Authorization: HTTP_SECRET }),
    },
  };
  for (const [name, settings] of Object.entries(stores)) {
    try {
      await configure(settings);
      const type = `ck_resume_${name}`;
      await q(`SELECT jobq.register($1, unit_handler => 'ck_flaky(jobq.jobs,int)'::regprocedure,
                                    finalizer => 'ck_final(jobq.jobs)'::regprocedure)`, [type]);
      const id = await enqueue(type, crypto.randomUUID(), 4, { maxAttempts: 1 });
      const failed = await waitJob(id);
      assert.equal(failed.status, 3, `${name}: the job failed at unit 3 (${describeJob(failed)})`);
      assert.equal(failed.error.checkpoints, 2, `${name}: with 2 checkpoints`);
      await q('INSERT INTO ck_pass VALUES ($1)', [id]);
      assert.equal((await one('SELECT jobq.retry($1) AS r', [id])).r, true);
      const done = await waitJob(id);
      assert.equal(done.status, 2, `${name}: the retried job completed (${describeJob(done)})`);
      const expected = await expectedOutputs(id, 4);
      assert.deepEqual(done.result, { units: 4, sha256: expected.map(sha256) }, `${name}: the result`);
      // (unit 3's failed run rolled back its ck_runs row)
      assert.deepEqual(await runCounts(id), { 1: 1, 2: 1, 3: 1, 4: 1 },
        `${name}: units 1 and 2 were found in the store and did not run again`);
    } finally {
      await resetStore();
    }
  }
});

// ---------------------------------------------------------------- external workers

test('external worker: claim, checkpoint, checkpoint_data, complete (S3 store)', async () => {
  try {
    await configure({
      'jobq.checkpoint_url': `s3://${S3_BUCKET2}/ext`,
      'jobq.s3_endpoint': s3.endpoint,
      'jobq.s3_access_key_id': 'S3RVER',
      'jobq.s3_secret_access_key': 'S3RVER',
    });
    const view = s3View(S3_BUCKET2);
    const user = crypto.randomUUID();
    // an unregistered job type: the in-server workers leave it alone
    const id = (await one(`SELECT jobq.enqueue('ck_external', '{"x":1}', user_id => $1,
                                                queue => 'ck_ext', units => 3) AS id`, [user])).id;
    await assert.rejects(q("SELECT jobq.checkpoint($1, 1, '\\x00'::bytea)", [id]),
      (e) => e.code === '55000', 'checkpoint of a Queued job raises 55000');

    const claimed = (await q("SELECT * FROM jobq.claim('ck_ext', 'ext-node')")).rows;
    assert.deepEqual(claimed.map((r) => r.id), [id], 'the external worker claimed the job');
    assert.equal(claimed[0].units_total, 3);

    const data = [
      crypto.randomBytes(1000),
      Buffer.from([0, 0, 255, 10, 13, 0]),
      crypto.randomBytes(300_000),
    ];
    assert.equal((await one('SELECT jobq.checkpoint_data($1, 1) AS d', [id])).d, null,
      'checkpoint_data of a unit with no checkpoint is NULL');

    for (let n = 1; n <= 3; n++) {
      const { uri } = await one('SELECT jobq.checkpoint($1, $2, $3) AS uri', [id, n, data[n - 1]]);
      assert.equal(uri, `s3://${S3_BUCKET2}/${unitKey('ext', user, id, n)}`, `unit ${n}: the URI returned`);
      const row = await one('SELECT units_done, progress_percent FROM jobq.jobs WHERE id = $1', [id]);
      assert.equal(row.units_done, n, `units_done after unit ${n}`);
    }
    const row = await one('SELECT units_done, progress_percent, status FROM jobq.jobs WHERE id = $1', [id]);
    assert.equal(row.progress_percent, 100);
    assert.equal(row.status, 1, 'still Processing until completed');

    const cps = (await q('SELECT * FROM jobq.checkpoints($1)', [id])).rows;
    assert.deepEqual(cps.map((c) => [c.unit_id, Number(c.bytes), c.sha256]),
      data.map((d, i) => [i + 1, d.length, sha256(d)]), 'checkpoints() lists the 3 units');
    for (let n = 1; n <= 3; n++) {
      const { d } = await one('SELECT jobq.checkpoint_data($1, $2) AS d', [id, n]);
      assert.ok(d.equals(data[n - 1]), `unit ${n}: checkpoint_data returns the bytes`);
      const got = await view.get(unitKey('ext', user, id, n));
      assert.ok(got.equals(data[n - 1]), `unit ${n}: the S3 object holds the bytes`);
    }
    assert.deepEqual((await view.list(`ext/${user}/`)).sort(),
      [1, 2, 3].map((n) => unitKey('ext', user, id, n)).sort(), 'exactly three objects');

    // another tenant sees nothing of this job
    const other = await pool.connect();
    try {
      await other.query(`SET jobq.user_id = '${crypto.randomUUID()}'`);
      await assert.rejects(other.query('SELECT jobq.checkpoint_data($1, 1)', [id]),
        (e) => e.code === 'P0002', 'checkpoint_data of another tenant\'s job raises P0002');
      await assert.rejects(other.query('SELECT * FROM jobq.checkpoints($1)', [id]),
        (e) => e.code === 'P0002', 'checkpoints() of another tenant\'s job raises P0002');
      await assert.rejects(other.query("SELECT jobq.checkpoint($1, 1, '\\x00'::bytea)", [id]),
        (e) => e.code === 'P0002', 'checkpoint() of another tenant\'s job raises P0002');
      await other.query(`SET jobq.user_id = '${user}'`);
      const { d } = (await other.query('SELECT jobq.checkpoint_data($1, 2) AS d', [id])).rows[0];
      assert.ok(d.equals(data[1]), 'the owning tenant reads its checkpoint');
    } finally {
      await other.query('RESET jobq.user_id');
      other.release();
    }

    for (const bad of [0, 4]) {
      await assert.rejects(q("SELECT jobq.checkpoint($1, $2, '\\x01'::bytea)", [id, bad]),
        (e) => e.code === '22023', `unit ${bad} outside 1..3 raises 22023`);
    }
    await assert.rejects(q('SELECT jobq.checkpoint($1, 1, NULL)', [id]),
      (e) => e.code === '22023', 'NULL data raises 22023');
    await assert.rejects(q("SELECT jobq.checkpoint_data($1, 1)", [crypto.randomUUID()]),
      (e) => e.code === 'P0002', 'checkpoint_data of an unknown job raises P0002');

    // over jobq.max_checkpoint_bytes: 54000, nothing stored
    const client = await pool.connect();
    try {
      await client.query("SET jobq.max_checkpoint_bytes = '1kB'");
      await assert.rejects(client.query('SELECT jobq.checkpoint($1, 1, $2)', [id, crypto.randomBytes(2000)]),
        (e) => e.code === '54000', 'a checkpoint over jobq.max_checkpoint_bytes raises 54000');
      await client.query('RESET jobq.max_checkpoint_bytes');
    } finally {
      client.release();
    }
    const { d: still } = await one('SELECT jobq.checkpoint_data($1, 1) AS d', [id]);
    assert.ok(still.equals(data[0]), 'the rejected checkpoint did not replace unit 1');

    await q("SELECT jobq.complete($1, '{\"ok\": true}', 'ext-node')", [id]);
    const done = await one('SELECT status, result FROM jobq.jobs WHERE id = $1', [id]);
    assert.equal(done.status, 2);
    assert.deepEqual(done.result, { ok: true });
    await assert.rejects(q("SELECT jobq.checkpoint($1, 1, '\\x01'::bytea)", [id]),
      (e) => e.code === '55000', 'checkpoint of a Completed job raises 55000');
    const { d: after } = await one('SELECT jobq.checkpoint_data($1, 3) AS d', [id]);
    assert.ok(after.equals(data[2]), 'checkpoint_data still reads a Completed job\'s units');
  } finally {
    await resetStore();
  }
});

// ---------------------------------------------------------------- failures

test('S3 store down (closed port): the attempt fails with StoreError, server stays up', async () => {
  const port = await closedPort();
  try {
    await configure({
      'jobq.checkpoint_url': `s3://${S3_BUCKET}/down`,
      'jobq.s3_endpoint': `http://127.0.0.1:${port}`,
      'jobq.s3_access_key_id': 'S3RVER',
      'jobq.s3_secret_access_key': 'S3RVER',
      'jobq.store_timeout': '2s',
      'jobq.store_retries': '1',
    });
    await register('ck_down');
    const id = await enqueue('ck_down', crypto.randomUUID(), 3, { maxAttempts: 1 });
    const job = await waitJob(id);
    assert.equal(job.status, 3, `the job failed (${describeJob(job)})`);
    assert.equal(job.error.errors[0].code, 'StoreError', 'error code StoreError');
    assert.equal(job.error.status, 502, 'StoreError reports status 502');
    assert.equal(job.error.attempt, 1);
    assert.equal(job.error.checkpoints, 0);
    assert.match(job.error.errors[0].message,
      /checkpoint store PUT of s3:\/\/jobq-ckpt\/down\/.*\/unit_1\.output failed after 2 attempts/,
      'the message names the operation, the object and the attempts');
    assert.equal(job.error_message, job.error.errors[0].message);
    assert.doesNotMatch(JSON.stringify(job.error), /S3RVER/, 'no credentials in the error');
    assert.deepEqual(await runCounts(id), { 1: 1 }, 'unit 1 ran once, nothing after it');
    assert.equal((await q('SELECT * FROM jobq.checkpoints($1)', [id])).rowCount, 0,
      'no checkpoint is listed');
    assert.equal((await one('SELECT 1 AS one')).one, 1, 'the server answers');
    await waitFor('two in-server workers', async () =>
      (await one('SELECT count(*)::int AS n FROM jobq.worker_status')).n === 2);

    // an external worker's jobq.checkpoint() raises the store error (58030) and changes nothing
    const ext = (await one(`SELECT jobq.enqueue('ck_external_down', '{}', queue => 'ck_ext_down',
                                                 units => 2) AS id`)).id;
    assert.equal((await q("SELECT * FROM jobq.claim('ck_ext_down', 'ext-down')")).rowCount, 1);
    await assert.rejects(q("SELECT jobq.checkpoint($1, 1, '\\xdeadbeef'::bytea)", [ext]),
      (e) => e.code === '58030' && /checkpoint store PUT of .*unit_1\.output failed after 2 attempts/.test(e.message),
      'jobq.checkpoint() with the store down raises 58030 naming the object');
    const extRow = await one('SELECT status, units_done FROM jobq.jobs WHERE id = $1', [ext]);
    assert.deepEqual([extRow.status, extRow.units_done], [1, 0], 'the external job is unchanged');
    assert.equal((await q('SELECT * FROM jobq.checkpoints($1)', [ext])).rowCount, 0);
    await q("SELECT jobq.fail($1, 'store down', retry => false, worker => 'ext-down')", [ext]);
  } finally {
    await resetStore();
  }
});

test('store that never answers: bounded by jobq.store_timeout and retries', async () => {
  const sockets = new Set();
  const silent = net.createServer((s) => { sockets.add(s); s.on('error', () => {}); });
  await new Promise((r) => silent.listen(0, '127.0.0.1', r));
  try {
    await configure({
      'jobq.checkpoint_url': `http://127.0.0.1:${silent.address().port}/silent`,
      'jobq.store_timeout': '1s',
      'jobq.store_retries': '1',
    });
    await register('ck_silent');
    const id = await enqueue('ck_silent', crypto.randomUUID(), 2, { maxAttempts: 1 });
    const job = await waitJob(id);
    assert.equal(job.status, 3, `the job failed (${describeJob(job)})`);
    assert.equal(job.error.errors[0].code, 'StoreError');
    assert.match(job.error.errors[0].message, /failed after 2 attempts/);
    assert.ok(sockets.size >= 2, `the store was tried twice (${sockets.size} connections)`);
  } finally {
    for (const s of sockets) s.destroy();
    await new Promise((r) => silent.close(r));
    await resetStore();
  }
});

test('HTTP store failing mid-job (503 from unit 3): checkpoints kept, retry resumes', async () => {
  try {
    await configure({
      'jobq.checkpoint_url': `http://127.0.0.1:${httpStore.port}/mid`,
      'jobq.store_timeout': '5s',
      'jobq.store_retries': '2',
    });
    httpStore.failPutsFrom = 3;
    httpStore.requests.length = 0;
    await register('ck_mid');
    const user = crypto.randomUUID();
    const id = await enqueue('ck_mid', user, 5, { maxAttempts: 1 });
    const job = await waitJob(id);
    assert.equal(job.status, 3, `the job failed (${describeJob(job)})`);
    assert.equal(job.error.errors[0].code, 'StoreError');
    assert.match(job.error.errors[0].message, /PUT of .*unit_3\.output failed after 3 attempts: HTTP 503/);
    assert.equal(job.error.checkpoints, 2, 'the error counts the 2 stored checkpoints');
    assert.equal(job.units_done, 2);
    assert.equal(httpStore.requests.filter((r) => r.method === 'PUT' && r.key.endsWith(`${id}/units/unit_3.output`)).length,
      3, 'unit 3 was PUT 1 + jobq.store_retries times');

    const expected = await expectedOutputs(id, 5);
    const cps = (await q('SELECT * FROM jobq.checkpoints($1)', [id])).rows;
    assert.deepEqual(cps.map((c) => c.unit_id), [1, 2], 'units 1 and 2 are still listed');
    for (const c of cps) {
      const obj = httpStore.objects.get(unitKey('mid', user, id, c.unit_id));
      assert.ok(obj && obj.equals(expected[c.unit_id - 1]), `unit ${c.unit_id}'s object is intact`);
      assert.equal(c.sha256, sha256(expected[c.unit_id - 1]));
    }
    assert.equal((await one('SELECT 1 AS one')).one, 1, 'the server answers');

    // the store recovers; retry resumes from unit 3
    httpStore.failPutsFrom = Infinity;
    assert.equal((await one('SELECT jobq.retry($1) AS r', [id])).r, true);
    const done = await waitJob(id);
    assert.equal(done.status, 2, `the retried job completed (${describeJob(done)})`);
    assert.deepEqual(done.result, { units: 5, sha256: expected.map(sha256) });
    assert.deepEqual(await runCounts(id), { 1: 1, 2: 1, 3: 2, 4: 1, 5: 1 },
      'units 1 and 2 did not run again; unit 3 (whose upload failed) ran twice');
    assert.equal((await q('SELECT * FROM jobq.checkpoints($1)', [id])).rowCount, 5);

    // checkpoint_data verifies what it downloads: a corrupt or missing blob is XX001
    const k1 = unitKey('mid', user, id, 1);
    const k4 = unitKey('mid', user, id, 4);
    const good1 = httpStore.objects.get(k1);
    const bad1 = Buffer.from(good1);
    bad1[100] ^= 0xff;
    httpStore.objects.set(k1, bad1);
    await assert.rejects(q('SELECT jobq.checkpoint_data($1, 1)', [id]),
      (e) => e.code === 'XX001' && /unit 1 .*does not match its sha256/.test(e.message),
      'checkpoint_data of a corrupted blob raises XX001');
    httpStore.objects.delete(k4);
    await assert.rejects(q('SELECT jobq.checkpoint_data($1, 4)', [id]),
      (e) => e.code === 'XX001' && /unit 4 .*missing from the store/.test(e.message),
      'checkpoint_data of a missing blob raises XX001');
    httpStore.objects.set(k1, good1);
    const { d } = await one('SELECT jobq.checkpoint_data($1, 1) AS d', [id]);
    assert.ok(d.equals(expected[0]), 'the repaired blob reads again');
  } finally {
    httpStore.failPutsFrom = Infinity;
    await resetStore();
  }
});

test('Azure store with a wrong account key: StoreError, the key is not revealed', async () => {
  const wrongKey = crypto.randomBytes(64).toString('base64');
  secretsUsed.push(wrongKey);
  try {
    await configure({
      'jobq.checkpoint_url': `azure://${AZ_ACCOUNT}/${AZ_CONTAINER}/wrong`,
      'jobq.azure_endpoint': azurite.endpoint,
      'jobq.azure_account_key': wrongKey,
      'jobq.store_retries': '0',
    });
    await register('ck_az_wrong');
    const id = await enqueue('ck_az_wrong', crypto.randomUUID(), 2, { maxAttempts: 1 });
    const job = await waitJob(id);
    assert.equal(job.status, 3, `the job failed (${describeJob(job)})`);
    assert.equal(job.error.errors[0].code, 'StoreError');
    assert.match(job.error.errors[0].message, /HTTP 403/);
    assert.ok(!JSON.stringify(job).includes(wrongKey), 'the key appears nowhere in the job row');
  } finally {
    await resetStore();
  }
});

test('S3 store with a wrong secret key: StoreError HTTP 403', async () => {
  const wrongSecret = `wrong-${crypto.randomBytes(8).toString('hex')}`;
  secretsUsed.push(wrongSecret);
  try {
    await configure({
      'jobq.checkpoint_url': `s3://${S3_BUCKET}/wrong`,
      'jobq.s3_endpoint': s3.endpoint,
      'jobq.s3_access_key_id': 'S3RVER',
      'jobq.s3_secret_access_key': wrongSecret,
      'jobq.store_retries': '0',
    });
    await register('ck_s3_wrong');
    const id = await enqueue('ck_s3_wrong', crypto.randomUUID(), 2, { maxAttempts: 1 });
    const job = await waitJob(id);
    assert.equal(job.status, 3, `the job failed (${describeJob(job)})`);
    assert.equal(job.error.errors[0].code, 'StoreError');
    assert.match(job.error.errors[0].message, /HTTP 403/);
    assert.ok(!JSON.stringify(job).includes(wrongSecret), 'the secret appears nowhere in the job row');
    assert.deepEqual(await s3View(S3_BUCKET).list('wrong/'), [], 'nothing was stored');
    assert.ok(s3.proxy.requests.some((r) => r.problem === 'SignatureDoesNotMatch'),
      'the proxy refused the signature');
  } finally {
    await resetStore();
  }
});

test('store settings with secrets are hidden from non-superusers', async () => {
  const role = `ck_reader_${crypto.randomBytes(4).toString('hex')}`;
  const client = await pool.connect();
  try {
    await client.query(`CREATE ROLE ${role}`);
    await client.query(`SET ROLE ${role}`);
    for (const name of ['jobq.azure_account_key', 'jobq.s3_secret_access_key', 'jobq.azure_sas_token',
      'jobq.http_store_headers']) {
      await assert.rejects(client.query(`SELECT current_setting('${name}')`),
        (e) => e.code === '42501', `${name} is not readable by a plain role`);
    }
    await assert.rejects(client.query("SET jobq.checkpoint_url = 'file:///tmp/x'"),
      (e) => e.code === '42501', 'a plain role cannot change jobq.checkpoint_url');
  } finally {
    await client.query('RESET ROLE');
    await client.query(`DROP ROLE IF EXISTS ${role}`);
    client.release();
  }
});

// SPEC 6: "jobq.purge also deletes the job's blobs".  A purged job's blobs
// are queued for deletion; when the store fails, the job goes back into the
// queue, but only up to 10 times, retried at the workers' poll pace with no
// backoff: an outage of ~10 s leaks the blobs for good.
test('BUG: purge while the store is down: the blobs are deleted once it is back', async () => {
  try {
    await configure({ 'jobq.checkpoint_url': `http://127.0.0.1:${httpStore.port}/outage` });
    await register('ck_outage');
    const user = crypto.randomUUID();
    const id = await enqueue('ck_outage', user, 3);
    const job = await waitJob(id);
    assert.equal(job.status, 2, `job completed (${describeJob(job)})`);
    const view = httpView();
    assert.equal((await view.list(`outage/${user}/`)).length, 3, 'three blobs stored');

    httpStore.failDeletes = true;
    await q("UPDATE jobq.jobs SET completed_at = now() - interval '30 days' WHERE id = $1", [id]);
    assert.ok(Number((await one("SELECT jobq.purge('7 days') AS n")).n) >= 1);
    // a 20-second outage of the store
    await sleep(20_000);
    const tried = httpStore.requests.filter((r) => r.method === 'DELETE' && r.key.includes(id)).length;
    httpStore.failDeletes = false;
    assert.ok(tried > 0, 'the workers tried to delete the blobs during the outage');
    await waitFor(`the blobs of purged job ${id} to be deleted after the outage `
      + `(${tried} DELETEs were refused during the 20 s outage)`,
    async () => (await view.list(`outage/${user}/`)).length === 0, 60_000);
  } finally {
    httpStore.failDeletes = false;
    await resetStore();
  }
});

test('a unit output over jobq.max_checkpoint_bytes fails the job with PayloadTooLarge', async () => {
  const dir = fs.mkdtempSync(path.join(tmpRoot, 'limit-'));
  try {
    // unit 1 is 8000 bytes, unit 2 empty, unit 3 72000 bytes
    await configure({ 'jobq.checkpoint_url': `file://${dir}`, 'jobq.max_checkpoint_bytes': '10kB' });
    await register('ck_limit');
    const id = await enqueue('ck_limit', crypto.randomUUID(), 5, { maxAttempts: 3 });
    const job = await waitJob(id);
    assert.equal(job.status, 3, `the job failed (${describeJob(job)})`);
    assert.equal(job.attempts, 1, 'without retries');
    assert.equal(job.error.errors[0].code, 'PayloadTooLarge');
    assert.equal(job.error.status, 413);
    assert.match(job.error.errors[0].message, /unit 3 output of 72000 bytes exceeds jobq\.max_checkpoint_bytes/);
    assert.equal(job.error.checkpoints, 2);
    assert.deepEqual((await q('SELECT unit_id FROM jobq.checkpoints($1)', [id])).rows.map((r) => r.unit_id),
      [1, 2], 'units 1 and 2 are stored');
  } finally {
    await resetStore();
  }
});

// The store is chosen by the current jobq.checkpoint_url, but every
// checkpoint records the URI of its blob.  After the setting changes (a move
// to another directory or bucket), the recorded blobs are still there; reads
// and purge should find them where the record says.
test('BUG: after jobq.checkpoint_url changes, old checkpoints stay readable and purge deletes them', async () => {
  const oldDir = fs.mkdtempSync(path.join(tmpRoot, 'old-'));
  const newDir = fs.mkdtempSync(path.join(tmpRoot, 'new-'));
  try {
    await configure({ 'jobq.checkpoint_url': `file://${oldDir}` });
    await register('ck_move');
    const user = crypto.randomUUID();
    const id = await enqueue('ck_move', user, 3);
    const job = await waitJob(id);
    assert.equal(job.status, 2, `job completed (${describeJob(job)})`);
    const expected = await expectedOutputs(id, 3);
    const cps = (await q('SELECT * FROM jobq.checkpoints($1)', [id])).rows;
    assert.equal(cps[0].uri, `file://${oldDir}/${unitKey('', user, id, 1)}`);

    await configure({ 'jobq.checkpoint_url': `file://${newDir}` });
    const problems = [];
    const { d } = await one('SELECT jobq.checkpoint_data($1, 1) AS d', [id]).catch((e) => ({ d: e }));
    if (!(Buffer.isBuffer(d) && d.equals(expected[0]))) {
      problems.push(`checkpoint_data(job, 1) does not read the blob at its recorded URI ${cps[0].uri}: ${
        d instanceof Error ? `${d.code} ${d.message}` : d}`);
    }

    await q("UPDATE jobq.jobs SET completed_at = now() - interval '30 days' WHERE id = $1", [id]);
    await q("SELECT jobq.purge('7 days')");
    await waitFor('the deletion queue to be empty', async () =>
      (await one('SELECT count(*)::int AS n FROM jobq.blob_deletions WHERE job_id = $1', [id])).n === 0);
    const start = Date.now();
    let left = await fileView(oldDir).list(`${user}/`);
    while (left.length > 0 && Date.now() - start < 20_000) {
      await sleep(500);
      left = await fileView(oldDir).list(`${user}/`);
    }
    if (left.length > 0) problems.push(`purge left ${left.length} blobs of the job under ${oldDir}`);
    assert.deepEqual(problems, [], 'old checkpoints are read and purged where their records say');
  } finally {
    await resetStore();
  }
});

// SPEC 6: secrets are "never logged".  The postmaster logs every changed
// setting at reload ("parameter ... changed to ...") with its value, the
// jobq secret settings included.
test('BUG: secrets given with ALTER SYSTEM never reach the server log', async (t) => {
  // test/run.sh puts the server log next to the socket directory
  const log = path.join(process.env.JOBQ_PGHOST, '..', 'server.log');
  if (!fs.existsSync(log)) {
    t.skip(`no server log at ${log}`);
    return;
  }
  const text = fs.readFileSync(log, 'utf8');
  const leaks = text.split('\n').filter((l) =>
    /parameter "jobq\.(azure_account_key|azure_sas_token|s3_secret_access_key|http_store_headers)" changed to "./.test(l));
  assert.deepEqual(leaks, [], 'no "parameter ... changed to" line shows a secret setting\'s value');
  for (const secret of secretsUsed) {
    assert.ok(!text.includes(secret), `the secret ${secret.slice(0, 12)}... is not in the server log`);
  }
});
