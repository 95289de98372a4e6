/**
 * Shared helpers for the tap tests: temporary directories, running real git,
 * building repositories with mkrepo, and the checks every test ends with.
 */
import { spawn, spawnSync, type SpawnOptions } from 'node:child_process';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';

/** Project root (this file lives in build/regress/lib after compilation). */
export const ROOT = path.resolve(__dirname, '..', '..', '..');
export const BUILD = path.join(ROOT, 'build');
export const MKREPO = path.join(ROOT, 'regress', 'tools', 'mkrepo');

/** An environment for git that ignores the caller's configuration. */
export function gitEnv(extra: NodeJS.ProcessEnv = {}): NodeJS.ProcessEnv {
  return {
    ...process.env,
    GIT_CONFIG_NOSYSTEM: '1',
    GIT_CONFIG_GLOBAL: '/dev/null',
    GIT_TERMINAL_PROMPT: '0',
    GIT_AUTHOR_NAME: 'Test Author',
    GIT_AUTHOR_EMAIL: 'author@example.org',
    GIT_COMMITTER_NAME: 'Test Committer',
    GIT_COMMITTER_EMAIL: 'committer@example.org',
    LC_ALL: 'C',
    ...extra,
  };
}

/** A fresh temporary directory, removed when the process exits unless GOTD_KEEP_TMP is set. */
export function tmpdir(prefix = 'gotd-test-'): string {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), prefix));
  if (!process.env.GOTD_KEEP_TMP) {
    process.on('exit', () => fs.rmSync(dir, { recursive: true, force: true }));
  }
  return dir;
}

export interface RunResult {
  code: number | null;
  signal: NodeJS.Signals | null;
  stdout: string;
  stderr: string;
}

/** Runs a program to completion, capturing output; never throws for a non-zero exit. */
export function run(cmd: string, args: string[], opts: SpawnOptions & { input?: string | Buffer } = {}): Promise<RunResult> {
  return new Promise((resolve, reject) => {
    const child = spawn(cmd, args, { env: gitEnv(), ...opts, stdio: ['pipe', 'pipe', 'pipe'] });
    const out: Buffer[] = [];
    const err: Buffer[] = [];
    child.stdout!.on('data', (b: Buffer) => out.push(b));
    child.stderr!.on('data', (b: Buffer) => err.push(b));
    child.on('error', reject);
    child.on('close', (code, signal) => resolve({
      code, signal,
      stdout: Buffer.concat(out).toString('utf8'),
      stderr: Buffer.concat(err).toString('utf8'),
    }));
    child.stdin!.on('error', () => { /* the child may exit before reading everything */ });
    child.stdin!.end(opts.input ?? '');
  });
}

/** Runs git and returns stdout; throws with stderr when git fails. */
export function git(args: string[], opts: { cwd?: string; env?: NodeJS.ProcessEnv; input?: string } = {}): string {
  const r = spawnSync('git', args, {
    cwd: opts.cwd, env: gitEnv(opts.env), input: opts.input, encoding: 'utf8', maxBuffer: 1 << 30,
  });
  if (r.status !== 0) {
    throw new Error(`git ${args.join(' ')} failed (${r.status}): ${r.stderr}`);
  }
  return r.stdout;
}

/** `git fsck --strict` on a repository; returns the failure output, or '' when clean. */
export function fsckStrict(gitDir: string): string {
  const r = spawnSync('git', ['--git-dir', gitDir, 'fsck', '--strict', '--no-progress', '--no-dangling'], {
    env: gitEnv(), encoding: 'utf8',
  });
  return r.status === 0 ? '' : `exit ${r.status}: ${r.stdout}${r.stderr}`;
}

/** All refs of a repository as "id name" lines, sorted (what show-ref prints, plus HEAD's target). */
export function refsOf(gitDir: string): string {
  const r = spawnSync('git', ['--git-dir', gitDir, 'for-each-ref', '--format=%(objectname) %(refname)'], {
    env: gitEnv(), encoding: 'utf8',
  });
  return r.stdout.split('\n').filter(Boolean).sort().join('\n');
}

const built = new Map<string, string>();

/**
 * A repository from mkrepo with the given options, built once per test process
 * and copied for each caller that wants to change it.
 */
export function mkrepo(args: string[], opts: { copy?: boolean } = {}): string {
  const key = args.join(' ');
  let dir = built.get(key);
  if (!dir) {
    dir = path.join(tmpdir('gotd-mkrepo-'), 'repo.git');
    // tap re-injects NODE_OPTIONS (its processinfo hook) into every child;
    // under it mkrepo's node gets a non-blocking stdout and dies with EAGAIN.
    const r = spawnSync('env', ['-u', 'NODE_OPTIONS', MKREPO, dir, '-q', ...args], { env: gitEnv(), encoding: 'utf8' });
    if (r.status !== 0) throw new Error(`mkrepo ${key} failed: ${r.stderr}`);
    built.set(key, dir);
  }
  if (!opts.copy) return dir;
  const copy = path.join(tmpdir('gotd-repo-'), 'repo.git');
  fs.cpSync(dir, copy, { recursive: true });
  return copy;
}
