/**
 * Stock git over ws:// through the installed gotd and git-remote-ws:
 * clone (protocol v2 and v0), fetch and push through real confined
 * workers, and a client that vanishes in the middle of a push.  Every
 * repository written is checked with git fsck --strict.
 */
import t from 'tap';
import { spawn, spawnSync } from 'node:child_process';
import * as crypto from 'node:crypto';
import * as fs from 'node:fs';
import * as path from 'node:path';
import WebSocket from 'ws';
import {
  addRefs, alive, DAEMON_USER, descendants, ensureAccounts, install, killReadersMidListing, mustAccount, openTmpdir, repoFor, sleep,
} from './lib/daemon';
import { fsckStrict, git, gitEnv, refsOf } from './lib/util';
import { basic, freePort, startWsGotd, writeSecrets, wsGit } from './lib/ws';

const why = ensureAccounts();
if (why) {
  t.plan(0, `WebSocket git tests: ${why}`);
} else {
  void main();
}

function pkt(s: string): string {
  return (s.length + 4).toString(16).padStart(4, '0') + s;
}

async function main(): Promise<void> {
  const inst = install();
  const dir = openTmpdir();
  const daemon = mustAccount(DAEMON_USER);
  const src = repoFor(dir, 'src', daemon);
  const many = repoFor(dir, 'many', daemon);
  addRefs(many, 200_000);
  const port = await freePort();
  const secrets = await writeSecrets(dir, { alice: { password: 'pw-a' } });
  const g = await startWsGotd(inst, dir, `
[connection]
request_timeout = "60s"
[websocket]
listen = ["127.0.0.1:${port}"]
rate = "1000/min"
[[repository]]
name = "src"
path = "${src}"
access = ["permit ro anonymous", "permit rw alice"]
[[repository]]
name = "many"
path = "${many}"
access = ["permit ro anonymous"]
`, port, { secrets });
  t.teardown(() => g.stop());
  const longLived = descendants(g.pid);
  const anon = `ws://127.0.0.1:${port}/src`;
  const alice = `ws://alice:pw-a@127.0.0.1:${port}/src`;
  const work = path.join(dir, 'work');
  fs.mkdirSync(work);
  const serverHead = (): string => git(['--git-dir', src, 'rev-parse', 'refs/heads/main']).trim();

  t.test('clone over ws:// with protocol v2 and v0', async (t) => {
    for (const v of ['2', '0']) {
      const r = await wsGit(inst, ['-c', `protocol.version=${v}`, 'clone', '-q', anon, `c${v}`], { cwd: work });
      t.equal(r.code, 0, `clone v${v}: ${r.stderr}`);
      t.equal(git(['-C', path.join(work, `c${v}`), 'rev-parse', 'HEAD']).trim(), serverHead());
      t.equal(fsckStrict(path.join(work, `c${v}`, '.git')), '', `clone v${v} passes fsck`);
    }
    await g.waitLog(/upload-pack v2: ok/);
    await g.waitLog(/upload-pack v0: ok/);
    t.same(refsOf(path.join(work, 'c2', '.git')).split('\n').filter((l) => l.includes('refs/remotes/origin/') && !l.endsWith('/HEAD')).length,
      git(['--git-dir', src, 'for-each-ref', 'refs/heads']).trim().split('\n').length, 'every branch arrived');
  });

  t.test('push over ws:// (create, update, tag, delete), then fetch sees it', async (t) => {
    const c = path.join(work, 'c2');
    fs.writeFileSync(path.join(c, 'over-ws.txt'), 'pushed over a WebSocket\n');
    git(['-C', c, 'add', 'over-ws.txt']);
    git(['-C', c, 'commit', '-q', '-m', 'over ws']);
    const tip = git(['-C', c, 'rev-parse', 'HEAD']).trim();
    const push = await wsGit(inst, ['push', alice, 'HEAD:main', 'HEAD:refs/heads/ws-topic'], { cwd: c });
    t.equal(push.code, 0, push.stderr);
    t.equal(serverHead(), tip);
    t.equal(git(['--git-dir', src, 'rev-parse', 'refs/heads/ws-topic']).trim(), tip);
    git(['-C', c, 'tag', '-a', '-m', 'a tag', 'ws-tag']);
    const tag = await wsGit(inst, ['push', alice, 'ws-tag'], { cwd: c });
    t.equal(tag.code, 0, tag.stderr);
    const del = await wsGit(inst, ['push', alice, ':refs/heads/ws-topic'], { cwd: c });
    t.equal(del.code, 0, del.stderr);
    t.equal(spawnSync('git', ['--git-dir', src, 'rev-parse', '--verify', '-q', 'refs/heads/ws-topic']).status, 1, 'branch deleted');
    t.equal(fsckStrict(src), '');

    const c0 = path.join(work, 'c0');
    const f = await wsGit(inst, ['fetch', '-q', '--tags', 'origin'], { cwd: c0 });
    t.equal(f.code, 0, f.stderr);
    t.equal(git(['-C', c0, 'rev-parse', 'origin/main']).trim(), tip);
    t.equal(git(['-C', c0, 'rev-parse', 'ws-tag^{commit}']).trim(), tip);
    t.equal(fsckStrict(path.join(c0, '.git')), '');
    await g.waitLog(/user=alice repo="src" service=git-receive-pack in=[1-9][0-9]* out=[1-9][0-9]* time=[0-9.]+s outcome=ok from=127\.0\.0\.1/);
  });

  t.test('a rejected update shows as [remote rejected]; nothing changes', async (t) => {
    const c = path.join(work, 'c2');
    const before = refsOf(src);
    const r = await wsGit(inst, ['push', alice, `${'0'.repeat(40)}:refs/heads/bogus`], { cwd: c });
    t.not(r.code, 0);
    t.equal(refsOf(src), before);
  });

  t.test('a reader killed while git waits for the ref listing: git fails at once and says so', async (t) => {
    const landed = await killReadersMidListing(g, () => wsGit(inst, ['ls-remote', `ws://127.0.0.1:${port}/many`], { cwd: work, timeoutMs: 30_000 }));
    t.equal(landed.length, 3, 'kills landed in the middle of the listing');
    for (const { delay, r } of landed) {
      t.not(r.signal, 'SIGKILL', `killed ${delay} ms in: git ended by itself, not by the 30 s limit`);
      t.match(r.stderr, /ended abnormally|EOF|hung up|expected/, 'and says the listing was cut');
    }
  });

  t.test('a client that vanishes in the middle of a push leaves the repository as it was', async (t) => {
    const c = path.join(work, 'c2');
    fs.writeFileSync(path.join(c, 'big.bin'), crypto.randomBytes(24 << 20));
    git(['-C', c, 'add', 'big.bin']);
    git(['-C', c, 'commit', '-q', '-m', 'big']);
    const old = serverHead();
    const tip = git(['-C', c, 'rev-parse', 'HEAD']).trim();
    const before = refsOf(src);
    const pack = spawnSync('git', ['-C', c, 'pack-objects', '--stdout', '--revs', '-q'], { input: `${tip}\n^${old}\n`, env: gitEnv(), maxBuffer: 1 << 30 });
    t.ok(pack.stdout.length > 20 << 20, `a pack of ${pack.stdout.length} bytes`);

    // By hand, to cut at a known point: half the pack, then the TCP connection is gone.
    const ws = new WebSocket(`ws://127.0.0.1:${port}/src?service=git-receive-pack`, { headers: { Authorization: basic('alice', 'pw-a') }, perMessageDeflate: false });
    let adv = '';
    await new Promise<void>((resolve, reject) => {
      ws.on('message', (m: Buffer) => { adv += m.toString('latin1'); if (adv.endsWith('0000')) resolve(); });
      ws.on('error', reject);
    });
    t.match(adv, /refs\/heads\/main/, 'ref advertisement');
    ws.send(Buffer.from(pkt(`${old} ${tip} refs/heads/main\0report-status side-band-64k\n`) + '0000', 'latin1'));
    const half = pack.stdout.subarray(0, pack.stdout.length >> 1);
    for (let at = 0; at < half.length; at += 65536) ws.send(half.subarray(at, at + 65536));
    await new Promise<void>((resolve) => { const tick = (): void => { if (ws.bufferedAmount === 0) resolve(); else setTimeout(tick, 20); }; tick(); });
    await sleep(300);
    ws.terminate();
    await g.waitLog(/user=alice repo="src" service=git-receive-pack .*outcome=(failed|worker ended)/, 20_000);
    t.equal(refsOf(src), before, 'refs unchanged');
    t.equal(fsckStrict(src), '');
    t.not(spawnSync('git', ['--git-dir', src, 'cat-file', '-e', tip]).status, 0, 'the new commit is not in the repository');

    // And through git, killed while sending.
    const killed = spawn('git', ['push', alice, 'HEAD:main'], {
      cwd: c, detached: true, stdio: 'ignore',
      env: gitEnv({ PATH: `${path.join(inst.prefix, 'bin')}:${process.env.PATH}` }),
    });
    // Cut once a writer is running for it and the pack is on its way.
    const t1 = Date.now();
    while (descendants(g.pid).filter((p) => !longLived.includes(p)).length === 0 && Date.now() - t1 < 20_000) await sleep(20);
    await sleep(300);
    process.kill(-killed.pid!, 'SIGKILL');
    await g.waitLog(/session [0-9]+: user=alice repo="src" service=git-receive-pack .*outcome=(?!ok)/, 20_000);
    const t0 = Date.now();
    for (;;) {
      const workers = descendants(g.pid).filter((p) => !longLived.includes(p));
      if (workers.filter(alive).length === 0) break;
      if (Date.now() - t0 > 15_000) { t.fail(`workers still running: ${workers.join(' ')}`); break; }
      await sleep(100);
    }
    const after = refsOf(src);
    t.ok(after === before || after.includes(`${tip} refs/heads/main`), 'refs either unchanged or fully updated');
    t.equal(fsckStrict(src), '');

    const again = await wsGit(inst, ['ls-remote', anon]);
    t.equal(again.code, 0, 'the listener still serves');
    const push = await wsGit(inst, ['push', alice, 'HEAD:main'], { cwd: c });
    t.equal(push.code, 0, push.stderr);
    t.equal(serverHead(), tip, 'and the push goes through when done again');
    t.equal(fsckStrict(src), '');
  });
}
