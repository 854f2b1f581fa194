// The desk dashboard: plain ES module, no build step.
//
// Snapshot-first: every panel first renders the last good answer kept in localStorage (so the page
// is useful at once, even when the API is slow or down), then refreshes in the background. A
// refresh that fails or takes longer than REFRESH_TIMEOUT_MS keeps the data on screen and shows a
// warning with its age instead of blanking the page or spinning forever.

const REFRESH_TIMEOUT_MS = 4000;
const REFRESH_EVERY_MS = 15000;
const PAGE_SIZE = 25;
const TOKEN_KEY = 'desk.token';
const SNAPSHOT_PREFIX = 'desk.snapshot.';

const $ = (id) => document.getElementById(id);
const failures = new Map();
let stage = '';
let nextCursor = null;

// --- token ---------------------------------------------------------------------------------------
function takeTokenFromFragment() {
  const m = /(?:^|&)token=([^&]+)/.exec(location.hash.slice(1));
  if (m) {
    localStorage.setItem(TOKEN_KEY, decodeURIComponent(m[1]));
    // Keep the token out of the address bar and history.
    history.replaceState(null, '', location.pathname + location.search);
  }
}
const token = () => localStorage.getItem(TOKEN_KEY);

// --- snapshot-first fetch --------------------------------------------------------------------------
function readSnapshot(key) {
  try {
    return JSON.parse(localStorage.getItem(SNAPSHOT_PREFIX + key) ?? 'null');
  } catch {
    return null;
  }
}

function writeSnapshot(key, data) {
  try {
    localStorage.setItem(SNAPSHOT_PREFIX + key, JSON.stringify({ at: Date.now(), data }));
  } catch {
    // Storage full or disabled: the page still works, it just starts cold next time.
  }
}

/** GET with a hard timeout: AbortController aborts the request after REFRESH_TIMEOUT_MS. */
async function getJson(path) {
  const controller = new AbortController();
  const timer = setTimeout(() => controller.abort(new DOMException('timeout', 'TimeoutError')), REFRESH_TIMEOUT_MS);
  try {
    const res = await fetch(path, {
      headers: { authorization: `Bearer ${token()}`, 'x-request-timeout-ms': String(REFRESH_TIMEOUT_MS - 500) },
      signal: controller.signal,
    });
    const body = await res.json().catch(() => null);
    if (!res.ok) {
      const err = new Error(body?.error?.message ?? `HTTP ${res.status}`);
      err.code = body?.error?.code ?? `HTTP_${res.status}`;
      err.status = res.status;
      throw err;
    }
    return body;
  } catch (err) {
    if (err.name === 'AbortError' || err.name === 'TimeoutError') {
      const e = new Error(`no answer within ${REFRESH_TIMEOUT_MS / 1000} s`);
      e.code = 'CLIENT_TIMEOUT';
      throw e;
    }
    if (!err.code) err.code = 'NETWORK_ERROR';
    throw err;
  } finally {
    clearTimeout(timer);
  }
}

/**
 * Renders the cached snapshot of `key` at once, then refreshes it. Returns the fresh data, or the
 * cached data when the refresh failed (with the failure shown in the banner).
 */
async function snapshotFirst(key, path, render, asofEl) {
  const cached = readSnapshot(key);
  if (cached) {
    render(cached.data);
    showAge(asofEl, cached.at, true);
  }
  try {
    const data = await getJson(path);
    writeSnapshot(key, data);
    render(data);
    showAge(asofEl, Date.now(), false);
    failures.delete(key);
    return data;
  } catch (err) {
    if (err.status === 401) return signOut('The token was refused. Sign in again.');
    failures.set(key, { code: err.code, message: err.message, cachedAt: cached?.at });
    return cached?.data;
  } finally {
    renderBanner();
  }
}

function showAge(el, at, stale) {
  if (!el) return;
  el.textContent = `${stale ? 'cached' : 'updated'} ${new Date(at).toLocaleTimeString()}`;
  el.classList.toggle('bad', stale);
}

function renderBanner() {
  const banner = $('banner');
  if (failures.size === 0) {
    banner.hidden = true;
    return;
  }
  const parts = [...failures.entries()].map(([key, f]) => {
    const age = f.cachedAt ? `showing data from ${new Date(f.cachedAt).toLocaleTimeString()}` : 'no saved data yet';
    return `${key}: refresh failed (${f.code}); ${age}`;
  });
  banner.textContent = `⚠ ${parts.join(' · ')}. Retrying every ${REFRESH_EVERY_MS / 1000} s.`;
  banner.hidden = false;
}

