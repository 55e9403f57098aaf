// The wall: tiles, charts and the alert banner, all fed by the SSE stream
// (`kpi` every second, `wall` every few seconds, `alert` on changes), so a
// thousand walls cost the store what one does.
//
// Every panel shows how old its data is and turns stale on its own; a
// panel the server could not read shows "unknown since …" in grey and
// amber, and the banner never says "no firing alerts" unless a fresh read
// of the firing list said so.
'use strict';
(() => {
  const { C, T, el, signIn, hms, fmt, metricLabel, labelsText, charts } = window.cockpit;
  const STALE_MS = 5000;
  // Ages are measured on the server's clock: the display's may be off.
  // C.now is when the server wrote the page, which is about when its
  // first byte arrived (not when this script ran, seconds later on a
  // slow display).
  const nav = performance.getEntriesByType ? performance.getEntriesByType('navigation')[0] : null;
  const received = nav && nav.responseStart > 0 ? performance.timeOrigin + nav.responseStart : Date.now();
  const skew = C.now ? Date.parse(C.now) - received : 0;
  const serverNow = () => Date.now() + skew;
  const tpl = (key, t) => T(key).replace('%s', hms(t));

  const asof = document.getElementById('asof');
  const conn = document.getElementById('conn');

  // The last state the server sent for each panel (ok, as_of,
  // unknown_since, stale_after_seconds); null until one came.
  const state = { tiles: null, trends: null, regions: null, firing: null };

  // freshness is 'fresh', 'stale' (read, but too long ago) or 'unknown'
  // (the last read failed, or nothing was read yet).
  function freshness(st) {
    if (!st || !st.ok || !st.as_of) return 'unknown';
    return serverNow() - Date.parse(st.as_of) > staleMs(st) ? 'stale' : 'fresh';
  }

  // staleMs is how old a panel's data may grow before it is stale.
  function staleMs(st) {
    return st.stale_after_seconds ? st.stale_after_seconds * 1000 : STALE_MS;
  }

  // stamp writes a panel's freshness into its marker.
  function stamp(node, st, label) {
    const f = freshness(st);
    node.dataset.fresh = f;
    node.classList.toggle('stale', f === 'stale');
    node.classList.toggle('unknown', f === 'unknown');
    if (f === 'unknown') {
      const since = st && (st.unknown_since || st.as_of);
      node.textContent = since ? tpl('unknown_since', new Date(since)) : T('unknown');
    } else {
      node.textContent = (label ? label + ' ' : '') + hms(new Date(st.as_of));
    }
    node.title = f === 'stale' ? T('stale') : '';
    return f;
  }

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

  // The tiles show the last snapshot read; coloured by the rules only
  // while it is fresh, grey while it is stale (read, complete, but old).
  // They show no number while their state is unknown, or while the ingest
  // is catching up: a snapshot read then counts only what was stored, and
  // a start-up's "0 complaints" before its backlog is stored is not a
  // number the wall knows.
  let snapshot = null;
  // catchingUp says whether the ingest is further behind its events than
  // the tiles may be old (a start-up backfill, an outage's catch-up).
  function catchingUp() {
    const t = state.tiles;
    return !!t && t.ingest_behind_seconds * 1000 > staleMs(t);
  }

  function renderTiles() {
    const f = stamp(asof, state.tiles, T('asof'));
    // Stale because the ingest is working through a backlog: say so, and
    // how far behind.
    if (f === 'stale' && catchingUp()) {
      // In minutes past two: a start-up's history is an hour or more.
      const s = state.tiles.ingest_behind_seconds;
      asof.textContent += ' · ' + (s < 120 ? T('catching_up').replace('%s', Math.round(s))
        : T('catching_up_min').replace('%s', Math.round(s / 60)));
      asof.dataset.catchingUp = 'true';
    } else {
      delete asof.dataset.catchingUp;
    }
    // A snapshot read before its window was stored is part of a count,
    // whatever its age now.
    const partial = !!state.tiles && !!state.tiles.partial;
    const known = !partial && (f === 'fresh' || (f === 'stale' && !catchingUp()));
    for (const t of C.tiles) {
      const node = document.getElementById(t.id);
      if (!node) continue;
      const v = snapshot && known ? tileValue(snapshot, t) : null;
      node.querySelector('.tile-value').textContent = fmt(v, t.format);
      node.dataset.state = f === 'fresh' ? colour(v, t.threshold) : f;
    }
  }

  function onKPI(frame) {
    state.tiles = frame;
    // A frame without `to` carries no snapshot: nothing was read yet.
    if (frame.to) snapshot = frame;
    renderTiles();
  }

  // Firing alerts, by id; the banner shows the most severe first.
  const firing = new Map();
  const rank = { critical: 3, warning: 2, info: 1 };
  let bannerKey = '';
  function renderBanner() {
    const banner = document.getElementById('banner');
    const st = state.firing;
    let f = freshness(st);
    // While the ingest works through a backlog the rules judge windows
    // whose newest events are not stored yet: no all-clear from them.
    if (f === 'fresh' && catchingUp()) f = 'stale';
    const list = [...firing.values()].sort((a, b) => (rank[b.severity] || 0) - (rank[a.severity] || 0));
    // Re-rendered every second for its age; the DOM only when it changed.
    const key = JSON.stringify([f, st && st.unknown_since, st && st.as_of, list.map((a) => a.id)]);
    if (key === bannerKey) return;
    bannerKey = key;
    banner.replaceChildren();
    if (f !== 'fresh') {
      // Not read, or read too long ago: what is firing now is not known.
      const since = st && (f === 'stale' ? st.as_of : st.unknown_since || st.as_of);
      banner.className = 'banner unknown';
      banner.append(el('span', { id: 'banner-text' }, since ? tpl('alerts_unknown', new Date(since)) : T('unknown_alerts')));
      if (list.length) banner.append(el('span', { class: 'banner-known' }, T('last_known')));
    } else if (list.length === 0) {
      banner.className = 'banner ok';
      banner.append(el('span', { id: 'banner-text' }, T('no_alerts')));
    } else {
      banner.className = 'banner ' + (list[0].severity || 'info');
      banner.append(el('span', { class: 'banner-count' }, T('firing') + ' ' + list.length));
    }
    for (const a of list.slice(0, 4)) {
      banner.append(el('span', { class: 'alert-item sev-' + a.severity },
        el('b', {}, T('sev.' + a.severity)), ' ', a.summary || a.rule, ' ', labelsText(a.labels), ' — ', a.explanation || ''));
    }
    banner.append(el('span', { class: 'fresh ' + f, id: 'fresh-banner', 'data-fresh': f }, st && st.as_of ? hms(new Date(st.as_of)) : ''));
  }

  function onAlert(change) {
    const a = change.alert;
    if (change.to === 'firing') firing.set(a.id, a); else firing.delete(a.id);
    renderBanner();
  }

  const trendCharts = C.charts.filter((x) => x.series && x.series.length);
  const regionChart = 'wall-complaints-region';
  // renderCharts stamps each chart with the age of its data and greys out
  // what is not fresh.
  function renderCharts() {
    for (const c of C.charts) {
      const node = document.getElementById('fresh-' + c.id);
      if (!node) continue;
      const f = stamp(node, c.id === regionChart ? state.regions : state.trends, '');
      document.getElementById(c.id).dataset.fresh = f;
    }
  }

  // The charts and the firing list come with the stream's `wall` event,
  // computed once on the server for every viewer. A part that could not
  // be read carries its last good data, or none.
  function onPanel(p) {
    state.trends = p.trends || null;
    state.regions = p.regions || null;
    state.firing = p.firing || null;
    if (p.trends && p.trends.series) {
      for (const c of trendCharts) {
        const pct = c.id === 'wall-trend-rates';
        charts[c.id].setOption({
          series: c.series.map((m) => ({ data: (p.trends.series[m] || []).map(([t, v]) => [t * 1000, v === null ? null : pct ? +(v * 100).toFixed(2) : v]) })),
        });
      }
    }
    if (p.regions && p.regions.rows) {
      charts[regionChart].setOption({
        yAxis: [{ data: p.regions.rows.map((r) => r.key), axisLabel: { width: 96, overflow: 'truncate', fontSize: 16 } }],
        series: [{ name: metricLabel('complaints'), data: p.regions.rows.map((r) => r.complaints) }],
      });
    }
    if (p.firing && p.firing.alerts) {
      firing.clear();
      for (const a of p.firing.alerts) firing.set(a.id, a);
    }
    renderCharts();
    renderBanner();
  }

  // Ages grow without any frame: every panel is judged again each second.
  setInterval(() => { renderTiles(); renderCharts(); renderBanner(); }, 1000);
  renderTiles();
  renderCharts();
  renderBanner();

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
    es.addEventListener('kpi', (e) => { try { onKPI(JSON.parse(e.data)); } catch (err) { /* skip a bad frame */ } });
    es.addEventListener('alert', (e) => { try { onAlert(JSON.parse(e.data)); } catch (err) { /* skip */ } });
    es.addEventListener('wall', (e) => { try { onPanel(JSON.parse(e.data)); } catch (err) { /* skip a bad frame */ } });
    window.cockpitStream = es;
  }
  connect();
})();
