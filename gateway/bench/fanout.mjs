// Fan-out benchmark of jobq-gateway: CLIENTS WebSocket clients over USERS users
// (one job per user; every client of a user receives each of its events).
//
//   throughput: every job advances ROUNDS times, as fast as DRIVERS database
//               connections can commit jobq.progress(); figure = deliveries per
//               second, first commit to last delivery
//   burst:      the same, but each transaction advances every job at once (USERS
//               events per commit, BURST_ROUNDS commits): what the gateway itself
//               can deliver when the database is not the limit
//   ceiling:    raw pg_notify() of well-formed payloads, 10 per job per commit
//               (CEILING_COMMITS commits): the gateway's own limit, with the
//               database doing as little as possible
//   latency:    RATE events per second for SECONDS, paced; figure = time from
//               sending COMMIT (of the transaction that called jobq.progress) to
//               the client's 'message' event, for every delivery (median, p95, p99)
//
// Run by bench/run.sh, which starts PostgreSQL; the gateway is started here.
// Output: a summary on stdout and JSON in bench/out/fanout.json.
import fs from 'node:fs';
import path from 'node:path';
import * as h from '../test/helpers.mjs';

const CLIENTS = Number(process.env.CLIENTS || 1000);
const USERS = Number(process.env.USERS || 100);
const ROUNDS = Number(process.env.ROUNDS || 30);
const DRIVERS = Number(process.env.DRIVERS || 4);
const BURST_ROUNDS = Number(process.env.BURST_ROUNDS || 100);
const CEILING_COMMITS = Number(process.env.CEILING_COMMITS || 20);
const RATE = Number(process.env.RATE || 200);
const SECONDS = Number(process.env.SECONDS || 10);
const OUT = path.join(h.GATEWAY_DIR, 'bench', 'out');

const users = Array.from({ length: USERS }, () => h.uuid());
const quantile = (sorted, q) => sorted[Math.min(sorted.length - 1, Math.floor(q * sorted.length))];

async function driver() {
  const c = new h.pg.Client({ host: h.PGHOST, port: h.PGPORT, user: 'postgres', database: 'gwtest' });
  await c.connect();
  return c;
}

// One jobq.progress() in its own transaction; returns when COMMIT was sent.
async function progress(db, job, percent, notifyHere, onSent = null) {
  await db.query('BEGIN');
  if (h.MODE === 'extension') await db.query('SELECT jobq.progress($1, $2, $3)', [job, percent, `step ${percent}`]);
  else await db.query('UPDATE jobq.jobs SET progress_percent = $2, status_message = $3 WHERE id = $1', [job, percent, `step ${percent}`]);
  if (notifyHere) {
    await db.query(`SELECT pg_notify('jobq_progress', json_build_object('job_id', id, 'user_id', user_id,
      'job_type', job_type, 'status', status, 'percent', progress_percent, 'message', status_message,
      'units_done', units_done, 'units_total', units_total)::text) FROM jobq.jobs WHERE id = $1`, [job]);
  }
  const sent = performance.now();
  if (onSent) onSent(sent); // before COMMIT returns: its NOTIFY may arrive first
  await db.query('COMMIT');
  return sent;
}

