/**
 * make stress, part "faults": SIGKILL of session workers (readers during
 * clones, writers during pushes), of listen and of auth at seeded random
 * moments while stock git clients run through gotsh and ws://, and a disk
 * that fills up during a push (a size-limited tmpfs the part mounts, as
 * root).  After every fault: gotd has restarted the child or stopped
 * cleanly (and is started again), git fsck --strict passes on every
 * repository, every ref is its old or its new value, and a normal clone
 * and push work.
 */
import { spawnSync } from 'node:child_process';
import * as crypto from 'node:crypto';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { alive, connectable, descendants, IS_ROOT, repoFor } from '../lib/daemon';
import type { Part } from './parts';
import type { Row, StressOptions } from './table';
import { Env, firstError, rng, sleep, unavailable, type Client, type GitRun } from './gotd_env';

const ZERO = '0'.repeat(40);

/** A client with a clone of one repository, pushing to its own branch. */
interface Pusher extends Client {
  name: string;
  repo: string;
  clone: string;
  branch: string;
}

/** What one fault did and what was found afterwards. */
interface Outcome { killed: boolean; recovered: 'child' | 'gotd' | 'n/a'; damage: string[]; clientErrors: string[]; hung: number }

class Faults {
  readonly random: () => number;
  readonly pushers: Pusher[] = [];
  private n = 0;
  /** Every failure found, first ones kept for the report. */
  readonly damage: string[] = [];
  /** Messages the clients got when their session was cut (to judge that they are clear). */
  readonly messages = new Map<string, number>();

  constructor(readonly env: Env, readonly opts: StressOptions) {
    this.random = rng(opts.seed * 104729 + 17);
  }

  log(line: string): void { this.opts.log(`faults: ${line}`); }

  async setup(repos: string[]): Promise<void> {
    let i = 0;
    for (const repo of repos) {
      for (const kind of ['gotsh', 'ws'] as const) {
        const c: Client = kind === 'gotsh' ? { kind, acct: this.env.unixUsers[i % this.env.unixUsers.length]! } : { kind, ws: this.env.wsUsers[i % this.env.wsUsers.length]! };
        const name = `p${i++}`;
        const work = this.env.workdir(c, name);
        const r = await this.env.git(c, ['clone', '-q', this.env.url(c, repo), 'clone'], work);
        if (r.code !== 0) throw new Error(`setup clone of ${repo} (${kind}) failed: ${r.stderr}`);
        this.pushers.push({ ...c, name, repo, clone: path.join(work, 'clone'), branch: `fault/${name}` });
      }
    }
  }

  /** A commit with size bytes of fresh incompressible content in the pusher's clone; its id. */
  async commit(p: Pusher, size: number): Promise<string> {
    this.n++;
    const file = path.join(p.clone, `fault-${p.name}.txt`);
    fs.writeFileSync(file, `${this.n}\n${crypto.randomBytes(Math.ceil(size * 0.75)).toString('base64')}\n`);
    if (p.acct) fs.chownSync(file, p.acct.uid, p.acct.gid);
    const add = await this.env.local(p, ['add', '-A'], p.clone);
    const c = await this.env.local(p, ['commit', '-q', '-m', `fault ${this.n}`], p.clone);
    if (add.code !== 0 || c.code !== 0) throw new Error(`local commit failed: ${add.stderr}${c.stderr}`);
    return (await this.env.local(p, ['rev-parse', 'HEAD'], p.clone)).stdout.trim();
  }

  push(p: Pusher, refspecs: string[]): Promise<GitRun> {
    return this.env.git(p, ['push', '-q', this.env.url(p, p.repo), ...refspecs], p.clone, 5 * 60_000);
  }

  clone(c: Client, repo: string, dir: string): Promise<GitRun> {
    const work = this.env.workdir(c, `x${this.n++}`);
    void dir;
    return this.env.git(c, ['clone', '-q', '--no-checkout', this.env.url(c, repo), 'c'], work, 5 * 60_000).then((r) => {
      fs.rmSync(work, { recursive: true, force: true });
      return r;
    });
  }

  note(r: GitRun): void {
    if (r.code === 0) return;
    const m = firstError(r.stderr).replace(/[0-9a-f]{40}/g, 'OID').replace(/incoming-[0-9a-f]+/g, 'incoming-X');
    this.messages.set(m, (this.messages.get(m) ?? 0) + 1);
  }

