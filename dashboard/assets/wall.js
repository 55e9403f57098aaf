// The wall: tiles and charts fed by the SSE stream and the REST API.
'use strict';
(() => {
  const { C, T, el, api, hms, fmt, metricLabel, labelsText, charts } = window.cockpit;
  const STALE_MS = 5000;
  let lastSnapshot = 0;

  const asof = document.getElementById('asof');
  const conn = document.getElementById('conn');

  function tileValue(snap, t) {
    const v = snap[t.metric];
    if (t.stat) return v ? v[t.stat] : null;
    return v;
  }

  function colour(v, th) {
    if (!th || v === null || v === undefined) return 'none';
    if (th.op === '>') return v > th.red ? 'red' : v >= th.amber ? 'amber' : 'green';
    return v < th.red ? 'red' : v <= th.amber ? 'amber' : 'green';
  }

  function applySnapshot(snap) {
    for (const t of C.tiles) {
      const node = document.getElementById(t.id);
      if (!node) continue;
      const v = tileValue(snap, t);
      node.querySelector('.tile-value').textContent = fmt(v, t.format);
      node.dataset.state = colour(v, t.threshold);
    }
    lastSnapshot = Date.now();
    // "as of" is the end of the snapshot's window: the time the numbers describe.
    const to = snap.to ? new Date(snap.to) : new Date();
    asof.textContent = T('asof') + ' ' + hms(to);
    checkStale();
  }

  function checkStale() {
    const stale = Date.now() - lastSnapshot > STALE_MS;
    asof.classList.toggle('stale', stale);
    asof.title = stale ? T('stale') : '';
  }
  setInterval(checkStale, 1000);

  // Firing alerts, by id; the banner shows the most severe first.
  const firing = new Map();
  const rank = { critical: 3, warning: 2, info: 1 };
  function renderBanner() {
    const banner = document.getElementById('banner');
    const list = [...firing.values()].sort((a, b) => (rank[b.severity] || 0) - (rank[a.severity] || 0));
    banner.replaceChildren();
    if (list.length === 0) {
      banner.className = 'banner ok';
      banner.append(el('span', { id: 'banner-text' }, T('no_alerts')));
      return;
    }
    banner.className = 'banner ' + (list[0].severity || 'info');
    banner.append(el('span', { class: 'banner-count' }, T('firing') + ' ' + list.length));
    for (const a of list.slice(0, 4)) {
      banner.append(el('span', { class: 'alert-item sev-' + a.severity },
        el('b', {}, T('sev.' + a.severity)), ' ', a.summary || a.rule, ' ', labelsText(a.labels), ' — ', a.explanation || ''));
    }
  }

  async function loadAlerts() {
    try {
      const body = await api('/alerts?state=firing');
      firing.clear();
      for (const a of body.alerts || []) firing.set(a.id, a);
      renderBanner();
    } catch (e) { /* the stream keeps the banner current; retried every minute */ }
  }

  function onAlert(change) {
    const a = change.alert;
    if (change.to === 'firing') firing.set(a.id, a); else firing.delete(a.id);
    renderBanner();
  }

  // Trends: one /timeseries call per metric over the last 60 minutes.
  async function loadTrend(id, pct) {
    const c = C.charts.find((x) => x.id === id);
    const to = new Date();
    const from = new Date(to.getTime() - 3600 * 1000);
    const series = await Promise.all(c.series.map(async (m) => {
      try {
        const q = new URLSearchParams({ metric: m, step: '60', from: from.toISOString(), to: to.toISOString() });
        const body = await api('/timeseries?' + q);
        const pts = (body.series && body.series[0] && body.series[0].points) || [];
        return { data: pts.map(([t, v]) => [t * 1000, v === null ? null : pct ? +(v * 100).toFixed(2) : v]) };
      } catch (e) { return { data: [] }; }
    }));
    charts[id].setOption({ series });
  }

  async function loadRegions() {
    const to = new Date();
    const from = new Date(to.getTime() - 3600 * 1000);
    try {
      const q = new URLSearchParams({ from: from.toISOString(), to: to.toISOString() });
      const body = await api('/kpis/by/region?' + q);
      const rows = (body.rows || []).filter((r) => r.complaints > 0)
        .sort((a, b) => b.complaints - a.complaints).slice(0, 12);
      charts['wall-complaints-region'].setOption({
        yAxis: [{ data: rows.map((r) => r.key), axisLabel: { width: 96, overflow: 'truncate', fontSize: 16 } }],
        series: [{ name: metricLabel('complaints'), data: rows.map((r) => r.complaints) }],
      });
    } catch (e) { /* retried on the next refresh */ }
  }

  function refresh() {
    loadTrend('wall-trend-times', false);
    loadTrend('wall-trend-rates', true);
    loadRegions();
    loadAlerts();
  }
  refresh();
  setInterval(refresh, 60 * 1000);

  // The first snapshot from the REST API, so the tiles fill before the stream's first tick.
  api('/kpis').then((s) => { if (!lastSnapshot) applySnapshot(s); }).catch(() => {});

  function connect() {
    const es = new EventSource(C.api + '/stream');
    es.onopen = () => { conn.textContent = T('live'); conn.className = 'conn live'; };
    es.onerror = () => {
      conn.textContent = T('reconnecting');
      conn.className = 'conn down';
      // EventSource retries by itself unless the server refused it outright.
      if (es.readyState === EventSource.CLOSED) { setTimeout(connect, 3000); }
    };
    es.addEventListener('kpi', (e) => { try { applySnapshot(JSON.parse(e.data)); } catch (err) { /* skip a bad frame */ } });
    es.addEventListener('alert', (e) => { try { onAlert(JSON.parse(e.data)); } catch (err) { /* skip */ } });
    window.cockpitStream = es;
  }
  connect();
})();
