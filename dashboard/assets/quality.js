// The quality page: filters → breakdown chart and table → conversations → timeline.
'use strict';
(() => {
  const { C, T, el, api, dateTime, fmt, metricLabel, charts } = window.cockpit;
  const form = document.getElementById('filters');
  const errBox = document.getElementById('error');
  const FILTERS = ['region', 'queue', 'channel', 'business_line', 'agent'];
  const COLUMNS = [
    ['conversations_started', 'int'], ['resolution_rate', 'pct'], ['transfer_rate', 'pct'], ['abandon_rate', 'pct'],
    ['first_response_seconds.p90', 's'], ['human_wait_seconds.p90', 's'], ['service_level', 'pct'],
    ['complaints', 'int'], ['csat_avg', 'score'],
  ];
  const chart = charts['quality-breakdown'];
  let rows = [];
  let convQuery = null;

  const showError = (e) => { errBox.hidden = !e; errBox.textContent = e ? T('error') + ': ' + e.message : ''; };

  const metricSelect = document.getElementById('metric-select');
  for (const [name] of COLUMNS) metricSelect.append(el('option', { value: name }, label(name)));

  function label(col) {
    const [name, stat] = col.split('.');
    return metricLabel(name) + (stat ? ' ' + stat : '');
  }
  function value(row, col) {
    const [name, stat] = col.split('.');
    return stat ? (row[name] ? row[name][stat] : null) : row[name];
  }

  // datetime-local inputs hold local time; the API takes RFC 3339.
  const toLocalInput = (d) => new Date(d.getTime() - d.getTimezoneOffset() * 60000).toISOString().slice(0, 19);
  const fromLocalInput = (s) => (s ? new Date(s).toISOString() : '');

  // Start from the page's query (alert links pass region, from, to, alert).
  const q = C.query || {};
  const now = new Date();
  form.from.value = toLocalInput(q.from ? new Date(q.from) : new Date(now.getTime() - 3600 * 1000));
  form.to.value = toLocalInput(q.to ? new Date(q.to) : now);
  for (const f of FILTERS) form[f].value = q[f] || '';
  if (q.dimension) form.dimension.value = q.dimension;
  metricSelect.value = q.metric && COLUMNS.some(([c]) => c === q.metric) ? q.metric : 'conversations_started';
  if (q.alert) {
    document.getElementById('from-alert').hidden = false;
    document.getElementById('alert-id').textContent = q.alert;
  }

  function params() {
    const p = new URLSearchParams();
    const from = fromLocalInput(form.from.value); const to = fromLocalInput(form.to.value);
    if (from) p.set('from', from);
    if (to) p.set('to', to);
    for (const f of FILTERS) if (form[f].value.trim()) p.set(f, form[f].value.trim());
    return p;
  }

  async function load() {
    showError(null);
    const p = params();
    document.getElementById('export').href = C.api + '/export.csv?' + p;
    const dim = form.dimension.value;
    const metric = metricSelect.value;
    const fmtOf = COLUMNS.find(([c]) => c === metric)[1];
    // Keep the address shareable.
    const page = new URLSearchParams(p);
    page.set('dimension', dim); page.set('metric', metric); page.set('lang', C.lang);
    if (q.alert) page.set('alert', q.alert);
    const open = new URLSearchParams(location.search).get('conversation');
    if (open) page.set('conversation', open);
    history.replaceState(null, '', '?' + page);
    try {
      const body = await api('/kpis/by/' + encodeURIComponent(dim) + '?' + p);
      rows = (body.rows || []).slice().sort((a, b) => (value(b, metric) || 0) - (value(a, metric) || 0));
    } catch (e) { showError(e); rows = []; }
    const scale = fmtOf === 'pct' ? 100 : 1;
    chart.setOption({
      title: [{ text: T('breakdown') + ' · ' + label(metric) + (fmtOf === 'pct' ? ' (%)' : '') }],
      xAxis: [{ data: rows.map((r) => r.key), axisLabel: { width: 90, overflow: 'truncate' } }],
      series: [{ name: label(metric), data: rows.map((r) => { const v = value(r, metric); return v === null || v === undefined ? null : +(v * scale).toFixed(2); }) }],
    });
    renderTable(dim);
    if (form[dim] && form[dim].value) loadConversations(new URLSearchParams(p), true);
  }

  function renderTable(dim) {
    const table = document.getElementById('breakdown-table');
    table.tHead.replaceChildren(el('tr', {}, el('th', {}, T(dim)), ...COLUMNS.map(([c]) => el('th', {}, label(c)))));
    table.tBodies[0].replaceChildren(...rows.map((r) => el('tr', { class: 'clickable', onclick: () => drill(dim, r.key) },
      el('td', {}, r.key), ...COLUMNS.map(([c, f]) => el('td', { class: 'num' }, fmt(value(r, c), f))))));
    if (rows.length === 0) table.tBodies[0].append(el('tr', {}, el('td', { colspan: COLUMNS.length + 1 }, T('no_data'))));
  }

  function drill(dim, key) {
    const p = params();
    p.set(dim, key);
    document.getElementById('conv-scope').textContent = '· ' + T(dim) + ' = ' + key;
    loadConversations(p, true);
  }

  async function loadConversations(p, fresh) {
    const tbody = document.querySelector('#conversations tbody');
    if (fresh) {
      tbody.replaceChildren(); convQuery = p;
      // The export is the list as shown: the drilled scope, every page.
      document.getElementById('export').href = C.api + '/export.csv?' + p;
    }
    const more = document.getElementById('more');
    try {
      const body = await api('/conversations?' + convQuery);
      for (const c of body.conversations || []) {
        const state = c.abandoned_at ? T('abandoned') : c.closed_at ? (c.resolved ? T('resolved') : T('closed')) : T('open');
        tbody.append(el('tr', { class: 'clickable', onclick: () => timeline(c.id) },
          el('td', { class: 'mono' }, c.id), el('td', {}, dateTime(c.started_at || c.first_event_at)), el('td', {}, c.region),
          el('td', {}, c.queue), el('td', {}, c.channel), el('td', {}, c.business_line), el('td', {}, (c.agents || []).join(', ')),
          el('td', {}, state + (c.transferred ? ' · ' + T('transferred') : ''))));
      }
      if (body.next_cursor) { convQuery.set('cursor', body.next_cursor); more.hidden = false; } else more.hidden = true;
    } catch (e) { showError(e); }
  }
  document.getElementById('more').addEventListener('click', () => loadConversations(convQuery, false));

  async function timeline(id) {
    const list = document.getElementById('timeline');
    // The address names the open conversation, so it can be shared.
    const u = new URL(location.href);
    u.searchParams.set('conversation', id);
    history.replaceState(null, '', u.pathname + u.search);
    document.getElementById('timeline-id').textContent = id;
    list.replaceChildren(el('li', {}, T('loading')));
    try {
      const body = await api('/conversations/' + encodeURIComponent(id));
      list.replaceChildren(...(body.events || []).map((ev) => {
        const who = ev.actor ? [ev.actor.role, ev.actor.id].filter(Boolean).join(' ') : '';
        const detail = [ev.text, ev.reason, ev.resolution, ev.category, ev.score !== undefined ? 'CSAT ' + ev.score : '',
          ev.sentiment !== undefined ? 'sentiment ' + ev.sentiment : ''].filter(Boolean).join(' · ');
        return el('li', {}, el('time', {}, dateTime(ev.occurred_at)), ' ', el('b', {}, ev.type), who ? ' (' + who + ')' : '',
          detail ? el('div', { class: 'detail' }, detail) : null);
      }));
    } catch (e) { list.replaceChildren(); showError(e); }
  }

  chart.on('click', (e) => drill(form.dimension.value, e.name));
  form.addEventListener('submit', (e) => { e.preventDefault(); load(); });
  load().then(() => { if (q.conversation) timeline(q.conversation); });
})();
