/**
 * make stress, part "load": many concurrent stock git clients against one
 * real gotd, half through gotsh (as unix accounts) and half over ws://
 * (git-remote-ws with HTTP Basic auth), each looping over clones, fetches
 * and pushes (every pusher on its own branch) across several repositories
 * for a set time.  Measured: sessions, throughput, p50/p99 session
 * latency, errors (limit refusals counted apart), RSS of gotd, listen and
 * auth before and after, and at the end git fsck --strict on every
 * repository and every pushed branch where its pusher left it.
 */
import { spawnSync } from 'node:child_process';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { gitEnv, mkrepo } from '../lib/util';
import type { Part } from './parts';
import type { Row, StressOptions } from './table';
import { Env, firstError, limitRefusal, quantile, rng, sleep, unavailable, type Client, type GitRun } from './gotd_env';

const REPOS = 4;
type Op = 'clone' | 'fetch' | 'push';

interface Sample { client: number; op: Op; kind: Client['kind']; ms: number; ok: boolean; limit: boolean; timedOut: boolean; error: string }

interface LoadClient extends Client {
  id: number;
  repo: string;
  work: string;
  clone: string;
  branch: string;
  /** What the server's branch must hold at the end: the last pushed commit. */
  pushed: string | null;
  random: () => number;
}

const MB = (n: number): string => `${(n / 1048576).toFixed(1)} MB`;

export async function runLoad(opts: StressOptions): Promise<Row[]> {
  const why = unavailable();
  if (why) {
    return [{ part: 'load', case: 'concurrent clients', runs: '0', figure: `skipped: ${why}`, limit: 'needs root', ok: true }];
  }
  const env = new Env(REPOS);
  try {
    return await load(env, opts);
  } finally {
    await env.stop();
  }
}

