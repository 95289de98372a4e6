/**
 * What the load and faults parts share: an installed gotd with several
 * small repositories, test accounts for gotsh clients and WebSocket users
 * for git-remote-ws, stock git as either kind of client (with a time
 * limit, so that a hang is seen as one), the daemon's long-lived
 * processes and their RSS from /proc, and the checks every repository
 * gets at the end (git fsck --strict, refs).
 */
import { spawn } from 'node:child_process';
import * as fs from 'node:fs';
import * as path from 'node:path';
import {
  asUser, DAEMON_USER, descendants, ensureAccounts, install, mustAccount, openTmpdir, repoFor, roles, sleep, USERS,
  type Acct, type Gotd, type Install, type Roles,
} from '../lib/daemon';
import { fsckStrict, gitEnv, refsOf } from '../lib/util';
import { freePort, startWsGotd, writeSecrets } from '../lib/ws';

/** mulberry32: a small seeded PRNG, so that a failing run can be replayed with its seed. */
export function rng(seed: number): () => number {
  let s = seed | 0;
  return () => {
    s = (s + 0x6d2b79f5) | 0;
    let x = Math.imul(s ^ (s >>> 15), 1 | s);
    x = (x + Math.imul(x ^ (x >>> 7), 61 | x)) ^ x;
    return ((x ^ (x >>> 14)) >>> 0) / 4294967296;
  };
}

export interface WsUser { name: string; password: string }

export interface Client {
  /** A gotsh client runs git as a unix account; a ws client runs git (as root) with a password. */
  kind: 'gotsh' | 'ws';
  acct?: Acct;
  ws?: WsUser;
}

export interface GitRun { code: number | null; signal: string | null; stdout: string; stderr: string; ms: number; timedOut: boolean }

/** Why the load and faults parts cannot run here, or null. */
export function unavailable(): string | null {
  return ensureAccounts();
}

export class Env {
  readonly inst: Install;
  readonly dir: string;
  readonly daemon: Acct;
  readonly unixUsers: Acct[];
  readonly wsUsers: WsUser[] = [1, 2, 3, 4].map((i) => ({ name: `stressws${i}`, password: `pw-${i}-stress` }));
  readonly repos = new Map<string, string>();
  port = 0;
  secrets = '';
  gotd: Gotd | null = null;
  /** Extra repositories (name → path) that are not made by mkrepo (the disk-full one). */
  private extra = new Map<string, string>();

  constructor(repoCount: number) {
    this.inst = install();
    this.dir = openTmpdir('gotd-stress-');
    this.daemon = mustAccount(DAEMON_USER);
    this.unixUsers = [USERS.alice, USERS.bob, USERS.carol, USERS.dave].map(mustAccount);
    for (let i = 0; i < repoCount; i++) this.repos.set(`r${i}`, repoFor(this.dir, `r${i}`, this.daemon));
  }

  addRepo(name: string, repoPath: string): void {
    this.extra.set(name, repoPath);
    this.repos.set(name, repoPath);
  }

  config(): string {
    const names = [...this.unixUsers.map((u) => u.name), ...this.wsUsers.map((u) => u.name)];
    const access = JSON.stringify(names.map((n) => `permit rw ${n}`));
    return `
[connection]
request_timeout = "10m"
auth_timeout = "2m"
max_connections = 4000
limit_per_user = 2000
[websocket]
listen = ["127.0.0.1:${this.port}"]
rate = "1000000/min"
${[...this.repos].map(([name, p]) => `[[repository]]\nname = "${name}"\npath = "${p}"\naccess = ${access}\n`).join('\n')}`;
  }

  async start(): Promise<Gotd> {
    if (!this.secrets) this.secrets = await writeSecrets(this.dir, Object.fromEntries(this.wsUsers.map((u) => [u.name, { password: u.password }])));
    this.port = await freePort();
    this.gotd = await startWsGotd(this.inst, this.dir, this.config(), this.port, { secrets: this.secrets });
    return this.gotd;
  }

  /** A directory for a client's clones, owned by its account. */
  workdir(c: Client, name: string): string {
    const d = path.join(this.dir, 'work', name);
    fs.mkdirSync(d, { recursive: true, mode: 0o755 });
    if (c.acct) fs.chownSync(d, c.acct.uid, c.acct.gid);
    return d;
  }

  /** The remote URL a client uses for a repository. */
  url(c: Client, repo: string): string {
    if (c.kind === 'ws') return `ws://${c.ws!.name}:${c.ws!.password}@127.0.0.1:${this.port}/${repo}`;
    return `file:///${repo}`;
  }

  /**
   * Runs git as the client would: a gotsh client with the installed gotsh
   * as upload-pack and receive-pack (as git-upload-pack / git-receive-pack
   * symlinks) as its account; a ws client with git-remote-ws on PATH.
   * Killed after limitMs (a hang, never just slowness).
   */
  git(c: Client, args: string[], cwd: string, limitMs = 15 * 60_000): Promise<GitRun> {
    const up = path.join(this.inst.bin, 'git-upload-pack');
    const rp = path.join(this.inst.bin, 'git-receive-pack');
    const pre = c.kind === 'gotsh' ? ['-c', `remote.origin.uploadpack=${up}`, '-c', `remote.origin.receivepack=${rp}`] : [];
    const sub = args[0];
    const opt = c.kind !== 'gotsh' ? [] : sub === 'clone' || sub === 'fetch' || sub === 'ls-remote' ? [`--upload-pack=${up}`] : sub === 'push' ? [`--receive-pack=${rp}`] : [];
    const full = [...pre, sub!, ...opt, ...args.slice(1)];
    const env = c.kind === 'gotsh'
      ? { GOTD_UNIX_SOCKET: this.gotd!.sock }
      : { PATH: `${path.join(this.inst.prefix, 'bin')}:${process.env.PATH ?? '/usr/bin:/bin'}`, HOME: this.dir };
    return runLimited('git', full, { ...asUser(c.acct, { env }), cwd }, limitMs);
  }

