/**
 * Section "push": stock `git push` into a bare repository through our
 * receive-pack and through git-receive-pack, alternating, medians of
 * several runs. Git is measured twice: as configured by default, and with
 * receive.fsckObjects=true, which is what ours always does (every object
 * fsck'd, plus the connectivity check both always make). Wall time is the
 * client's push; CPU seconds and peak RSS are the serving process tree's.
 */
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { randomBytes } from 'node:crypto';
import { BUILD } from '../lib/util';
import { BENCH_DIR, benchRepo, median, run, table, timed, type BenchOptions, type Section } from './lib';

const MEASURE = `node ${path.join(BUILD, 'regress', 'bench', 'measure.js')}`;
const SERVERS: [string, string][] = [
  // The flags the daemon gives its writers (src/sys/confine.ts).
  ['ours', `node --max-semi-space-size=1 ${path.join(BUILD, 'src', 'stdio', 'receive_pack.js')}`],
  ['git', 'git-receive-pack'],
  ['git+fsck', 'git -c receive.fsckObjects=true receive-pack'],
];

interface Sample { wall: number; cpu: number; rss: number }

interface Op {
  name: string;
  /** Bare repository to push from, and what. */
  from: string;
  refspecs: string[];
  /** A fresh destination at `dest`. */
  prepare: (dest: string) => void;
}

/** A repository with one commit holding `mb` MiB of random bytes. */
function blobRepo(mb: number): string {
  const dir = path.join(BENCH_DIR, `blob${mb}.git`);
  if (fs.existsSync(path.join(dir, 'HEAD'))) return dir;
  const work = fs.mkdtempSync(path.join(os.tmpdir(), 'gotd-blob-'));
  run('git', ['init', '-q', '-b', 'main', work]);
  fs.writeFileSync(path.join(work, 'firmware.bin'), randomBytes(mb << 20));
  run('git', ['-C', work, 'add', 'firmware.bin']);
  run('git', ['-C', work, 'commit', '-q', '-m', 'firmware']);
  run('git', ['clone', '-q', '--bare', work, dir]);
  fs.rmSync(work, { recursive: true, force: true });
  return dir;
}

/** medium with main 100 commits back and no other refs: the server side of an incremental push. */
function behindRepo(medium: string): string {
  const dir = path.join(BENCH_DIR, 'medium-push-behind.git');
  if (fs.existsSync(path.join(dir, 'HEAD'))) return dir;
  const tmp = dir + '.tmp';
  fs.rmSync(tmp, { recursive: true, force: true });
  run('git', ['clone', '-q', '--bare', medium, tmp]);
  for (const r of run('git', ['--git-dir', tmp, 'for-each-ref', '--format=%(refname)']).split('\n').filter(Boolean)) {
    if (r !== 'refs/heads/main') run('git', ['--git-dir', tmp, 'update-ref', '-d', r]);
  }
  run('git', ['--git-dir', tmp, 'update-ref', 'refs/heads/main', 'main~100']);
  run('git', ['--git-dir', tmp, 'reflog', 'expire', '--expire=now', '--all']);
  run('git', ['--git-dir', tmp, 'gc', '-q', '--prune=now']);
  fs.renameSync(tmp, dir);
  return dir;
}

const empty = (dest: string): void => { run('git', ['init', '-q', '--bare', '-b', 'main', dest]); };

function sample(op: Op, server: string, scratch: string): Sample {
  const log = path.join(scratch, 'measure.log');
  fs.rmSync(log, { force: true });
  const dest = path.join(scratch, 'dest.git');
  fs.rmSync(dest, { recursive: true, force: true });
  op.prepare(dest);
  const wall = timed('git', ['--git-dir', op.from, 'push', '-q', `--receive-pack=${MEASURE} ${log} ${server}`, dest, ...op.refspecs]);
  const m = fs.readFileSync(log, 'utf8').trim().split('\n').map((l) => JSON.parse(l) as { cpu: number; rss: number });
  const fsck = run('git', ['--git-dir', dest, 'fsck', '--strict', '--no-progress']);
  if (fsck.trim()) throw new Error(`fsck after push: ${fsck}`);
  return { wall, cpu: m.reduce((a, b) => a + b.cpu, 0), rss: Math.max(...m.map((x) => x.rss)) };
}

const f2 = (x: number) => x.toFixed(2);
const mb = (kb: number) => `${Math.round(kb / 1024)}`;

async function runSection(opts: BenchOptions): Promise<void> {
  const medium = benchRepo('medium');
  const small = benchRepo('small');
  const blob = blobRepo(50);
  const behind = behindRepo(medium);
  const scratch = fs.mkdtempSync(path.join(os.tmpdir(), 'gotd-bench-push-'));
  const all = ['refs/heads/*:refs/heads/*', 'refs/tags/*:refs/tags/*'];
  const ops: Op[] = [
    { name: 'small: whole history', from: small, refspecs: all, prepare: empty },
    { name: 'medium: whole history', from: medium, refspecs: all, prepare: empty },
    { name: 'medium: 100 commits', from: medium, refspecs: ['main'], prepare: (d) => fs.cpSync(behind, d, { recursive: true }) },
    { name: '50 MiB random blob', from: blob, refspecs: ['main'], prepare: empty },
  ];
  console.log(`git ${run('git', ['--version']).trim().replace('git version ', '')}, node ${process.version}, ${os.cpus().length} CPUs; ` +
    `median of ${opts.runs} runs, servers alternating`);
  console.log('wall: the client\'s git push; CPU s and RSS MB: the receiving process tree (git: receive-pack + index-pack)\n');
  const rows: string[][] = [];
  for (const op of ops) {
    const samples = new Map<string, Sample[]>(SERVERS.map(([name]) => [name, []]));
    for (const [, cmd] of SERVERS) sample(op, cmd, scratch); // warm-up: page cache
    for (let i = 0; i < opts.runs; i++) {
      for (const [name, cmd] of SERVERS) samples.get(name)!.push(sample(op, cmd, scratch));
    }
    const med = (name: string) => {
      const s = samples.get(name)!;
      return { wall: median(s.map((x) => x.wall)), cpu: median(s.map((x) => x.cpu)), rss: median(s.map((x) => x.rss)) };
    };
    const o = med('ours');
    for (const other of ['git', 'git+fsck']) {
      const g = med(other);
      rows.push([op.name, other, f2(o.wall), f2(g.wall), `${f2(o.wall / g.wall)}x`, f2(o.cpu), f2(g.cpu),
        g.cpu > 0 ? `${f2(o.cpu / g.cpu)}x` : '-', mb(o.rss), mb(g.rss)]);
    }
    process.stderr.write(`bench: push ${op.name} done\n`);
  }
  console.log(table(['push', 'against', 'wall ours', 'wall git', 'ratio', 'CPU ours', 'CPU git', 'ratio', 'RSS ours', 'RSS git'], rows));
  fs.rmSync(scratch, { recursive: true, force: true });
}

export const pushSection: Section = { name: 'push', run: runSection };
