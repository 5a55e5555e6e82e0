// The handshake: tokens that are missing, forged, expired or meant for someone
// else are refused with 401 before any WebSocket exists; limits answer 4xx/503.
import assert from 'node:assert/strict';
import crypto from 'node:crypto';
import fs from 'node:fs';
import { after, before, test } from 'node:test';
import * as h from './helpers.mjs';

const AUD = 'jobq-progress';
const ISS = 'https://auth.example.test/';
let gw;

before(async () => {
  gw = await h.startGateway(['--jwt-audience', AUD, '--jwt-issuer', ISS, '--jwt-leeway', '5',
    '--max-connections-per-user', '2', '--max-jobs-per-client', '3', '--max-clients', '6']);
});

after(async () => { await gw?.stop(); });

const good = (extra = {}, opts) => h.token({ sub: h.uuid(), aud: AUD, iss: ISS, ...extra }, opts);

// Resolves to the HTTP status of a refused handshake, or 101 when it is accepted.
async function handshake(query) {
  const c = h.connect(typeof query === 'string' ? query : gw.hub(query));
  try {
    await c.opened;
    c.close();
    return { status: 101 };
  } catch (e) {
    if (!e.status) throw e;
    return { status: e.status, body: e.body ? JSON.parse(e.body) : null, headers: e.headers };
  }
}

test('a valid token with the right audience and issuer is accepted', async () => {
  assert.equal((await handshake({ access_token: good() })).status, 101);
  assert.equal((await handshake({ access_token: good({ aud: ['other', AUD] }) })).status, 101);
  assert.equal((await handshake({ access_token: good({}, { alg: 'RS256' }) })).status, 101);
});

test('a missing token is refused with 401', async () => {
  const r = await handshake({});
  assert.equal(r.status, 401);
  assert.equal(r.body.error, 'unauthorized');
  assert.match(r.headers['www-authenticate'], /^Bearer/);
  assert.equal((await handshake({ access_token: '' })).status, 401);
});

test('an invalid signature is refused with 401', async () => {
  const t = good();
  const forged = t.slice(0, t.lastIndexOf('.') + 1) + crypto.randomBytes(32).toString('base64url');
  assert.equal((await handshake({ access_token: forged })).status, 401);
  const r = await handshake({ access_token: good({}, { secret: 'not-the-secret' }) });
  assert.equal(r.status, 401);
  assert.match(r.body.detail, /signature/);
  // RS256 signed by another key
  const other = crypto.generateKeyPairSync('rsa', { modulusLength: 2048 });
  assert.equal((await handshake({ access_token: good({}, { alg: 'RS256', key: other.privateKey }) })).status, 401);
  // claims changed after signing
  const [hdr, , sig] = good().split('.');
  const claims = Buffer.from(JSON.stringify({ sub: h.uuid(), aud: AUD, iss: ISS, exp: 9999999999 })).toString('base64url');
  assert.equal((await handshake({ access_token: `${hdr}.${claims}.${sig}` })).status, 401);
});

test('algorithm confusion and alg none are refused with 401', async () => {
  // HS256 "signed" with the RSA public key as the secret
  const pem = fs.readFileSync(h.PUBLIC_KEY_FILE, 'utf8');
  assert.equal((await handshake({ access_token: good({}, { secret: pem }) })).status, 401);
  const none = Buffer.from(JSON.stringify({ alg: 'none', typ: 'JWT' })).toString('base64url') + '.' +
    Buffer.from(JSON.stringify({ sub: h.uuid(), aud: AUD, iss: ISS, exp: 9999999999 })).toString('base64url') + '.';
  const r = await handshake({ access_token: none });
  assert.equal(r.status, 401);
  assert.match(r.body.detail, /algorithm/);
  assert.equal((await handshake({ access_token: 'garbage' })).status, 401);
});

