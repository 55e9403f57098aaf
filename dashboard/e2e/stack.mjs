// The real cockpit for the browser tests: the binary built from this
// repository, `cockpit store` (the embedded ClickHouse engine) and
// `cockpit serve` against a real Apache Kafka broker, with a TCP proxy in
// front of the HTTP port so a test can cut the network between the browser
// and the server and restore it.
import { spawn, execFileSync } from 'node:child_process';
import { mkdtempSync, writeFileSync, rmSync, readFileSync } from 'node:fs';
import net from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

// freePort asks the kernel for a port that is free right now.
export function freePort() {
  return new Promise((res, rej) => {
    const s = net.createServer();
    s.on('error', rej);
    s.listen(0, '127.0.0.1', () => { const { port } = s.address(); s.close(() => res(port)); });
  });
}

export function workDir() {
  return mkdtempSync(join(tmpdir(), 'cockpit-e2e-'));
}

// build compiles bin/cockpit into dir and returns its path.
export function build(repo, dir) {
  const bin = join(dir, 'cockpit');
  execFileSync('go', ['build', '-o', bin, './cmd/cockpit'], { cwd: repo, stdio: 'inherit' });
  return bin;
}

// A child process whose log is kept in memory (the tail is printed when
// something fails) and which is killed when the test ends.
class Proc {
  constructor(name, bin, args, env) {
    this.name = name;
    this.log = [];
    this.proc = spawn(bin, args, { env: { ...process.env, ...env }, stdio: ['ignore', 'pipe', 'pipe'] });
    const keep = (d) => { this.log.push(String(d)); if (this.log.length > 400) this.log.splice(0, 100); };
    this.proc.stdout.on('data', keep);
    this.proc.stderr.on('data', keep);
    // 'close' comes after the output is drained, 'exit' may come before.
    this.exited = new Promise((res) => this.proc.on('close', (code, sig) => res(code ?? sig)));
  }
  tail(n = 40) { return this.log.join('').split('\n').slice(-n).join('\n'); }
  async stop() {
    if (this.proc.exitCode !== null || this.proc.signalCode !== null) return;
    this.proc.kill('SIGTERM');
    const t = setTimeout(() => this.proc.kill('SIGKILL'), 20000);
    await this.exited;
    clearTimeout(t);
  }
}

// waitHTTP polls url until it answers 200, or the process exits, or timeout.
async function waitHTTP(p, url, timeoutMs) {
  const deadline = Date.now() + timeoutMs;
  let exited = false;
  p.exited.then(() => { exited = true; });
  for (;;) {
    if (exited) throw new Error(`${p.name} exited before it was ready:\n${p.tail()}`);
    try {
      const r = await fetch(url);
      if (r.ok) return;
    } catch (e) { /* not listening yet */ }
    if (Date.now() > deadline) throw new Error(`${p.name} not ready at ${url} after ${timeoutMs} ms:\n${p.tail()}`);
    await new Promise((r) => setTimeout(r, 200));
  }
}

// startStore runs `cockpit store` on a data directory under dir. Its url
// is the DSN of the product's account, from the credentials file the store
// creates in its data directory on first start.
export async function startStore(bin, dir) {
  const port = await freePort();
  const dataDir = join(dir, 'clickhouse');
  const p = new Proc('cockpit store', bin, ['store', '--data-dir', dataDir, '--listen', `127.0.0.1:${port}`], {});
  await waitHTTP(p, `http://127.0.0.1:${port}/ping`, 120000);
  const creds = JSON.parse(readFileSync(join(dataDir, 'credentials.json'), 'utf8'));
  p.url = `http://${encodeURIComponent(creds.user)}:${encodeURIComponent(creds.password)}@127.0.0.1:${port}`;
  return p;
}

// startServe runs `cockpit serve` with a config file written from cfg (a
// YAML string) and returns it once /readyz answers.
export async function startServe(bin, dir, yaml, env = {}, file = 'cockpit.yaml', ready = '/readyz') {
  const port = await freePort();
  const cfgFile = join(dir, file);
  writeFileSync(cfgFile, yaml);
  const p = new Proc('cockpit serve', bin, ['serve', '--config', cfgFile, '--http', `127.0.0.1:${port}`], env);
  p.url = `http://127.0.0.1:${port}`;
  await waitHTTP(p, p.url + ready, 120000);
  return p;
}

// run runs a cockpit subcommand to completion and throws if it fails.
export async function run(bin, args, env = {}) {
  const p = new Proc('cockpit ' + args[0], bin, args, env);
  const code = await p.exited;
  if (code !== 0) throw new Error(`cockpit ${args.join(' ')} exited ${code}:\n${p.tail()}`);
  return p;
}

// Proxy forwards TCP connections to target. cut() resets every open
// connection and refuses new ones until restore(): to the browser it looks
// like the server went away.
export class Proxy {
  constructor(target) {
    this.target = new URL(target);
    this.sockets = new Set();
    this.refusing = false;
    this.server = net.createServer((client) => {
      if (this.refusing) { client.resetAndDestroy(); return; }
      const upstream = net.connect(Number(this.target.port), this.target.hostname);
      for (const s of [client, upstream]) {
        this.sockets.add(s);
        s.on('close', () => this.sockets.delete(s));
        s.on('error', () => { client.destroy(); upstream.destroy(); });
      }
      client.pipe(upstream);
      upstream.pipe(client);
    });
  }
  async listen() {
    const port = await new Promise((res) => this.server.listen(0, '127.0.0.1', () => res(this.server.address().port)));
    this.url = `http://127.0.0.1:${port}`;
    return this.url;
  }
  cut() {
    this.refusing = true;
    for (const s of this.sockets) (s.resetAndDestroy ? s.resetAndDestroy() : s.destroy());
  }
  restore() { this.refusing = false; }
  close() { this.cut(); this.server.close(); }
}

export function cleanup(dir) {
  try { rmSync(dir, { recursive: true, force: true }); } catch (e) { /* best effort */ }
}

export { Proc };
