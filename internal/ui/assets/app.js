// The faas dashboard: a client of the server's JSON endpoints (docs/API.md). Plain ES
// module, no build step. Every value from the server (names, stderr, results) is put in
// the page as text, never as HTML: modules and their output are hostile.

const main = document.getElementById('view');
const alertBox = document.getElementById('alert');
let timers = [];    // the current view's pollers, stopped when the view changes
let charts = [];    // the current view's uPlot instances

// ---- API access: the key lives in sessionStorage and only ever goes in a header. ----

const KEY = 'faas.apikey';
const key = () => sessionStorage.getItem(KEY) || '';

class APIError extends Error {
  constructor(status, code, message) { super(message); this.status = status; this.code = code; }
}

async function api(method, path, body, contentType) {
  const headers = {};
  if (key()) headers.Authorization = 'Bearer ' + key();
  if (body !== undefined) headers['Content-Type'] = contentType || 'application/json';
  const res = await fetch(path, {
    method, headers, cache: 'no-store',
    body: body === undefined ? undefined : (contentType ? body : JSON.stringify(body)),
  });
  let data = null;
  try { data = await res.json(); } catch { /* a non-JSON answer: the status says enough */ }
  if (!res.ok) {
    const e = (data && data.error) || {};
    throw new APIError(res.status, e.code || 'http_' + res.status, e.message || res.statusText);
  }
  return data;
}

function showError(e) {
  if (e instanceof APIError && e.status === 401) {
    showAlert('This server needs an API key: enter it above (it is kept in this tab only).');
  } else {
    showAlert(e.message || String(e));
  }
}
function showAlert(msg) { alertBox.textContent = msg; alertBox.hidden = !msg; }

// ---- DOM helpers ----

function h(tag, attrs, ...kids) {
  const el = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs || {})) {
    if (v === undefined || v === null || v === false) continue;
    if (k.startsWith('on')) el.addEventListener(k.slice(2), v);
    else if (k === 'text') el.textContent = v;
    else el.setAttribute(k, v === true ? '' : v);
  }
  for (const kid of kids.flat()) {
    if (kid !== undefined && kid !== null) el.append(kid instanceof Node ? kid : String(kid));
  }
  return el;
}
const fmtTime = (s) => s ? new Date(s).toLocaleString() : '—';
const fmtMs = (ms) => ms ? (ms < 1000 ? ms.toFixed(1) + ' ms' : (ms / 1000).toFixed(2) + ' s') : '—';
const pct = (x) => (x * 100).toFixed(1) + '%';
const short = (id) => id ? id.slice(0, 8) : '';

function b64ToBytes(s) {
  const bin = atob(s || '');
  const out = new Uint8Array(bin.length);
  for (let i = 0; i < bin.length; i++) out[i] = bin.charCodeAt(i);
  return out;
}
function bytesToB64(bytes) {
  let bin = '';
  for (let i = 0; i < bytes.length; i += 0x8000) {
    bin += String.fromCharCode.apply(null, bytes.subarray(i, i + 0x8000));
  }
  return btoa(bin);
}
// preview shows bytes as text when they are UTF-8, else as a hex dump; at most 64 KiB.
function preview(b64) {
  const all = b64ToBytes(b64);
  const bytes = all.subarray(0, 65536);
  const more = all.length > bytes.length ? `\n… (${all.length} bytes in all)` : '';
  try {
    return new TextDecoder('utf-8', { fatal: true }).decode(bytes) + more;
  } catch {
    const lines = [];
    for (let i = 0; i < bytes.length; i += 16) {
      const row = Array.from(bytes.subarray(i, i + 16), (b) => b.toString(16).padStart(2, '0'));
      lines.push(i.toString(16).padStart(8, '0') + '  ' + row.join(' '));
    }
    return '(binary, hex)\n' + lines.join('\n') + more;
  }
}

// ---- Views ----

