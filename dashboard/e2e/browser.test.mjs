// Browser tests of the cockpit pages against the real product, and the
// screenshots of `make screenshots`.
//
//   node browser.test.mjs                   # tests, then screenshots
//   node browser.test.mjs --screenshots-only
//
// It builds bin/cockpit, starts `cockpit store` (the embedded ClickHouse
// engine) and `cockpit serve` against the Kafka broker in
// COCKPIT_TEST_KAFKA (scripts/browser.sh and `make test` start one), fills
// the last hour with `cockpit simulate`, posts known events through POST
// /api/v1/events, and drives Debian's /usr/bin/chromium (CHROMIUM
// overrides it) through playwright-core. Every request goes through a TCP
// proxy, so a test can cut the network under the page. Screenshots go to
// <repo>/screenshots/.
import { mkdirSync, readFileSync } from 'node:fs';
import { createServer } from 'node:http';
import { join, dirname, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import assert from 'node:assert/strict';
import { chromium } from 'playwright-core';
import { build, workDir, startStore, startServe, run, Proxy, cleanup } from './stack.mjs';
import { HOSTILE, TEST_QUEUE, conversations, post, complaint } from './seed.mjs';

const here = dirname(fileURLToPath(import.meta.url));
const repo = resolve(here, '..', '..');
const shotsOnly = process.argv.includes('--screenshots-only');
const kafka = process.env.COCKPIT_TEST_KAFKA;
if (!kafka) {
  console.error('COCKPIT_TEST_KAFKA is not set: run `make test` or `make screenshots`, which start a Kafka broker, or start one with scripts/kafka.sh start.');
  process.exit(2);
}

const log = (...a) => console.log(new Date().toISOString().slice(11, 23), ...a);
const sleep = (ms) => new Promise((r) => setTimeout(r, ms));
// until polls fn until it returns true; fn may set note.last to say
// what it saw, for the message when time runs out.
async function until(what, timeoutMs, fn) {
  const deadline = Date.now() + timeoutMs;
  const note = {};
  for (;;) {
    try { if ((await fn(note)) === true) return; } catch (e) { note.last = e.message; }
    if (Date.now() > deadline) throw new Error(`${what}: not within ${timeoutMs} ms (last seen: ${JSON.stringify(note.last)})`);
    await sleep(250);
  }
}

const results = [];
async function check(name, fn) {
  const t0 = Date.now();
  try { await fn(); results.push([name, 'ok']); log(`ok   ${name} (${Date.now() - t0} ms)`); }
  catch (e) { results.push([name, 'FAIL']); log(`FAIL ${name}: ${e.stack || e.message}`); }
}

// storeFault puts a TCP proxy between `cockpit serve` and `cockpit store`
// and returns it with the store address to give serve: its cut() makes the
// store unreachable while the API stays up, restore() brings it back.
async function storeFault(storeURL) {
  const proxy = new Proxy(storeURL);
  const u = new URL(storeURL);
  u.host = new URL(await proxy.listen()).host;
  return { proxy, url: u.href.replace(/\/$/, '') };
}

// The product, started for this run.
const dir = workDir();
const procs = [];
let browser;
let failedSetup = null;
try {
  log('building bin/cockpit');
  const bin = build(repo, dir);
  const store = await startStore(bin, dir);
  procs.push(store);
  log('store at', store.url.replace(/:[^:@/]*@/, ':xxxxx@'));
  const runID = Date.now().toString(36);
  const topic = `e2e-browser-${runID}`;
  // The built-in rules plus one that fires on the seeded complaints from the
  // hostile region, so the banner, the alerts page and the drill-down link
  // have an alert whose labels are markup.
  const rules = readFileSync(join(repo, 'pipeline', 'rules', 'rules.default.yaml'), 'utf8') + `
  - name: e2e_region_complaints
    kind: threshold
    metric: complaints
    window: 15m
    by: region
    op: ">="
    value: 3
    severity: critical
    summary: Complaints from one region in the browser test.
`;
  const rulesFile = join(dir, 'rules.yaml');
  (await import('node:fs')).writeFileSync(rulesFile, rules);
  const storeLink = await storeFault(store.url);
  const serveYAML = `
clickhouse: {dsn: "${storeLink.url}", database: e2e_${runID}}
ingest: {brokers: ["${kafka}"], topic: ${topic}, group_id: g-${topic}, batch_interval: 100ms}
rules: {file: "${rulesFile}", tick: 1s}
`;
  const serve = await startServe(bin, dir, serveYAML);
  procs.push(serve);
  log('serve at', serve.url);
  const proxy = new Proxy(serve.url);
  const base = await proxy.listen();

  // The last hour: simulator history up to 16 minutes ago (the 15-minute
  // tiles then hold only the seeded events), fast-forwarded into the topic.
  const t0 = Date.now();
  const iso = (ms) => new Date(ms).toISOString();
  log('simulating history');
  const sim = await run(bin, ['simulate', '--brokers', kafka, '--topic', topic, '--from', iso(t0 - 60 * 60e3),
    '--to', iso(t0 - 16 * 60e3), '--rate', '4', '--seed', '7', '--faults', 'none']);
  const produced = Number((/fast-forward done\W+events=(\d+)/.exec(sim.tail(400)) || [])[1] || 0);
  assert.ok(produced > 1000, 'the simulator produced history:\n' + sim.tail());
  const seeded = conversations(t0);
  await post(base, seeded.events);
  log(`produced ${produced} history events and ${seeded.events.length} seeded events; waiting for ingest`);
  const metric = (text, name) => [...text.matchAll(new RegExp(`^${name}(?:\\{[^}]*\\})? (\\S+)$`, 'gm'))].reduce((s, m) => s + Number(m[1]), 0);
  await until('all events ingested', 120000, async () => {
    const m = await (await fetch(serve.url + '/metrics')).text();
    const consumed = metric(m, 'cockpit_ingest_consumed_total');
    return consumed >= produced + seeded.events.length && metric(m, 'cockpit_ingest_lag_records') === 0;
  });
  await until('the seeded alert fires', 60000, async () => {
    const body = await (await fetch(base + '/api/v1/alerts?state=firing')).json();
    return (body.alerts || []).some((a) => a.rule === 'e2e_region_complaints' && a.labels.region === HOSTILE);
  });
  log('stack ready at', base);

  browser = await chromium.launch({
    executablePath: process.env.CHROMIUM || '/usr/bin/chromium',
    headless: true,
    // playwright gives every launch a fresh, temporary user-data-dir.
    args: ['--headless', '--no-sandbox', '--disable-gpu', '--disable-background-networking', '--disable-component-update', '--disable-sync'],
  });
  const ctx = await browser.newContext({ viewport: { width: 1920, height: 1080 }, locale: 'zh-CN', acceptDownloads: true });
  // Fully offline: any request to another host fails the run.
  const foreign = [];
  await ctx.route('**/*', (route) => {
    const u = new URL(route.request().url());
    if (u.origin !== base) { foreign.push(u.href); return route.abort(); }
    return route.continue();
  });
  const dialogs = [];
  ctx.on('page', (p) => p.on('dialog', (d) => { dialogs.push(d.message()); d.dismiss(); }));
  const errors = [];
  const newPage = async () => { const p = await ctx.newPage(); p.on('pageerror', (e) => errors.push(e.message)); return p; };
  const getJSON = async (path) => { const r = await fetch(base + path); assert.equal(r.status, 200, path); return r.json(); };

  if (!shotsOnly) {
    const page = await newPage();
    await page.goto(base + '/wall', { waitUntil: 'load', timeout: 60000 });

    // Formatting as a reader expects it, written out here rather than taken
    // from the page's own code.
    const show = {
      s: (v) => (v == null ? '—' : v.toFixed(1) + ' s'),
      pct: (v) => (v == null ? '—' : (v * 100).toFixed(1) + '%'),
      score: (v) => (v == null ? '—' : v.toFixed(2)),
      int: (v) => (v == null ? '—' : Math.round(v).toLocaleString('zh-CN')),
    };
    const tiles = [['first_response_seconds', 'p90', 's'], ['human_wait_seconds', 'p90', 's'], ['service_level', '', 'pct'],
      ['resolution_rate', '', 'pct'], ['transfer_rate', '', 'pct'], ['abandon_rate', '', 'pct'], ['csat_avg', '', 'score'],
      ['complaints', '', 'int'], ['active_conversations', '', 'int'], ['waiting_for_human', '', 'int']];
    const wallText = () => page.evaluate((ids) => ids.map((id) => document.querySelector(`#tile-${id} .tile-value`).textContent.trim()), tiles.map(([m]) => m));

    await check('wall shows the numbers of /api/v1/kpis, coloured by the rules', async () => {
      // The numbers move as the window slides; they must agree at some tick.
      // The tiles are coloured only while their data is fresh.
      let got;
      await until('fresh tiles equal to the API', 15000, async (note) => {
        const k = await getJSON('/api/v1/kpis');
        const want = tiles.map(([m, stat, f]) => show[f](stat ? (k[m] ? k[m][stat] : null) : k[m]));
        got = await wallText();
        const fresh = await page.getAttribute('#asof', 'data-fresh');
        note.last = { want, got, fresh };
        return JSON.stringify(want) === JSON.stringify(got) && fresh === 'fresh';
      });
      // The seeded first replies came after 4 s and the waits were 90 s;
      // p90 comes from a histogram, within the SPEC's 1% of the exact
      // value (and the tile rounds to a tenth of a second).
      const nearSeconds = (text, want) => /^\d+\.\d s$/.test(text) && Math.abs(parseFloat(text) - want) <= want * 0.01 + 0.05;
      assert.ok(nearSeconds(got[0], 4), `first response tile ${got[0]}, want 4.0 s within 1%`);
      assert.ok(nearSeconds(got[1], 90), `human wait tile ${got[1]}, want 90.0 s within 1%`);
      // Rule first_response_slow: p90 > 30 → 4 s is green; human_wait_slow: p90 > 60 → 90 s is red.
      assert.equal(await page.getAttribute('#tile-first_response_seconds', 'data-state'), 'green');
      assert.equal(await page.getAttribute('#tile-human_wait_seconds', 'data-state'), 'red');
    });

    await check('an event produced now changes the complaints tile within 2 s, without a reload', async () => {
      await page.evaluate(() => { window.__marker = 1; });
      // Three events one after another; the median of their delays is held
      // to 2 s (one sample says more about the machine's load than about
      // the product), and every delay is logged.
      const delays = [];
      for (let i = 0; i < 3; i++) {
        const k = await getJSON('/api/v1/kpis');
        await page.waitForFunction((want) => document.querySelector('#tile-complaints .tile-value').textContent === want,
          show.int(k.complaints), { timeout: 15000, polling: 50 });
        // A region each, so no alert rule counts them together.
        await post(base, [complaint(Date.now(), ['北京', '天津', '南京'][i])]);
        const sent = Date.now();
        // For the log: when the API itself first counts it.
        const apiSeen = until('the API counts it', 10000, async () => (await getJSON('/api/v1/kpis')).complaints === k.complaints + 1)
          .then(() => Date.now() - sent, () => -1);
        await page.waitForFunction((want) => document.querySelector('#tile-complaints .tile-value').textContent === want,
          show.int(k.complaints + 1), { timeout: 15000, polling: 50 });
        delays.push(Date.now() - sent);
        log(`    event ${i + 1}: the tile changed ${delays[i]} ms after POST /api/v1/events returned; /api/v1/kpis counted it after ${await apiSeen} ms`);
      }
      const median = [...delays].sort((a, b) => a - b)[1];
      assert.ok(median <= 2000, `median ${median} ms from event to tile (${delays.join(', ')} ms), more than 2 s`);
      assert.equal(await page.evaluate(() => window.__marker), 1, 'the page reloaded');
    });

    await check('a cut network shows the stale marker and the page recovers on its own', async () => {
      await page.waitForSelector('#conn.live', { timeout: 5000 });
      proxy.cut();
      await page.waitForSelector('#conn.down', { timeout: 10000 });
      await page.waitForSelector('#asof.stale', { timeout: 10000 });
      await sleep(3000); // several reconnect attempts fail meanwhile
      proxy.restore();
      await page.waitForSelector('#conn.live', { timeout: 20000 });
      await page.waitForSelector('#asof:not(.stale)', { timeout: 20000 });
    });

    await check('the firing alert is in the banner, its markup inert', async () => {
      await page.waitForFunction((h) => document.getElementById('banner').textContent.includes(h), HOSTILE, { timeout: 10000 });
      assert.equal(await page.locator('#banner img').count(), 0);
      assert.match(await page.getAttribute('#banner', 'class'), /critical/);
    });

    await check('trend and region charts are drawn from the store', async () => {
      for (const id of ['wall-trend-times', 'wall-trend-rates', 'wall-complaints-region']) {
        await page.waitForFunction((i) => {
          const c = echarts.getInstanceByDom(document.getElementById(i));
          return c && c.getOption().series.some((s) => (s.data || []).filter((v) => v !== null).length > 0);
        }, id, { timeout: 10000 });
      }
      // The ranking holds regions the store knows, most complaints first.
      const [regions, counts] = await page.evaluate(() => {
        const o = echarts.getInstanceByDom(document.getElementById('wall-complaints-region')).getOption();
        return [o.yAxis[0].data, o.series[0].data];
      });
      const known = new Set((await getJSON(`/api/v1/kpis/by/region?from=${new Date(t0 - 2 * 3600e3).toISOString()}`)).rows.map((r) => r.key));
      assert.ok(regions.length > 0 && regions.every((r) => known.has(r)), `regions ${regions}`);
      assert.deepEqual([...counts].sort((x, y) => y - x), counts);
    });

    await check('the store fails: the wall says the alert state is unknown and every panel unknown, then all recovers', async () => {
      const HMS = '\\d\\d:\\d\\d:\\d\\d';
      const matches = (sel, re) => page.waitForFunction(([s, r]) => new RegExp(r).test(((document.querySelector(s) || {}).textContent || '').trim()), [sel, re], { timeout: 45000 });
      const charts = ['wall-trend-times', 'wall-trend-rates', 'wall-complaints-region'];
      // Before: the firing alert, from a fresh read.
      await page.waitForFunction(() => /critical/.test(document.getElementById('banner').className), null, { timeout: 20000 });
      storeLink.proxy.cut();
      try {
        // The banner: unknown since a time, in amber on grey; never the all-clear.
        await matches('#banner-text', `^告警状态未知（自 ${HMS} 起）$`);
        assert.equal(await page.getAttribute('#banner', 'class'), 'banner unknown');
        assert.ok(!(await page.textContent('#banner')).includes('当前无告警'));
        // Every panel on its own: tiles and each chart say unknown since a time.
        await matches('#asof', `^自 ${HMS} 起数据未知$`);
        for (const id of charts) await matches('#fresh-' + id, `^自 ${HMS} 起数据未知$`);
        const states = await page.$$eval('.tile', (ts) => ts.map((t) => t.dataset.state));
        assert.ok(states.every((x) => x === 'unknown'), `tile states ${states}`);
        // No tile keeps a number it no longer knows.
        const values = await page.$$eval('.tile .tile-value', (ts) => ts.map((t) => t.textContent.trim()));
        assert.ok(values.every((x) => x === '—'), `tile values while unknown: ${values}`);
        assert.deepEqual(await page.$$eval('.chart', (cs) => cs.map((c) => c.dataset.fresh)), charts.map(() => 'unknown'));
        // The API answers an error, not an empty list.
        const res = await fetch(base + '/api/v1/alerts?state=firing');
        const body = await res.text();
        assert.ok(res.status >= 500 && body.includes('"error"') && !body.includes('"alerts"'), `/api/v1/alerts: ${res.status} ${body}`);
        // A wall opened now starts in that state, in its language, and never
        // shows the all-clear on the way.
        for (const [path, re, clear] of [['/wall', `^告警状态未知（自 ${HMS} 起）$`, '当前无告警'], ['/wall?lang=en', `^Alert state unknown since ${HMS}$`, 'No firing alerts']]) {
          const p = await newPage();
          await p.addInitScript(() => {
            window.__banners = [];
            new MutationObserver(() => {
              const b = document.getElementById('banner');
              if (b && window.__banners[window.__banners.length - 1] !== b.textContent) window.__banners.push(b.textContent);
            }).observe(document, { subtree: true, childList: true, characterData: true });
          });
          await p.goto(base + path, { waitUntil: 'load', timeout: 60000 });
          await p.waitForFunction((r) => new RegExp(r).test(document.getElementById('banner-text').textContent), re, { timeout: 10000 });
          await p.waitForFunction(() => document.getElementById('asof').dataset.fresh === 'unknown', null, { timeout: 10000 });
          const seen = await p.evaluate(() => window.__banners);
          assert.ok(seen.length > 0 && !seen.some((t) => t.includes(clear)), `${path}: the banner showed ${JSON.stringify(seen)}`);
          assert.equal(await p.getAttribute('#banner', 'class'), 'banner unknown');
          if (path === '/wall') {
            mkdirSync(join(repo, 'screenshots'), { recursive: true });
            await p.screenshot({ path: join(repo, 'screenshots', 'wall-store-down.png') });
          }
          await p.close();
        }
        // The alerts page: the firing table says unknown, not "none".
        const al = await newPage();
        await al.goto(base + '/alerts?lang=en', { timeout: 60000 });
        await al.waitForSelector('#firing tbody tr.unknown', { timeout: 15000 });
        assert.match((await al.textContent('#firing tbody')).trim(), /^Alert state unknown/);
        assert.ok(await al.isVisible('#error'));
        await al.close();
      } finally {
        // The store is back (the checks after this one need it).
        storeLink.proxy.restore();
      }
      // The real state again, every stamp fresh.
      await page.waitForFunction((h) => {
        const b = document.getElementById('banner');
        return /critical/.test(b.className) && b.textContent.includes(h);
      }, HOSTILE, { timeout: 60000 });
      for (const id of charts) await page.waitForSelector(`#fresh-${id}[data-fresh="fresh"]`, { timeout: 30000 });
      await page.waitForFunction(() => document.getElementById('asof').dataset.fresh === 'fresh' &&
        [...document.querySelectorAll('.tile')].every((t) => !['unknown', 'stale'].includes(t.dataset.state)), null, { timeout: 30000 });
      const firing = await getJSON('/api/v1/alerts?state=firing');
      assert.ok(firing.alerts.some((a) => a.rule === 'e2e_region_complaints'));
    });

    const q = await newPage();
    await check('quality: a table row leads to its conversations, their timeline, and the CSV holds the same rows', async () => {
      const from = new Date(t0 - 12 * 60e3).toISOString();
      const to = new Date(t0 + 60e3).toISOString();
      await q.goto(`${base}/quality?lang=en&queue=${TEST_QUEUE}&dimension=region&from=${from}&to=${to}`, { timeout: 60000 });
      await q.waitForSelector('#breakdown-table tbody tr.clickable', { timeout: 10000 });
      const keys = await q.$$eval('#breakdown-table tbody tr.clickable td:first-child', (tds) => tds.map((t) => t.textContent));
      assert.deepEqual([...keys].sort(), ['上海', '广州', '成都', HOSTILE].sort());
      // Drill into 成都: the seeded conversations of that region, no others.
      const row = keys.indexOf('成都');
      await q.click(`#breakdown-table tbody tr.clickable >> nth=${row}`);
      const want = seeded.convs.filter((c) => c.region === '成都').map((c) => c.id).sort();
      await q.waitForFunction((n) => document.querySelectorAll('#conversations tbody tr').length === n, want.length, { timeout: 10000 });
      const shown = await q.$$eval('#conversations tbody tr', (trs) => trs.map((tr) => [...tr.cells].map((c) => c.textContent)));
      assert.deepEqual(shown.map((r) => r[0]).sort(), want);
      assert.ok(shown.every((r) => r[2] === '成都'));
      // The export link is the shown list: same ids, same regions.
      const href = await q.getAttribute('#export', 'href');
      const csv = await (await fetch(base + href)).text();
      const lines = csv.trim().split('\n').map((l) => l.split(','));
      assert.equal(lines[0][0], 'id');
      const col = (name) => lines[0].indexOf(name);
      assert.deepEqual(lines.slice(1).map((l) => l[0]).sort(), want);
      assert.ok(lines.slice(1).every((l) => l[col('region')] === '成都' && l[col('queue')] === TEST_QUEUE));
      // The timeline of the first conversation: its events in order.
      await q.click('#conversations tbody tr >> nth=0');
      const id = shown[0][0];
      await q.waitForFunction((i) => document.getElementById('timeline-id').textContent === i &&
        document.getElementById('timeline').textContent.includes('conversation.started'), id, { timeout: 10000 });
      const types = await q.$$eval('#timeline li b', (bs) => bs.map((b) => b.textContent));
      assert.equal(types[0], 'conversation.started');
      assert.ok(types.includes('message.sent'));
      // The address now names the conversation: opening it again shows the same timeline.
      assert.equal(new URL(q.url()).searchParams.get('conversation'), id);
      await q.goto(q.url(), { timeout: 60000 });
      await q.waitForFunction((i) => document.getElementById('timeline-id').textContent === i &&
        document.querySelectorAll('#timeline li b').length > 1, id, { timeout: 10000 });
      assert.deepEqual(await q.$$eval('#timeline li b', (bs) => bs.map((b) => b.textContent)), types);
    });

    await check('quality: markup in a region and a message renders as text', async () => {
      const from = new Date(t0 - 12 * 60e3).toISOString();
      await q.goto(`${base}/quality?lang=en&region=${encodeURIComponent(HOSTILE)}&dimension=region&from=${from}&alert=${encodeURIComponent(HOSTILE)}`, { timeout: 60000 });
      assert.equal(await q.inputValue('input[name=region]'), HOSTILE);
      assert.equal((await q.textContent('#alert-id')).trim(), HOSTILE);
      await q.waitForSelector('#conversations tbody tr', { timeout: 10000 });
      await q.click('#conversations tbody tr >> nth=0');
      await q.waitForFunction((h) => document.getElementById('timeline').textContent.includes(h), HOSTILE, { timeout: 10000 });
      assert.equal(await q.locator('main img').count(), 0);
    });

    const a = await newPage();
    await check('alerts: the firing alert with its explanation, ack by name', async () => {
      await a.goto(base + '/alerts?lang=en', { timeout: 60000 });
      await a.waitForFunction((h) => document.getElementById('firing').textContent.includes(h), HOSTILE, { timeout: 10000 });
      assert.equal(await a.locator('main img').count(), 0);
      const row = a.locator('#firing tbody tr', { hasText: 'e2e_region_complaints' });
      assert.match(await row.textContent(), /complaints/);
      await a.fill('#who', 'Li Lei');
      await row.locator('button').click();
      await a.waitForFunction(() => [...document.querySelectorAll('#firing tbody tr')].some((tr) => tr.textContent.includes('e2e_region_complaints') && tr.textContent.includes('Li Lei')), null, { timeout: 10000 });
      const body = await getJSON('/api/v1/alerts?state=firing');
      const acked = body.alerts.find((x) => x.rule === 'e2e_region_complaints');
      assert.equal(acked.acked_by, 'Li Lei');
    });

    await check('alerts: create a silence, then expire it', async () => {
      await a.fill('#silence-form textarea[name=matchers]', `rule="e2e_region_complaints"`);
      await a.fill('#silence-form [name=comment]', HOSTILE);
      await a.click('#silence-form button[type=submit]');
      const row = a.locator('#silences tbody tr', { hasText: 'e2e_region_complaints' });
      await row.locator('button').waitFor({ timeout: 10000 });
      assert.equal(await a.locator('main img').count(), 0);
      let s = (await getJSON('/api/v1/silences')).silences.find((x) => x.comment === HOSTILE);
      assert.ok(s && new Date(s.ends_at) > new Date(), 'the silence is active');
      await row.locator('button').click();
      await until('the silence expired', 10000, async () => {
        s = (await getJSON('/api/v1/silences')).silences.find((x) => x.comment === HOSTILE);
        return s && new Date(s.ends_at) <= new Date();
      });
      await a.waitForFunction(() => !document.querySelector('#silences tbody tr button'), null, { timeout: 10000 });
    });

    await check('with tokens configured, a page signs in once and keeps its role', async () => {
      // A second instance in the same consumer group, with tokens: what a
      // deployment beside the first one looks like.
      const viewer = 'wall-viewer-token-0123456789';
      const serve2 = await startServe(bin, dir, serveYAML, {
        COCKPIT_API_TOKENS: `wall:viewer:${viewer},boss:supervisor:boss-supervisor-token-0123`,
      }, 'cockpit.tokens.yaml');
      procs.push(serve2);
      const ctx2 = await browser.newContext({ viewport: { width: 1280, height: 800 }, locale: 'en-US' });
      try {
        const p = await ctx2.newPage();
        p.on('pageerror', (e) => errors.push(e.message));
        await p.goto(serve2.url + '/wall?lang=en', { timeout: 60000 });
        await p.waitForURL(/\/login\?/, { timeout: 15000 });
        assert.equal(new URL(p.url()).searchParams.get('next'), '/wall?lang=en');
        await p.fill('input[name=token]', 'not-a-valid-token-0000000');
        await p.click('#login-form button');
        await p.waitForSelector('#error:not([hidden])', { timeout: 10000 });
        assert.match(await p.textContent('#error'), /not valid/);
        await p.fill('input[name=token]', viewer);
        await p.click('#login-form button');
        await p.waitForURL(/\/wall\?lang=en$/, { timeout: 15000 });
        await p.waitForFunction(() => document.querySelector('#tile-complaints .tile-value').textContent !== '—', null, { timeout: 20000 });
        const cookies = await ctx2.cookies();
        const session = cookies.find((c) => c.name === 'cockpit_session');
        assert.ok(session && session.httpOnly && session.sameSite === 'Strict', JSON.stringify(cookies));
        // A viewer reads alerts but may not silence them.
        await p.goto(serve2.url + '/alerts?lang=en', { timeout: 60000 });
        await p.waitForFunction(() => document.querySelector('#firing').textContent.includes('e2e_region_complaints'), null, { timeout: 20000 });
        await p.fill('#who', 'Wall');
        await p.fill('#silence-form textarea[name=matchers]', 'rule="e2e_region_complaints"');
        await p.click('#silence-form button[type=submit]');
        await p.waitForSelector('#error:not([hidden])', { timeout: 10000 });
        assert.match(await p.textContent('#error'), /role viewer may not/);
        assert.equal((await getJSON('/api/v1/silences')).silences.filter((x) => x.created_by === 'Wall').length, 0);
      } finally {
        await ctx2.close();
      }
      // After sign-in the page returns only to a path of its own server:
      // /login?next=/%09/host used to send the browser to another host.
      const ctx3 = await browser.newContext({ viewport: { width: 1280, height: 800 }, locale: 'en-US' });
      try {
        const p = await ctx3.newPage();
        p.on('pageerror', (e) => errors.push(e.message));
        for (const next of ['/%09/evil.example/path', '/%0a/evil.example', '//evil.example', '/%5Cevil.example']) {
          await p.goto(serve2.url + '/login?lang=en&next=' + next, { timeout: 60000 });
          await p.fill('input[name=token]', viewer);
          await p.click('#login-form button');
          await p.waitForURL((u) => u.pathname === '/wall' || u.host !== new URL(serve2.url).host, { timeout: 15000 });
          assert.equal(new URL(p.url()).host, new URL(serve2.url).host, `next=${next} led to ${p.url()}`);
          // Leave the wall before signing out: its stream, refused, would
          // send it to the sign-in page in the middle of the next goto.
          await p.goto('about:blank');
          await ctx3.clearCookies();
        }
      } finally {
        await ctx3.close();
      }
    });

    await check('a page on another site cannot change anything, with no tokens configured', async () => {
      // The other site: a page on another port (another origin) that posts
      // a silence and an event to the cockpit, as a drive-by page would.
      const target = base;
      const evil = createServer((req, res) => {
        res.writeHead(200, { 'Content-Type': 'text/html' });
        res.end(`<!doctype html><form id=f method=POST action="${target}/api/v1/events" enctype="text/plain">
<input name='{"x":"' value='"}'></form><script>
fetch(${JSON.stringify(target + '/api/v1/silences')}, { method: 'POST', mode: 'no-cors', headers: { 'Content-Type': 'text/plain' },
  body: JSON.stringify({ matchers: ['rule=~".*"'], ends_at: '2099-01-01T00:00:00Z', created_by: 'drive-by' }) })
  .finally(() => { document.title = 'sent'; document.getElementById('f').submit(); });
</script>`);
      });
      await new Promise((r) => evil.listen(0, '127.0.0.1', r));
      const ctx4 = await browser.newContext();
      try {
        const p = await ctx4.newPage();
        const answers = [];
        p.on('response', (r) => { if (r.url().startsWith(target + '/api/')) answers.push(r.status()); });
        await p.goto(`http://127.0.0.1:${evil.address().port}/`, { timeout: 30000 });
        await p.waitForURL((u) => u.pathname === '/api/v1/events', { timeout: 15000 });
        assert.deepEqual(answers.filter((s) => s !== 403), [], 'answers to the other site: ' + answers);
        assert.equal((await getJSON('/api/v1/silences')).silences.filter((x) => x.created_by === 'drive-by').length, 0);
      } finally {
        await ctx4.close();
        evil.close();
      }
    });

    await check('no script errors, no dialogs, no foreign requests', async () => {
      assert.deepEqual(errors, []);
      assert.deepEqual(dialogs, []);
      assert.deepEqual(foreign, []);
    });
    await Promise.all([page.close(), q.close(), a.close()]);
  }

  // Screenshots at 1920×1080.
  const shots = join(repo, 'screenshots');
  mkdirSync(shots, { recursive: true });
  const from = new Date(t0 - 60 * 60e3).toISOString();
  for (const [name, path] of [['wall', '/wall'], ['wall-en', '/wall?lang=en'], ['quality', `/quality?dimension=region&from=${from}`], ['alerts', '/alerts']]) {
    const p = await newPage();
    await p.goto(base + path, { waitUntil: 'load', timeout: 60000 });
    await sleep(3000); // let the stream and the charts settle
    if (name === 'quality') {
      await p.click('#breakdown-table tbody tr.clickable >> nth=0').catch(() => {});
      await p.click('#conversations tbody tr >> nth=0', { timeout: 5000 }).catch(() => {});
      await sleep(1000);
    }
    await p.screenshot({ path: join(shots, name + '.png') });
    log('wrote', join('screenshots', name + '.png'));
    await p.close();
  }
  proxy.close();
} catch (e) {
  failedSetup = e;
  console.error('browser tests could not run:', e.stack || e.message);
  for (const p of procs) console.error(`--- ${p.name} log tail:\n${p.tail()}`);
} finally {
  if (browser) await browser.close();
  for (const p of procs.reverse()) await p.stop();
  cleanup(dir);
}
const failed = results.filter(([, r]) => r !== 'ok').length;
log(`${results.length - failed} passed, ${failed} failed`);
if (failed) for (const p of procs) console.error(`--- ${p.name} log tail:\n${p.tail(20)}`);
process.exit(failed || failedSetup ? 1 : 0);
