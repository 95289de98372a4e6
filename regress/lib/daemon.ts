/**
 * Helpers for the daemon and ssh tests: test accounts, an installed gotd
 * (make install into a world-readable temporary prefix, as a system would
 * have it), a running gotd with a given configuration, and clients that
 * run as a given account.
 */
import { spawn, spawnSync, type ChildProcess, type SpawnOptions } from 'node:child_process';
import * as fs from 'node:fs';
import * as net from 'node:net';
import * as os from 'node:os';
import * as path from 'node:path';
import { git, gitEnv, mkrepo, ROOT, run, tmpdir, type RunResult } from './util';

export const IS_ROOT = process.getuid?.() === 0;

/*
 * tap's process tracker (@tapjs/processinfo) adds its loader to NODE_OPTIONS of
 * every child process.  gotd's processes run unprivileged and confined, where
 * that loader cannot read or write its files; they must start as they would in
 * production, so the tracker is switched off for the processes these tests run.
 */
try {
  // eslint-disable-next-line @typescript-eslint/no-require-imports
  (require('process-on-spawn') as { removeAllListeners(): void }).removeAllListeners();
} catch { /* not running under tap */ }
for (const k of Object.keys(process.env)) if (k === 'NODE_OPTIONS' || k.startsWith('_TAPJS_PROCESSINFO_')) delete process.env[k];

/** Accounts the tests create (root only): a daemon user and clients with groups. */
export const DAEMON_USER = '_gotdtest';
export const USERS = { alice: 'gotd_alice', bob: 'gotd_bob', carol: 'gotd_carol', git: 'gotd_git', dave: 'gotd_dave' } as const;
export const GROUPS = { dev: 'gotd_dev', interns: 'gotd_interns' } as const;

export interface Acct { name: string; uid: number; gid: number; home: string }

export function account(name: string): Acct | null {
  const r = spawnSync('getent', ['passwd', name], { encoding: 'utf8' });
  const f = r.stdout.trim().split(':');
  if (r.status !== 0 || f.length < 7) return null;
  return { name: f[0]!, uid: Number(f[2]), gid: Number(f[3]), home: f[5]! };
}

/** Why accounts cannot be made here, or null when they exist (created if needed). */
export function ensureAccounts(): string | null {
  if (!IS_ROOT) return 'needs root to create test accounts';
  for (const tool of ['useradd', 'groupadd', 'flock', 'getent']) {
    if (spawnSync('sh', ['-c', `command -v ${tool}`]).status !== 0) return `${tool} not installed`;
  }
  // Test files run in parallel; /etc/passwd allows one writer at a time.
  const script = [
    `getent group ${GROUPS.dev} >/dev/null || groupadd ${GROUPS.dev}`,
    `getent group ${GROUPS.interns} >/dev/null || groupadd ${GROUPS.interns}`,
    `id ${DAEMON_USER} >/dev/null 2>&1 || useradd -r -M -d /nonexistent -s /usr/sbin/nologin ${DAEMON_USER}`,
    `id ${USERS.alice} >/dev/null 2>&1 || useradd -m -s /bin/sh -p '*' -G ${GROUPS.dev} ${USERS.alice}`,
    `id ${USERS.bob} >/dev/null 2>&1 || useradd -m -s /bin/sh -p '*' -G ${GROUPS.dev},${GROUPS.interns} ${USERS.bob}`,
    `id ${USERS.carol} >/dev/null 2>&1 || useradd -m -s /bin/sh -p '*' ${USERS.carol}`,
    `id ${USERS.git} >/dev/null 2>&1 || useradd -m -s /bin/sh -p '*' ${USERS.git}`,
    `id ${USERS.dave} >/dev/null 2>&1 || useradd -m -s /bin/sh -p '*' ${USERS.dave}`,
  ].join('\n');
  const r = spawnSync('flock', ['/tmp/.gotd-test-accounts.lock', 'sh', '-ec', script], { encoding: 'utf8' });
  if (r.status !== 0) return `cannot create test accounts: ${r.stderr}`;
  return null;
}

