// Shared helpers of the cockpit pages. Data is never parsed as markup: every
// value goes into the DOM through textContent or attributes.
'use strict';

const C = JSON.parse(document.getElementById('cockpit-config').textContent);
const T = (k) => C.text[k] || k;

// el builds an element; text is set with textContent.
function el(tag, attrs, ...children) {
  const e = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs || {})) {
    if (v === undefined || v === null || v === false) continue;
    if (k === 'class') e.className = v;
    else if (k.startsWith('on')) e.addEventListener(k.slice(2), v);
    else e.setAttribute(k, v);
  }
  for (const c of children) {
    if (c === undefined || c === null) continue;
    e.append(c instanceof Node ? c : document.createTextNode(String(c)));
  }
  return e;
}

// signIn sends the browser to the sign-in page, to come back here.
function signIn() {
  if (C.page === 'login') return;
  location.assign('/login?lang=' + encodeURIComponent(C.lang) + '&next=' + encodeURIComponent(location.pathname + location.search));
}

// api fetches a JSON endpoint of the REST API; errors carry the API's
// message. Without a valid session the page goes to sign in.
async function api(path, opts) {
  const res = await fetch(C.api + path, Object.assign({ headers: { Accept: 'application/json' }, credentials: 'same-origin' }, opts));
  const body = await res.json().catch(() => ({}));
  if (res.status === 401 && path !== '/session') { signIn(); }
  if (!res.ok) {
    const msg = (body.error && body.error.message) || res.status + ' ' + res.statusText;
    throw new Error(msg);
  }
  return body;
}

function postJSON(path, method, data) {
  return api(path, { method, headers: { 'Content-Type': 'application/json', Accept: 'application/json' }, body: JSON.stringify(data) });
}

const pad = (n) => String(n).padStart(2, '0');
function hms(d) { return pad(d.getHours()) + ':' + pad(d.getMinutes()) + ':' + pad(d.getSeconds()); }
function dateTime(s) {
  if (!s) return '';
  const d = new Date(s);
  return d.getFullYear() + '-' + pad(d.getMonth() + 1) + '-' + pad(d.getDate()) + ' ' + hms(d);
}

function metricLabel(name) {
  const m = C.metrics.find((x) => x.name === name);
  return m ? m.label : name;
}

// fmt shows a metric value: seconds, percent, score or a whole number.
function fmt(v, format) {
  if (v === null || v === undefined || Number.isNaN(v)) return '—';
  switch (format) {
    case 's': return v.toFixed(1) + ' s';
    case 'pct': return (v * 100).toFixed(1) + '%';
    case 'score': return v.toFixed(2);
    default: return Math.round(v).toLocaleString();
  }
}

function labelsText(labels) {
  return Object.entries(labels || {}).map(([k, v]) => k + '=' + v).join(', ');
}

// charts are initialised from the options go-echarts built on the server.
const charts = {};
for (const c of C.charts) {
  const node = document.getElementById(c.id);
  if (!node || typeof echarts === 'undefined') continue;
  const chart = echarts.init(node, c.theme || null);
  chart.setOption(c.option);
  charts[c.id] = chart;
}
window.addEventListener('resize', () => Object.values(charts).forEach((c) => c.resize()));

// The language switch keeps the page's other query parameters.
for (const a of document.querySelectorAll('a.lang')) {
  const u = new URL(location.href);
  u.searchParams.set('lang', a.dataset.lang);
  a.href = u.pathname + u.search;
}

window.cockpit = { C, T, el, api, postJSON, signIn, hms, dateTime, fmt, metricLabel, labelsText, charts };
