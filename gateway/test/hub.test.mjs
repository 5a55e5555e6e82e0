// What a client receives: its own user's events, in order, after a snapshot of
// its active jobs; narrowed to named jobs; with HS256 and RS256 tokens.
import assert from 'node:assert/strict';
import { after, before, test } from 'node:test';
import * as h from './helpers.mjs';

let gw;
let jobs;
const tokens = [];
const tok = (claims, opts) => { const t = h.token(claims, opts); tokens.push(t); return t; };

before(async () => {
  gw = await h.startGateway();
  jobs = await h.Jobs.open();
});

after(async () => {
  await jobs?.close();
  await gw?.stop();
});

test('a client receives its own job events in order and none of another user', async () => {
  const alice = h.uuid();
  const bob = h.uuid();
  const ca = h.connect(gw.hub({ access_token: tok({ sub: alice }) }));
  const cb = h.connect(gw.hub({ access_token: tok({ sub: bob }) }));
  await Promise.all([ca.opened, cb.opened]);
  await Promise.all([ca.snapshot(), cb.snapshot()]);

  const ja = await jobs.start(alice);
  const jb = await jobs.start(bob);
  const steps = [5, 10, 20, 35, 50, 65, 80, 90, 99];
  for (const p of steps) {
    await jobs.progress(ja, p, `alice at ${p}`);
    await jobs.progress(jb, p, `bob at ${p}`);
  }
  await jobs.complete(ja);
  await jobs.complete(jb);

  await ca.until((ms) => ms.some((m) => m.type === 'progress' && m.status === 2), 10000, "alice's completion");
  await cb.until((ms) => ms.some((m) => m.type === 'progress' && m.status === 2), 10000, "bob's completion");
  const pa = ca.progress();
  assert.ok(pa.every((m) => m.user_id === alice && m.job_id === ja), 'alice saw only her own job');
  assert.deepEqual(pa.map((m) => m.percent), [0, ...steps, 100]);
  assert.deepEqual(pa.map((m) => m.status), [1, ...steps.map(() => 1), 2]);
  assert.equal(pa[3].message, 'alice at 20');
  assert.deepEqual(Object.keys(pa[0]).sort(),
    ['job_id', 'job_type', 'message', 'percent', 'receivedAt', 'status', 'type', 'units_done', 'units_total', 'user_id']);
  const pb = cb.progress();
  assert.ok(pb.every((m) => m.user_id === bob && m.job_id === jb), 'bob saw only his own job');
  assert.equal(pb.length, steps.length + 2);
  ca.close();
  cb.close();
});

test('on connect a client first gets the current state of its active jobs', async () => {
  const user = h.uuid();
  const other = h.uuid();
  const running = await jobs.start(user, { type: 'import' });
  await jobs.progress(running, 42, 'importing rows');
  const waiting = await jobs.queued(user, { type: 'report' });
  const finished = await jobs.start(user, { type: 'done-already' });
  await jobs.complete(finished);
  await jobs.start(other, { type: 'not-mine' });

  const c = h.connect(gw.hub({ access_token: tok({ sub: user }) }));
  await c.opened;
  const snap = await c.snapshot();
  assert.equal(c.messages[0].type, 'snapshot', 'the snapshot is the first message');
  const byId = Object.fromEntries(snap.jobs.map((j) => [j.job_id, j]));
  assert.deepEqual(Object.keys(byId).sort(), [running, waiting].sort(), 'only the active jobs of this user');
  assert.equal(byId[running].status, 1);
  assert.equal(byId[running].percent, 42);
  assert.equal(byId[running].message, 'importing rows');
  assert.equal(byId[running].job_type, 'import');
  assert.equal(byId[waiting].status, 0);

  // and events keep coming after it
  await jobs.progress(running, 43, 'more rows');
  await c.until((ms) => ms.some((m) => m.type === 'progress' && m.percent === 43), 5000, 'the next event');
  c.close();
});

