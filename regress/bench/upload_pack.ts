/**
 * Section "upload-pack": serving clones and fetches of mkrepo's `medium`
 * repository, ours against stock git-upload-pack, alternating, medians of
 * several runs. Wall time is what the user waits for (mostly the client's
 * own indexing); the server's CPU seconds and peak RSS decide how many
 * clients one machine can serve. Both with the reachability bitmap mkrepo
 * writes and without it.
 */
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { BUILD } from '../lib/util';
import { BENCH_DIR, benchRepo, median, run, table, timed, type BenchOptions, type Section } from './lib';

/** As gotd should start its readers: a small young generation keeps the resident size down. */
const NODE_FLAGS = '--max-semi-space-size=1';
const OURS = `node ${NODE_FLAGS} ${path.join(BUILD, 'src', 'stdio', 'upload_pack.js')}`;
const STOCK = 'git-upload-pack';
const MEASURE = `node ${path.join(BUILD, 'regress', 'bench', 'measure.js')}`;

interface Sample { wall: number; cpu: number; rss: number }

interface Op {
  name: string;
  /** Runs the operation into a fresh directory `dest` with the given --upload-pack command. */
  run: (repo: string, dest: string, uploadPack: string) => void;
}

function behindRepo(medium: string): { dir: string; commits: number } {
  const dir = path.join(BENCH_DIR, 'medium-behind.git');
  if (!fs.existsSync(path.join(dir, 'HEAD'))) {
    process.stderr.write(`bench: building ${dir}, a client 100 commits behind (once)...\n`);
    const tmp = dir + '.tmp';
    fs.rmSync(tmp, { recursive: true, force: true });
    run('git', ['clone', '-q', '--bare', medium, tmp]);
    const refs = run('git', ['--git-dir', tmp, 'for-each-ref', '--format=%(refname)']).split('\n').filter(Boolean);
    for (const r of refs) if (r !== 'refs/heads/main') run('git', ['--git-dir', tmp, 'update-ref', '-d', r]);
    run('git', ['--git-dir', tmp, 'update-ref', 'refs/heads/main', 'main~100']);
    run('git', ['--git-dir', tmp, 'reflog', 'expire', '--expire=now', '--all']);
    run('git', ['--git-dir', tmp, 'gc', '-q', '--prune=now']);
    fs.renameSync(tmp, dir);
  }
  const behind = run('git', ['--git-dir', dir, 'rev-parse', 'main']).trim();
  const commits = Number(run('git', ['--git-dir', medium, 'rev-list', '--count', `${behind}..main`]).trim());
  return { dir, commits };
}

function noBitmapRepo(medium: string): string {
  const dir = path.join(BENCH_DIR, 'medium-nobitmap.git');
  if (!fs.existsSync(path.join(dir, 'HEAD'))) {
    fs.cpSync(medium, dir, { recursive: true });
    for (const f of fs.readdirSync(path.join(dir, 'objects/pack'))) if (f.endsWith('.bitmap')) fs.rmSync(path.join(dir, 'objects/pack', f));
  }
  return dir;
}

function sample(op: Op, repo: string, server: string, scratch: string): Sample {
  const log = path.join(scratch, 'measure.log');
  fs.rmSync(log, { force: true });
  const dest = path.join(scratch, 'dest.git');
  fs.rmSync(dest, { recursive: true, force: true });
  const start = process.hrtime.bigint();
  op.run(repo, dest, `${MEASURE} ${log} ${server}`);
  const wall = Number(process.hrtime.bigint() - start) / 1e9;
  const m = fs.readFileSync(log, 'utf8').trim().split('\n').map((l) => JSON.parse(l) as { cpu: number; rss: number });
  return { wall, cpu: m.reduce((a, b) => a + b.cpu, 0), rss: Math.max(...m.map((x) => x.rss)) };
}

const f2 = (x: number) => x.toFixed(2);
const mb = (kb: number) => `${Math.round(kb / 1024)}`;

async function runSection(opts: BenchOptions): Promise<void> {
  const medium = benchRepo('medium');
  const nobitmap = noBitmapRepo(medium);
  const behind = behindRepo(medium);
  const scratch = fs.mkdtempSync(path.join(os.tmpdir(), 'gotd-bench-'));
  const objects = Number(run('git', ['--git-dir', medium, 'count-objects', '-v']).match(/in-pack: (\d+)/)![1]);
  const packMiB = fs.readdirSync(path.join(medium, 'objects/pack')).filter((f) => f.endsWith('.pack'))
    .reduce((a, f) => a + fs.statSync(path.join(medium, 'objects/pack', f)).size, 0) / 1048576;
  const ops: Op[] = [
    { name: 'full clone', run: (repo, dest, up) => timed('git', ['clone', '-q', '--bare', `--upload-pack=${up}`, `file://${repo}`, dest]) },
    {
      name: `fetch ${behind.commits} commits`,
      run: (repo, dest, up) => {
        fs.cpSync(behind.dir, dest, { recursive: true });
        timed('git', ['--git-dir', dest, 'fetch', '-q', `--upload-pack=${up}`, `file://${repo}`, '+refs/heads/main:refs/heads/main']);
      },
    },
    { name: 'clone --depth 1', run: (repo, dest, up) => timed('git', ['clone', '-q', '--bare', '--depth', '1', `--upload-pack=${up}`, `file://${repo}`, dest]) },
    { name: 'ls-remote', run: (repo, _dest, up) => timed('git', ['ls-remote', `--upload-pack=${up}`, `file://${repo}`]) },
  ];
  console.log(`medium: ${objects} objects, ${packMiB.toFixed(1)} MiB pack; git ${run('git', ['--version']).trim().replace('git version ', '')}, ` +
    `node ${process.version}, ${os.cpus().length} CPUs; median of ${opts.runs} runs, ours and stock alternating; protocol v2`);
  console.log(`wall: client command; CPU s and RSS MB: the serving process tree (git: upload-pack + pack-objects); ours: node ${NODE_FLAGS}\n`);
  const rows: string[][] = [];
  for (const [label, repo] of [['yes', medium], ['no', nobitmap]] as const) {
    for (const op of ops) {
      const ours: Sample[] = [];
      const stock: Sample[] = [];
      // One warm-up each (page cache), then alternate.
      sample(op, repo, OURS, scratch);
      sample(op, repo, STOCK, scratch);
      for (let i = 0; i < opts.runs; i++) {
        ours.push(sample(op, repo, OURS, scratch));
        stock.push(sample(op, repo, STOCK, scratch));
      }
      const o = { wall: median(ours.map((s) => s.wall)), cpu: median(ours.map((s) => s.cpu)), rss: median(ours.map((s) => s.rss)) };
      const g = { wall: median(stock.map((s) => s.wall)), cpu: median(stock.map((s) => s.cpu)), rss: median(stock.map((s) => s.rss)) };
      rows.push([op.name, label, f2(o.wall), f2(g.wall), `${f2(o.wall / g.wall)}x`, f2(o.cpu), f2(g.cpu),
        g.cpu > 0 ? `${f2(o.cpu / g.cpu)}x` : '-', mb(o.rss), mb(g.rss)]);
      process.stderr.write(`bench: ${op.name} (bitmap ${label}) done\n`);
    }
  }
  console.log(table(['operation', 'bitmap', 'wall ours', 'wall git', 'ratio', 'CPU ours', 'CPU git', 'ratio', 'RSS ours', 'RSS git'], rows));
  fs.rmSync(scratch, { recursive: true, force: true });
}

export const uploadPackSection: Section = { name: 'upload-pack', run: runSection };