  /**
   * The checks after a fault: refs of every repository are what they were,
   * except the ones in `moving`, which may hold any of the given values;
   * fsck --strict everywhere; no gotd left half-working (a normal clone and
   * push through both transports).
   */
  async check(before: Map<string, Map<string, string>>, moving: Map<string, Set<string>>, label: string, involved: Pusher[] = []): Promise<string[]> {
    const bad: string[] = [];
    for (const f of this.env.fsckAll()) bad.push(`fsck ${f}`);
    for (const [repo, refs0] of before) {
      const refs1 = this.env.refs(repo);
      for (const name of new Set([...refs0.keys(), ...refs1.keys()])) {
        const key = `${repo} ${name}`;
        const now = refs1.get(name) ?? ZERO;
        const allowed = moving.get(key) ?? new Set([refs0.get(name) ?? ZERO]);
        if (!allowed.has(now)) bad.push(`${key} is ${now}, expected one of ${[...allowed].join(' ')}`);
      }
    }
    // Normal sessions work again: a clone and a push by the clients the fault hit (their refs
    // must not stay locked) and by one client of each transport.
    const who = new Set(involved);
    for (const kind of ['gotsh', 'ws'] as const) who.add(this.pushers.filter((x) => x.kind === kind)[Math.floor(this.random() * (this.pushers.length / 2))]!);
    for (const p of who) {
      const kind = p.kind;
      const cl = await this.clone(p, p.repo, '');
      if (cl.code !== 0) bad.push(`normal clone of ${p.repo} over ${kind} failed: ${firstError(cl.stderr)}`);
      const oid = await this.commit(p, 200);
      const r = await this.push(p, [`HEAD:refs/heads/${p.branch}`]);
      if (r.code !== 0) bad.push(`normal push to ${p.repo} over ${kind} failed: ${firstError(r.stderr)}`);
      else if (this.env.refs(p.repo).get(`refs/heads/${p.branch}`) !== oid) bad.push(`normal push to ${p.repo} ${p.branch} over ${kind} did not land`);
    }
    for (const p of who) {
      const locks = lockFiles(this.env.repos.get(p.repo)!);
      if (locks.length) bad.push(`${p.repo}: lock files left after a push: ${locks.join(' ')}`);
    }
    if (bad.length) this.log(`${label}: ${bad.join('; ')}`);
    return bad;
  }

  snapshot(): Map<string, Map<string, string>> {
    return new Map([...this.env.repos.keys()].map((r) => [r, this.env.refs(r)]));
  }

  /** Waits until gotd has a running listen and auth other than the given pids, or has exited; restarts it then. */
  async recovery(killed: number): Promise<'child' | 'gotd' | string> {
    const g = this.env.gotd!;
    const t0 = Date.now();
    for (;;) {
      if (g.proc.exitCode !== null || g.proc.signalCode !== null) {
        const left = descendants(g.pid);
        // Stopped: it must have taken its processes with it.
        await sleep(500);
        const code = g.proc.exitCode;
        const stray = left.filter(alive);
        const tail = g.log.filter((l) => /keeps dying|stopping|stopped/.test(l)).slice(-2).join(' | ');
        this.log(`gotd stopped (exit ${code}): ${tail}`);
        if (stray.length) return `gotd exited but left processes ${stray.join(' ')}`;
        if (fs.existsSync(g.sock) && await connectable(g.sock)) return 'gotd exited but its socket still accepts';
        await this.env.start();
        return 'gotd';
      }
      const r = this.env.roles();
      if (r.listen.length === 1 && r.auth.length === 1 && !r.listen.includes(killed) && !r.auth.includes(killed) && await connectable(g.sock)) {
        // The new child is configured once it answers: a session through it proves that (check does that).
        return 'child';
      }
      if (Date.now() - t0 > 30_000) return `no new child within 30 s (listen ${r.listen.join(',')}, auth ${r.auth.join(',')})`;
      await sleep(100);
    }
  }

  /** Polls for a worker of the role until the client is done; its pid, or null. */
  async waitWorker(role: 'readers' | 'writers', done: () => boolean): Promise<number | null> {
    const t0 = Date.now();
    while (!done() && Date.now() - t0 < 120_000) {
      const w = this.env.roles()[role];
      if (w.length > 0) return w[0]!;
      await sleep(5);
    }
    return null;
  }

