/**
 * make stress, part "fuzz": every parser a client (or an administrator's
 * config file) can reach gets seeded mutations of valid inputs for
 * fuzzSeconds, each target in its own worker process (fuzz_worker.ts)
 * under a V8 heap cap. The parent watches: no progress for HANG_MS is a
 * hang, any exit but a clean finish is a crash, and peak RSS is read
 * from /proc. A failing input is saved under build/stress-fuzz/ and
 * replays with `node build/regress/stress/fuzz_worker.js TARGET --replay FILE`.
 */
import { spawn } from 'node:child_process';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import type { Part } from './parts';
import type { Row, StressOptions } from './table';
import { TARGET_NAMES } from './fuzz_targets';

const WORKER = path.join(__dirname, 'fuzz_worker.js');
const ROOT = path.resolve(__dirname, '..', '..', '..');
/** No new input for this long is a hang. */
export const HANG_MS = 10_000;
/** V8 heap cap of a worker. */
const HEAP_MB = 256;
/** Peak RSS each worker must stay under. */
export const RSS_LIMIT_MB = 320;
/** A worker over this is stopped at once (the machine is shared). */
const RSS_KILL_MB = 1024;
/** Setup (building the repository and seeds) and the final fsck may take this long. */
const SETUP_MS = 180_000;

export interface FuzzResult {
  target: string;
  inputs: number;
  seconds: number;
  peakRssMb: number;
  kinds: number;
  normal: number;
  ok: boolean;
  failure: string | null;
  file: string | null;
  errors: Record<string, number>;
  note: string;
  seed: number;
  /** Number of the failing input, when there is one. */
  input: number | null;
}

export interface FuzzOptions {
  targets: readonly string[];
  seconds: number;
  seed: number;
  parallel: number;
  log: (line: string) => void;
  /** Where failing inputs are saved. */
  outDir: string;
  /** No new input for this long is a hang (default HANG_MS). */
  hangMs?: number;
}

function procStatus(pid: number): { hwm: number; rss: number } | null {
  try {
    const s = fs.readFileSync(`/proc/${pid}/status`, 'utf8');
    const kb = (key: string) => Number(new RegExp(`^${key}:\\s+(\\d+) kB`, 'm').exec(s)?.[1] ?? 0);
    return { hwm: kb('VmHWM'), rss: kb('VmRSS') };
  } catch {
    return null;
  }
}

/** Runs one target in its worker and watches it. */
export function fuzzTarget(target: string, o: Omit<FuzzOptions, 'targets' | 'parallel'>): Promise<FuzzResult> {
  const work = fs.mkdtempSync(path.join(os.tmpdir(), `gotd-fuzz-${target}-`));
  fs.mkdirSync(o.outDir, { recursive: true });
  const res: FuzzResult = {
    target, inputs: 0, seconds: 0, peakRssMb: 0, kinds: 0, normal: 0, ok: false, failure: null, file: null, errors: {}, note: '', seed: o.seed, input: null,
  };
  return new Promise((resolve) => {
    const child = spawn(process.execPath, [`--max-old-space-size=${HEAP_MB}`, WORKER, target, String(o.seconds), String(o.seed), '--work', work, '--out', o.outDir], {
      stdio: ['ignore', 'pipe', 'pipe'], env: { ...process.env, NODE_OPTIONS: '' },
    });
    const pid = child.pid!;
    let started = 0;
    let lastN = -1;
    let lastProgress = Date.now();
    let phase: 'setup' | 'fuzz' | 'finishing' = 'setup';
    let done = false;
    let killedFor: string | null = null;
    let peakKb = 0;
    let stderr = '';
    const saveCurrent = (why: string): void => {
      try {
        lastN = Number(fs.readFileSync(path.join(work, 'current.n'), 'latin1').trim());
      } catch { /* no input yet */ }
      const file = path.join(o.outDir, `${why}-${target}-${o.seed}-${Math.max(lastN, 0)}.bin`);
      try {
        fs.copyFileSync(path.join(work, 'current.bin'), file);
        res.file = file;
      } catch { /* no input yet */ }
    };
    const sample = (): void => {
      const st = procStatus(pid);
      if (!st) return;
      peakKb = Math.max(peakKb, st.hwm, st.rss);
      if (st.rss > RSS_KILL_MB * 1024 && !killedFor) {
        saveCurrent('memory');
        killedFor = `memory: RSS ${Math.round(st.rss / 1024)} MB at input ${lastN}`;
        child.kill('SIGKILL');
      }
    };
    const watch = setInterval(() => {
      sample();
      const quiet = Date.now() - lastProgress;
      const limit = phase === 'fuzz' ? (o.hangMs ?? HANG_MS) : SETUP_MS;
      if (quiet > limit && !killedFor) {
        saveCurrent('hang');
        killedFor = phase === 'fuzz' ? `hang: no progress for ${Math.round(quiet / 1000)} s at input ${lastN}` : `hang in ${phase} (${Math.round(quiet / 1000)} s)`;
        child.kill('SIGKILL');
      }
    }, 1000);
    let buf = '';
    child.stdout.on('data', (b: Buffer) => {
      buf += b.toString('utf8');
      let nl: number;
      while ((nl = buf.indexOf('\n')) >= 0) {
        const line = buf.slice(0, nl);
        buf = buf.slice(nl + 1);
        let m: Record<string, unknown>;
        try {
          m = JSON.parse(line) as Record<string, unknown>;
        } catch {
          continue;
        }
        const n = typeof m.n === 'number' ? m.n : lastN;
        if (m.t === 'ready') {
          phase = 'fuzz';
          started = Date.now();
          lastProgress = Date.now();
        } else if (m.t === 'hb') {
          if (n > lastN) lastProgress = Date.now();
          lastN = n;
          res.kinds = Number(m.kinds);
        } else if (m.t === 'finishing') {
          phase = 'finishing';
          res.seconds = (Date.now() - started) / 1000;
          lastN = n;
          lastProgress = Date.now();
        } else if (m.t === 'done') {
          done = true;
          lastN = n;
          res.kinds = Number(m.kinds);
          res.normal = Number(m.normal);
          res.errors = m.errors as Record<string, number>;
          peakKb = Math.max(peakKb, Number(m.maxRssKb));
          if (m.problem) res.failure = String(m.problem);
          if (m.note) res.note = String(m.note);
        } else if (m.t === 'crash') {
          lastN = n;
          res.failure = `crash at input ${n} (seed ${o.seed}): ${String(m.message)}${m.uncaught ? ' (uncaught)' : ''}\n${String(m.stack).split('\n').slice(0, 6).join('\n')}`;
          if (typeof m.file === 'string') res.file = m.file;
        }
      }
    });
    child.stderr.on('data', (b: Buffer) => { stderr = (stderr + b.toString('utf8')).slice(-4000); });
    child.on('close', (code, signal) => {
      clearInterval(watch);
      if (!res.seconds && started) res.seconds = (Date.now() - started) / 1000;
      res.inputs = Math.max(lastN, 0);
      res.peakRssMb = Math.round(peakKb / 1024);
      if (killedFor) {
        res.failure = `${killedFor} (seed ${o.seed})`;
      } else if (!res.failure && !(done && code === 0)) {
        saveCurrent('crash');
        res.failure = `worker died (exit ${code ?? signal}) at input ${lastN} (seed ${o.seed}): ${stderr.trim().split('\n').slice(-5).join(' | ')}`;
      }
      if (!res.failure && res.peakRssMb >= RSS_LIMIT_MB) res.failure = `peak RSS ${res.peakRssMb} MB over ${RSS_LIMIT_MB} MB`;
      res.ok = res.failure === null;
      if (!res.ok && lastN >= 0) res.input = lastN;
      if (res.ok || !process.env.GOTD_KEEP_TMP) fs.rmSync(work, { recursive: true, force: true });
      resolve(res);
    });
  });
}