export function mustAccount(name: string): Acct {
  const a = account(name);
  if (!a) throw new Error(`no account ${name}`);
  return a;
}

/** A temporary directory everyone may enter (the daemon user and the clients must reach it). */
export function openTmpdir(prefix = 'gotd-test-'): string {
  const dir = tmpdir(prefix);
  fs.chmodSync(dir, 0o755);
  return dir;
}

export interface Install { prefix: string; gotd: string; gotctl: string; gotsh: string; bin: string }

/** make install into a fresh world-readable prefix; bin/ has git-upload-pack and git-receive-pack symlinks to gotsh. */
export function install(): Install {
  const prefix = path.join(openTmpdir('gotd-inst-'), 'usr');
  const r = spawnSync('make', ['-s', '-C', ROOT, 'install', `PREFIX=${prefix}`, 'DESTDIR='], { encoding: 'utf8' });
  if (r.status !== 0) throw new Error(`make install failed: ${r.stdout}${r.stderr}`);
  const bin = path.join(path.dirname(prefix), 'gitbin');
  fs.mkdirSync(bin, { mode: 0o755 });
  for (const n of ['git-upload-pack', 'git-receive-pack']) fs.symlinkSync(path.join(prefix, 'bin', 'gotsh'), path.join(bin, n));
  return { prefix, gotd: path.join(prefix, 'sbin', 'gotd'), gotctl: path.join(prefix, 'sbin', 'gotctl'), gotsh: path.join(prefix, 'bin', 'gotsh'), bin };
}

/** A bare repository from mkrepo, owned by owner (the daemon user) so that pushes can write. */
export function repoFor(dir: string, name: string, owner: Acct | null, preset: string[] = ['--preset', 'small']): string {
  const repo = path.join(dir, `${name}.git`);
  fs.cpSync(mkrepo(preset), repo, { recursive: true });
  if (owner) spawnSync('chown', ['-R', `${owner.uid}:${owner.gid}`, repo]);
  spawnSync('chmod', ['-R', 'a+rX', repo]);
  return repo;
}

export class Gotd {
  readonly log: string[] = [];
  private exited: Promise<number | null>;

  constructor(readonly proc: ChildProcess, readonly sock: string, readonly conf: string, readonly inst: Install) {
    let partial = '';
    proc.stderr!.setEncoding('utf8');
    proc.stderr!.on('data', (s: string) => {
      const lines = (partial + s).split('\n');
      partial = lines.pop()!;
      this.log.push(...lines);
      if (process.env.GOTD_TEST_LOG) process.stderr.write(lines.map((l) => `  [gotd] ${l}\n`).join(''));
    });
    this.exited = new Promise((resolve) => proc.on('exit', (code) => resolve(code)));
  }

  get pid(): number { return this.proc.pid!; }

  /** Resolves with the exit code; rejects after ms. */
  waitExit(ms = 25_000): Promise<number | null> {
    return Promise.race([this.exited, new Promise<never>((_, reject) => setTimeout(() => reject(new Error('gotd did not exit')), ms).unref())]);
  }

  gotctl(args: string[], as?: Acct): Promise<RunResult> {
    return run(this.inst.gotctl, ['-f', this.sock, ...args], asUser(as));
  }

  async stop(): Promise<void> {
    if (this.proc.exitCode !== null || this.proc.signalCode !== null) return;
    this.proc.kill('SIGTERM');
    try { await this.waitExit(20_000); } catch { this.proc.kill('SIGKILL'); }
  }

  /** Waits for a log line matching re (lines logged so far count). */
  async waitLog(re: RegExp, ms = 10_000): Promise<string> {
    const t0 = Date.now();
    for (;;) {
      const hit = this.log.find((l) => re.test(l));
      if (hit) return hit;
      if (Date.now() - t0 > ms) throw new Error(`no log line ${re} in:\n${this.log.join('\n')}`);
      await sleep(50);
    }
  }
}

export function sleep(ms: number): Promise<void> {
  return new Promise((r) => setTimeout(r, ms));
}