  /** One kill of a worker in the middle of a clone (reader) or a push (writer). */
  async workerKill(role: 'readers' | 'writers', spanMs: number, label: string): Promise<Outcome & { lifeMs: number }> {
    const p = this.pushers[Math.floor(this.random() * this.pushers.length)]!;
    const before = this.snapshot();
    const moving = new Map<string, Set<string>>();
    const mark = this.env.gotd!.log.length;
    let run: Promise<GitRun>;
    if (role === 'writers') {
      const old = before.get(p.repo)!.get(`refs/heads/${p.branch}`) ?? ZERO;
      const oid = await this.commit(p, 400_000);
      const extra = `refs/heads/${p.branch}-k${this.n}`;
      moving.set(`${p.repo} refs/heads/${p.branch}`, new Set([old, oid]));
      moving.set(`${p.repo} ${extra}`, new Set([ZERO, oid]));
      run = this.push(p, [`HEAD:refs/heads/${p.branch}`, `HEAD:${extra}`]);
    } else {
      run = this.clone(p, p.repo, '');
    }
    let finished = false;
    void run.then(() => { finished = true; });
    const pid = await this.waitWorker(role, () => finished);
    const seen = Date.now();
    let killed = false;
    let killDelay = 0;
    if (pid !== null) {
      killDelay = Math.round(this.random() * spanMs);
      await sleep(killDelay);
      if (alive(pid) && !finished) { process.kill(pid, 'SIGKILL'); killed = true; }
    }
    const r = await run;
    const lifeMs = Date.now() - seen;
    if (killed) this.note(r);
    const listenAuth = this.env.roles();
    const damage: string[] = [];
    if (this.env.gotd!.proc.exitCode !== null) damage.push('gotd exited after a worker was killed');
    if (listenAuth.listen.length !== 1 || listenAuth.auth.length !== 1) damage.push(`listen/auth not running (${JSON.stringify(listenAuth)})`);
    if (r.timedOut) this.log(`${label}: the client hung (killed after 5 min; kill ${killed ? `at ${killDelay} ms` : 'not sent'} to ${pid}):\n${r.stderr.slice(0, 6000)}\ngotd log since the session began:\n${this.env.gotd!.log.slice(mark).join('\n')}`);
    if (damage.length) this.log(`${label}: ${damage.join('; ')}`);
    damage.push(...await this.check(before, moving, label, [p]));
    return { killed, recovered: 'n/a', damage, clientErrors: r.code === 0 ? [] : [firstError(r.stderr)], lifeMs, hung: r.timedOut ? 1 : 0 };
  }

  /** One kill of listen or auth while clones and pushes run through both transports. */
  async childKill(role: 'listen' | 'auth', spanMs: number, label: string): Promise<Outcome> {
    const before = this.snapshot();
    const moving = new Map<string, Set<string>>();
    const runs: Promise<GitRun>[] = [];
    const used = new Set<Pusher>();
    for (let i = 0; i < 4; i++) {
      const p = this.pushers[Math.floor(this.random() * this.pushers.length)]!;
      if (i % 2 === 0 && !used.has(p)) {
        used.add(p);
        const old = before.get(p.repo)!.get(`refs/heads/${p.branch}`) ?? ZERO;
        const oid = await this.commit(p, 100_000);
        moving.set(`${p.repo} refs/heads/${p.branch}`, new Set([old, oid]));
        runs.push(this.push(p, [`HEAD:refs/heads/${p.branch}`]));
      } else {
        runs.push(this.clone(p, p.repo, ''));
      }
    }
    await sleep(this.random() * spanMs);
    const pid = this.env.roles()[role][0];
    let killed = false;
    if (pid !== undefined) { process.kill(pid, 'SIGKILL'); killed = true; }
    const results = await Promise.all(runs);
    for (const r of results) if (killed) this.note(r);
    const damage: string[] = [];
    const hung = results.filter((r) => r.timedOut).length;
    if (hung) this.log(`${label}: ${hung} clients hung (killed after 5 min)`);
    const rec = await this.recovery(pid ?? -1);
    if (rec !== 'child' && rec !== 'gotd') damage.push(rec);
    if (damage.length) this.log(`${label}: ${damage.join('; ')}`);
    damage.push(...await this.check(before, moving, label, [...used]));
    return { killed, recovered: rec === 'gotd' ? 'gotd' : 'child', damage, hung, clientErrors: results.filter((r) => r.code !== 0).map((r) => firstError(r.stderr)) };
  }
}