async function main() {
  const gw = await h.startGateway(['--log-level', 'warn', '--max-clients', String(CLIENTS + 100)]);
  const jobs = await h.Jobs.open();
  const notifyHere = !jobs.extensionNotifies;

  // connect every client, and wait for their snapshots
  const t0 = performance.now();
  const clients = [];
  for (let i = 0; i < CLIENTS; i++) {
    const user = users[i % USERS];
    const c = h.connect(gw.hub({ access_token: h.token({ sub: user }) }));
    c.user = user;
    clients.push(c);
    if (i % 100 === 99) await Promise.all(clients.slice(-100).map((x) => x.opened));
  }
  await Promise.all(clients.map((c) => c.opened));
  await Promise.all(clients.map((c) => c.snapshot(60000)));
  const connectSeconds = (performance.now() - t0) / 1000;
  const perUser = CLIENTS / USERS;

  // deliveries are counted here, not kept: the clients' message arrays are cleared
  let delivered = 0;
  let lastDelivery = 0;
  let onDelivery = null;
  for (const c of clients) {
    c.ws.on('message', (data) => {
      delivered++;
      lastDelivery = performance.now();
      if (onDelivery) onDelivery(data);
    });
  }
  const clear = () => { for (const c of clients) c.messages.length = 0; };
  clear();

  // ---- throughput
  const tJobs = [];
  for (const u of users) tJobs.push(await jobs.start(u, { type: 'bench-throughput', notify: false }));
  await h.sleep(500);
  clear();
  delivered = 0;
  const dbs = await Promise.all(Array.from({ length: DRIVERS }, driver));
  const expected = USERS * ROUNDS * perUser;
  const tStart = performance.now();
  await Promise.all(dbs.map(async (db, d) => {
    for (let r = 1; r <= ROUNDS; r++)
      for (let j = d; j < tJobs.length; j += DRIVERS) await progress(db, tJobs[j], r, notifyHere);
  }));
  const tCommitted = performance.now();
  await h.withTimeout((async () => { while (delivered < expected) await h.sleep(5); })(), 60000,
    () => `throughput deliveries (${delivered} of ${expected})`);
  const tputSeconds = (lastDelivery - tStart) / 1000;
  const throughput = {
    events: USERS * ROUNDS,
    deliveries: delivered,
    commit_seconds: +((tCommitted - tStart) / 1000).toFixed(3),
    seconds: +tputSeconds.toFixed(3),
    events_per_second_committed: Math.round((USERS * ROUNDS) / ((tCommitted - tStart) / 1000)),
    deliveries_per_second: Math.round(delivered / tputSeconds),
  };
  clear();

  // ---- burst: one transaction advances every job
  const bJobs = [];
  for (const u of users) bJobs.push(await jobs.start(u, { type: 'bench-burst', notify: false }));
  await h.sleep(500);
  clear();
  delivered = 0;
  const bExpected = USERS * BURST_ROUNDS * perUser;
  const bStart = performance.now();
  for (let r = 1; r <= BURST_ROUNDS; r++) {
    const db = dbs[0];
    await db.query('BEGIN');
    if (h.MODE === 'extension') {
      await db.query('SELECT jobq.progress(id, $2, $3) FROM unnest($1::uuid[]) AS id', [bJobs, r, `step ${r}`]);
    } else {
      await db.query('UPDATE jobq.jobs SET progress_percent = $2, status_message = $3 WHERE id = ANY ($1::uuid[])', [bJobs, r, `step ${r}`]);
    }
    if (notifyHere) {
      await db.query(`SELECT pg_notify('jobq_progress', json_build_object('job_id', id, 'user_id', user_id,
        'job_type', job_type, 'status', status, 'percent', progress_percent, 'message', status_message,
        'units_done', units_done, 'units_total', units_total)::text) FROM jobq.jobs WHERE id = ANY ($1::uuid[])`, [bJobs]);
    }
    await db.query('COMMIT');
  }
  const bCommitted = performance.now();
  await h.withTimeout((async () => { while (delivered < bExpected) await h.sleep(5); })(), 60000,
    () => `burst deliveries (${delivered} of ${bExpected})`);
  const bSeconds = (lastDelivery - bStart) / 1000;
  const burst = {
    events: USERS * BURST_ROUNDS,
    events_per_commit: USERS,
    deliveries: delivered,
    commit_seconds: +((bCommitted - bStart) / 1000).toFixed(3),
    seconds: +bSeconds.toFixed(3),
    events_per_second: Math.round((USERS * BURST_ROUNDS) / bSeconds),
    deliveries_per_second: Math.round(delivered / bSeconds),
  };
  clear();

  // ---- ceiling: raw NOTIFY, 10 events per job per commit
  clear();
  delivered = 0;
  const cExpected = USERS * 10 * CEILING_COMMITS * perUser;
  const cStart = performance.now();
  for (let k = 0; k < CEILING_COMMITS; k++) {
    await dbs[0].query(`SELECT pg_notify('jobq_progress', json_build_object('job_id', j.id, 'user_id', j.user_id,
        'job_type', j.job_type, 'status', 1, 'percent', s % 101, 'message', 'step ' || s,
        'units_done', s, 'units_total', 1000)::text)
      FROM jobq.jobs j, generate_series($2::int, $2::int + 9) AS s
      WHERE j.id = ANY ($1::uuid[])`, [bJobs, k * 10]);
  }
  const cCommitted = performance.now();
  await h.withTimeout((async () => { while (delivered < cExpected) await h.sleep(5); })(), 60000,
    () => `ceiling deliveries (${delivered} of ${cExpected})`);
  const cSeconds = (lastDelivery - cStart) / 1000;
  const ceiling = {
    events: USERS * 10 * CEILING_COMMITS,
    events_per_commit: USERS * 10,
    deliveries: delivered,
    commit_seconds: +((cCommitted - cStart) / 1000).toFixed(3),
    seconds: +cSeconds.toFixed(3),
    events_per_second: Math.round((USERS * 10 * CEILING_COMMITS) / cSeconds),
    deliveries_per_second: Math.round(delivered / cSeconds),
  };
  clear();

  // ---- latency, paced
  const lJobs = [];
  for (const u of users) lJobs.push(await jobs.start(u, { type: 'bench-latency', notify: false }));
  await h.sleep(500);
  clear();
  const sentAt = new Map();
  const latencies = [];
  onDelivery = (data) => {
    const m = JSON.parse(data.toString());
    const t = sentAt.get(m.job_id + ':' + m.percent);
    if (t !== undefined) latencies.push(performance.now() - t);
  };
  const total = RATE * SECONDS;
  const db = dbs[0];
  const lStart = performance.now();
  for (let i = 0; i < total; i++) {
    const due = lStart + (i * 1000) / RATE;
    const wait = due - performance.now();
    if (wait > 1) await h.sleep(wait);
    const job = lJobs[i % USERS];
    const percent = 1 + Math.floor(i / USERS);
    const key = job + ':' + percent;
    await progress(db, job, percent, notifyHere, (t) => sentAt.set(key, t));
  }
  await h.withTimeout((async () => { while (latencies.length < total * perUser) await h.sleep(5); })(), 30000,
    () => `latency deliveries (${latencies.length} of ${total * perUser})`);
  latencies.sort((a, b) => a - b);
  const latency = {
    events: total,
    rate_per_second: RATE,
    deliveries: latencies.length,
    median_ms: +quantile(latencies, 0.5).toFixed(2),
    p95_ms: +quantile(latencies, 0.95).toFixed(2),
    p99_ms: +quantile(latencies, 0.99).toFixed(2),
    max_ms: +latencies[latencies.length - 1].toFixed(2),
  };

  const health = (await gw.health()).body;
  const result = {
    clients: CLIENTS, users: USERS, clients_per_user: perUser, mode: h.MODE,
    notify: notifyHere ? 'pg_notify from the driver' : 'jobq.progress()',
    connect_seconds: +connectSeconds.toFixed(2),
    throughput, burst, ceiling, latency,
    gateway: { dropped_slow: health.dropped_slow, dropped_ping: health.dropped_ping, clients: health.clients },
    machine: { cpus: (await import('node:os')).cpus().length, node: process.version },
  };
  fs.mkdirSync(OUT, { recursive: true });
  fs.writeFileSync(path.join(OUT, 'fanout.json'), JSON.stringify(result, null, 2) + '\n');
  console.log(JSON.stringify(result, null, 2));
  console.log(`fan-out: ${CLIENTS} clients over ${USERS} users: ${throughput.deliveries_per_second} deliveries/s ` +
    `(${throughput.events} events, one per commit, in ${throughput.seconds} s); ` +
    `${burst.deliveries_per_second} deliveries/s with ${USERS} events per commit; ` +
    `${ceiling.deliveries_per_second} deliveries/s from raw NOTIFY; latency commit->client median ${latency.median_ms} ms, ` +
    `p95 ${latency.p95_ms} ms, p99 ${latency.p99_ms} ms at ${RATE} events/s`);

  for (const c of clients) c.close();
  await Promise.all(dbs.map((d) => d.end()));
  await jobs.close();
  await gw.stop();
}

main().catch((e) => { console.error(e); process.exit(1); });