/** Spawn options that run a client as an account (root stays root when as is undefined). */
export function asUser(as?: Acct, extra: SpawnOptions = {}): SpawnOptions {
  const env = gitEnv({ HOME: as?.home ?? os.homedir(), ...(extra.env ?? {}) });
  return { ...extra, env, ...(as ? { uid: as.uid, gid: as.gid } : {}) };
}

export function connectable(sock: string): Promise<boolean> {
  return new Promise((resolve) => {
    const c = net.connect(sock);
    c.once('connect', () => { c.destroy(); resolve(true); });
    c.once('error', () => resolve(false));
  });
}

/**
 * Starts the installed gotd -d -v with the body of a configuration (user and
 * listen are added); as root it drops to the test daemon user.
 */
export async function startGotd(inst: Install, dir: string, body: string, opts: { secrets?: string; user?: string } = {}): Promise<Gotd> {
  const sock = path.join(dir, 'gotd.sock');
  const conf = path.join(dir, 'gotd.conf');
  const user = opts.user ?? (IS_ROOT ? DAEMON_USER : os.userInfo().username);
  fs.writeFileSync(conf, `user = "${user}"\nlisten = "${sock}"\n${body}\n`);
  fs.chmodSync(conf, 0o644);
  const args = ['-d', '-v', '-f', conf, ...(opts.secrets ? ['-s', opts.secrets] : [])];
  const proc = spawn(inst.gotd, args, { stdio: ['ignore', 'ignore', 'pipe'] });
  const g = new Gotd(proc, sock, conf, inst);
  const t0 = Date.now();
  while (!(await connectable(sock))) {
    if (proc.exitCode !== null) throw new Error(`gotd exited ${proc.exitCode}:\n${g.log.join('\n')}`);
    if (Date.now() - t0 > 20_000) { proc.kill('SIGKILL'); throw new Error(`gotd did not start:\n${g.log.join('\n')}`); }
    await sleep(50);
  }
  return g;
}

/** Sends a raw request line on gotd.sock and collects everything until close (or ms). */
export function rawRequest(sock: string, line: string | Buffer | null, ms = 5000): Promise<{ data: Buffer; closed: boolean }> {
  return new Promise((resolve) => {
    const c = net.connect(sock);
    const chunks: Buffer[] = [];
    let done = false;
    const finish = (closed: boolean): void => {
      if (done) return;
      done = true;
      c.destroy();
      resolve({ data: Buffer.concat(chunks), closed });
    };
    c.on('data', (b: Buffer) => chunks.push(b));
    c.on('close', () => finish(true));
    c.on('error', () => finish(true));
    if (line !== null) c.write(line);
    setTimeout(() => finish(false), ms).unref();
  });
}

/** gotsh as a client would run it, as an account, with gotd's socket. */
export function gotsh(inst: Install, sock: string, args: string[], as?: Acct, env: NodeJS.ProcessEnv = {}, input = ''): Promise<RunResult> {
  return run(inst.gotsh, args, { ...asUser(as, { env: { GOTD_UNIX_SOCKET: sock, ...env } }), input });
}

/** Process ids of every descendant of pid (from /proc). */
export function descendants(pid: number): number[] {
  const children = new Map<number, number[]>();
  for (const d of fs.readdirSync('/proc')) {
    if (!/^[0-9]+$/.test(d)) continue;
    try {
      const stat = fs.readFileSync(`/proc/${d}/stat`, 'utf8');
      const ppid = Number(stat.slice(stat.lastIndexOf(')') + 2).split(' ')[1]);
      children.set(ppid, [...(children.get(ppid) ?? []), Number(d)]);
    } catch { /* gone */ }
  }
  const out: number[] = [];
  const walk = (p: number): void => { for (const c of children.get(p) ?? []) { out.push(c); walk(c); } };
  walk(pid);
  return out;
}