/** Mounts a tmpfs of size MiB at dir (root only); the reason when it cannot. */
export function mountTmpfs(dir: string, mib: number): string | null {
  if (!IS_ROOT) return 'not root (mounting a size-limited file system needs root)';
  fs.mkdirSync(dir, { recursive: true });
  const r = spawnSync('mount', ['-t', 'tmpfs', '-o', `size=${mib}m,mode=0755`, 'tmpfs', dir], { encoding: 'utf8' });
  return r.status === 0 ? null : `mount -t tmpfs failed: ${r.stderr.trim()}`;
}

export function unmount(dir: string): void {
  spawnSync('umount', ['-l', dir]);
}

export function freeBytes(dir: string): number {
  const s = fs.statfsSync(dir);
  return s.bavail * s.bsize;
}

/** Ref lock files (and packed-refs.lock) anywhere in a repository's refs. */
function lockFiles(gitDir: string): string[] {
  const all = [...filesUnder(path.join(gitDir, 'refs')).map((f) => `refs/${f}`), ...fs.readdirSync(gitDir)];
  return all.filter((f) => f.endsWith('.lock'));
}

function filesUnder(dir: string): string[] {
  const out: string[] = [];
  const walk = (d: string): void => {
    for (const e of fs.readdirSync(d, { withFileTypes: true })) {
      const p = path.join(d, e.name);
      if (e.isDirectory()) walk(p); else out.push(path.relative(dir, p));
    }
  };
  walk(dir);
  return out;
}

export async function runFaults(opts: StressOptions, diskPoints?: number): Promise<Row[]> {
  const why = unavailable();
  if (why) return [{ part: 'faults', case: 'kills and disk full', runs: '0', figure: `skipped: ${why}`, limit: 'needs root', ok: true }];
  const env = new Env(2);
  const mnt = path.join(env.dir, 'small-disk');
  const noDisk = mountTmpfs(mnt, 24);
  let fullRepo: string | null = null;
  if (!noDisk) {
    fullRepo = repoFor(mnt, 'full', env.daemon);
    env.addRepo('full', fullRepo);
  }
  try {
    await env.start();
    return await faults(env, opts, diskPoints ?? Math.max(2, Math.min(12, Math.round(opts.kills / 10))), noDisk, mnt, fullRepo);
  } finally {
    await env.stop();
    if (!noDisk) unmount(mnt);
  }
}

