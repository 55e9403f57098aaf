// Browser tests of the cockpit pages, and their screenshots.
//
//   apt-get install -y chromium fonts-noto-cjk
//   cd dashboard/e2e && npm install --no-audit --no-fund
//   node wall.test.mjs                  # tests, then screenshots
//   node wall.test.mjs --screenshots-only
//
// It builds and starts dashboard/e2e/fakeapi (the real dashboard over an
// in-memory API), drives Debian's /usr/bin/chromium (CHROMIUM overrides it)
// through playwright-core, and writes PNGs to <repo>/screenshots/.
import { spawn, execFileSync } from 'node:child_process';
import { mkdirSync, mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, dirname, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import assert from 'node:assert/strict';
import { chromium } from 'playwright-core';

const here = dirname(fileURLToPath(import.meta.url));
const repo = resolve(here, '..', '..');
const shotsOnly = process.argv.includes('--screenshots-only');
const HOSTILE = '</script><img src=x onerror=alert(1)>';

function startServer() {
  const bin = join(mkdtempSync(join(tmpdir(), 'cockpit-e2e-')), 'fakeapi');
  execFileSync('go', ['build', '-o', bin, './dashboard/e2e/fakeapi'], { cwd: repo, stdio: 'inherit' });
  const proc = spawn(bin, ['-addr', '127.0.0.1:0'], { stdio: ['ignore', 'pipe', 'inherit'] });
  return new Promise((res, rej) => {
    const timer = setTimeout(() => rej(new Error('fakeapi did not start in 30 s')), 30000);
    proc.stdout.on('data', (d) => {
      const m = /listening on (http:\/\/\S+)/.exec(String(d));
      if (m) { clearTimeout(timer); res({ proc, base: m[1] }); }
    });
    proc.on('exit', (code) => rej(new Error('fakeapi exited with ' + code)));
  });
}

const results = [];
async function check(name, fn) {
  const t0 = Date.now();
  try { await fn(); results.push([name, 'ok']); console.log(`ok   ${name} (${Date.now() - t0} ms)`); }
  catch (e) { results.push([name, 'FAIL']); console.log(`FAIL ${name}: ${e.message}`); }
}

const { proc, base } = await startServer();
const browser = await chromium.launch({
  executablePath: process.env.CHROMIUM || '/usr/bin/chromium',
  headless: true,
  // playwright gives every launch a fresh, temporary user-data-dir.
  args: ['--headless', '--no-sandbox', '--disable-gpu', '--disable-background-networking',
    '--disable-component-update', '--disable-sync'],
});
const ctx = await browser.newContext({ viewport: { width: 1920, height: 1080 }, locale: 'zh-CN' });
// Fully offline: any request to another host fails the test run.
const foreign = [];
await ctx.route('**/*', (route) => {
  const u = new URL(route.request().url());
  if (u.origin !== base) { foreign.push(u.href); return route.abort(); }
  return route.continue();
});
const dialogs = [];
ctx.on('page', (p) => p.on('dialog', (d) => { dialogs.push(d.message()); d.dismiss(); }));
const post = (path, body) => fetch(base + path, { method: 'POST', headers: { 'Content-Type': 'application/json' }, body: body ? JSON.stringify(body) : undefined });

try {
  if (!shotsOnly) {
    const page = await ctx.newPage();
    const errors = [];
    page.on('pageerror', (e) => errors.push(e.message));
    await page.goto(base + '/wall', { waitUntil: 'load', timeout: 60000 });

    await check('wall shows the numbers of /api/v1/kpis', async () => {
      const kpis = await (await fetch(base + '/api/v1/kpis')).json();
      await page.waitForFunction(() => document.querySelector('#tile-service_level .tile-value').textContent !== '—', null, { timeout: 15000 });
      const text = async (id) => (await page.textContent(`#${id} .tile-value`)).trim();
      assert.equal(await text('tile-service_level'), (kpis.service_level * 100).toFixed(1) + '%');
      assert.equal(await text('tile-human_wait_seconds'), kpis.human_wait_seconds.p90.toFixed(1) + ' s');
      assert.equal(await text('tile-active_conversations'), kpis.active_conversations.toLocaleString('zh-CN'));
      assert.equal(await text('tile-csat_avg'), kpis.csat_avg.toFixed(2));
      // human wait 72.4 s > the default 60 s: red; first response 21.5 s < 0.8×45 (rule): green
      assert.equal(await page.getAttribute('#tile-human_wait_seconds', 'data-state'), 'red');
      assert.equal(await page.getAttribute('#tile-first_response_seconds', 'data-state'), 'green');
      assert.equal(await page.getAttribute('#tile-waiting_for_human', 'data-state'), 'amber');
    });

    await check('a new snapshot changes a tile within 2 s, without reload', async () => {
      await page.evaluate(() => { window.__marker = 1; });
      await post('/test/kpis', { waiting_for_human: 777, service_level: 0.5 });
      await page.waitForFunction(() => document.querySelector('#tile-waiting_for_human .tile-value').textContent === '777', null, { timeout: 2500 });
      assert.equal(await page.getAttribute('#tile-service_level', 'data-state'), 'red');
      assert.equal(await page.evaluate(() => window.__marker), 1, 'the page reloaded');
    });

    await check('a stopped stream shows the stale marker and recovers', async () => {
      await post('/test/stream/off');
      await page.waitForSelector('#asof.stale', { timeout: 10000 });
      await page.waitForSelector('#conn.down', { timeout: 10000 });
      await post('/test/stream/on');
      await page.waitForSelector('#asof:not(.stale)', { timeout: 20000 });
      await page.waitForSelector('#conn.live', { timeout: 20000 });
    });

    await check('hostile alert text renders inert on the wall', async () => {
      await page.waitForFunction((h) => document.getElementById('banner').textContent.includes(h), HOSTILE, { timeout: 10000 });
      assert.equal(await page.locator('#banner img').count(), 0);
    });

    await check('charts are drawn with data', async () => {
      for (const id of ['wall-trend-times', 'wall-trend-rates', 'wall-complaints-region']) {
        await page.waitForFunction((i) => {
          const c = echarts.getInstanceByDom(document.getElementById(i));
          return c && c.getOption().series.some((s) => (s.data || []).length > 0);
        }, id, { timeout: 10000 });
      }
    });

    const q = await ctx.newPage();
    q.on('pageerror', (e) => errors.push(e.message));
    await check('quality: alert link parameters, drill-down, timeline, hostile text inert', async () => {
      const from = new Date(Date.now() - 3600e3).toISOString();
      await q.goto(`${base}/quality?lang=en&region=${encodeURIComponent(HOSTILE)}&from=${from}&alert=${encodeURIComponent(HOSTILE)}`, { timeout: 60000 });
      assert.equal(await q.inputValue('input[name=region]'), HOSTILE);
      assert.equal((await q.textContent('#alert-id')).trim(), HOSTILE);
      await q.waitForSelector('#breakdown-table tbody tr.clickable', { timeout: 10000 });
      assert.match(await q.getAttribute('#export', 'href'), /^\/api\/v1\/export\.csv\?.*region=/);
      await q.click('#breakdown-table tbody tr.clickable >> nth=0');
      await q.waitForSelector('#conversations tbody tr', { timeout: 10000 });
      await q.click('#conversations tbody tr >> nth=0');
      await q.waitForFunction((h) => document.getElementById('timeline').textContent.includes(h), HOSTILE, { timeout: 10000 });
      assert.equal(await q.locator('main img').count(), 0);
    });

    const a = await ctx.newPage();
    a.on('pageerror', (e) => errors.push(e.message));
    await check('alerts: hostile text inert, ack posts the name', async () => {
      await a.goto(base + '/alerts?lang=en', { timeout: 60000 });
      await a.waitForSelector('#firing tbody tr', { timeout: 10000 });
      assert.equal(await a.locator('main img').count(), 0);
      assert.ok((await a.textContent('#firing')).includes(HOSTILE));
      await a.fill('#who', 'Li Lei');
      await a.click('#firing tbody button');
      await a.waitForFunction(() => document.getElementById('firing').textContent.includes('Li Lei'), null, { timeout: 10000 });
    });

    await check('no script errors, no dialogs, no foreign requests', async () => {
      assert.deepEqual(errors, []);
      assert.deepEqual(dialogs, []);
      assert.deepEqual(foreign, []);
    });
    await Promise.all([page.close(), q.close(), a.close()]);
  }

  // Screenshots at 1920×1080.
  const dir = join(repo, 'screenshots');
  mkdirSync(dir, { recursive: true });
  for (const [name, path] of [['wall', '/wall'], ['wall-en', '/wall?lang=en'], ['quality', '/quality'], ['alerts', '/alerts']]) {
    const p = await ctx.newPage();
    await p.goto(base + path, { waitUntil: 'load', timeout: 60000 });
    await p.waitForTimeout(2500); // let the stream and the charts settle
    if (name === 'quality') {
      await p.click('#breakdown-table tbody tr.clickable >> nth=0').catch(() => {});
      await p.click('#conversations tbody tr >> nth=0', { timeout: 5000 }).catch(() => {});
      await p.waitForTimeout(1000);
    }
    await p.screenshot({ path: join(dir, name + '.png') });
    console.log('wrote', join(dir, name + '.png'));
    await p.close();
  }
} finally {
  await browser.close();
  proc.kill();
}
const failed = results.filter(([, r]) => r !== 'ok').length;
console.log(`${results.length - failed} passed, ${failed} failed`);
process.exit(failed ? 1 : 0);