/** Adds n refs (all at main) to a repository's packed-refs: a listing that takes a while to send. */
export function addRefs(gitDir: string, n: number): void {
  const head = git(['--git-dir', gitDir, 'rev-parse', 'refs/heads/main']).trim();
  const file = path.join(gitDir, 'packed-refs');
  const old = fs.existsSync(file) ? fs.readFileSync(file, 'utf8') : '# pack-refs with: peeled fully-peeled sorted \n';
  // refs/zz/ sorts after every ref mkrepo makes, so the file stays sorted.
  const lines = Array.from({ length: n }, (_, i) => `${head} refs/zz/${String(i).padStart(7, '0')}\n`);
  fs.writeFileSync(file, old + lines.join(''));
  const st = fs.statSync(gitDir);
  fs.chownSync(file, st.uid, st.gid);
}

export interface Roles { listen: number[]; auth: number[]; notify: number[]; readers: number[]; writers: number[] }

/** gotd's processes by role, from their command lines. */
export function roles(g: Gotd): Roles {
  const out: Roles = { listen: [], auth: [], notify: [], readers: [], writers: [] };
  for (const p of descendants(g.pid)) {
    let cmd = '';
    let ppid = -1;
    try {
      cmd = fs.readFileSync(`/proc/${p}/cmdline`, 'utf8');
      const st = fs.readFileSync(`/proc/${p}/stat`, 'utf8');
      ppid = Number(st.slice(st.lastIndexOf(')') + 2).split(' ')[1]);
    } catch { continue; }
    // A child auth is forking (getent) has auth's command line until it execs: not auth.
    if (/gotd\/(listen|auth)\.js/.test(cmd) && ppid !== g.pid) continue;
    // Under bwrap the worker is node inside bwrap: take node (the Git speaker), not bwrap.
    if (/bwrap\0/.test(cmd) || cmd.startsWith('bwrap')) continue;
    if (/gotd\/listen\.js/.test(cmd)) out.listen.push(p);
    else if (/gotd\/auth\.js/.test(cmd)) out.auth.push(p);
    else if (/notify/.test(cmd)) out.notify.push(p);
    else if (/repo_read\.js/.test(cmd)) out.readers.push(p);
    else if (/repo_write\.js/.test(cmd)) out.writers.push(p);
  }
  return out;
}

/**
 * Starts ref listings (start) and SIGKILLs each one's reader a growing
 * delay after it appears, until `want` kills landed after the reader took
 * the client (earlier ones gotd answers itself) and before it finished;
 * those runs, for the caller to judge how the client ended.
 */
export async function killReadersMidListing(g: Gotd, start: () => Promise<RunResult>, want = 3): Promise<Array<{ delay: number; r: RunResult }>> {
  const landed: Array<{ delay: number; r: RunResult }> = [];
  for (let delay = 50; delay < 3000 && landed.length < want; delay += 50) {
    let over = false;
    const ls = start().finally(() => { over = true; });
    let pid: number | undefined;
    while (!over && pid === undefined) { pid = roles(g).readers[0]; if (pid === undefined) await sleep(2); }
    await sleep(delay);
    if (over || pid === undefined || !alive(pid)) { await ls; continue; }
    process.kill(pid, 'SIGKILL');
    const r = await ls;
    if (r.code === 0) break;
    if (!/before the session began/.test(r.stderr)) landed.push({ delay, r });
  }
  return landed;
}

/** The Uid: line of /proc/PID/status as numbers (real, effective, saved, fs). */
export function uids(pid: number): number[] | null {
  try {
    const m = /^Uid:\s*(.*)$/m.exec(fs.readFileSync(`/proc/${pid}/status`, 'utf8'));
    return m ? m[1]!.trim().split(/\s+/).map(Number) : null;
  } catch {
    return null;
  }
}

export function alive(pid: number): boolean {
  try { process.kill(pid, 0); return true; } catch { return false; }
}

/** A directory owned by an account, for its clones. */
export function workdir(parent: string, as: Acct | undefined, name: string): string {
  const d = path.join(parent, name);
  fs.mkdirSync(d, { mode: 0o755 });
  if (as) fs.chownSync(d, as.uid, as.gid);
  return d;
}