async function faults(env: Env, opts: StressOptions, diskPoints: number, noDisk: string | null, mnt: string, fullRepo: string | null): Promise<Row[]> {
  const f = new Faults(env, opts);
  const repos = [...env.repos.keys()].filter((r) => r !== 'full');
  await f.setup(repos);
  const seed = opts.seed;
  const replay = `seed ${seed}, --kills ${opts.kills}`;

  // How long a worker of each kind lives in an undisturbed session: kills land within that span.
  const spans = { readers: 1000, writers: 1000 };
  for (const role of ['readers', 'writers'] as const) {
    const p = f.pushers[0]!;
    let run: Promise<GitRun>;
    if (role === 'writers') { await f.commit(p, 400_000); run = f.push(p, [`HEAD:refs/heads/${p.branch}`]); } else run = f.clone(p, p.repo, '');
    let finished = false;
    void run.then(() => { finished = true; });
    const pid = await f.waitWorker(role, () => finished);
    const t0 = Date.now();
    const r = await run;
    while (pid !== null && alive(pid) && Date.now() - t0 < 30_000) await sleep(5);
    if (r.code !== 0) throw new Error(`calibration ${role} session failed: ${r.stderr}`);
    spans[role] = Math.max(200, Date.now() - t0);
  }
  f.log(`worker lifetimes: reader ${spans.readers} ms, writer ${spans.writers} ms (seed ${seed})`);

  const workerKills = Math.ceil(opts.kills / 2);
  const listenKills = Math.ceil((opts.kills - workerKills) / 2);
  const authKills = Math.max(0, opts.kills - workerKills - listenKills);
  const rows: Row[] = [];

  // (a) workers, alternating readers and writers.
  {
    let kills = 0, tries = 0, completed = 0, hung = 0;
    const damaged: string[] = [];
    const byRole = { readers: 0, writers: 0 };
    while (kills < workerKills && tries < workerKills * 4) {
      const role = tries % 2 === 0 ? 'writers' : 'readers';
      tries++;
      const o = await f.workerKill(role, spans[role], `worker kill ${tries} (${role})`);
      if (o.killed) { kills++; byRole[role]++; } else completed++;
      if (o.damage.length) damaged.push(`kill ${tries} (${role}): ${o.damage[0]}`);
      hung += o.hung;
      if (tries % 10 === 0) f.log(`${kills} worker kills so far, ${damaged.length} damaged`);
    }
    rows.push({
      part: 'faults', case: 'SIGKILL of session workers', runs: `${kills} kills (${byRole.readers} readers, ${byRole.writers} writers)`,
      figure: `${damaged.length} damaged, ${hung} clients hung, gotd kept serving; ${completed} sessions ended before the kill`,
      limit: '0 damaged repositories, 0 hung', ok: damaged.length === 0 && hung === 0 && kills >= workerKills,
      ...(damaged.length || hung || kills < workerKills ? { detail: `${damaged.slice(0, 3).join('; ') || (hung ? `${hung} clients hung` : `only ${kills} kills landed`)} (${replay})` } : {}),
    });
  }

  // (b) listen and auth.
  for (const [role, count] of [['listen', listenKills], ['auth', authKills]] as const) {
    let kills = 0, restarted = 0, stopped = 0, cut = 0, hung = 0;
    const damaged: string[] = [];
    for (let i = 0; i < count; i++) {
      const o = await f.childKill(role, 1500, `${role} kill ${i + 1}`);
      if (o.killed) kills++;
      if (o.recovered === 'gotd') stopped++; else restarted++;
      cut += o.clientErrors.length;
      hung += o.hung;
      if (o.damage.length) damaged.push(`kill ${i + 1}: ${o.damage[0]}`);
    }
    rows.push({
      part: 'faults', case: `SIGKILL of ${role}`, runs: `${kills} kills`,
      figure: `${damaged.length} damaged, ${hung} clients hung; ${restarted} times ${role} restarted, ${stopped} times gotd stopped cleanly; ${cut} client sessions cut`,
      limit: '0 damaged repositories, 0 hung', ok: damaged.length === 0 && hung === 0 && kills === count,
      ...(damaged.length || hung ? { detail: `${damaged.slice(0, 3).join('; ') || `${hung} clients hung`} (${replay})` } : {}),
    });
  }

  // (c) disk full during a push.
  if (noDisk || !fullRepo) {
    rows.push({ part: 'faults', case: 'disk full during a push', runs: '0 points', figure: `skipped: ${noDisk}`, limit: '0 damaged repositories', ok: true });
  } else {
    rows.push(await diskFull(env, f, diskPoints, mnt, fullRepo, replay));
  }
  const msgs = [...f.messages].sort((a, b) => b[1] - a[1]).map(([m, n]) => `${n}x ${m}`);
  f.log(`what clients heard when a fault cut them: ${msgs.join(' | ') || 'nothing'}`);
  return rows;
}

