// The wall: tiles, charts and the alert banner, all fed by the SSE stream
// (`kpi` every second, `wall` every few seconds, `alert` on changes), so a
// thousand walls cost the store what one does.
'use strict';
(() => {
  const { C, T, el, signIn, hms, fmt, metricLabel, labelsText, charts } = window.cockpit;
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
    // The rule's own comparison decides red; amber is the band before it.
    switch (th.op) {
      case '>': return v > th.red ? 'red' : v >= th.amber ? 'amber' : 'green';
      case '>=': return v >= th.red ? 'red' : v >= th.amber ? 'amber' : 'green';
      case '<': return v < th.red ? 'red' : v <= th.amber ? 'amber' : 'green';
      case '<=': return v <= th.red ? 'red' : v <= th.amber ? 'amber' : 'green';
      default: return 'none';
    }
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

  function onAlert(change) {
    const a = change.alert;
    if (change.to === 'firing') firing.set(a.id, a); else firing.delete(a.id);
    renderBanner();
  }

  // The charts and the firing list come with the stream's `wall` event,
  // computed once on the server for every viewer; a part left out (null)
  // keeps what is shown.
  function onPanel(p) {
    if (p.trends) {
      for (const c of C.charts.filter((x) => x.series && x.series.length)) {
        const pct = c.id === 'wall-trend-rates';
        charts[c.id].setOption({
          series: c.series.map((m) => ({ data: (p.trends[m] || []).map(([t, v]) => [t * 1000, v === null ? null : pct ? +(v * 100).toFixed(2) : v]) })),
        });
      }
    }
    if (p.regions) {
      charts['wall-complaints-region'].setOption({
        yAxis: [{ data: p.regions.map((r) => r.key), axisLabel: { width: 96, overflow: 'truncate', fontSize: 16 } }],
        series: [{ name: metricLabel('complaints'), data: p.regions.map((r) => r.complaints) }],
      });
    }
    if (p.firing) {
      firing.clear();
      for (const a of p.firing) firing.set(a.id, a);
      renderBanner();
    }
  }

  function connect() {
    const es = new EventSource(C.api + '/stream');
    es.onopen = () => { conn.textContent = T('live'); conn.className = 'conn live'; };
    es.onerror = () => {
      conn.textContent = T('reconnecting');
      conn.className = 'conn down';
      // EventSource retries by itself unless the server refused it
      // outright; then a missing session means signing in, anything else
      // a new try.
      if (es.readyState === EventSource.CLOSED) {
        fetch(C.api + '/session', { credentials: 'same-origin' })
          .then((r) => { if (r.status === 401) signIn(); else setTimeout(connect, 3000); })
          .catch(() => setTimeout(connect, 3000));
      }
    };
    es.addEventListener('kpi', (e) => { try { applySnapshot(JSON.parse(e.data)); } catch (err) { /* skip a bad frame */ } });
    es.addEventListener('alert', (e) => { try { onAlert(JSON.parse(e.data)); } catch (err) { /* skip */ } });
    es.addEventListener('wall', (e) => { try { onPanel(JSON.parse(e.data)); } catch (err) { /* skip a bad frame */ } });
    window.cockpitStream = es;
  }
  connect();
})();
