// hangproof status page: polls <status>.json and renders it. No framework and no build step.
// Everything from the service is inserted with textContent, never as HTML.

(() => {
  const body = document.body;
  const jsonUrl = body.dataset.statusJson;
  const refreshMs = Number(body.dataset.refreshMs) || 3000;
  /** A poll that takes longer than this counts as "not answering". */
  const requestTimeoutMs = Math.max(1000, refreshMs - 500);
  let windowName = '1m';
  /** HTTP status of each error code (from the snapshot); unknown codes count as server errors. */
  let errorStatuses = {};
  let last = null;
  let lastOkAt = null;
  let failingSince = null;

  function el(tag, props, ...children) {
    const node = document.createElement(tag);
    if (props) {
      for (const [k, v] of Object.entries(props)) {
        if (v === undefined || v === null || v === false) continue;
        if (k === 'class') node.className = v;
        else if (k === 'title') node.title = v;
        else node.setAttribute(k, v === true ? '' : String(v));
      }
    }
    for (const c of children.flat()) {
      if (c === null || c === undefined || c === false) continue;
      node.append(c instanceof Node ? c : document.createTextNode(String(c)));
    }
    return node;
  }

  const num = (v, digits = 1) => (typeof v === 'number' && Number.isFinite(v) ? v.toFixed(digits) : '–');
  const int = (v) => (typeof v === 'number' && Number.isFinite(v) ? String(Math.round(v)) : '–');
  const time = (iso) => (iso ? new Date(iso).toLocaleTimeString() : '–');
  const WINDOW_LABELS = { '1m': 'last 1 min', '5m': 'last 5 min', '60m': 'last 60 min' };
  const TIMEOUT_CODES = new Set(['REQUEST_TIMEOUT', 'DEPENDENCY_TIMEOUT']);
  /** 5xx: the service failed. 4xx: the client asked for something wrong (a 404 is not an outage). */
  const isServerError = (code) => (errorStatuses[code] ?? 500) >= 500;
  const timeoutsIn = (errors) =>
    Object.entries(errors || {}).reduce((n, [code, k]) => n + (TIMEOUT_CODES.has(code) ? k : 0), 0);
  function age(ms) {
    if (typeof ms !== 'number') return '–';
    if (ms < 1000) return `${Math.round(ms)} ms`;
    if (ms < 120_000) return `${Math.round(ms / 1000)} s`;
    if (ms < 7_200_000) return `${Math.round(ms / 60_000)} min`;
    return `${Math.round(ms / 3_600_000)} h`;
  }

  function errorChips(errors) {
    const entries = Object.entries(errors || {});
    if (entries.length === 0) return el('span', { class: 'muted' }, 'none');
    return el(
      'span',
      null,
      entries
        .sort((a, b) => b[1] - a[1])
        .map(([code, n]) => el('span', { class: `chip ${isServerError(code) ? 'bad' : ''}` }, `${code} ${n}`)),
    );
  }

  function fillRows(tableId, rows, emptyText, columns) {
    const tbody = document.querySelector(`#${tableId} tbody`);
    tbody.replaceChildren();
    if (rows.length === 0) {
      tbody.append(el('tr', { class: 'empty' }, el('td', { colspan: columns }, emptyText)));
      return;
    }
    for (const r of rows) tbody.append(r);
  }

  function kv(tableId, pairs) {
    const tbody = document.querySelector(`#${tableId} tbody`);
    tbody.replaceChildren(
      ...pairs.map(([k, v, cls]) => el('tr', null, el('th', null, k), el('td', { class: cls || 'num' }, v))),
    );
  }

  function card(label, value, cls, id) {
    return el(
      'div',
      { class: `card ${cls || ''}`, 'data-card': id },
      el('div', { class: 'card-value' }, value),
      el('div', { class: 'card-label' }, label),
    );
  }

  function renderCards(d) {
    const w = windowName;
    let count = 0;
    let rate = 0;
    let serverErrors = 0;
    let clientErrors = 0;
    let p99 = 0;
    for (const e of d.endpoints) {
      const s = e.windows[w];
      count += s.count;
      rate += s.ratePerSec;
      p99 = Math.max(p99, s.p99Ms);
      for (const [code, n] of Object.entries(s.errors)) {
        if (isServerError(code)) serverErrors += n;
        else clientErrors += n;
      }
    }
    const timeouts = timeoutsInWindow(d);
    const loop = d.eventLoop.last;
    document
      .getElementById('cards')
      .replaceChildren(
        card('requests / s', num(rate, 1), '', 'rate'),
        card('requests', int(count), '', 'requests'),
        card('worst route p99 ms', num(p99, 1), p99 > 1000 ? 'warn' : '', 'p99'),
        card('server errors (5xx)', int(serverErrors), serverErrors > 0 ? 'bad' : 'good', 'server-errors'),
        card('client errors (4xx)', int(clientErrors), '', 'client-errors'),
        card('timeouts', int(timeouts), timeouts > 0 ? 'bad' : 'good', 'timeouts'),
        card('loop delay p99 ms', loop ? num(loop.p99Ms, 1) : '–', loop && loop.p99Ms > 100 ? 'warn' : '', 'loop'),
        card('stalls', int(d.eventLoop.stallsTotal), d.eventLoop.stallsTotal > 0 ? 'warn' : 'good', 'stalls'),
      );
  }

  /** Timeouts (504 and dependency timeouts) of this instance's routes in the chosen window. */
  function timeoutsInWindow(d) {
    return d.endpoints.reduce((n, e) => n + timeoutsIn(e.windows[windowName].errors), 0);
  }

  /** The part of a recent-requests list inside the chosen window, the one the counts cover. */
  function inWindow(d, list) {
    const from = d.windowStarts?.[windowName];
    return typeof from === 'number' ? list.filter((r) => !(r.endedAtMs < from)) : list;
  }

  /** Rows of an endpoint table: one per route, for the chosen window. */
  function endpointRows(endpoints) {
    const w = windowName;
    return endpoints.map((e) => {
      const s = e.windows[w];
      const timeouts = timeoutsIn(s.errors);
      return el(
        'tr',
        null,
        el('td', null, el('span', { class: 'method' }, e.method), ' ', el('code', null, e.route)),
        el('td', { class: 'num' }, num(s.ratePerSec, 2)),
        el('td', { class: 'num' }, int(s.count)),
        el('td', { class: 'num' }, num(s.p50Ms, 1)),
        el('td', { class: 'num' }, num(s.p95Ms, 1)),
        el('td', { class: 'num' }, num(s.p99Ms, 1)),
        el('td', { class: 'num' }, num(s.maxMs, 1)),
        el('td', { class: `num ${timeouts > 0 ? 'bad-text' : ''}` }, int(timeouts)),
        el('td', null, errorChips(s.errors)),
      );
    });
  }

  function renderEndpoints(d) {
    fillRows('endpoints-table', endpointRows(d.endpoints), 'No requests yet.', 9);
  }

  /** The `cluster` field a service may add (e.g. the desk's merged view), when it has that shape. */
  function clusterOf(d) {
    const c = d.cluster;
    if (!c || typeof c !== 'object' || !Array.isArray(c.instances) || !Array.isArray(c.endpoints)) return null;
    return c;
  }

  function renderCluster(d) {
    const c = clusterOf(d);
    const section = document.getElementById('cluster');
    document.getElementById('endpoints-title').textContent = c ? 'Endpoints (this instance)' : 'Endpoints';
    section.hidden = !c;
    if (!c) return;
    const w = windowName;
    const total = c.instances.length;
    const up = typeof c.instancesUp === 'number' ? c.instancesUp : c.instances.filter((m) => m.up).length;
    document.getElementById('cluster-title').textContent =
      `Cluster (merged across ${up} instance${up === 1 ? '' : 's'})`;
    document
      .getElementById('cluster-meta')
      .replaceChildren(
        el('span', { class: up < total ? 'bad-text' : '' }, `${up} of ${total} up`),
        ` · seen from ${c.self || '–'} at ${time(c.fetchedAt)} · percentiles of all requests together, not averages`,
      );

    const fetched = c.fetchedAt ? Date.parse(c.fetchedAt) : Number.NaN;
    const instances = c.instances.map((m) => {
      const started = m.startedAt ? Date.parse(m.startedAt) : Number.NaN;
      const upFor = Number.isFinite(started) && Number.isFinite(fetched) ? ` (up ${age(fetched - started)})` : '';
      return el(
        'tr',
        null,
        el('td', null, el('code', null, m.id), m.self ? el('span', { class: 'muted' }, ' this instance') : null),
        el('td', null, el('span', { class: `chip ${m.up ? 'good' : 'bad'}` }, m.up ? 'up' : 'down')),
        el('td', { class: 'num' }, m.pid === null || m.pid === undefined ? '–' : String(m.pid)),
        el('td', null, m.startedAt ? `${time(m.startedAt)}${upFor}` : '–'),
        el('td', { class: m.error ? 'bad-text' : 'muted' }, m.error || '–'),
      );
    });
    fillRows('cluster-instances-table', instances, 'No instances.', 5);

    const pg = c.postgres?.[w];
    const pgRows =
      pg && pg.count > 0
        ? [
            el(
              'tr',
              null,
              el('td', null, 'all queries'),
              el('td', { class: 'num' }, num(pg.ratePerSec, 2)),
              el('td', { class: 'num' }, int(pg.count)),
              el('td', { class: 'num' }, num(pg.p50Ms, 1)),
              el('td', { class: 'num' }, num(pg.p95Ms, 1)),
              el('td', { class: 'num' }, num(pg.p99Ms, 1)),
              el('td', null, errorChips(pg.errors)),
            ),
          ]
        : [];
    fillRows('cluster-postgres-table', pgRows, 'No queries in this window.', 7);

    const endpoints = c.endpoints.filter((e) => e?.windows?.[w]);
    fillRows('cluster-endpoints-table', endpointRows(endpoints), 'No requests in this window.', 9);
  }

  function renderWarnings(d) {
    const box = document.getElementById('warnings');
    const list = Array.isArray(d.warnings) ? d.warnings : [];
    box.hidden = list.length === 0;
    box.replaceChildren(
      ...list.map((x) => {
        const what = x.reason === 'timeout' ? `no answer within ${x.timeoutMs} ms` : x.reason;
        const extra = x.keys ? `: ${x.keys.join(', ')}` : x.error ? `: ${x.error}` : '';
        return el('p', null, `Left out of this snapshot: ${x.source || 'extra data'} (${what}${extra}).`);
      }),
    );
  }

  /** The ranking `hangproof report` makes of a log, over the service's last minute of evidence. */
  function renderCauses(d) {
    const section = document.getElementById('causes');
    // A document without the field (an older service, a merged cluster view) has no panel.
    section.hidden = !Array.isArray(d.likelyCauses);
    if (section.hidden) return;
    const box = document.getElementById('likely-causes');
    if (d.likelyCauses.length === 0) {
      box.replaceChildren(el('p', { class: 'muted' }, 'Nothing abnormal in the last minute.'));
      return;
    }
    box.replaceChildren(
      ...d.likelyCauses.map((c) =>
        el(
          'div',
          { class: 'item cause', 'data-kind': c.kind },
          el('strong', null, c.title),
          ' ',
          el('span', { class: 'chip' }, c.kind),
          ` · ${c.requests} request(s) · score ${num(c.score, 2)}`,
          el('code', { class: 'blocker-sql cause-subject' }, c.subject),
          el('p', { class: 'note' }, c.detail),
        ),
      ),
    );
  }

  function renderPostgres(d) {
    const w = windowName;
    const t = d.postgres.total;
    const rows = t
      ? [
          el(
            'tr',
            null,
            el('td', null, 'all queries'),
            el('td', { class: 'num' }, num(t[w].ratePerSec, 2)),
            el('td', { class: 'num' }, num(t[w].p50Ms, 1)),
            el('td', { class: 'num' }, num(t[w].p95Ms, 1)),
            el('td', { class: 'num' }, num(t[w].p99Ms, 1)),
            el('td', null, errorChips(t[w].errors)),
          ),
        ]
      : [];
    fillRows('postgres-table', rows, 'No queries yet.', 6);
    const q = d.postgres.slowestQueries.map((x) =>
      el(
        'tr',
        null,
        el('td', { class: 'sql', title: x.fingerprint }, el('code', null, x.fingerprint)),
        el('td', { class: 'num' }, int(x.windows[w].count)),
        el('td', { class: 'num' }, num(x.windows[w].p50Ms, 1)),
        el('td', { class: 'num' }, num(x.windows[w].p95Ms, 1)),
        el('td', { class: 'num' }, num(x.windows[w].maxMs, 1)),
      ),
    );
    fillRows('queries-table', q, 'No queries yet.', 5);
  }

  function statsText(stats) {
    if (stats === null || stats === undefined) return el('span', { class: 'muted' }, 'no stats() source');
    if (typeof stats !== 'object') return String(stats);
    return el(
      'span',
      null,
      Object.entries(stats)
        .filter(([, v]) => v === null || typeof v !== 'object')
        .map(([k, v]) => el('span', { class: 'chip' }, `${k} ${v}`)),
    );
  }

  function renderPools(d) {
    const w = windowName;
    const rows = d.pools.map((p) => {
      const a = p.acquire ? p.acquire[w] : null;
      return el(
        'tr',
        null,
        el('td', null, p.name),
        el('td', null, statsText(p.stats)),
        el('td', { class: 'num' }, a ? num(a.p95Ms, 1) : '–'),
        el('td', { class: 'num' }, a ? num(a.maxMs, 1) : '–'),
        el('td', null, a ? errorChips(a.errors) : ''),
      );
    });
    fillRows('pools-table', rows, 'No pools.', 5);
  }

  /** Finds what the dependency layer's status() says about `name`, whatever its shape. */
  function dependencyStatus(status, name) {
    if (!status || typeof status !== 'object') return null;
    const list = Array.isArray(status) ? status : Array.isArray(status.dependencies) ? status.dependencies : null;
    if (list) return list.find((x) => x && (x.name === name || x.dependency === name)) || null;
    const bag = status.dependencies && typeof status.dependencies === 'object' ? status.dependencies : status;
    return bag[name] && typeof bag[name] === 'object' ? bag[name] : null;
  }

  function healthOf(s) {
    if (!s) return el('span', { class: 'muted' }, '–');
    let v = s.health ?? s.healthy ?? s.status ?? s.state;
    if (v && typeof v === 'object') v = v.state ?? v.status ?? v.healthy;
    if (v === null || v === undefined) return el('span', { class: 'muted' }, 'not probed');
    const good = v === true || v === 'healthy' || v === 'ok' || v === 'up' || v === 'closed';
    const text = v === true ? 'healthy' : v === false ? 'unhealthy' : String(v ?? '–');
    return el('span', { class: `chip ${good ? 'good' : 'bad'}` }, text);
  }

  /**
   * Why a breaker is closed while the health probe says the dependency is down: the breaker
   * judges the service's own calls, never the probe, so with too few failed calls it stays closed.
   */
  function breakerNote(s, breaker, win) {
    const health = s?.health?.state;
    if (breaker !== 'closed' || !(health === 'down' || health === 'unhealthy')) return null;
    const b = s?.config?.breaker;
    const rule = b
      ? `it opens when ${Math.round(b.failureRatio * 100)} % of at least ${b.minimumCalls} calls in ${Math.round(b.windowMs / 1000)} s fail`
      : 'it opens on failed calls';
    const calls = win ? `${int(win.count)} call(s) in this window` : 'no calls measured';
    const probe = s.health.lastError ? ` (probe: ${s.health.lastError})` : '';
    return `The health probe fails${probe}, but the breaker counts calls, not probes: ${rule}; ${calls}.`;
  }

  function renderDependencies(d) {
    const w = windowName;
    const status = d.dependencies.status;
    const names = new Set(d.dependencies.measured.map((x) => x.name));
    const list =
      status && typeof status === 'object'
        ? Array.isArray(status)
          ? status
          : Array.isArray(status.dependencies)
            ? status.dependencies
            : Object.keys(status.dependencies || status)
        : [];
    for (const x of list) {
      const n = typeof x === 'string' ? x : x && (x.name || x.dependency);
      if (typeof n === 'string') names.add(n);
    }
    const rows = [...names].sort().map((name) => {
      const m = d.dependencies.measured.find((x) => x.name === name);
      const s = dependencyStatus(status, name);
      const breaker = m?.breaker?.state || (s && (s.breaker?.state ?? s.breaker ?? s.breakerState)) || '–';
      const win = m?.windows ? m.windows[w] : null;
      const why = breakerNote(s, breaker, win);
      return el(
        'tr',
        null,
        el('td', null, name),
        el('td', null, healthOf(s)),
        el(
          'td',
          null,
          el(
            'span',
            { class: `chip ${breaker === 'closed' ? 'good' : breaker === '–' ? '' : 'bad'}` },
            typeof breaker === 'string' ? breaker : JSON.stringify(breaker),
          ),
          why ? el('div', { class: 'note' }, why) : null,
        ),
        el('td', { class: 'num' }, win ? int(win.count) : '–'),
        el('td', { class: 'num' }, win ? num(win.p50Ms, 1) : '–'),
        el('td', { class: 'num' }, win ? num(win.p95Ms, 1) : '–'),
        el('td', null, win ? errorChips(win.errors) : ''),
      );
    });
    fillRows('dependencies-table', rows, 'No dependencies.', 7);
  }

  function renderLoop(d) {
    const l = d.eventLoop;
    const s = l.last;
    kv('loop-table', [
      ['delay p50 / p99 / max (last sample)', s ? `${num(s.p50Ms)} / ${num(s.p99Ms)} / ${num(s.maxMs)} ms` : '–'],
      ['delay p99 / max (last minute)', `${num(l.minute.p99Ms)} / ${num(l.minute.maxMs)} ms`],
      ['utilization', s ? `${Math.round(s.utilization * 100)} %` : '–'],
      ['heap used', s ? `${(s.heapUsedBytes / 1048576).toFixed(1)} MiB` : '–'],
      [`stalls (> ${l.stallThresholdMs} ms)`, int(l.stallsTotal)],
      ['shedding', l.pressure ? `yes (${l.pressure})` : 'no', l.pressure ? 'bad-text' : ''],
    ]);
    const box = document.getElementById('stalls');
    box.replaceChildren();
    if (l.recentStalls.length === 0) box.append(el('p', { class: 'muted' }, 'No stalls.'));
    for (const st of l.recentStalls) {
      box.append(
        el(
          'details',
          { class: 'item' },
          el(
            'summary',
            null,
            el('strong', null, `${st.durationMs} ms`),
            ` at ${time(st.at)}`,
            st.stack?.[0] ? ` in ${st.stack[0].functionName}` : '',
            `, ${st.inFlight.length} request(s) in flight`,
          ),
          st.stack
            ? el(
                'pre',
                { class: 'stack' },
                st.stack.map((f) => `at ${f.functionName} (${f.url}:${f.line}:${f.column})`).join('\n'),
              )
            : el('p', { class: 'muted' }, st.stackNote || 'no stack captured'),
          el(
            'ul',
            null,
            st.inFlight.map((r) =>
              el(
                'li',
                null,
                `${r.name || '(unnamed)'} ${r.requestId}: ${r.elapsedMs} ms, step in flight ${r.stepInFlight || '–'}`,
              ),
            ),
          ),
        ),
      );
    }
  }

  function renderJobs(d) {
    const rows = d.jobs.map((j) =>
      el(
        'tr',
        null,
        el('td', null, j.job),
        el('td', null, el('span', { class: `chip ${j.status === 'ok' ? 'good' : 'bad'}` }, j.status)),
        el('td', { class: 'num' }, age(j.ageMs)),
        el('td', { class: 'num' }, j.durationMs === undefined ? '–' : int(j.durationMs)),
        el('td', { class: 'num' }, int(j.runs)),
        el('td', { class: 'num' }, int(j.failures)),
        el('td', null, j.detail || ''),
      ),
    );
    fillRows('jobs-table', rows, 'No job has reported yet.', 7);
  }

  function renderOverload(d) {
    const o = d.overload;
    const shed = Object.entries(o.shed);
    kv('overload-table', [
      [
        'in flight / limit',
        o.maxInFlight > 0
          ? `${int(o.inFlight)} / ${o.limit ?? o.maxInFlight}${o.adaptive ? ` (adaptive, ceiling ${o.maxInFlight})` : ''}`
          : 'no limit',
      ],
      [`queued / max (wait ≤ ${o.queueWaitMs} ms)`, o.maxInFlight > 0 ? `${int(o.queued)} / ${o.maxQueued}` : '–'],
      ['shed (503 OVERLOADED)', shed.length === 0 ? '0' : shed.map(([r, n]) => `${r} ${n}`).join(', ')],
    ]);
  }

  function waterfall(r) {
    const total = Math.max(r.durationMs, 1);
    const rows = r.spans.map((s) => {
      const bar = el('span', {
        class: `bar kind-${s.kind}${s.attrs?.failed ? ' failed' : ''}`,
        title: `${s.name}: ${num(s.durationMs)} ms`,
      });
      bar.style.left = `${Math.min(100, (s.startMs / total) * 100)}%`;
      bar.style.width = `${Math.max(0.5, Math.min(100, (s.durationMs / total) * 100))}%`;
      return el(
        'div',
        { class: 'wf-row' },
        el('span', { class: 'wf-name' }, s.name),
        el('span', { class: 'wf-track' }, bar),
        el('span', { class: 'wf-ms num' }, num(s.durationMs)),
      );
    });
    if (r.droppedSpans > 0) rows.push(el('p', { class: 'muted' }, `${r.droppedSpans} more span(s) not kept`));
    return el('div', { class: 'waterfall' }, rows.length ? rows : el('p', { class: 'muted' }, 'no spans recorded'));
  }

  function requestItem(r, extra) {
    return el(
      'details',
      { class: 'item' },
      el(
        'summary',
        null,
        el('span', { class: 'method' }, r.method),
        ' ',
        el('code', null, r.route || '(unmatched)'),
        ` ${num(r.durationMs)} ms of ${r.deadlineMs} ms, ${r.statusCode}${r.errorCode ? ` ${r.errorCode}` : ''} at ${time(r.at)}`,
        extra,
      ),
      el('p', { class: 'muted' }, `request ${r.requestId}`),
      waterfall(r),
    );
  }

  /** What failed inside a timed-out request: `query SELECT bots: DEPENDENCY_TIMEOUT, phase lock`. */
  function failureText(f) {
    if (!f) return null;
    const what = f.kind === 'db' ? 'query' : f.kind === 'external' ? 'call' : f.kind;
    return el(
      'span',
      { class: 'failure' },
      ` · failed in ${what} `,
      el('code', null, f.name),
      f.code ? `: ${f.code}` : '',
      f.phase ? el('span', { class: 'chip bad phase' }, `phase ${f.phase}`) : null,
    );
  }

  function renderRecent(d) {
    const label = WINDOW_LABELS[windowName] || windowName;
    const slowList = inWindow(d, d.slowRequests);
    document.getElementById('slow-title').textContent = `Recent slow requests (${label})`;
    const slow = document.getElementById('slow-requests');
    slow.replaceChildren(
      ...(slowList.length
        ? slowList.map((r) => requestItem(r, ''))
        : [el('p', { class: 'muted' }, 'No slow requests in this window.')]),
    );
    const list = inWindow(d, d.timeouts);
    const counted = timeoutsInWindow(d);
    document.getElementById('timeouts-title').textContent = `Recent timeouts (${label}): ${counted}`;
    const to = document.getElementById('timeouts');
    const items = list.map((r) =>
      requestItem(
        r,
        el(
          'span',
          { class: 'steps' },
          ` · last completed step: ${r.lastCompletedStep || '–'} · in flight: ${r.stepInFlight || '–'}`,
          failureText(r.failure),
        ),
      ),
    );
    // The list keeps the most recent few; the count covers the whole window.
    if (counted > list.length && list.length > 0) {
      items.push(el('p', { class: 'muted' }, `Showing the ${list.length} most recent of ${counted}.`));
    }
    to.replaceChildren(...(items.length ? items : [el('p', { class: 'muted' }, 'No timeouts in this window.')]));
  }

  /** Plans the pools captured for slow statements: the node that dominates, and an index to add. */
  function renderPlans(d) {
    const plans = [];
    for (const p of d.pools) {
      const recent = p.stats && Array.isArray(p.stats.plans?.recent) ? p.stats.plans.recent : [];
      for (const x of recent) plans.push(x);
    }
    plans.sort((a, b) => String(b.at).localeCompare(String(a.at)));
    const box = document.getElementById('slow-plans');
    if (plans.length === 0) {
      box.replaceChildren(el('p', { class: 'muted' }, 'No plan captured.'));
      return;
    }
    box.replaceChildren(
      ...plans.map((x) =>
        el(
          'div',
          { class: 'item' },
          el('strong', null, `${x.dominant.nodeType}${x.dominant.relation ? ` on ${x.dominant.relation}` : ''}`),
          ` · ${Math.round(x.dominant.costShare * 100)} % of the estimated cost, ~${int(x.dominant.planRows)} rows · run took ${int(x.durationMs)} ms at ${time(x.at)}`,
          el('code', { class: 'blocker-sql' }, x.fingerprint),
          x.suggestion ? el('p', { class: 'note' }, 'Consider: ', el('code', null, x.suggestion)) : null,
        ),
      ),
    );
  }

  /** Lock waits the pools captured from Postgres itself: the relation, and who held it. */
  function renderLocks(d) {
    const waits = [];
    for (const p of d.pools) {
      const recent = p.stats && Array.isArray(p.stats.lockWaits?.recent) ? p.stats.lockWaits.recent : [];
      for (const x of recent) waits.push({ pool: p.name, ...x });
    }
    waits.sort((a, b) => String(b.at).localeCompare(String(a.at)));
    const box = document.getElementById('lock-waits');
    if (waits.length === 0) {
      box.replaceChildren(el('p', { class: 'muted' }, 'No lock waits captured.'));
      return;
    }
    box.replaceChildren(
      ...waits.map((x) =>
        el(
          'div',
          { class: 'item' },
          el('strong', null, x.relation || 'a lock'),
          ` waited on by ${x.route || 'a query'} (${x.pool}, pid ${x.pid}) at ${time(x.at)}`,
          el(
            'ul',
            null,
            (x.blockers || []).map((b) =>
              el(
                'li',
                null,
                `blocked by pid ${b.pid}`,
                b.route ? ` (${b.route})` : b.applicationName ? ` (${b.applicationName})` : '',
                ': ',
                el('span', { class: b.state === 'idle in transaction' ? 'bad-text' : '' }, b.state || '–'),
                typeof b.xactAgeMs === 'number' ? `, transaction open ${age(b.xactAgeMs)}` : '',
                b.query ? el('code', { class: 'blocker-sql' }, b.query) : null,
              ),
            ),
          ),
        ),
      ),
    );
  }

  function render(d) {
    errorStatuses = d.errorStatuses || {};
    document.getElementById('service-name').textContent = d.service.name;
    document.title = `${d.service.name} · System status`;
    document.getElementById('service-meta').textContent =
      `pid ${d.service.pid} · Node ${d.service.node} · up ${age(d.service.uptimeSec * 1000)} · data of ${time(d.service.now)}${d.service.tracing ? ' · tracing on' : ''}`;
    renderCauses(d);
    renderCards(d);
    renderWarnings(d);
    renderCluster(d);
    renderEndpoints(d);
    renderPostgres(d);
    renderPools(d);
    renderLocks(d);
    renderPlans(d);
    renderDependencies(d);
    renderLoop(d);
    renderJobs(d);
    renderOverload(d);
    renderRecent(d);
    document.getElementById('settings').textContent = JSON.stringify(d.settings, null, 2);
  }

  function showBanner(reason) {
    const banner = document.getElementById('stale-banner');
    failingSince = failingSince || new Date();
    banner.textContent = `The service is not answering (${reason}) since ${failingSince.toLocaleTimeString()}. ${
      lastOkAt ? `Showing the last data, from ${lastOkAt.toLocaleTimeString()}.` : 'No data yet.'
    }`;
    banner.hidden = false;
    body.classList.add('stale');
  }

  function hideBanner() {
    failingSince = null;
    document.getElementById('stale-banner').hidden = true;
    body.classList.remove('stale');
  }

  async function poll() {
    try {
      const res = await fetch(jsonUrl, {
        credentials: 'same-origin',
        cache: 'no-store',
        signal: AbortSignal.timeout(requestTimeoutMs),
      });
      if (res.status === 401) {
        showBanner('the session has expired: reload the page to sign in again');
        return;
      }
      if (!res.ok) {
        showBanner(`HTTP ${res.status}`);
        return;
      }
      last = await res.json();
      lastOkAt = new Date();
      hideBanner();
      render(last);
    } catch (err) {
      showBanner(err && err.name === 'TimeoutError' ? 'no answer in time' : 'connection failed');
    } finally {
      setTimeout(poll, refreshMs);
    }
  }

  for (const b of document.querySelectorAll('#window-picker button')) {
    b.addEventListener('click', () => {
      windowName = b.dataset.window;
      for (const o of document.querySelectorAll('#window-picker button'))
        o.setAttribute('aria-pressed', String(o === b));
      if (last) render(last);
    });
  }

  poll();
})();