async function diskFull(env: Env, f: Faults, points: number, mnt: string, repo: string, replay: string): Promise<Row> {
  const pusher = f.pushers.find((p) => p.kind === 'gotsh')!;
  const wsPusher = f.pushers.find((p) => p.kind === 'ws')!;
  const mk = async (p: Pusher): Promise<Pusher> => {
    const work = env.workdir(p, `${p.name}-full`);
    const r = await env.git(p, ['clone', '-q', env.url(p, 'full'), 'clone'], work);
    if (r.code !== 0) throw new Error(`clone of the disk-full repository failed: ${r.stderr}`);
    return { ...p, name: `${p.name}full`, repo: 'full', clone: path.join(work, 'clone'), branch: `full/${p.name}` };
  };
  const ps = [await mk(pusher), await mk(wsPusher)];
  const filler = path.join(mnt, 'filler');
  const size = 1_500_000;
  // A normal push of the same size tells how much space one takes.
  const calibrate = async (p: Pusher): Promise<number> => {
    const free0 = freeBytes(mnt);
    await f.commit(p, size);
    const r = await f.push(p, [`HEAD:refs/heads/${p.branch}`]);
    if (r.code !== 0) throw new Error(`disk-full calibration push failed: ${r.stderr}`);
    return free0 - freeBytes(mnt);
  };
  let need = await calibrate(ps[0]!);
  const tried: string[] = [];
  const damaged: string[] = [];
  let refused = 0, unclear = 0, fitted = 0, garbage = 0;
  for (let j = 0; j < points; j++) {
    const p = ps[j % 2]!;
    // Spread over the whole push: nothing left, part of the pack; and all of it but the last
    // pages (the index, the .keep, the ref), one page short, two, three.
    const tail = Math.max(1, Math.floor(points / 3));
    const spread = points - tail;
    const leave = j < spread
      ? Math.max(0, Math.floor(need * (spread === 1 ? 0 : j / (spread - 1)) * 0.9 + (f.random() - 0.5) * 8192))
      : Math.max(0, need - 4096 * (j - spread + 1));
    const before = env.refs('full');
    const files0 = new Set(filesUnder(repo));
    await f.commit(p, size);
    const free = freeBytes(mnt);
    fs.writeFileSync(filler, Buffer.alloc(Math.max(0, free - leave)));
    const left = freeBytes(mnt);
    const r = await f.push(p, [`HEAD:refs/heads/${p.branch}`]);
    const label = `disk full with ${Math.round(left / 1024)} KiB free of ${Math.round(need / 1024)} KiB needed (${p.kind})`;
    tried.push(`${Math.round(left / 1024)}K`);
    const bad: string[] = [];
    const fsck = env.fsckAll();
    if (fsck.length) bad.push(...fsck);
    if (r.code === 0) {
      fitted++;
    } else {
      refused++;
      f.note(r);
      if (!/no space|ENOSPC|disk/i.test(r.stderr)) { unclear++; bad.push(`unclear message: ${firstError(r.stderr)}`); }
      const after = env.refs('full');
      for (const [k, v] of new Map([...before, ...after])) if (before.get(k) !== after.get(k)) bad.push(`ref ${k} changed to ${v} by a failed push`);
      // A pack moved in before a ref failed is unreachable garbage (git gc prunes it); a quarantine or lock left behind is not.
      const extra = filesUnder(repo).filter((x) => !files0.has(x));
      const stray = extra.filter((x) => !/^objects\/pack\/pack-[0-9a-f]{40}\.(pack|idx)$/.test(x));
      if (stray.length) bad.push(`left behind: ${stray.slice(0, 4).join(' ')}`);
      if (extra.length > stray.length) garbage++;
    }
    fs.rmSync(filler, { force: true });
    const free1 = freeBytes(mnt);
    const oid = (await env.local(p, ['rev-parse', 'HEAD'], p.clone)).stdout.trim();
    const again = await f.push(p, [`HEAD:refs/heads/${p.branch}`]);
    if (again.code !== 0) bad.push(`push after freeing space failed: ${firstError(again.stderr)}`);
    else if (env.refs('full').get(`refs/heads/${p.branch}`) !== oid) bad.push('push after freeing space did not land');
    if (r.code !== 0) need = Math.max(need, free1 - freeBytes(mnt));
    f.log(`${label}: ${r.code === 0 ? 'push fitted' : firstError(r.stderr)}${bad.length ? ` — ${bad.join('; ')}` : ''}`);
    if (bad.length) damaged.push(`${label}: ${bad[0]}`);
  }
  return {
    part: 'faults', case: 'disk full during a push (tmpfs)', runs: `${points} points (${tried.join(', ')} free)`,
    figure: `${damaged.length} damaged; ${refused} refused cleanly${unclear ? ` (${unclear} unclear)` : ''}${garbage ? ` (${garbage} left an unreachable pack)` : ''}, ${fitted} fitted; push after freeing space ok`,
    limit: '0 damaged repositories', ok: damaged.length === 0 && refused > 0,
    ...(damaged.length ? { detail: `${damaged.slice(0, 3).join('; ')} (${replay})` } : {}),
  };
}

export const FAULTS: Part = { name: 'faults', run: (opts) => runFaults(opts) };