const routes = [
  [/^#?\/?$/, overview],
  [/^#\/functions$/, functions],
  [/^#\/function\/([\w-]+)$/, functionPage],
  [/^#\/tasks$/, tasks],
  [/^#\/task\/([\w-]+)$/, taskPage],
];

function route() {
  timers.forEach(clearInterval);
  timers = [];
  charts.forEach((c) => c.destroy());
  charts = [];
  showAlert('');
  const hash = location.hash.split('?')[0];
  for (const [re, fn] of routes) {
    const m = hash.match(re);
    if (m) {
      // A fresh container per visit: a slow view that answers after the next one started
      // fills a detached element, not the page.
      const root = h('div');
      main.replaceChildren(root);
      fn(root, ...m.slice(1)).catch(showError);
      return;
    }
  }
  main.replaceChildren(h('p', { text: 'No such page.' }));
}

function every(ms, f) { f(); timers.push(setInterval(f, ms)); }

async function refreshNamespace() {
  try {
    const o = await api('GET', '/stats/overview');
    document.getElementById('ns').textContent = o.namespace;
  } catch (e) {
    document.getElementById('ns').textContent = '?';
  }
}

// Overview: counts, live charts of the last hour, dispatchers and workers.
async function overview(root) {
  const cards = h('div', { class: 'cards' });
  const rate = h('div', { id: 'chart-rate', role: 'img', 'aria-label': 'Tasks per second, last hour' });
  const lat = h('div', { id: 'chart-latency', role: 'img', 'aria-label': 'Run time p50 and p99, last hour' });
  const workers = h('div', { id: 'workers' });
  root.append(h('h2', { text: 'Overview' }), cards,
    h('div', { class: 'charts' }, h('section', {}, h('h3', { text: 'Tasks per second' }), rate),
      h('section', {}, h('h3', { text: 'Run time (ms)' }), lat)),
    h('h3', { text: 'Dispatchers and workers' }), workers);
  const width = () => Math.max(300, Math.min(560, main.clientWidth / 2 - 30));
  const mk = (el, series) => new uPlot({
    width: width(), height: 220, series: [{}, ...series], axes: [{}, { size: 60 }],
    scales: { x: { time: true } },
  }, [[], ...series.map(() => [])], el);
  const rc = mk(rate, [{ label: 'completed/s', stroke: '#1d5e20' }, { label: 'failed/s', stroke: '#a1110d' }]);
  // Points as well as lines: an interval with tasks between empty ones is a lone point.
  const lc = mk(lat, [{ label: 'p50', stroke: '#0b4f9c', points: { show: true, size: 4 } },
    { label: 'p99', stroke: '#7a3e00', points: { show: true, size: 4 } }]);
  charts.push(rc, lc);
  let n = 0;
  every(1000, async () => {
    try {
      const o = await api('GET', '/stats/overview');
      document.getElementById('ns').textContent = o.namespace;
      cards.replaceChildren(...[['queued', o.queued], ['running', o.running],
        ['completed', o.completed], ['failed', o.failed]].map(([label, v]) =>
        h('div', { class: 'card' }, h('div', { class: 'label', text: label }),
          h('div', { class: 'value', id: 'count-' + label, text: v }))));
      const s = o.series;
      const nul = (a) => a.map((v) => v || null); // no tasks: a gap, not a zero run time
      rc.setData([s.start, s.completed_per_s, s.failed_per_s]);
      lc.setData([s.start, nul(s.p50_ms), nul(s.p99_ms)]);
      showAlert('');
    } catch (e) { showError(e); }
    if (n++ % 5 === 0) renderWorkers(workers);
  });
}

// The live registry (GET /workers): rendered when the server has it, "unknown" when not.
async function renderWorkers(el) {
  let w;
  try {
    w = await api('GET', '/workers');
  } catch (e) {
    el.replaceChildren(h('p', { class: 'muted', text: e.status === 404 ? 'unknown (this server has no live registry)' : 'unknown: ' + e.message }));
    return;
  }
  const rows = [];
  for (const d of w.dispatchers || []) {
    rows.push(h('tr', {}, h('td', { text: 'dispatcher ' + d.id }), h('td', { text: d.mode }),
      h('td', { text: `${d.running}/${d.slots}` }), h('td', { text: fmtTime(d.heard_at) })));
    for (const k of d.workers || []) {
      rows.push(h('tr', {}, h('td', { text: '  worker ' + k.id }), h('td', { text: '' }),
        h('td', { text: `${k.running}/${k.slots} (${k.done} done)` }), h('td', { text: fmtTime(k.heard_at) })));
    }
  }
  el.replaceChildren(
    h('p', { class: w.healthy ? 'ok' : 'bad', text: w.healthy ? 'healthy' : 'degraded: ' + (w.reason || '') }),
    h('table', {}, h('thead', {}, h('tr', {}, ['who', 'mode', 'running/slots', 'last heard'].map((t) => h('th', { scope: 'col', text: t })))),
      h('tbody', {}, rows)));
}

// Functions: the table with the last hour's figures, and the upload area.
async function functions(root) {
  const msg = h('p', { id: 'upload-msg', role: 'status' });
  const file = h('input', { id: 'upload-file', type: 'file', accept: '.wasm,application/wasm' });
  const name = h('input', { id: 'upload-name', type: 'text', required: true, pattern: '[A-Za-z0-9._-]{1,128}' });
  const upload = async (f) => {
    const n = name.value || f.name.replace(/\.wasm$/, '');
    msg.textContent = 'Uploading…';
    msg.className = '';
    try {
      const r = await api('POST', '/register_function?name=' + encodeURIComponent(n), f, 'application/wasm');
      msg.textContent = `Registered ${n} as ${r.function_id}.`;
      msg.className = 'ok';
      await table();
    } catch (e) {
      msg.textContent = 'Not registered: ' + e.message;
      msg.className = 'bad';
    }
  };
  file.addEventListener('change', () => file.files[0] && upload(file.files[0]));
  const drop = h('section', { class: 'drop', id: 'drop', 'aria-label': 'Upload a module' },
    h('h3', { text: 'Register a function' }),
    h('p', { text: 'Drop a .wasm file here, or choose one.' }),
    h('div', { class: 'row' }, h('label', { for: 'upload-name', text: 'Name' }), name,
      h('label', { for: 'upload-file', text: 'Module (.wasm)' }), file),
    msg);
  drop.addEventListener('dragover', (e) => { e.preventDefault(); drop.classList.add('over'); });
  drop.addEventListener('dragleave', () => drop.classList.remove('over'));
  drop.addEventListener('drop', (e) => {
    e.preventDefault();
    drop.classList.remove('over');
    if (e.dataTransfer.files[0]) upload(e.dataTransfer.files[0]);
  });
  const holder = h('div', { id: 'functions' });
  root.append(h('h2', { text: 'Functions' }), drop, holder);
  async function table() {
    const r = await api('GET', '/stats/functions');
    document.getElementById('ns').textContent = r.namespace;
    if (!r.functions.length) { holder.replaceChildren(h('p', { text: 'No functions yet.' })); return; }
    holder.replaceChildren(h('table', {},
      h('thead', {}, h('tr', {}, ['name', 'id', 'ABI', 'module', 'registered', 'tasks (1 h)', 'failure rate', 'p50', 'p99']
        .map((t) => h('th', { scope: 'col', text: t })))),
      h('tbody', {}, r.functions.map((f) => h('tr', {},
        h('td', {}, h('a', { href: '#/function/' + f.function_id, text: f.name })),
        h('td', { text: short(f.function_id) }), h('td', { text: f.abi || '—' }),
        h('td', { text: f.module_size + ' B' }), h('td', { text: fmtTime(f.created_at) }),
        h('td', { text: f.figures_omitted ? 'not read' : f.tasks_last_hour }),
        h('td', { text: f.tasks_last_hour ? pct(f.failure_rate) : '—' }),
        h('td', { text: fmtMs(f.p50_ms) }), h('td', { text: fmtMs(f.p99_ms) }))))));
  }
  await table();
}

// A function: facts, the run form, failures by kind, recent tasks, delete.
async function functionPage(root, id) {
  const f = await api('GET', '/functions/' + id);
  const input = h('textarea', { id: 'run-input' });
  const inFile = h('input', { id: 'run-file', type: 'file' });
  const out = h('div', { id: 'run-result', 'aria-live': 'polite' });
  const runBtn = h('button', { id: 'run', type: 'submit', text: 'Run' });
  const form = h('form', { id: 'runform' },
    h('label', { for: 'run-input', text: 'Input (text)' }), input,
    h('div', { class: 'row' }, h('label', { for: 'run-file', text: 'or a file as input' }), inFile, runBtn), out);
  form.addEventListener('submit', async (e) => {
    e.preventDefault();
    runBtn.disabled = true;
    out.replaceChildren(h('p', { text: 'Submitting…' }));
    try {
      const bytes = inFile.files[0] ? new Uint8Array(await inFile.files[0].arrayBuffer())
        : new TextEncoder().encode(input.value);
      const { task_id } = await api('POST', '/execute_function', { function_id: id, payload: bytesToB64(bytes) });
      out.replaceChildren(h('p', {}, 'Task ', h('a', { href: '#/task/' + task_id, text: task_id }), ' is running…'));
      let t;
      do { t = await api('GET', `/result/${task_id}?wait=20s`); } while (t.status === 'QUEUED' || t.status === 'RUNNING');
      out.replaceChildren(taskFacts(t));
      taskList(recent, { function: id }, 20).catch(showError);
    } catch (err) {
      out.replaceChildren(h('p', { class: 'bad', text: 'Not run: ' + err.message }));
    } finally { runBtn.disabled = false; }
  });
  const del = h('div', { class: 'row' });
  const askDelete = () => del.replaceChildren(
    h('span', { text: `Delete ${f.name}? Its queued tasks fail; this cannot be undone.` }),
    h('button', { id: 'delete-confirm', class: 'danger', type: 'button', onclick: doDelete, text: 'Yes, delete' }),
    h('button', { class: 'secondary', type: 'button', onclick: resetDelete, text: 'Keep it' }));
  const resetDelete = () => del.replaceChildren(
    h('button', { id: 'delete', class: 'danger', type: 'button', onclick: askDelete, text: 'Delete function…' }));
  async function doDelete() {
    try {
      await api('DELETE', '/functions/' + id);
      location.hash = '#/functions';
    } catch (e) { showError(e); }
  }
  resetDelete();
  const failures = h('div', { id: 'failures' });
  const recent = h('div', { id: 'recent' });
  root.append(h('h2', { text: 'Function ' + f.name }),
    h('dl', { class: 'facts' }, facts([['id', f.function_id], ['ABI', f.abi || '—'], ['module sha256', f.module_sha256],
      ['module size', f.module_size + ' B'], ['registered', fmtTime(f.created_at)],
      ['limits', JSON.stringify(f.limits)]])),
    h('h3', { text: 'Run it' }), form,
    h('h3', { text: 'Failures by kind (newest 500)' }), failures,
    h('h3', { text: 'Recent tasks' }), recent,
    h('h3', { text: 'Delete' }), del);
  const fl = await api('GET', `/functions/${id}/failures`);
  failures.replaceChildren(fl.kinds.length ? h('table', {},
    h('thead', {}, h('tr', {}, ['kind', 'count', 'example', 'stderr'].map((t) => h('th', { scope: 'col', text: t })))),
    h('tbody', {}, fl.kinds.map((k) => h('tr', {}, h('td', { text: k.kind }), h('td', { text: k.count }),
      h('td', {}, h('a', { href: '#/task/' + k.sample_task_id, text: short(k.sample_task_id) }), ' ' + k.sample_message),
      h('td', {}, h('pre', { text: preview(k.sample_stderr) }))))))
    : h('p', { text: 'No failures.' }));
  await taskList(recent, { function: id }, 20);
}

function facts(pairs) {
  return pairs.flatMap(([k, v]) => [h('dt', { text: k }), v instanceof Node ? h('dd', {}, v) : h('dd', { text: v })]);
}

// Tasks: filters and pages of recently finished tasks.
async function tasks(root) {
  const status = h('select', { id: 'f-status' }, ['', 'QUEUED', 'RUNNING', 'COMPLETED', 'FAILED'].map((s) => h('option', { value: s, text: s || 'any finished' })));
  const fn = h('input', { id: 'f-function', type: 'text', placeholder: 'name or id' });
  const since = h('select', { id: 'f-since' }, [['', 'any time'], ['300', 'last 5 minutes'], ['3600', 'last hour'], ['86400', 'last day']]
    .map(([v, t]) => h('option', { value: v, text: t })));
  const list = h('div', { id: 'tasklist' });
  const form = h('form', { class: 'row', id: 'filters' },
    h('label', { for: 'f-status', text: 'Status' }), status,
    h('label', { for: 'f-function', text: 'Function' }), fn,
    h('label', { for: 'f-since', text: 'Finished' }), since,
    h('button', { type: 'submit', text: 'Show' }));
  form.addEventListener('submit', (e) => {
    e.preventDefault();
    const q = { status: status.value, function: fn.value.trim() };
    const current = status.value === 'QUEUED' || status.value === 'RUNNING'; // not by finish time
    if (since.value && !current) q.since = new Date(Date.now() - since.value * 1000).toISOString().replace(/\.\d+Z$/, 'Z');
    taskList(list, q, 50).catch(showError);
  });
  root.append(h('h2', { text: 'Recent tasks' }), form, list);
  await taskList(list, {}, 50);
}

// taskList fills el with a page of GET /tasks and an "Older" button for the next.
async function taskList(el, filter, limit, cursor) {
  const q = new URLSearchParams({ limit: String(limit) });
  for (const [k, v] of Object.entries(filter)) if (v) q.set(k, v);
  if (cursor) q.set('cursor', cursor);
  // A slower earlier answer (the unfiltered first load, say) must not overwrite a newer one.
  const gen = (el.listGen = (el.listGen || 0) + 1);
  const r = await api('GET', '/tasks?' + q);
  if (el.listGen !== gen) return;
  const more = r.next_cursor ? h('button', { type: 'button', class: 'secondary', id: 'older', text: 'Older',
    onclick: () => taskList(el, filter, limit, r.next_cursor).catch(showError) }) : null;
  el.replaceChildren(r.tasks.length ? h('table', {},
    h('thead', {}, h('tr', {}, ['task', 'status', 'function', 'finished', 'run time', 'attempts']
      .map((t) => h('th', { scope: 'col', text: t })))),
    h('tbody', {}, r.tasks.map((t) => h('tr', {},
      h('td', {}, h('a', { href: '#/task/' + t.task_id, text: short(t.task_id) })),
      h('td', { class: 'status-' + t.status, text: t.status + (t.error ? ' (' + t.error.kind + ')' : '') }),
      h('td', {}, h('a', { href: '#/function/' + t.function_id, text: short(t.function_id) })),
      h('td', { text: fmtTime(t.finished_at) }), h('td', { text: fmtMs(t.duration_ms) }),
      h('td', { text: t.attempts })))))
    : h('p', { text: 'No tasks match.' }), more || '');
}

function taskFacts(t) {
  const parts = [h('dl', { class: 'facts' }, facts([
    ['task', t.task_id], ['status', t.status],
    ['function', t.function_id ? h('a', { href: '#/function/' + t.function_id, text: t.function_id }) : '—'],
    ['attempts', t.attempts], ['worker', t.worker || '—'], ['created', fmtTime(t.created_at)],
    ['started', fmtTime(t.started_at)], ['finished', fmtTime(t.finished_at)],
    ['run time', t.duration_ms !== undefined ? t.duration_ms + ' ms' : '—'],
    ['CPU units', t.cpu_units !== undefined ? t.cpu_units : '—']]))];
  if (t.error) parts.push(h('h3', { text: 'Error' }), h('pre', { id: 'task-error', text: `${t.error.kind}: ${t.error.message}` }));
  else if (t.status === 'COMPLETED') parts.push(h('h3', { text: 'Result' }), h('pre', { id: 'task-result', text: preview(t.result) }));
  if (t.stderr) parts.push(h('h3', { text: 'Stderr' }), h('pre', { id: 'task-stderr', text: preview(t.stderr) }));
  return h('div', { class: 'task' }, parts);
}

// A task: its facts, result or error, stderr; cancel while it is not finished.
async function taskPage(root, id) {
  const body = h('div', { id: 'task' });
  const actions = h('div', { class: 'row' });
  const input = h('div', { id: 'task-input-box' });
  root.append(h('h2', { text: 'Task ' + short(id) }), actions, body, input);
  let last = '';
  // The input, while the server keeps it (a finished task keeps a small one), with a
  // button that runs the same function on it again.
  api('GET', `/tasks/${id}/input`).then((r) => {
    input.replaceChildren(h('h3', { text: 'Input' }), h('pre', { id: 'task-input', text: preview(r.payload) }),
      h('button', { id: 'rerun', type: 'button', class: 'secondary', text: 'Run again with this input', onclick: async () => {
        try {
          const { task_id } = await api('POST', '/execute_function', { function_id: r.function_id, payload: r.payload });
          location.hash = '#/task/' + task_id;
        } catch (e) { showError(e); }
      } }));
  }).catch((e) => {
    input.replaceChildren(h('p', { class: 'muted', text: e.status === 404 ? 'Input not kept (inputs over 512 bytes are dropped when a task ends).' : 'Input: ' + e.message }));
  });
  every(1000, async () => {
    if (last === 'COMPLETED' || last === 'FAILED') return;
    try {
      const t = await api('GET', '/result/' + id);
      last = t.status;
      body.replaceChildren(taskFacts(t));
      const open = t.status === 'QUEUED' || t.status === 'RUNNING';
      actions.replaceChildren(open ? h('button', { id: 'cancel', class: 'danger', type: 'button', text: 'Cancel task', onclick: cancel }) : '',
        t.function_id ? h('a', { href: '#/function/' + t.function_id, text: 'Open its function' }) : '');
    } catch (e) { showError(e); }
  });
  async function cancel() {
    try {
      const r = await api('POST', `/tasks/${id}/cancel`, {});
      showAlert('');
      actions.prepend(h('span', { id: 'cancel-msg', role: 'status', text: 'Cancel requested: ' + r.status }));
    } catch (e) {
      showAlert(e.status === 404 ? 'This server cannot cancel tasks, or the task is gone.' : 'Not cancelled: ' + e.message);
    }
  }
}

// ---- start ----

document.getElementById('apikey').value = key();
document.getElementById('keyform').addEventListener('submit', (e) => {
  e.preventDefault();
  const v = document.getElementById('apikey').value.trim();
  if (v) sessionStorage.setItem(KEY, v); else sessionStorage.removeItem(KEY);
  refreshNamespace();
  route();
});
document.getElementById('forget').addEventListener('click', () => {
  sessionStorage.removeItem(KEY);
  document.getElementById('apikey').value = '';
  refreshNamespace();
  route();
});
window.addEventListener('hashchange', route);
refreshNamespace();
route();
