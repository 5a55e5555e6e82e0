// Staying up: the database restarts mid-stream, a client stops reading, a
// client stops answering pings, the gateway is told to stop.
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { test } from 'node:test';
import * as h from './helpers.mjs';

test('the database restarted mid-stream: the gateway reconnects, resyncs and events resume', async () => {
  assert.ok(h.PGDATA, 'GW_PGDATA is set by test/run.sh');
  const gw = await h.startGateway(['--reconnect-max-ms', '500']);
  let jobs = await h.Jobs.open();
  try {
    const user = h.uuid();
    const c = h.connect(gw.hub({ access_token: h.token({ sub: user }) }));
    await c.opened;
    await c.snapshot();
    const job = await jobs.start(user);
    for (const p of [10, 20, 30]) await jobs.progress(job, p, `before ${p}`);
    await c.until((ms) => ms.some((m) => m.percent === 30), 5000, 'events before the restart');
    await jobs.close();

    execFileSync('pg_ctl', ['-D', h.PGDATA, '-m', 'fast', '-w', '-t', '60', 'restart'], { stdio: 'ignore' });

    // the client hears that the database went away and came back
    await c.until((ms) => ms.some((m) => m.type === 'gateway' && m.database === 'down'), 10000, 'database down');
    await c.until((ms) => ms.some((m) => m.type === 'gateway' && m.database === 'up'), 20000, 'database up');
    jobs = await h.Jobs.open();
    // progress made while the gateway was reconnecting is not lost: a fresh snapshot follows
    const snaps = await c.until((ms) => ms.filter((m) => m.type === 'snapshot').length >= 2 && ms, 10000, 'a second snapshot');
    const resync = snaps.filter((m) => m.type === 'snapshot')[1];
    assert.equal(resync.jobs.find((j) => j.job_id === job)?.percent, 30);

    for (const p of [40, 50, 60]) await jobs.progress(job, p, `after ${p}`);
    await jobs.complete(job);
    await c.until((ms) => ms.some((m) => m.type === 'progress' && m.status === 2), 10000, 'events after the restart');
    const after = c.progress().map((m) => m.percent).filter((p) => p >= 40);
    assert.deepEqual(after, [40, 50, 60, 100]);
    assert.equal((await gw.health()).body.database, 'up');
    assert.match(gw.log(), /lost the database connection/);
    c.close();
  } finally {
    await jobs.close().catch(() => {});
    await gw.stop();
  }
});

test('a client that never reads is dropped without stalling the others', async (t) => {
  const gw = await h.startGateway(['--send-queue', '1024']);
  const jobs = await h.Jobs.open();
  try {
    const user = h.uuid();
    const tk = h.token({ sub: user });
    const slow = h.connect(gw.hub({ access_token: tk }));
    const fast = h.connect(gw.hub({ access_token: tk }));
    await Promise.all([slow.opened, fast.opened]);
    await Promise.all([slow.snapshot(), fast.snapshot()]);
    const N = 6000;
    let count = 0; // messages after the snapshot
    const allIn = new Promise((resolve) => fast.ws.on('message', () => { if (++count === N) resolve(); }));
    slow.ws._socket.pause(); // stops reading: its kernel buffers fill, then its gateway queue

    const job = h.uuid();
    const filler = 'x'.repeat(3000); // ~18 MB in all, more than the kernel buffers hold
    const started = performance.now();
    for (let batch = 0; batch < N / 100; batch++) { // 100 events per commit
      await jobs.db.query(`SELECT pg_notify('jobq_progress', json_build_object(
          'job_id', $1::uuid, 'user_id', $2::uuid, 'job_type', 'flood', 'status', 1,
          'percent', i % 101, 'message', i::text || ' ' || $3, 'units_done', i, 'units_total', $4::int)::text)
        FROM generate_series($5::int, $6::int) AS i`, [job, user, filler, N, batch * 100 + 1, batch * 100 + 100]);
    }
    const committed = performance.now();
    await h.withTimeout(allIn, 30000, () => `all events at the fast client (got ${count}); ${gw.log().slice(-1500)}`);
    const lag = performance.now() - committed;
    const got = fast.progress().map((m) => m.units_done);
    assert.deepEqual(got, Array.from({ length: N }, (_, i) => i + 1), 'in order, none missing');
    assert.ok(lag < 5000, `the fast client got the last event ${Math.round(lag)} ms after the last commit`);

    const health = (await gw.health()).body;
    assert.equal(health.dropped_slow, 1, 'the slow client was dropped');
    assert.equal(health.clients, 1);
    assert.match(gw.log(), /slow consumer/);
    slow.ws._socket.resume();
    await slow.closed;
    t.diagnostic(`flood: ${N} events committed in ${Math.round(committed - started)} ms, fast client lag ${Math.round(lag)} ms`);
    fast.close();
  } finally {
    await jobs.close();
    await gw.stop();
  }
});

test('ping/pong keep-alive: a client that does not answer pings is closed', async () => {
  const gw = await h.startGateway(['--ping-interval', '1', '--ping-timeout', '2']);
  try {
    const t = h.token({ sub: h.uuid() });
    const deaf = h.connect(gw.hub({ access_token: t }), { autoPong: false });
    const live = h.connect(gw.hub({ access_token: t }));
    let pings = 0;
    live.ws.on('ping', () => { pings++; });
    await Promise.all([deaf.opened, live.opened]);
    const started = Date.now();
    await deaf.closed;
    const waited = Date.now() - started;
    assert.ok(waited >= 1500 && waited < 8000, `closed after ${waited} ms`);
    await h.sleep(1500);
    assert.equal(live.ws.readyState, 1, 'the client that answers stays open');
    assert.ok(pings >= 2, `pings seen: ${pings}`);
    assert.equal((await gw.health()).body.dropped_ping, 1, gw.log());
    live.close();
  } finally {
    await gw.stop();
  }
});

test('SIGTERM closes every client with 1001 and exits 0', async () => {
  const gw = await h.startGateway();
  const clients = [];
  for (let i = 0; i < 5; i++) clients.push(h.connect(gw.hub({ access_token: h.token({ sub: h.uuid() }) })));
  await Promise.all(clients.map((c) => c.opened));
  await Promise.all(clients.map((c) => c.snapshot()));
  const t0 = Date.now();
  gw.proc.kill('SIGTERM');
  const closes = await Promise.all(clients.map((c) => c.closed));
  const { code } = await gw.exited;
  assert.deepEqual(closes.map((c) => c.code), [1001, 1001, 1001, 1001, 1001]);
  assert.equal(code, 0);
  assert.ok(Date.now() - t0 < 5000, 'stopped promptly');
  assert.match(gw.log(), /shutting down/);
});
