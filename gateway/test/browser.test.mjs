// A real browser: headless Chromium opens the progress page for a running
// unit job and watches the bar advance to 100% and "Completed".
import assert from 'node:assert/strict';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { after, before, test } from 'node:test';
import { chromium } from 'playwright-core';
import * as h from './helpers.mjs';

const CHROMIUM = process.env.GW_CHROMIUM || '/usr/bin/chromium';
let gw;
let jobs;
let browser;

before(async () => {
  gw = await h.startGateway();
  jobs = await h.Jobs.open();
  const profile = fs.mkdtempSync(path.join(process.env.GW_SCRATCH || os.tmpdir(), 'chromium-'));
  // a persistent context is how playwright takes a fresh --user-data-dir
  browser = await chromium.launchPersistentContext(profile, {
    executablePath: CHROMIUM,
    headless: true,
    viewport: { width: 900, height: 640 },
    deviceScaleFactor: 1,
    args: ['--headless', '--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run',
      '--disable-background-networking', '--disable-component-update', '--disable-sync'],
  });
});

after(async () => {
  await browser?.close();
  await jobs?.close();
  await gw?.stop();
});

// Does this server run jobq's in-server workers (shared_preload_libraries)?
async function workersRunning() {
  if (h.MODE !== 'extension') return false;
  const { rows } = await jobs.db.query('SELECT count(*)::int AS n FROM jobq.worker_status');
  return rows[0].n > 0;
}

// A unit job of user: run by jobq's worker when there is one, else driven from here.
async function startRenderJob(user, units) {
  if (await workersRunning()) {
    await jobs.db.query(`CREATE OR REPLACE FUNCTION public.gw_render_unit(j jobq.jobs, unit int)
      RETURNS bytea LANGUAGE plpgsql AS $$
      BEGIN PERFORM pg_sleep(0.35); RETURN convert_to('thumbnail ' || unit, 'UTF8'); END $$`);
    await jobs.db.query(`SELECT jobq.register('render-thumbnails',
      unit_handler => 'public.gw_render_unit(jobq.jobs,int)')`);
    const { rows: [{ id }] } = await jobs.db.query(
      `SELECT jobq.enqueue('render-thumbnails', '{"album":"summer"}', $1::uuid, units => $2,
                           run_at => now() + interval '1.5 s') AS id`, [user, units]);
    return { id, by: 'jobq worker', done: Promise.resolve() };
  }
  const id = await jobs.start(user, { type: 'render-thumbnails', units });
  const done = (async () => {
    await h.sleep(1500);
    for (let u = 1; u <= units; u++) {
      await h.sleep(350);
      await jobs.progress(id, Math.floor((100 * u) / units), `${u} of ${units} units done`, u);
    }
    await jobs.complete(id);
  })();
  return { id, by: 'test driver', done };
}

test('the progress page shows a unit job advance to 100% and Completed', async (t) => {
  const user = h.uuid();
  const tk = h.token({ sub: user });

  // company for the screenshot: a queued job and one an external worker is halfway through
  await jobs.queued(user, { type: 'send-weekly-report' });
  const importJob = await jobs.start(user, { type: 'import-customers' });
  await jobs.progress(importJob, 35, 'Importing rows 3,500 of 10,000');

  const page = await browser.newPage();
  const consoleErrors = [];
  page.on('console', (m) => { if (m.type() === 'error') consoleErrors.push(m.text()); });
  page.on('pageerror', (e) => consoleErrors.push(String(e)));
  await page.goto(`${gw.base}/#access_token=${tk}`);
  await page.waitForSelector(`#job-${importJob}`);
  assert.equal(await page.textContent(`#job-${importJob} .percent`), '35%', 'the snapshot shows the current percent');
  assert.equal(await page.textContent('#conn-text'), 'Live');
  assert.ok(!page.url().includes(tk.split('.')[2]), 'the token is taken out of the address bar');

  const units = 10;
  const job = await startRenderJob(user, units);
  t.diagnostic(`render job ${job.id} run by the ${job.by}`);
  const card = `#job-${job.id}`;
  await page.waitForSelector(card, { timeout: 15000 });

  // watch the bar until the job completes
  const seen = [];
  const deadline = Date.now() + 30000;
  for (;;) {
    const [now, status] = await Promise.all([
      page.getAttribute(`${card} .bar`, 'aria-valuenow'),
      page.getAttribute(card, 'data-status'),
    ]);
    if (seen[seen.length - 1] !== Number(now)) seen.push(Number(now));
    if (status === '2') break;
    assert.ok(Date.now() < deadline, `the job did not complete; bar went ${seen.join(' → ')}`);
    await h.sleep(50);
  }
  await job.done;
  await jobs.progress(importJob, 62, 'Importing rows 6,200 of 10,000');
  await page.waitForFunction((id) => document.querySelector(`#job-${id} .percent`)?.textContent === '62%', importJob);

  t.diagnostic(`bar went ${seen.join(' → ')}`);
  assert.ok(seen.some((p) => p > 0 && p < 100), 'the bar advanced through intermediate values');
  assert.ok(seen.every((p, i) => i === 0 || p >= seen[i - 1]), 'and never went back');
  assert.equal(await page.getAttribute(`${card} .bar`, 'aria-valuenow'), '100');
  assert.equal(await page.textContent(`${card} .badge`), 'Completed');
  assert.equal(await page.textContent(`${card} .percent`), '100%');
  assert.equal(await page.textContent(`${card} .units`), `${units} / ${units} units`);
  assert.equal(await page.textContent(`${card} .job-type`), 'render-thumbnails');
  const width = await page.$eval(`${card} .fill`, (el) => el.style.width);
  assert.equal(width, '100%');

  await page.waitForTimeout(600); // let the bar's transition finish
  fs.mkdirSync(h.ARTIFACTS, { recursive: true });
  const shot = path.join(h.ARTIFACTS, 'progress.png');
  await page.screenshot({ path: shot, fullPage: true });
  assert.ok(fs.statSync(shot).size > 10000, 'a screenshot was saved');
  t.diagnostic(`screenshot: ${shot}`);
  assert.deepEqual(consoleErrors, []);
  await page.close();
});

test('the page says so when the token is refused', async () => {
  const page = await browser.newPage();
  const expired = h.token({ sub: h.uuid(), exp: Math.floor(Date.now() / 1000) - 3600 });
  await page.goto(`${gw.base}/#access_token=${expired}`);
  await page.waitForSelector('#notice:not([hidden])', { timeout: 15000 });
  assert.match(await page.textContent('#notice'), /invalid or expired/);
  assert.equal(await page.isVisible('#login'), true, 'and offers the token form');
  await page.close();
});
