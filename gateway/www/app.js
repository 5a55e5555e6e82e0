// The progress page of jobq-gateway: one WebSocket to /hubs/jobs, one card per job.
//
// The token comes from the URL fragment (#access_token=JWT&job_id=UUID), which
// browsers never send to a server, or from the query string, or from the form.
// It is kept in sessionStorage (this tab only) and removed from the address bar.
'use strict';

(function () {
  const STATUS = ['Queued', 'Processing', 'Completed', 'Failed', 'Cancelled'];
  const $ = (id) => document.getElementById(id);
  const jobs = new Map(); // job_id -> { data, el }
  let token = null;
  let jobIds = [];
  let ws = null;
  let everOpened = false;
  let failures = 0;
  let retryTimer = null;

  function readParams() {
    const hash = new URLSearchParams(location.hash.replace(/^#/, ''));
    const query = new URLSearchParams(location.search);
    token = hash.get('access_token') || query.get('access_token') || sessionStorage.getItem('jobq.access_token');
    const ids = [...hash.getAll('job_id'), ...query.getAll('job_id')]
      .flatMap((s) => s.split(',')).map((s) => s.trim()).filter(Boolean);
    jobIds = ids.length ? ids : JSON.parse(sessionStorage.getItem('jobq.job_ids') || '[]');
    if (hash.has('access_token') || query.has('access_token')) {
      sessionStorage.setItem('jobq.access_token', token);
      sessionStorage.setItem('jobq.job_ids', JSON.stringify(jobIds));
      hash.delete('access_token');
      query.delete('access_token');
      const q = query.toString();
      const h = hash.toString();
      history.replaceState(null, '', location.pathname + (q ? '?' + q : '') + (h ? '#' + h : ''));
    }
  }

  // The sub claim, for the header only (the gateway verifies the token, not this page).
  function subject(jwt) {
    try {
      const part = jwt.split('.')[1].replace(/-/g, '+').replace(/_/g, '/');
      return JSON.parse(atob(part)).sub || null;
    } catch (e) {
      return null;
    }
  }

  function setConn(state, text) {
    $('conn').dataset.state = state;
    $('conn-text').textContent = text;
  }

  function notice(text) {
    $('notice').textContent = text || '';
    $('notice').hidden = !text;
  }

  function percentOf(j) {
    if (j.status === 2) return 100;
    if (typeof j.percent === 'number') return Math.max(0, Math.min(100, j.percent));
    if (j.units_total) return Math.round((100 * (j.units_done || 0)) / j.units_total);
    return 0;
  }

  function render(j) {
    let entry = jobs.get(j.job_id);
    if (!entry) {
      const el = $('job-template').content.firstElementChild.cloneNode(true);
      el.id = 'job-' + j.job_id;
      el.dataset.jobId = j.job_id;
      entry = { el, data: {} };
      jobs.set(j.job_id, entry);
      $('jobs').prepend(el);
    }
    const d = Object.assign(entry.data, j);
    const el = entry.el;
    const pct = percentOf(d);
    el.dataset.status = String(d.status);
    el.querySelector('.job-type').textContent = d.job_type || 'job';
    el.querySelector('.job-id').textContent = d.job_id;
    el.querySelector('.badge').textContent = STATUS[d.status] || 'Unknown';
    el.querySelector('.fill').style.width = pct + '%';
    const bar = el.querySelector('.bar');
    bar.setAttribute('aria-valuenow', String(pct));
    bar.setAttribute('aria-label', (d.job_type || 'job') + ' progress');
    el.querySelector('.percent').textContent = pct + '%';
    el.querySelector('.message').textContent = d.message || '';
    el.querySelector('.message').title = d.message || '';
    el.querySelector('.units').textContent =
      d.units_total ? `${d.units_done || 0} / ${d.units_total} units` : '';
    updateSummary();
  }

  function updateSummary() {
    $('empty').hidden = jobs.size > 0 || !everOpened;
    const active = [...jobs.values()].map((e) => e.data).filter((d) => d.status === 0 || d.status === 1);
    if (active.length === 1) document.title = `(${percentOf(active[0])}%) Job progress · jobq`;
    else if (active.length > 1) document.title = `(${active.length} running) Job progress · jobq`;
    else document.title = 'Job progress · jobq';
  }

  function onMessage(ev) {
    let m;
    try {
      m = JSON.parse(ev.data);
    } catch (e) {
      return;
    }
    if (m.type === 'snapshot') {
      m.jobs.forEach(render);
      notice(m.error || '');
      updateSummary();
    } else if (m.type === 'progress') {
      render(m);
    } else if (m.type === 'gateway') {
      if (m.database === 'down') setConn('degraded', 'Reconnecting to the queue…');
      else setConn('live', 'Live');
    }
  }

  function connect() {
    clearTimeout(retryTimer);
    const params = new URLSearchParams({ access_token: token });
    jobIds.forEach((id) => params.append('job_id', id));
    const proto = location.protocol === 'https:' ? 'wss:' : 'ws:';
    setConn('connecting', everOpened ? 'Reconnecting…' : 'Connecting…');
    ws = new WebSocket(`${proto}//${location.host}/hubs/jobs?${params}`);
    let opened = false;
    ws.onopen = () => {
      opened = true;
      everOpened = true;
      failures = 0;
      notice('');
      setConn('live', 'Live');
      updateSummary();
    };
    ws.onmessage = onMessage;
    ws.onclose = (ev) => {
      ws = null;
      if (!opened) failures++;
      if (!opened && failures >= 2 && !everOpened) {
        notice('The gateway refused the connection: the access token may be invalid or expired.');
        $('login').hidden = false;
      }
      const delay = Math.min(30000, 1000 * 2 ** Math.min(failures, 5));
      setConn('offline', ev.code === 1001 ? 'Gateway restarting…' : `Offline, retrying in ${Math.round(delay / 1000)} s`);
      retryTimer = setTimeout(connect, delay);
    };
  }

  function start() {
    const sub = subject(token);
    $('who').textContent = sub ? `User ${sub}` + (jobIds.length ? ` · ${jobIds.length === 1 ? 'job ' + jobIds[0] : jobIds.length + ' jobs'}` : '') : 'Live updates of your jobs';
    $('login').hidden = true;
    connect();
  }

  $('login').addEventListener('submit', (e) => {
    e.preventDefault();
    token = $('token-input').value.trim();
    const job = $('job-input').value.trim();
    jobIds = job ? [job] : [];
    sessionStorage.setItem('jobq.access_token', token);
    sessionStorage.setItem('jobq.job_ids', JSON.stringify(jobIds));
    failures = 0;
    notice('');
    if (ws) ws.close();
    start();
  });

  readParams();
  if (token) start();
  else {
    setConn('offline', 'Not connected');
    $('login').hidden = false;
  }
})();