test('an expired token is refused with 401', async () => {
  const now = Math.floor(Date.now() / 1000);
  const r = await handshake({ access_token: good({ exp: now - 3600 }) });
  assert.equal(r.status, 401);
  assert.match(r.body.detail, /expired/);
  assert.equal((await handshake({ access_token: good({ exp: now - 60 }) })).status, 401, 'past the leeway');
  assert.equal((await handshake({ access_token: good({ exp: now - 2 }) })).status, 101, 'within the leeway');
  assert.equal((await handshake({ access_token: good({ exp: undefined }) })).status, 401, 'no exp at all');
  assert.equal((await handshake({ access_token: good({ nbf: now + 600 }) })).status, 401, 'not yet valid');
});

test('a wrong audience or issuer is refused with 401', async () => {
  let r = await handshake({ access_token: good({ aud: 'someone-else' }) });
  assert.equal(r.status, 401);
  assert.match(r.body.detail, /audience/);
  assert.equal((await handshake({ access_token: good({ aud: undefined }) })).status, 401);
  assert.equal((await handshake({ access_token: good({ aud: ['a', 'b'] }) })).status, 401);
  r = await handshake({ access_token: good({ iss: 'https://evil.example/' }) });
  assert.equal(r.status, 401);
  assert.match(r.body.detail, /issuer/);
});

test('a sub that is not a user id is refused with 401', async () => {
  assert.equal((await handshake({ access_token: good({ sub: 'alice' }) })).status, 401);
  assert.equal((await handshake({ access_token: good({ sub: undefined }) })).status, 401);
});

test('bad parameters, paths and limits are refused before the upgrade', async () => {
  assert.equal((await handshake({ access_token: good(), job_id: 'nope' })).status, 400);
  const q = new URLSearchParams({ access_token: good() });
  for (let i = 0; i < 4; i++) q.append('job_id', h.uuid());
  assert.equal((await handshake(`ws://127.0.0.1:${gw.port}/hubs/jobs?${q}`)).status, 400, 'over max-jobs-per-client');
  assert.equal((await handshake(`ws://127.0.0.1:${gw.port}/elsewhere?access_token=${good()}`)).status, 404);

  // max-connections-per-user = 2
  const sub = h.uuid();
  const t = good({ sub });
  const a = h.connect(gw.hub({ access_token: t }));
  const b = h.connect(gw.hub({ access_token: t }));
  await Promise.all([a.opened, b.opened]);
  assert.equal((await handshake({ access_token: t })).status, 429);
  a.close();
  await a.closed;
  await h.sleep(100);
  const c = h.connect(gw.hub({ access_token: t }));
  await c.opened;

  // max-clients = 6: b and c are open, four more fill it
  const more = [];
  for (let i = 0; i < 4; i++) more.push(h.connect(gw.hub({ access_token: good() })));
  await Promise.all(more.map((m) => m.opened));
  assert.equal((await handshake({ access_token: good() })).status, 503);
  for (const m of [b, c, ...more]) m.close();
});

test('a connected client is closed (1008) when its token expires', async () => {
  const strict = await h.startGateway(['--jwt-leeway', '0']);
  try {
    const now = Math.floor(Date.now() / 1000);
    const c = h.connect(strict.hub({ access_token: h.token({ sub: h.uuid(), exp: now + 2 }) }));
    const keeps = h.connect(strict.hub({ access_token: h.token({ sub: h.uuid(), exp: now + 3600 }) }));
    await Promise.all([c.opened, keeps.opened]);
    const closed = await h.withTimeout(c.closed, 8000, 'the close at expiry');
    assert.equal(closed.code, 1008);
    assert.equal(closed.reason, 'token expired');
    assert.ok(Date.now() / 1000 >= now + 2, 'not before exp');
    assert.equal(keeps.ws.readyState, 1, 'a client with a valid token stays');
    assert.equal((await strict.health()).body.expired, 1);
    keeps.close();
  } finally {
    await strict.stop();
  }
});