test('job_id narrows a client to the jobs it names', async () => {
  const user = h.uuid();
  const j1 = await jobs.start(user);
  const j2 = await jobs.start(user);
  const j3 = await jobs.start(user);
  const one = h.connect(gw.hub({ access_token: tok({ sub: user }), job_id: j2 }));
  const q = new URLSearchParams({ access_token: tok({ sub: user }) });
  q.append('job_id', j1);
  q.append('job_id', j3.toUpperCase());
  const two = h.connect(`ws://127.0.0.1:${gw.port}/hubs/jobs?${q}`);
  const all = h.connect(gw.hub({ access_token: tok({ sub: user }) }));
  await Promise.all([one.opened, two.opened, all.opened]);
  const [s1, s2, s3] = await Promise.all([one.snapshot(), two.snapshot(), all.snapshot()]);
  assert.deepEqual(s1.jobs.map((j) => j.job_id), [j2]);
  assert.deepEqual(s2.jobs.map((j) => j.job_id).sort(), [j1, j3].sort());
  assert.equal(s3.jobs.length, 3);

  for (const j of [j1, j2, j3]) await jobs.progress(j, 50, 'half');
  for (const j of [j1, j2, j3]) await jobs.complete(j);
  await all.until((ms) => ms.filter((m) => m.status === 2).length === 3, 5000, 'three completions');
  await one.until((ms) => ms.some((m) => m.status === 2), 5000, 'j2 completion');
  await two.until((ms) => ms.filter((m) => m.status === 2).length === 2, 5000, 'j1 and j3 completions');
  await h.sleep(200);
  assert.ok(one.progress().every((m) => m.job_id === j2));
  // the claims' own events (status 1, 0%) were committed before the clients connected, but the
  // jobq notifier may send them a few ms later (jobq.notify_interval): count what came after
  const sent = (c) => c.progress().filter((m) => m.percent === 50 || m.status === 2);
  assert.equal(sent(one).length, 2);
  assert.deepEqual([...new Set(two.progress().map((m) => m.job_id))].sort(), [j1, j3].sort());
  assert.equal(sent(all).length, 6);
  for (const c of [one, two, all]) c.close();
});

test('an RS256 token is accepted with the public key file', async () => {
  const user = h.uuid();
  const c = h.connect(gw.hub({ access_token: tok({ sub: user }, { alg: 'RS256' }) }));
  await c.opened;
  await c.snapshot();
  const j = await jobs.start(user);
  await jobs.progress(j, 70, 'rs256');
  await c.until((ms) => ms.some((m) => m.percent === 70 && m.job_id === j), 5000, 'the event');
  c.close();
});

test('payloads that are not job progress are dropped, not forwarded', async () => {
  const user = h.uuid();
  const c = h.connect(gw.hub({ access_token: tok({ sub: user }) }));
  await c.opened;
  await c.snapshot();
  const job = h.uuid();
  await jobs.notify('not json');
  await jobs.notify({ job_id: job, user_id: user, status: 9, percent: 1 });
  await jobs.notify({ job_id: 'x', user_id: user, status: 1 });
  await jobs.notify({ job_id: job, user_id: user, status: 1, percent: 101 });
  await jobs.notify({ job_id: job, user_id: user, job_type: 't', status: 1, percent: 7, message: '<b>hi</b>', units_done: null, units_total: null, extra: 'secret' });
  const m = await c.until((ms) => ms.find((x) => x.type === 'progress'), 5000, 'the valid event');
  assert.equal(m.percent, 7);
  assert.equal(m.message, '<b>hi</b>');
  assert.equal(m.extra, undefined, 'unknown fields are not forwarded');
  await h.sleep(200);
  assert.equal(c.progress().length, 1);
  c.close();
});

test('the progress page and /healthz are served', async () => {
  const page = await fetch(`${gw.base}/`);
  assert.equal(page.status, 200);
  assert.match(page.headers.get('content-type'), /text\/html/);
  assert.match(page.headers.get('content-security-policy'), /default-src 'self'/);
  assert.match(await page.text(), /Job progress/);
  const js = await fetch(`${gw.base}/app.js`);
  assert.equal(js.status, 200);
  assert.match(await js.text(), /\/hubs\/jobs/);
  const health = await gw.health();
  assert.equal(health.status, 200);
  assert.equal(health.body.database, 'up');
  assert.equal((await fetch(`${gw.base}/nope`)).status, 404);
  assert.equal((await fetch(`${gw.base}/hubs/jobs`)).status, 426);
});

test('tokens never appear in the log', async () => {
  assert.ok(tokens.length > 5);
  const log = gw.log();
  assert.match(log, /connected/);
  for (const t of tokens) {
    assert.ok(!log.includes(t.split('.')[2]), 'a token signature is in the log');
    assert.ok(!log.includes(t.split('.')[1]), 'token claims are in the log');
  }
});
