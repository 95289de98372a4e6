/**
 * Section "daemon": what the privilege separation costs, through an
 * installed gotd with confined workers (bubblewrap and the permission model
 * when available):
 *
 * - session set-up: `git ls-remote` of a small repository through gotsh
 *   (gotsh start, listen, auth, a fresh worker), against stock git's local
 *   ls-remote (one git-upload-pack) for scale;
 * - a full clone of `medium` through gotsh against the engine's own stdio
 *   entry point (the same upload-pack code, no daemon);
 * - 32 concurrent clones of `medium` with limits raised: all must succeed;
 *   the daemon's own processes (parent, listen, auth) must not grow.
 */
import { spawn } from 'node:child_process';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { descendants, startGotd, type Gotd } from '../lib/daemon';
import { BUILD, gitEnv } from '../lib/util';
import { benchWorld } from './world';
import { median, table, timed, type BenchOptions, type Section } from './lib';

const f2 = (x: number): string => x.toFixed(2);
const ms = (x: number): string => `${Math.round(x * 1000)}`;

/** Resident set of the daemon's long-lived processes (parent, listen, auth, notify), in MB; workers excluded. */
function daemonRss(g: Gotd): number {
  const pids = [g.pid, ...descendants(g.pid)].filter((p) => {
    try {
      return !/repo_(read|write)\.js|bwrap/.test(fs.readFileSync(`/proc/${p}/cmdline`, 'utf8'));
    } catch {
      return false;
    }
  });
  let kb = 0;
  for (const p of pids) {
    try {
      const m = /VmRSS:\s+(\d+) kB/.exec(fs.readFileSync(`/proc/${p}/status`, 'utf8'));
      kb += m ? Number(m[1]) : 0;
    } catch { /* gone */ }
  }
  return kb / 1024;
}

function clone(args: string[], dest: string, env: NodeJS.ProcessEnv): Promise<{ ok: boolean; secs: number; err: string }> {
  return new Promise((resolve) => {
    const t0 = process.hrtime.bigint();
    const p = spawn('git', ['clone', '-q', '--bare', ...args, dest], { env: gitEnv(env), stdio: ['ignore', 'ignore', 'pipe'] });
    let err = '';
    p.stderr.on('data', (b: Buffer) => { err += b.toString(); });
    p.on('close', (code) => resolve({ ok: code === 0, secs: Number(process.hrtime.bigint() - t0) / 1e9, err }));
  });
}

async function runSection(opts: BenchOptions): Promise<void> {
  const world = benchWorld('gotd-bench-daemon-');
  if (!world) return;
  const { inst, dir, medium, small, me } = world;
  const g = await startGotd(inst, dir, `
[connection]
max_connections = 200
limit_per_user = 100
[[repository]]
name = "medium"
path = "${medium}"
access = ["permit ro ${me}"]
[[repository]]
name = "small"
path = "${small}"
access = ["permit ro ${me}"]
`);
  const env = { GOTD_UNIX_SOCKET: g.sock };
  const up = path.join(inst.bin, 'git-upload-pack');
  const stdio = `${process.execPath} ${path.join(BUILD, 'src', 'stdio', 'upload_pack.js')}`;
  const scratch = path.join(dir, 'scratch');
  const fresh = (): string => { fs.rmSync(scratch, { recursive: true, force: true }); return scratch; };
  try {
    console.log(`installed gotd, workers: ${g.log.filter((l) => /bubblewrap|permission model/.test(l)).map((l) => l.replace(/^.*?gotd: /, '')).join('; ')}`);
    console.log(`${os.cpus().length} CPUs, load ${os.loadavg()[0]!.toFixed(1)} at start; medians, alternating runs\n`);

    const ls = { gotsh: [] as number[], git: [] as number[] };
    const lsGotsh = (): number => timed('git', ['ls-remote', `--upload-pack=${up}`, 'file:///small'], { env });
    // Stock git reads its own copy (owned by us: git refuses repositories of other users).
    const smallOurs = path.join(dir, 'small-stock.git');
    fs.cpSync(small, smallOurs, { recursive: true });
    const lsGit = (): number => timed('git', ['ls-remote', `file://${smallOurs}`]);
    lsGotsh(); lsGit();
    for (let i = 0; i < opts.runs * 4; i++) { ls.gotsh.push(lsGotsh()); ls.git.push(lsGit()); }

    const cl = { gotsh: [] as number[], stdio: [] as number[] };
    const clGotsh = (): number => timed('git', ['clone', '-q', '--bare', '-u', up, 'file:///medium', fresh()], { env });
    const clStdio = (): number => timed('git', ['clone', '-q', '--bare', '-u', stdio, `file://${medium}`, fresh()]);
    clGotsh(); clStdio();
    for (let i = 0; i < opts.runs; i++) { cl.gotsh.push(clGotsh()); cl.stdio.push(clStdio()); }
    console.log(table(['operation', 'gotsh', 'reference', 'ratio', 'reference is'], [
      ['ls-remote small, ms', ms(median(ls.gotsh)), ms(median(ls.git)), `${f2(median(ls.gotsh) / median(ls.git))}x`, 'stock git, local'],
      ['clone medium, s', f2(median(cl.gotsh)), f2(median(cl.stdio)), `${f2(median(cl.gotsh) / median(cl.stdio))}x`, 'our engine over stdio'],
    ]));
    console.log(`ls-remote through gotsh: min ${ms(Math.min(...ls.gotsh))} ms, max ${ms(Math.max(...ls.gotsh))} ms over ${ls.gotsh.length} runs`);

    // 32 at once, twice: the second round shows whether the daemon keeps what the first left behind.
    const n = 32;
    await new Promise((r) => setTimeout(r, 2000));
    const before = daemonRss(g);
    const rounds: string[][] = [];
    for (let round = 1; round <= 2; round++) {
      const t0 = Date.now();
      const rs = await Promise.all(Array.from({ length: n }, (_, i) => clone(['-u', up, 'file:///medium'], path.join(dir, `c${i}`), env)));
      const wall = (Date.now() - t0) / 1000;
      for (let i = 0; i < n; i++) fs.rmSync(path.join(dir, `c${i}`), { recursive: true, force: true });
      const failed = rs.filter((r) => !r.ok);
      if (failed.length) console.log(`round ${round}: ${failed.length} failed, first: ${failed[0]!.err.trim()}`);
      await new Promise((r) => setTimeout(r, 3000));
      rounds.push([`round ${round}`, `${n - failed.length}/${n}`, f2(wall), f2(median(rs.map((r) => r.secs))), daemonRss(g).toFixed(0)]);
    }
    console.log(`\n${n} concurrent clones of medium through gotsh; daemon RSS (parent+listen+auth) before: ${before.toFixed(0)} MB`);
    console.log(table(['', 'succeeded', 'wall s', 'median clone s', 'daemon RSS MB after'], rounds));
  } finally {
    await g.stop();
    fs.rmSync(dir, { recursive: true, force: true });
  }
}

export const daemonSection: Section = { name: 'daemon', run: runSection };
