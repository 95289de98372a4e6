/**
 * Section "websocket": Git over WebSocket against Git through gotsh, on
 * the same installed gotd, with the same confined workers:
 *
 * - a clone of mkrepo's `medium` over ws://, over wss:// (TLS relayed by
 *   listen) and through gotsh (git clone -u gotsh-as-git-upload-pack);
 * - connection set-up: git ls-remote of a small repository, ws vs gotsh;
 * - the listener under a flood: ls-remote latency from 127.0.0.1 with and
 *   without 100 wrong-password attempts per second from 127.0.0.2.
 *
 * Medians of alternating runs, reported as ratios.
 */
import { spawn } from 'node:child_process';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import type { Install } from '../lib/daemon';
import { freePort, selfSignedCert, startWsGotd, writeSecrets } from '../lib/ws';
import { benchWorld } from './world';
import { median, table, timed, type BenchOptions, type Section } from './lib';

const f2 = (x: number): string => x.toFixed(2);
const ms = (x: number): string => `${Math.round(x * 1000)}`;

/** A client that opens `perSecond` connections a second from `from`, each with a wrong password, for `seconds`. */
const FLOOD = `
const net = require('net');
const [port, from, perSecond, seconds] = process.argv.slice(1).map((x, i) => i === 1 ? x : Number(x));
const counts = {};
let sent = 0, done = 0;
const total = perSecond * seconds;
const one = (i) => {
  const c = net.connect({ host: '127.0.0.1', port, localAddress: from });
  let buf = '', fin = false;
  const end = () => { if (fin) return; fin = true; c.destroy(); const m = /^HTTP\\/1\\.1 (\\d+)/.exec(buf); const k = m ? m[1] : 'none'; counts[k] = (counts[k] || 0) + 1;
    if (++done === total) { process.stdout.write(JSON.stringify(counts)); process.exit(0); } };
  c.on('data', (d) => { buf += d; }); c.on('close', end); c.on('error', end); setTimeout(end, 10000);
  c.write('GET /small?service=git-upload-pack HTTP/1.1\\r\\nHost: x\\r\\nUpgrade: websocket\\r\\nConnection: Upgrade\\r\\n' +
    'Sec-WebSocket-Version: 13\\r\\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\\r\\nAuthorization: Basic ' +
    Buffer.from('bench:guess' + i).toString('base64') + '\\r\\n\\r\\n');
};
const timer = setInterval(() => { one(sent++); if (sent >= total) clearInterval(timer); }, 1000 / perSecond);
`;

function flood(port: number, from: string, perSecond: number, seconds: number): Promise<Record<string, number>> {
  return new Promise((resolve, reject) => {
    const p = spawn(process.execPath, ['-e', FLOOD, String(port), from, String(perSecond), String(seconds)], { stdio: ['ignore', 'pipe', 'inherit'] });
    let out = '';
    p.stdout.on('data', (b: Buffer) => { out += b.toString(); });
    p.on('close', () => { try { resolve(JSON.parse(out) as Record<string, number>); } catch { reject(new Error(`flood: ${out}`)); } });
  });
}

function wsEnv(inst: Install, extra: NodeJS.ProcessEnv = {}): NodeJS.ProcessEnv {
  return { PATH: `${path.join(inst.prefix, 'bin')}:${process.env.PATH ?? '/usr/bin:/bin'}`, ...extra };
}

