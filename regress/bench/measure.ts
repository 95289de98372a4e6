/**
 * measure LOG CMD [ARGS...]: runs CMD (a server under test, as git's
 * --upload-pack), then appends {"cpu": s, "rss": kB, "wall": s} to LOG:
 * CPU seconds of CMD and every descendant it waited for (cutime + cstime of
 * this process once CMD is reaped), and the peak resident set of the
 * biggest process in the tree (VmHWM, sampled every few milliseconds, so
 * git's pack-objects child counts as well). Needs only Linux's /proc.
 */
import { spawn } from 'node:child_process';
import * as fs from 'node:fs';

function children(pid: number): number[] {
  const out: number[] = [];
  let tasks: string[];
  try {
    tasks = fs.readdirSync(`/proc/${pid}/task`);
  } catch {
    return out;
  }
  for (const t of tasks) {
    try {
      for (const c of fs.readFileSync(`/proc/${pid}/task/${t}/children`, 'utf8').split(' ')) if (c.trim()) out.push(Number(c));
    } catch { /* gone */ }
  }
  return out;
}

function hwm(pid: number): number {
  try {
    const m = /VmHWM:\s+(\d+) kB/.exec(fs.readFileSync(`/proc/${pid}/status`, 'utf8'));
    return m ? Number(m[1]) : 0;
  } catch {
    return 0;
  }
}

/** utime+stime+cutime+cstime in clock ticks from /proc/PID/stat (fields 14-17). */
function ticks(pid: number | 'self', children: boolean): number {
  const stat = fs.readFileSync(`/proc/${pid}/stat`, 'utf8');
  const f = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
  // f[0] is field 3 (state); utime is field 14 -> f[11].
  return children ? Number(f[13]) + Number(f[14]) : Number(f[11]) + Number(f[12]);
}

const [log, cmd, ...args] = process.argv.slice(2);
if (!log || !cmd) {
  process.stderr.write('usage: measure LOG CMD [ARGS...]\n');
  process.exit(2);
}
const before = ticks('self', true);
const start = process.hrtime.bigint();
const child = spawn(cmd, args, { stdio: 'inherit' });
let peak = 0;
const sample = () => {
  const stack = [child.pid!];
  while (stack.length) {
    const p = stack.pop()!;
    peak = Math.max(peak, hwm(p));
    stack.push(...children(p));
  }
};
const timer = setInterval(sample, 4);
child.on('exit', (code, signal) => {
  clearInterval(timer);
  const wall = Number(process.hrtime.bigint() - start) / 1e9;
  const cpu = (ticks('self', true) - before) / 100; // USER_HZ is 100 on Linux
  fs.appendFileSync(log, JSON.stringify({ cpu, rss: peak, wall }) + '\n');
  process.exit(code ?? (signal ? 128 : 1));
});
