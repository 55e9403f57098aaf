// The alerts page: firing and past alerts, ack, silences.
'use strict';
(() => {
  const { T, el, api, postJSON, dateTime, hms, labelsText, C } = window.cockpit;
  const errBox = document.getElementById('error');
  const who = document.getElementById('who');
  who.value = localStorage.getItem('cockpit.name') || '';
  who.addEventListener('change', () => localStorage.setItem('cockpit.name', who.value.trim()));
  const showError = (e) => { errBox.hidden = !e; errBox.textContent = e ? T('error') + ': ' + e.message : ''; delete errBox.dataset.read; };

  const num = (v) => (typeof v === 'number' ? +v.toFixed(3) : '');
  // fill replaces a table's rows; an empty table says so.
  function fill(id, rows) {
    const tbody = document.querySelector('#' + id + ' tbody');
    const cols = document.querySelectorAll('#' + id + ' thead th').length;
    tbody.replaceChildren(...(rows.length ? rows : [el('tr', { class: 'empty' }, el('td', { colspan: cols }, T('none')))]));
  }

  // unknown says, in place of a table's rows, that they could not be read:
  // an empty table would read as "none".
  function unknown(id, text) {
    const tbody = document.querySelector('#' + id + ' tbody');
    const cols = document.querySelectorAll('#' + id + ' thead th').length;
    tbody.replaceChildren(el('tr', { class: 'unknown' }, el('td', { colspan: cols }, text)));
  }
  // When each list was last read.
  let firingAt = null;
  let pastAt = null;
  const since = (key, keyNow, at) => (at ? T(key).replace('%s', hms(at)) : T(keyNow));

  // qualityLink opens the drill-down around the alert: its labels, 30 min before it started.
  function qualityLink(a) {
    const p = new URLSearchParams({ lang: C.lang, alert: a.id });
    for (const [k, v] of Object.entries(a.labels || {})) {
      if (['region', 'queue', 'channel', 'business_line', 'agent'].includes(k)) p.set(k, v);
    }
    const start = new Date(a.started_at || a.active_at || Date.now());
    p.set('from', new Date(start.getTime() - 30 * 60000).toISOString());
    p.set('to', new Date(a.resolved_at ? new Date(a.resolved_at) : Date.now()).toISOString());
    return '/quality?' + p;
  }

  function cells(a) {
    return [el('td', { class: 'sev sev-' + a.severity }, T('sev.' + a.severity)), el('td', {}, a.rule),
      el('td', {}, labelsText(a.labels)), el('td', { class: 'num' }, num(a.value) + ' / ' + num(a.expected)),
      el('td', {}, a.explanation || a.summary || ''), el('td', {}, dateTime(a.started_at || a.active_at))];
  }

  async function ack(a, btn) {
    const by = who.value.trim();
    if (!by) { showError(new Error(T('ack_by_required'))); who.focus(); return; }
    btn.disabled = true;
    try { await postJSON('/alerts/' + encodeURIComponent(a.id) + '/ack', 'POST', { by, note: '' }); showError(null); load(); } catch (e) { showError(e); btn.disabled = false; }
  }

  async function load() {
    try {
      const at = new Date();
      const firing = await api('/alerts?state=firing');
      // An error shown for an earlier failed read is over.
      if (errBox.dataset.read) showError(null);
      firingAt = at;
      fill('firing', (firing.alerts || []).map((a) => {
        const btn = el('button', { type: 'button' }, T('ack'));
        btn.addEventListener('click', () => ack(a, btn));
        return el('tr', {}, ...cells(a),
          el('td', {}, a.acked_by ? T('acked') + ': ' + a.acked_by + ' ' + dateTime(a.acked_at) : btn),
          el('td', {}, el('a', { href: qualityLink(a) }, T('drill'))));
      }));
    } catch (e) {
      showError(e);
      errBox.dataset.read = '1';
      unknown('firing', since('alerts_unknown', 'unknown_alerts', firingAt));
    }
    try {
      const at = new Date();
      const from = new Date(Date.now() - 7 * 86400 * 1000).toISOString();
      const past = await api('/alerts?state=resolved&from=' + encodeURIComponent(from));
      fill('past', (past.alerts || []).map((a) => el('tr', {}, ...cells(a),
        el('td', {}, dateTime(a.resolved_at)), el('td', {}, a.acked_by || ''))));
      pastAt = at;
    } catch (e) {
      showError(e);
      unknown('past', since('unknown_since', 'unknown', pastAt));
    }
    try {
      const body = await api('/silences');
      const now = Date.now();
      fill('silences', (body.silences || []).map((s) => {
        const active = new Date(s.ends_at).getTime() > now && new Date(s.starts_at).getTime() <= now;
        const btn = active ? el('button', { type: 'button' }, T('expire')) : null;
        if (btn) btn.addEventListener('click', async () => {
          btn.disabled = true;
          try { await postJSON('/silences/' + encodeURIComponent(s.id), 'DELETE'); load(); } catch (e) { showError(e); btn.disabled = false; }
        });
        const m = (s.matchers || []).map((x) => x.name + x.op + JSON.stringify(x.value)).join(', ');
        return el('tr', {}, el('td', { class: 'mono' }, m), el('td', {}, dateTime(s.ends_at)), el('td', {}, s.created_by),
          el('td', {}, s.comment), el('td', {}, active ? T('active_silence') : T('expired')), el('td', {}, btn));
      }));
    } catch (e) { showError(e); }
  }

  const durations = { '1h': 1, '2h': 2, '4h': 4, '12h': 12, '24h': 24 };
  document.getElementById('silence-form').addEventListener('submit', async (e) => {
    e.preventDefault();
    const f = e.target;
    const matchers = f.matchers.value.split('\n').map((s) => s.trim()).filter(Boolean);
    if (matchers.length === 0) { showError(new Error(T('matchers_missing'))); return; }
    const ends = new Date(Date.now() + (durations[f.duration.value] || 2) * 3600 * 1000);
    try {
      await postJSON('/silences', 'POST', { matchers, ends_at: ends.toISOString(), created_by: who.value.trim(), comment: f.comment.value });
      f.reset(); showError(null); load();
    } catch (err) { showError(err); }
  });

  load();
  setInterval(load, 30 * 1000);
})();