/** Runs the targets, `parallel` at a time. */
export async function runFuzz(o: FuzzOptions): Promise<FuzzResult[]> {
  const results: FuzzResult[] = new Array(o.targets.length);
  let next = 0;
  const lane = async (): Promise<void> => {
    while (next < o.targets.length) {
      const i = next++;
      const t = o.targets[i]!;
      o.log(`fuzz ${t}: ${o.seconds} s, seed ${o.seed}`);
      const r = await fuzzTarget(t, o);
      o.log(`fuzz ${t}: ${r.inputs} inputs in ${r.seconds.toFixed(0)} s, peak RSS ${r.peakRssMb} MB, ${r.kinds} kinds of clean error, ${r.normal} normal${r.note ? `; ${r.note}` : ''}${r.failure ? `; FAILED: ${r.failure}` : ''}`);
      results[i] = r;
    }
  };
  await Promise.all(Array.from({ length: Math.max(1, o.parallel) }, lane));
  return results;
}

const TITLES: Record<string, string> = {
  pktline: 'pkt-line reader',
  upload: 'upload-pack request v0/v2',
  receive: 'receive-pack commands + pack',
  'index-pack': 'pack parsing (index-pack)',
  idx: 'idx parsing + object reads',
  delta: 'delta application',
  config: 'gotd.conf / secrets loaders',
  http: 'WebSocket upgrade head',
};

function count(n: number): string {
  return n >= 1e6 ? `${(n / 1e6).toFixed(2)}M` : n >= 1e4 ? `${(n / 1e3).toFixed(0)}k` : String(n);
}

export function rowOf(r: FuzzResult): Row {
  const row: Row = {
    part: 'fuzz',
    case: TITLES[r.target] ?? r.target,
    runs: `${count(r.inputs)} inputs, ${r.seconds.toFixed(0)} s`,
    figure: `peak RSS ${r.peakRssMb} MB, ${r.kinds} clean errors`,
    limit: `0 crashes, 0 hangs, RSS < ${RSS_LIMIT_MB} MB`,
    ok: r.ok,
  };
  if (r.failure) {
    row.detail = r.failure + (r.file ? `\n  input: ${r.file}\n  replay: node build/regress/stress/fuzz_worker.js ${r.target} --replay ${r.file}` : '')
      + (r.input !== null ? `\n  or make it again: node build/regress/stress/fuzz_worker.js ${r.target} --input ${r.seed}:${r.input}` : '');
  }
  return row;
}

/** FUZZ_TARGETS=a,b limits the targets; FUZZ_PARALLEL sets how many run at once (2: the machine has 2 cores). */
export const fuzzPart: Part = {
  name: 'fuzz',
  async run(opts: StressOptions): Promise<Row[]> {
    const pick = process.env.FUZZ_TARGETS ? process.env.FUZZ_TARGETS.split(',').map((s) => s.trim()).filter(Boolean) : [...TARGET_NAMES];
    const results = await runFuzz({
      targets: pick, seconds: opts.fuzzSeconds, seed: opts.seed, log: opts.log,
      parallel: Number(process.env.FUZZ_PARALLEL ?? 2), outDir: path.join(ROOT, 'build', 'stress-fuzz'),
    });
    return results.map(rowOf);
  },
};