async function load(env: Env, opts: StressOptions): Promise<Row[]> {
  const seed = opts.seed;
  const g = await env.start();
  const repos = [...env.repos.keys()];
  const clients: LoadClient[] = [];
  for (let i = 0; i < opts.clients; i++) {
    const kind = i % 2 === 0 ? 'gotsh' : 'ws';
    const c: LoadClient = {
      id: i, kind, repo: repos[i % repos.length]!, work: '', clone: '', branch: `load/c${i}`, pushed: null,
      random: rng(seed * 7919 + i),
      ...(kind === 'gotsh' ? { acct: env.unixUsers[(i >> 1) % env.unixUsers.length]! } : { ws: env.wsUsers[(i >> 1) % env.wsUsers.length]! }),
    };
    c.work = env.workdir(c, `c${i}`);
    c.clone = path.join(c.work, 'clone');
    clients.push(c);
  }

  // Warm-up: every WebSocket user once (its password check is then cached in auth, as it
  // would be for a busy user), one session per repository per transport; then the baseline.
  for (const w of env.wsUsers) {
    const r = await env.git({ kind: 'ws', ws: w }, ['ls-remote', env.url({ kind: 'ws', ws: w }, repos[0]!)], env.dir);
    if (r.code !== 0) throw new Error(`warm-up ls-remote as ${w.name} failed: ${r.stderr}`);
  }
  for (const c of clients.slice(0, Math.min(clients.length, 2 * repos.length))) {
    const r = await env.git(c, ['clone', '-q', env.url(c, c.repo), 'warm'], c.work);
    if (r.code !== 0) throw new Error(`warm-up clone failed (${c.kind}): ${r.stderr}`);
    fs.rmSync(path.join(c.work, 'warm'), { recursive: true, force: true });
  }
  // Every client's working clone, made beside gotd (plain git on the repository, then handed
  // to the client's account): the load itself then mixes clones, fetches and pushes from the start.
  for (const c of clients) {
    // The repositories are copies of this one (repoFor), owned by the daemon's account.
    const r = spawnSync('git', ['clone', '-q', '--no-hardlinks', mkrepo(['--preset', 'small']), c.clone], { env: gitEnv(), encoding: 'utf8' });
    if (r.status !== 0) throw new Error(`preparing client ${c.id}: ${r.stderr}`);
    spawnSync('git', ['-C', c.clone, 'remote', 'set-url', 'origin', env.url(c, c.repo)], { env: gitEnv() });
    if (c.acct) spawnSync('chown', ['-R', `${c.acct.uid}:${c.acct.gid}`, c.clone]);
  }
  await sleep(3000);
  const before = env.rss();
  opts.log(`load: ${opts.clients} clients for ${opts.loadSeconds} s; RSS before ${MB(before.total)} (${before.parts}) (seed ${seed})`);

  const samples: Sample[] = [];
  const t0 = Date.now();
  const deadline = t0 + opts.loadSeconds * 1000;
  // Start the clients over a few seconds rather than all in the same millisecond.
  const ramp = Math.min(5000, (opts.loadSeconds * 1000) / 6);
  let lastEnd = t0;
  await Promise.all(clients.map(async (c) => {
    await sleep((c.id / clients.length) * ramp);
    const record = (op: Op, r: GitRun): boolean => {
      const ok = r.code === 0 && !r.timedOut;
      samples.push({ client: c.id, op, kind: c.kind, ms: r.ms, ok, limit: !ok && limitRefusal(r.stderr), timedOut: r.timedOut, error: ok ? '' : `${op} ${c.kind} client ${c.id}: ${r.timedOut ? 'timed out: ' : ''}${firstError(r.stderr)}` });
      lastEnd = Math.max(lastEnd, Date.now());
      return ok;
    };
    let n = 0;
    while (Date.now() < deadline) {
      n++;
      const x = c.random();
      if (x < 0.35) {
        const dir = `tmp${n}`;
        record('clone', await env.git(c, ['clone', '-q', '--no-checkout', env.url(c, c.repo), dir], c.work));
        fs.rmSync(path.join(c.work, dir), { recursive: true, force: true });
      } else if (x < 0.7) {
        record('fetch', await env.git(c, ['fetch', '-q', 'origin'], c.clone));
      } else {
        fs.writeFileSync(path.join(c.clone, `load-${c.id}.txt`), `client ${c.id} push ${n} seed ${seed}\n${'x'.repeat(Math.floor(c.random() * 20_000))}\n`);
        if (c.acct) fs.chownSync(path.join(c.clone, `load-${c.id}.txt`), c.acct.uid, c.acct.gid);
        const add = await env.local(c, ['add', '-A'], c.clone);
        const commit = await env.local(c, ['commit', '-q', '-m', `load ${c.id} ${n}`], c.clone);
        if (add.code !== 0 || commit.code !== 0) throw new Error(`local commit failed for client ${c.id}: ${add.stderr}${commit.stderr}`);
        const head = (await env.local(c, ['rev-parse', 'HEAD'], c.clone)).stdout.trim();
        if (record('push', await env.git(c, ['push', '-q', 'origin', `HEAD:refs/heads/${c.branch}`], c.clone))) c.pushed = head;
      }
    }
  }));
  const elapsed = (lastEnd - t0) / 1000;

  // Idle, so that what a burst leaves behind (garbage, buffers) can go; then the after figure.
  let after = env.rss();
  for (let i = 0; i < 6 && after.total > before.total * 1.05; i++) {
    await sleep(5000);
    after = env.rss();
  }
  const alive = g.proc.exitCode === null && g.proc.signalCode === null;
  opts.log(`load: RSS after ${MB(after.total)} (${after.parts})`);

  const done = samples.filter((s) => s.ok);
  const limited = samples.filter((s) => s.limit);
  const errors = samples.filter((s) => !s.ok && !s.limit);
  const lat = done.map((s) => s.ms).sort((a, b) => a - b);
  const count = (f: (s: Sample) => boolean): number => done.filter(f).length;
  const rate = done.length / elapsed;
  const growth = (after.total - before.total) / before.total;

  const unserved = clients.filter((c) => !done.some((s) => s.client === c.id)).map((c) => `${c.id}:${samples.filter((s) => s.client === c.id).length}`);
  const fsck = env.fsckAll();
  const missing: string[] = [];
  let pushedBranches = 0;
  for (const c of clients) {
    if (!c.pushed) continue;
    pushedBranches++;
    const got = env.refs(c.repo).get(`refs/heads/${c.branch}`);
    if (got !== c.pushed) missing.push(`${c.repo} ${c.branch}: ${got ?? 'missing'}, pushed ${c.pushed}`);
  }
  const replay = `seed ${seed}, --clients ${opts.clients} --load-seconds ${opts.loadSeconds}`;
  const runs = `${opts.clients} clients, ${opts.loadSeconds} s`;
  return [
    {
      part: 'load', case: 'sessions and throughput (gotsh + ws)', runs,
      figure: `${done.length} sessions (${count((s) => s.op === 'clone')} clone, ${count((s) => s.op === 'fetch')} fetch, ${count((s) => s.op === 'push')} push; ` +
        `${count((s) => s.kind === 'gotsh')} gotsh, ${count((s) => s.kind === 'ws')} ws) in ${elapsed.toFixed(0)} s = ${rate.toFixed(1)}/s`,
      limit: 'every client served', ok: done.length > 0 && unserved.length === 0 && alive,
      ...(alive && unserved.length === 0 ? {} : { detail: `${alive ? '' : 'gotd died during the load; '}${unserved.length} clients never served (${unserved.slice(0, 10).join(' ')}) (${replay})` }),
    },
    {
      part: 'load', case: 'session latency', runs: `${done.length} sessions`,
      figure: `p50 ${(quantile(lat, 0.5) / 1000).toFixed(2)} s, p99 ${(quantile(lat, 0.99) / 1000).toFixed(2)} s, max ${(quantile(lat, 1) / 1000).toFixed(2)} s`,
      limit: 'no session hangs (15 min)', ok: samples.every((s) => !s.timedOut),
      ...(samples.some((s) => s.timedOut) ? { detail: `${samples.filter((s) => s.timedOut).length} sessions hung (${replay})` } : {}),
    },
    {
      part: 'load', case: 'errors', runs: `${samples.length} sessions`,
      figure: `${errors.length} unexpected, ${limited.length} limit refusals`,
      limit: '0 unexpected', ok: errors.length === 0,
      ...(errors.length ? { detail: `${errors.slice(0, 3).map((e) => e.error).join('; ')} (${replay})` } : {}),
    },
    {
      part: 'load', case: 'daemon RSS (gotd + listen + auth)', runs: `before / after ${opts.loadSeconds} s`,
      figure: `${MB(before.total)} -> ${MB(after.total)} (${growth >= 0 ? '+' : ''}${(growth * 100).toFixed(1)} %)`,
      limit: '< 10 % growth', ok: growth < 0.10,
      ...(growth >= 0.10 ? { detail: `before ${before.parts}; after ${after.parts} (${replay})` } : {}),
    },
    {
      part: 'load', case: 'repositories afterwards', runs: `${env.repos.size} repositories, ${pushedBranches} pushed branches`,
      figure: `${env.repos.size - fsck.length} fsck --strict clean, ${pushedBranches - missing.length} branches as pushed`,
      limit: 'all clean, all present', ok: fsck.length === 0 && missing.length === 0 && pushedBranches > 0,
      ...(fsck.length || missing.length ? { detail: `${[...fsck, ...missing].slice(0, 3).join('; ')} (${replay})` } : {}),
    },
  ];
}

export const LOAD: Part = { name: 'load', run: runLoad };
