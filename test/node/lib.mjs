// Helpers shared by the node test files (test/node/*.test.mjs): the
// connection settings test/run.sh hands over, queries through a file's own
// pool, polling with generous bounds, waiting for a job to end, and the
// store lock.  Not a test file itself (no .test.mjs), so test/run.sh does
// not run it.
import assert from 'node:assert/strict';
import net from 'node:net';
import { setTimeout as sleep } from 'node:timers/promises';
import pg from 'pg';

// how long a test waits for a job to end (the tests assert what happens,
// not how fast)
export const JOB_TIMEOUT = 180_000;

// Advisory lock shared by the node test files: held shared while a test
// needs the default checkpoint store, exclusive by a test that points
// jobq.checkpoint_url at a broken store.
export const STORE_LOCK = [0x6a6f6271, 1];

// the server test/run.sh (suite_node) started for the node tests
export function connConfig() {
  return {
    host: process.env.JOBQ_PGHOST,
    port: Number(process.env.JOBQ_PGPORT),
    database: 'contrib_regression',
    user: 'postgres',
  };
}

// A waitFor polling every `defaultEveryMs` unless told otherwise:
// waitFor(what, fn, timeoutMs = 60_000, everyMs) polls fn until it returns a
// truthy value (which it returns); fails with `what` and fn's last answer
// or error after timeoutMs.
export function makeWaitFor(defaultEveryMs = 100) {
  return async function waitFor(what, fn, timeoutMs = 60_000, everyMs = defaultEveryMs) {
    const start = Date.now();
    let last;
    for (;;) {
      try {
        last = await fn();
        if (last) return last;
      } catch (e) {
        last = e;
      }
      if (Date.now() - start > timeoutMs) {
        assert.fail(`timed out after ${timeoutMs} ms waiting for ${what}; last: ${
          last instanceof Error ? last.stack : JSON.stringify(last)}`);
      }
      await sleep(everyMs);
    }
  };
}

// poll fn until it returns a truthy value; fail with `what` after timeoutMs
export const waitFor = makeWaitFor(100);

// Query helpers bound to a test file's pool (getPool() returns it; the
// files create it in before()).  opts.waitFor: the waitFor waitJob polls
// with (default the one above).
//   q(text, params)       the pool's query result
//   one(text, params)     its first row
//   job(id)               the jobq.jobs row of job id
//   waitJob(id, statuses = [2, 3, 4], timeoutMs = JOB_TIMEOUT)
//                         wait until the job is terminal (or in one of
//                         `statuses`); returns its row
//   metricsText()         jobq.metrics()
export function dbHelpers(getPool, opts = {}) {
  const poll = opts.waitFor ?? waitFor;

  async function q(text, params) {
    return getPool().query(text, params);
  }

  async function one(text, params) {
    return (await getPool().query(text, params)).rows[0];
  }

  async function job(id) {
    return one('SELECT * FROM jobq.jobs WHERE id = $1', [id]);
  }

  async function waitJob(id, statuses = [2, 3, 4], timeoutMs = JOB_TIMEOUT) {
    return poll(`job ${id} to reach status ${statuses}`, async () => {
      const row = await job(id);
      return row && statuses.includes(row.status) ? row : null;
    }, timeoutMs);
  }

  async function metricsText() {
    return (await one('SELECT jobq.metrics() AS m')).m;
  }

  return { q, one, job, waitJob, metricsText };
}

// run fn holding the store lock (mode 'shared': needs the default store;
// 'exclusive': changes it) on a connection of its own
export async function withStoreLock(mode, fn) {
  const c = new pg.Client(connConfig());
  await c.connect();
  try {
    await c.query(mode === 'exclusive' ? 'SELECT pg_advisory_lock($1, $2)'
      : 'SELECT pg_advisory_lock_shared($1, $2)', STORE_LOCK);
    return await fn();
  } finally {
    await c.end();
  }
}

// a port nothing listens on: bound once, then closed
export async function closedPort() {
  const srv = net.createServer();
  await new Promise((r) => srv.listen(0, '127.0.0.1', r));
  const { port } = srv.address();
  await new Promise((r) => srv.close(r));
  return port;
}