// --- rendering -----------------------------------------------------------------------------------
const esc = (v) => String(v ?? '').replace(/[&<>"']/g, (c) => `&#${c.charCodeAt(0)};`);
const money = (n) => (typeof n === 'number' ? n.toLocaleString(undefined, { maximumFractionDigits: 0 }) : '');
const time = (t) => (t ? new Date(t).toLocaleString() : '');

function renderOverview(o) {
  $('counts').innerHTML =
    `<div><b>${esc(o.totalBots)}</b>total</div>` +
    Object.entries(o.countsByStage ?? {})
      .sort()
      .map(([s, n]) => `<div><b>${esc(n)}</b>${esc(s)}</div>`)
      .join('');
  $('best').innerHTML = (o.bestPerformers ?? [])
    .map(
      (b) =>
        `<tr><td>${esc(b.name)}</td><td>${esc(b.strategy)}</td><td>${esc(b.stage)}</td><td class="num">${money(b.total_pnl)}</td><td class="num">${esc(b.avg_sharpe)}</td></tr>`,
    )
    .join('');
  $('audits').innerHTML = (o.recentAudits ?? [])
    .map(
      (a) =>
        `<tr><td>${time(a.checked_at)}</td><td>${esc(a.bot_name)}</td><td>${esc(a.kind)}</td><td class="${a.ok ? '' : 'bad'}">${a.ok ? 'ok' : 'failed'}</td><td class="num">${esc(a.latency_ms)}</td></tr>`,
    )
    .join('');
}

const botRow = (b) =>
  `<tr><td>${esc(b.name)}</td><td>${esc(b.strategy)}</td><td>${esc(b.symbol)}</td><td>${esc(b.stage)}</td><td>${time(b.updated_at)}</td></tr>`;

function renderBots(page, append = false) {
  const html = (page.items ?? []).map(botRow).join('');
  if (append) $('bots').insertAdjacentHTML('beforeend', html);
  else $('bots').innerHTML = html;
  nextCursor = page.nextCursor ?? null;
  $('more').hidden = nextCursor === null;
}

function renderProviders(h) {
  $('providers').innerHTML = (h.providers ?? [])
    .map((p) => `<li class="${esc(p.status)}" title="${esc(p.lastError ?? '')}">${esc(p.name)}: ${esc(p.status)}</li>`)
    .join('');
}

function renderLoops(s) {
  $('loops').innerHTML = (s.loops ?? [])
    .map(
      (l) =>
        `<li class="${esc(l.status)}" title="last beat ${esc(time(l.lastBeatAt))}">${esc(l.loop)}: ${esc(l.status)}</li>`,
    )
    .join('');
}

// --- live stream ---------------------------------------------------------------------------------
let ws;
let reconnectMs = 1000;
function connectStream() {
  if (!token()) return;
  const url = `${location.protocol === 'https:' ? 'wss' : 'ws'}://${location.host}/api/stream?token=${encodeURIComponent(token())}`;
  ws = new WebSocket(url);
  ws.onopen = () => {
    reconnectMs = 1000;
    $('stream-state').textContent = 'live';
  };
  ws.onmessage = (ev) => {
    const msg = JSON.parse(ev.data);
    if (msg.type === 'tick') {
      $('ticks').innerHTML = msg.bots
        .map(
          (b) =>
            `<tr><td>${esc(b.name)}</td><td>${esc(b.symbol)}</td><td>${esc(b.status)}</td><td class="num">${esc(b.position)}</td><td class="num">${money(b.unrealizedPnl)}</td></tr>`,
        )
        .join('');
      $('stream-state').textContent = `live, ${new Date(msg.at).toLocaleTimeString()}`;
    } else if (msg.type === 'warning') {
      $('stream-state').textContent = `tick failed (${msg.code}), keeping last values`;
    }
  };
  ws.onclose = (ev) => {
    // 1008 (policy: bad token or too slow) and 1013 (try again later) tell us what to do.
    const why = ev.code === 1013 ? 'server busy' : ev.code === 1008 ? ev.reason || 'policy' : `closed ${ev.code}`;
    $('stream-state').textContent = `${why}; reconnecting in ${Math.round(reconnectMs / 1000)} s`;
    setTimeout(connectStream, reconnectMs);
    reconnectMs = Math.min(30000, reconnectMs * 2);
  };
}

// --- wiring --------------------------------------------------------------------------------------
const botsPath = (cursor) =>
  `/api/bots?limit=${PAGE_SIZE}${stage ? `&stage=${stage}` : ''}${cursor ? `&cursor=${encodeURIComponent(cursor)}` : ''}`;

async function refreshAll() {
  await Promise.all([
    snapshotFirst('overview', '/api/bots/overview', renderOverview, $('overview-asof')),
    snapshotFirst(`bots:${stage}`, botsPath(null), (p) => renderBots(p), $('bots-asof')),
    snapshotFirst('providers', '/api/providers/health', renderProviders, null),
    snapshotFirst('autonomy', '/api/autonomy/status', renderLoops, null),
  ]);
}

function signOut(message) {
  localStorage.removeItem(TOKEN_KEY);
  for (const k of Object.keys(localStorage)) if (k.startsWith(SNAPSHOT_PREFIX)) localStorage.removeItem(k);
  ws?.close();
  $('desk').hidden = true;
  $('sign-in').hidden = false;
  const banner = $('banner');
  banner.textContent = message ?? '';
  banner.hidden = !message;
}

function start() {
  $('sign-in').hidden = true;
  $('desk').hidden = false;
  refreshAll();
  connectStream();
}

takeTokenFromFragment();
$('sign-in').addEventListener('submit', (ev) => {
  ev.preventDefault();
  localStorage.setItem(TOKEN_KEY, $('token').value.trim());
  start();
});
$('sign-out').addEventListener('click', () => signOut());
$('refresh').addEventListener('click', () => refreshAll());
$('stage').addEventListener('change', (ev) => {
  stage = ev.target.value;
  snapshotFirst(`bots:${stage}`, botsPath(null), (p) => renderBots(p), $('bots-asof'));
});
$('more').addEventListener('click', async () => {
  try {
    renderBots(await getJson(botsPath(nextCursor)), true);
  } catch (err) {
    failures.set('next page', { code: err.code, message: err.message });
    renderBanner();
  }
});
setInterval(() => {
  if (token()) refreshAll();
}, REFRESH_EVERY_MS);

if (token()) start();
else signOut();