async function runSection(opts: BenchOptions): Promise<void> {
  const world = benchWorld('gotd-bench-ws-');
  if (!world) return;
  const { inst, dir, medium, small, me } = world;
  const secrets = await writeSecrets(dir, { bench: { password: 'bench-pw' } });
  const repos = `
[[repository]]
name = "medium"
path = "${medium}"
access = ["permit ro anonymous", "permit ro ${me}"]
[[repository]]
name = "small"
path = "${small}"
access = ["permit ro anonymous", "permit ro ${me}", "permit ro bench"]
`;
  const port = await freePort();
  const gdir = path.join(dir, 'plain');
  fs.mkdirSync(gdir, { mode: 0o755 });
  const g = await startWsGotd(inst, gdir, `[websocket]\nlisten = ["127.0.0.1:${port}"]\nrate = "6000/min"\n${repos}`, port, { secrets });
  const tport = await freePort();
  const tdir = path.join(dir, 'tls');
  fs.mkdirSync(tdir, { mode: 0o755 });
  const cert = selfSignedCert(tdir);
  const gt = await startWsGotd(inst, tdir, `[websocket]\nlisten = ["127.0.0.1:${tport}"]\nrate = "6000/min"\ntls = { cert = "${cert.cert}", key = "${cert.key}" }\n${repos}`, tport, { secrets });
  const scratch = path.join(dir, 'scratch');
  const up = path.join(inst.bin, 'git-upload-pack');
  try {
    const clone = {
      ws: (dest: string) => timed('git', ['clone', '-q', '--bare', `ws://127.0.0.1:${port}/medium`, dest], { env: wsEnv(inst) }),
      wss: (dest: string) => timed('git', ['clone', '-q', '--bare', `wss://127.0.0.1:${tport}/medium`, dest], { env: wsEnv(inst, { GOTD_WS_CAFILE: cert.cert, GIT_SSL_CAINFO: '' }) }),
      gotsh: (dest: string) => timed('git', ['clone', '-q', '--bare', '-u', up, 'file:///medium', dest], { env: { GOTD_UNIX_SOCKET: g.sock } }),
    };
    const lsRemote = {
      ws: () => timed('git', ['ls-remote', `ws://127.0.0.1:${port}/small`], { env: wsEnv(inst) }),
      gotsh: () => timed('git', ['ls-remote', `--upload-pack=${up}`, 'file:///small'], { env: { GOTD_UNIX_SOCKET: g.sock } }),
    };
    const fresh = (): string => { fs.rmSync(scratch, { recursive: true, force: true }); return scratch; };

    console.log(`medium over ws://, wss:// and gotsh through one installed gotd (bubblewrap/permission-model workers); ` +
      `median of ${opts.runs} runs, alternating; ${os.cpus().length} CPUs, load ${os.loadavg()[0]!.toFixed(1)} at start\n`);
    const t: Record<string, number[]> = { ws: [], wss: [], gotsh: [] };
    for (const k of ['ws', 'wss', 'gotsh'] as const) clone[k](fresh());
    for (let i = 0; i < opts.runs; i++) for (const k of ['ws', 'wss', 'gotsh'] as const) t[k]!.push(clone[k](fresh()));
    process.stderr.write('bench: websocket clones done\n');
    const ls: Record<string, number[]> = { ws: [], gotsh: [] };
    for (const k of ['ws', 'gotsh'] as const) lsRemote[k]();
    for (let i = 0; i < opts.runs * 2; i++) for (const k of ['ws', 'gotsh'] as const) ls[k]!.push(lsRemote[k]());
    const gs = median(t.gotsh!);
    const lg = median(ls.gotsh!);
    console.log(table(['operation', 'ws s', 'wss s', 'gotsh s', 'ws/gotsh', 'wss/gotsh'], [
      ['clone medium', f2(median(t.ws!)), f2(median(t.wss!)), f2(gs), `${f2(median(t.ws!) / gs)}x`, `${f2(median(t.wss!) / gs)}x`],
      ['ls-remote small', f2(median(ls.ws!)), '-', f2(lg), `${f2(median(ls.ws!) / lg)}x`, '-'],
    ]));

    // The flood: the real rate (60/min), one address hammering with wrong passwords.
    fs.writeFileSync(g.conf, fs.readFileSync(g.conf, 'utf8').replace('rate = "6000/min"', 'rate = "60/min"'));
    const r = await g.gotctl(['reload']);
    if (r.code !== 0) throw new Error(`reload: ${r.stderr}`);
    const samples = Math.max(4, opts.runs);
    const quiet: number[] = [];
    for (let i = 0; i < samples; i++) quiet.push(lsRemote.ws());
    const checked0 = g.log.filter((l) => /wrong password from=127\.0\.0\.2/.test(l)).length;
    const seconds = Math.max(8, samples * 2);
    const flooding = flood(port, '127.0.0.2', 100, seconds);
    const loud: number[] = [];
    const t0 = Date.now();
    await new Promise((res) => setTimeout(res, 1500));
    while (Date.now() - t0 < (seconds - 1) * 1000) loud.push(lsRemote.ws());
    const counts = await flooding;
    await new Promise((res) => setTimeout(res, 1000));
    const checked = g.log.filter((l) => /wrong password from=127\.0\.0\.2/.test(l)).length - checked0;
    console.log(`\nflood: ${seconds * 100} connections in ${seconds} s (100/s) from 127.0.0.2 with wrong passwords, rate "60/min";` +
      ` answers ${JSON.stringify(counts)}, password checks done: ${checked}`);
    console.log(table(['ls-remote small from 127.0.0.1', 'median ms', 'max ms', 'runs'], [
      ['without the flood', ms(median(quiet)), ms(Math.max(...quiet)), String(quiet.length)],
      ['during the flood', ms(median(loud)), ms(Math.max(...loud)), String(loud.length)],
      ['ratio', `${f2(median(loud) / median(quiet))}x`, '', ''],
    ]));
  } finally {
    await Promise.all([g.stop(), gt.stop()]);
    fs.rmSync(dir, { recursive: true, force: true });
  }
}

export const wsSection: Section = { name: 'websocket', run: runSection };
