/** Shared pieces of `make bench`: timing, medians, tables, the benchmark repositories. */
import { spawnSync } from 'node:child_process';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { BUILD, MKREPO, gitEnv } from '../lib/util';

export const BENCH_DIR = path.join(BUILD, 'bench');

export interface Section {
  name: string;
  run: (opts: BenchOptions) => Promise<void> | void;
}

export interface BenchOptions {
  runs: number;
}

export function median(xs: number[]): number {
  const s = [...xs].sort((a, b) => a - b);
  const m = s.length >> 1;
  return s.length % 2 ? s[m]! : (s[m - 1]! + s[m]!) / 2;
}

/** Runs a command, returns wall seconds; throws on failure. */
export function timed(cmd: string, args: string[], opts: { cwd?: string; env?: NodeJS.ProcessEnv } = {}): number {
  const start = process.hrtime.bigint();
  const r = spawnSync(cmd, args, { cwd: opts.cwd, env: gitEnv(opts.env), encoding: 'utf8', maxBuffer: 1 << 30 });
  const secs = Number(process.hrtime.bigint() - start) / 1e9;
  if (r.status !== 0) throw new Error(`${cmd} ${args.join(' ')} failed (${r.status}): ${r.stderr}`);
  return secs;
}

export function run(cmd: string, args: string[], opts: { cwd?: string; input?: string } = {}): string {
  const r = spawnSync(cmd, args, { cwd: opts.cwd, env: gitEnv(), encoding: 'utf8', input: opts.input, maxBuffer: 1 << 30 });
  if (r.status !== 0) throw new Error(`${cmd} ${args.join(' ')} failed (${r.status}): ${r.stderr}`);
  return r.stdout;
}

/** A mkrepo preset under build/bench/, built once and reused by later runs. */
export function benchRepo(preset: string, extra: string[] = []): string {
  const name = [preset, ...extra.map((a) => a.replace(/^-+/, ''))].join('-');
  const dir = path.join(BENCH_DIR, `${name}.git`);
  if (fs.existsSync(path.join(dir, 'HEAD'))) return dir;
  fs.mkdirSync(BENCH_DIR, { recursive: true });
  process.stderr.write(`bench: building ${dir} with mkrepo (once)...\n`);
  run('env', ['-u', 'NODE_OPTIONS', MKREPO, dir, '--preset', preset, '-q', ...extra]);
  return dir;
}

/** Prints an aligned table. */
export function table(header: string[], rows: string[][]): string {
  const widths = header.map((h, i) => Math.max(h.length, ...rows.map((r) => (r[i] ?? '').length)));
  const line = (cells: string[]) => cells.map((c, i) => (i === 0 ? c.padEnd(widths[i]!) : c.padStart(widths[i]!))).join('  ');
  return [line(header), line(widths.map((w) => '-'.repeat(w))), ...rows.map(line)].join('\n');
}
