/**
 * make check's slice of make stress "faults": 10 seeded kills (workers,
 * listen, auth) and 2 disk-full points against a real gotd; every row of
 * the full run must hold.  Before it, the regression test for what the
 * full run found first: a worker killed before it took the client's socket
 * left the client waiting for ever (Node keeps an unacknowledged handle
 * open); gotd now answers such a client itself.
 */
import t from 'tap';
import * as crypto from 'node:crypto';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { alive, repoFor } from './lib/daemon';
import { fsckStrict, refsOf } from './lib/util';
import { Env, sleep, unavailable, type Client } from './stress/gotd_env';
import { freeBytes, mountTmpfs, runFaults, unmount } from './stress/faults';

const why = unavailable();
if (why) {
  t.plan(0, `faults: ${why}`);
} else {
  t.test('a worker killed before it takes the client: the client hears why at once', async (t) => {
    const env = new Env(1);
    t.teardown(() => env.stop());
    const g = await env.start();
    const clients: Client[] = [{ kind: 'gotsh', acct: env.unixUsers[0]! }, { kind: 'ws', ws: env.wsUsers[0]! }];
    let early = 0;
    for (let i = 0; i < 6; i++) {
      const c = clients[i % 2]!;
      const before = g.log.filter((l) => /before taking the client/.test(l)).length;
      const run = env.git(c, ['ls-remote', env.url(c, 'r0')], env.workdir(c, `k${i}`), 60_000);
      let done = false;
      void run.then(() => { done = true; });
      let pid: number | undefined;
      while (!done && pid === undefined) { pid = env.roles().readers[0]; if (pid === undefined) await sleep(2); }
      if (pid !== undefined && alive(pid)) process.kill(pid, 'SIGKILL');
      const r = await run;
      t.notOk(r.timedOut, `${c.kind} client ${i} did not hang (${r.ms} ms): ${r.stderr.trim()}`);
      t.ok(r.ms < 20_000, `${c.kind} client ${i} ended within 20 s (${r.ms} ms)`);
      await sleep(200);
      if (g.log.filter((l) => /before taking the client/.test(l)).length > before) {
        early++;
        t.match(r.stderr, /session worker died before the session began, try again/, `${c.kind}: the client is told`);
      }
    }
    t.ok(early > 0, `${early} of 6 kills landed before the worker took the client`);
    t.equal(env.fsckAll().length, 0, 'fsck --strict');
    const c = clients[0]!;
    const ok = await env.git(c, ['ls-remote', env.url(c, 'r0')], env.workdir(c, 'after'));
    t.equal(ok.code, 0, `served afterwards: ${ok.stderr}`);
  });

  t.test('a ref lock left by a killed writer does not block the ref until gotd restarts', async (t) => {
    const env = new Env(1);
    t.teardown(() => env.stop());
    await env.start();
    const repo = env.repos.get('r0')!;
    const c: Client = { kind: 'gotsh', acct: env.unixUsers[2]! };
    const work = env.workdir(c, 'w');
    t.equal((await env.git(c, ['clone', '-q', env.url(c, 'r0'), 'clone'], work)).code, 0, 'clone');
    const clone = path.join(work, 'clone');
    const commit = async (n: string, size = 100): Promise<void> => {
      fs.writeFileSync(path.join(clone, `${n}.txt`), crypto.randomBytes(size).toString('base64'));
      fs.chownSync(path.join(clone, `${n}.txt`), c.acct!.uid, c.acct!.gid);
      await env.local(c, ['add', '-A'], clone);
      await env.local(c, ['commit', '-q', '-m', n], clone);
    };
    const push = (ref: string): ReturnType<Env['git']> => env.git(c, ['push', '-q', env.url(c, 'r0'), `HEAD:refs/heads/${ref}`], clone);
    await commit('a');
    t.equal((await push('locked')).code, 0, 'first push');
    await sleep(1500);
    // What a writer SIGKILLed between taking the lock and renaming it leaves behind.
    const lock = path.join(repo, 'refs', 'heads', 'locked.lock');
    fs.writeFileSync(lock, '');
    fs.chownSync(lock, env.daemon.uid, env.daemon.gid);
    await commit('b');
    const held = await push('locked');
    t.not(held.code, 0, 'while no writer has died, the lock may be a living writer\'s: respected');
    t.match(held.stderr, /another update is in progress/);
    // A writer dies without a report.
    await commit('c', 400_000);
    const run = push('other');
    let pid: number | undefined;
    for (let i = 0; i < 20_000 && pid === undefined; i++) { pid = env.roles().writers[0]; if (pid === undefined) await sleep(2); }
    t.ok(pid, 'a writer ran');
    if (pid) process.kill(pid, 'SIGKILL');
    await run;
    await sleep(300);
    const again = await push('locked');
    t.equal(again.code, 0, `the dead writer's lock is broken: ${again.stderr}`);
    t.notOk(fs.existsSync(lock), 'lock gone');
    t.equal(fsckStrict(repo), '', 'fsck --strict');
  });

  t.test('a push into a full disk: gotsh relays why, repository unchanged', async (t) => {
    const env = new Env(0);
    const mnt = path.join(env.dir, 'disk');
    const no = mountTmpfs(mnt, 8);
    if (no) { t.pass(`skipped: ${no}`); await env.stop(); return; }
    t.teardown(async () => { await env.stop(); unmount(mnt); });
    const repo = repoFor(mnt, 'full', env.daemon);
    env.addRepo('full', repo);
    await env.start();
    const c: Client = { kind: 'gotsh', acct: env.unixUsers[1]! };
    const work = env.workdir(c, 'w');
    t.equal((await env.git(c, ['clone', '-q', env.url(c, 'full'), 'clone'], work)).code, 0, 'clone');
    const clone = path.join(work, 'clone');
    fs.writeFileSync(path.join(clone, 'big.txt'), crypto.randomBytes(1_500_000).toString('base64'));
    fs.chownSync(path.join(clone, 'big.txt'), c.acct!.uid, c.acct!.gid);
    t.equal((await env.local(c, ['add', '-A'], clone)).code, 0);
    t.equal((await env.local(c, ['commit', '-q', '-m', 'big'], clone)).code, 0);
    const refs0 = refsOf(repo);
    const filler = path.join(mnt, 'filler');
    fs.writeFileSync(filler, Buffer.alloc(freeBytes(mnt)));
    // The worker fails at the pack's first bytes while git is still sending the rest.
    for (let i = 0; i < 6; i++) {
      const r = await env.git(c, ['push', '-q', env.url(c, 'full'), 'HEAD:refs/heads/big'], clone);
      t.not(r.code, 0, 'refused');
      t.match(r.stderr, /remote unpack failed: no space left on the server \(ENOSPC\); nothing was changed/, `try ${i}: git says why`);
      t.equal(refsOf(repo), refs0, 'refs unchanged');
      t.same(fs.readdirSync(path.join(repo, 'objects')).filter((n) => n.startsWith('incoming-')), [], 'no quarantine left');
    }
    fs.rmSync(filler);
    t.equal(fsckStrict(repo), '', 'fsck --strict');
    const ok = await env.git(c, ['push', env.url(c, 'full'), 'HEAD:refs/heads/big'], clone);
    t.equal(ok.code, 0, `push once space is free: ${ok.stderr}`);
  });

  t.test('faults slice: 10 kills, 2 disk-full points', async (t) => {
    const rows = await runFaults({ fuzzSeconds: 0, loadSeconds: 0, clients: 0, kills: 10, seed: Number(process.env.STRESS_SEED ?? 1), log: (l) => t.comment(l) }, 2);
    t.equal(rows.length, 4, 'one row per kind of fault');
    for (const r of rows) {
      t.comment(`${r.case}: ${r.figure} (${r.runs})`);
      t.ok(r.ok, `${r.case}: ${r.figure}${r.detail ? ` — ${r.detail}` : ''}`);
    }
    t.match(rows[0]!.runs, /^[1-9][0-9]* kills/, 'workers were killed');
  });
}