  /** Local git (commit and such) in a client's clone, as its account. */
  local(c: Client, args: string[], cwd: string): Promise<GitRun> {
    return runLimited('git', args, { ...asUser(c.acct, { env: c.acct ? {} : { HOME: this.dir } }), cwd }, 120_000);
  }

  /** Processes under gotd by role (from their command lines). */
  roles(): Roles {
    return this.gotd ? roles(this.gotd) : { listen: [], auth: [], notify: [], readers: [], writers: [] };
  }

  /** RSS in bytes of gotd, listen and auth (the long-lived processes serving clients). */
  rss(): { total: number; parts: string } {
    const r = this.roles();
    const pids: Array<[string, number]> = [['gotd', this.gotd!.pid], ...r.listen.map((p): [string, number] => ['listen', p]), ...r.auth.map((p): [string, number] => ['auth', p])];
    let total = 0;
    const parts: string[] = [];
    for (const [role, pid] of pids) {
      const kb = rssKb(pid);
      total += kb * 1024;
      parts.push(`${role} ${(kb / 1024).toFixed(1)}`);
    }
    return { total, parts: parts.join(', ') };
  }

  /** git fsck --strict on every server repository: failures as "name: output". */
  fsckAll(): string[] {
    const bad: string[] = [];
    for (const [name, p] of this.repos) {
      const f = fsckStrict(p);
      if (f) bad.push(`${name}: ${f.slice(0, 400)}`);
    }
    return bad;
  }

  refs(repo: string): Map<string, string> {
    return refMap(this.repos.get(repo)!);
  }

  async stop(): Promise<void> {
    await this.gotd?.stop();
    this.gotd = null;
  }
}

export function refMap(gitDir: string): Map<string, string> {
  return new Map(refsOf(gitDir).split('\n').filter(Boolean).map((l) => [l.split(' ')[1]!, l.split(' ')[0]!]));
}

export function rssKb(pid: number): number {
  try {
    const m = /^VmRSS:\s*([0-9]+) kB/m.exec(fs.readFileSync(`/proc/${pid}/status`, 'utf8'));
    return m ? Number(m[1]) : 0;
  } catch {
    return 0;
  }
}

/** Spawns a program, captures its output, and SIGKILLs it (and says so) after limitMs. */
export function runLimited(cmd: string, args: string[], opts: Parameters<typeof spawn>[2], limitMs: number): Promise<GitRun> {
  return new Promise((resolve) => {
    const t0 = Date.now();
    const child = spawn(cmd, args, { env: gitEnv(), ...opts, stdio: ['ignore', 'pipe', 'pipe'] });
    const out: Buffer[] = [];
    const err: Buffer[] = [];
    let timedOut = false;
    const timer = setTimeout(() => {
      timedOut = true;
      if (child.pid !== undefined) err.unshift(Buffer.from(`${hangReport(child.pid)}\n`));
      child.kill('SIGKILL');
    }, limitMs);
    child.stdout!.on('data', (b: Buffer) => out.push(b));
    child.stderr!.on('data', (b: Buffer) => { if (err.length < 200) err.push(b); });
    child.on('error', (e) => { clearTimeout(timer); resolve({ code: -1, signal: null, stdout: '', stderr: e.message, ms: Date.now() - t0, timedOut }); });
    child.on('close', (code, signal) => {
      clearTimeout(timer);
      resolve({ code, signal, stdout: Buffer.concat(out).toString('utf8'), stderr: Buffer.concat(err).toString('utf8'), ms: Date.now() - t0, timedOut });
    });
  });
}

/**
 * What a hung client and its helpers (gotsh, git-remote-ws, index-pack) are
 * doing: state, wait channel and open files of each, so that a hang seen
 * once in a long run can be explained without reproducing it.
 */
export function hangReport(pid: number): string {
  const lines = ['hang report:'];
  for (const p of [pid, ...descendants(pid)]) {
    const read = (f: string): string => { try { return fs.readFileSync(`/proc/${p}/${f}`, 'utf8'); } catch { return '?'; } };
    const cmd = read('cmdline').split('\0').join(' ').trim().slice(0, 200);
    const state = /^State:\s*(.*)$/m.exec(read('status'))?.[1] ?? '?';
    let fds = '';
    try {
      fds = fs.readdirSync(`/proc/${p}/fd`).map((fd) => { try { return `${fd}->${fs.readlinkSync(`/proc/${p}/fd/${fd}`)}`; } catch { return fd; } }).join(' ');
    } catch { /* gone */ }
    lines.push(`  ${p} [${state}] wchan=${read('wchan')} ${cmd}\n    fds: ${fds}`);
  }
  return lines.join('\n');
}

/** The value at quantile q of sorted numbers. */
export function quantile(sorted: number[], q: number): number {
  if (sorted.length === 0) return NaN;
  return sorted[Math.min(sorted.length - 1, Math.max(0, Math.ceil(q * sorted.length) - 1))]!;
}

/** A refusal by a limit gotd applies on purpose (contract: the message says "limit" or "too many"). */
export function limitRefusal(stderr: string): boolean {
  return /limit|too many/i.test(stderr);
}

/** The first meaningful line of git's complaint. */
export function firstError(stderr: string): string {
  const lines = stderr.split('\n').map((l) => l.trim()).filter((l) => l && !/^(Cloning into|warning: redirecting)/.test(l));
  return (lines.find((l) => /error|fatal|gotsh|denied|refused|rejected/i.test(l)) ?? lines[0] ?? '(no message)').slice(0, 300);
}

export { sleep };
