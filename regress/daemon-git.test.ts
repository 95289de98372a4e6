/**
 * Git through gotd without ssh: stock git runs the installed gotsh (as
 * git-upload-pack / git-receive-pack) as a test user; sessions are held
 * open to check limits, process ids, timeouts and clean-up.
 */
import t from 'tap';
import { spawn, type ChildProcess } from 'node:child_process';
import * as fs from 'node:fs';
import * as net from 'node:net';
import * as path from 'node:path';
import {
  addRefs, alive, asUser, DAEMON_USER, descendants, ensureAccounts, gotsh, install, killReadersMidListing, mustAccount, openTmpdir,
  repoFor, sleep, startGotd, uids, USERS, workdir, type Acct, type Gotd,
} from './lib/daemon';
import { fsckStrict, git, run } from './lib/util';

const why = ensureAccounts();
if (why) {
  t.plan(0, `daemon git tests: ${why}`);
} else {
  void main();
}

const REQUEST = (repo: string, protocol: string): string => JSON.stringify({ type: 'git', service: 'git-upload-pack', repo, protocol }) + '\n';

/** A client, running as an account, that starts an upload-pack session and then sits idle. */
interface Held { proc: ChildProcess; first: string; closed: Promise<number> }
function hold(sock: string, as: Acct | undefined, repo = 'src'): Promise<Held> {
  const code = `
    const c = require('net').connect(process.argv[1]);
    c.write(process.argv[2]);
    let seen = false;
    c.on('data', (d) => { if (!seen) { seen = true; process.stdout.write(String(d).split('\\n')[0] + '\\n'); } });
    c.on('close', () => { process.stdout.write('closed\\n'); process.exit(0); });
    c.on('error', () => {});`;
  const proc = spawn(process.execPath, ['-e', code, sock, REQUEST(repo, 'version=2')], { ...asUser(as), stdio: ['ignore', 'pipe', 'inherit'] });
  let out = '';
  const closed = new Promise<number>((resolve) => proc.stdout!.on('data', (b: Buffer) => { out += b.toString(); if (out.includes('closed\n')) resolve(Date.now()); }));
  return new Promise((resolve, reject) => {
    const t0 = Date.now();
    const tick = (): void => {
      if (out.includes('\n')) resolve({ proc, first: out.split('\n')[0]!, closed });
      else if (Date.now() - t0 > 10_000) reject(new Error('no answer'));
      else setTimeout(tick, 20);
    };
    tick();
  });
}

/** Session worker processes: everything under gotd except listen and auth. */
function workers(g: Gotd, longLived: number[]): number[] {
  return descendants(g.pid).filter((p) => !longLived.includes(p));
}

async function main(): Promise<void> {
  const inst = install();
  const dir = openTmpdir();
  const daemon = mustAccount(DAEMON_USER);
  const alice = mustAccount(USERS.alice), carol = mustAccount(USERS.carol);
  const src = repoFor(dir, 'src', daemon);
  const many = repoFor(dir, 'many', daemon);
  const MANY = 200_000;
  addRefs(many, MANY);
  const g = await startGotd(inst, dir, `
[connection]
request_timeout = "4s"
limits = { ${USERS.carol} = 1 }
[[repository]]
name = "src"
path = "${src}"
access = ["permit rw ${USERS.alice}", "permit rw ${USERS.carol}", "permit rw root"]
[[repository]]
name = "many"
path = "${many}"
access = ["permit ro ${USERS.alice}"]
`);
  t.teardown(() => g.stop());
  const longLived = descendants(g.pid);
  const env = { GOTD_UNIX_SOCKET: g.sock };
  const up = path.join(inst.bin, 'git-upload-pack');
  const rp = path.join(inst.bin, 'git-receive-pack');
  const work = workdir(dir, alice, 'alice-work');
  const asAlice = (args: string[], cwd = work): ReturnType<typeof run> => run('git', args, { ...asUser(alice, { env }), cwd });
  const head = git(['--git-dir', src, 'rev-parse', 'refs/heads/main']).trim();

  t.test('clone, fetch and push through gotsh', async (t) => {
    for (const v of ['2', '0']) {
      const r = await asAlice(['-c', `protocol.version=${v}`, 'clone', '-q', '-u', up, 'file:///src', `c${v}`]);
      t.equal(r.code, 0, `clone v${v}: ${r.stderr}`);
      t.equal(git(['-c', 'safe.directory=*', '-C', path.join(work, `c${v}`), 'rev-parse', 'HEAD']).trim(), head);
    }
    const c = path.join(work, 'c2');
    fs.writeFileSync(path.join(c, 'new.txt'), 'pushed through gotd\n');
    t.equal((await asAlice(['add', 'new.txt'], c)).code, 0);
    t.equal((await asAlice(['commit', '-q', '-m', 'through gotd'], c)).code, 0);
    const push = await asAlice(['push', '--receive-pack', rp, 'origin', 'HEAD:main'], c);
    t.equal(push.code, 0, push.stderr);
    const pushed = git(['-c', 'safe.directory=*', '-C', c, 'rev-parse', 'HEAD']).trim();
    t.equal(git(['--git-dir', src, 'rev-parse', 'refs/heads/main']).trim(), pushed);
    t.equal(fsckStrict(src), '');
    const fetch = await asAlice(['fetch', '-q', '--upload-pack', up, 'origin'], path.join(work, 'c0'));
    t.equal(fetch.code, 0, fetch.stderr);
    t.equal(git(['-c', 'safe.directory=*', '-C', path.join(work, 'c0'), 'rev-parse', 'origin/main']).trim(), pushed);
    await g.waitLog(new RegExp(`user=${USERS.alice} repo="src" service=git-receive-pack in=[1-9][0-9]* out=[1-9][0-9]* time=[0-9.]+s outcome=ok`));
  });

  t.test('a session: its own processes, never root, listed by gotctl, gone soon after the client', async (t) => {
    const h = await hold(g.sock, alice);
    t.match(h.first, /^\{"ok":true\}/, 'gotd said yes');
    await sleep(200);
    const pids = workers(g, longLived);
    t.ok(pids.length >= 1, `worker processes: ${pids.join(' ')}`);
    for (const p of pids) {
      const u = uids(p);
      if (u) t.same(u, [daemon.uid, daemon.uid, daemon.uid, daemon.uid], `Uid line of worker ${p}`);
    }
    const info = await g.gotctl(['info']);
    t.match(info.stdout, new RegExp(`sessions: 1\\n\\s+[0-9]+ ${USERS.alice} src git-upload-pack`));
    const h2 = await hold(g.sock, alice);
    const pids2 = workers(g, longLived).filter((p) => !pids.includes(p));
    t.ok(pids2.length >= 1 && pids2.every((p) => !pids.includes(p)), 'a second session gets new processes');

    const t0 = Date.now();
    h.proc.kill('SIGKILL');
    h2.proc.kill('SIGKILL');
    for (;;) {
      const left = [...pids, ...pids2].filter(alive);
      if (left.length === 0) break;
      if (Date.now() - t0 > 15_000) { t.fail(`still running 15s after the client vanished: ${left.join(' ')}`); break; }
      await sleep(100);
    }
    t.pass(`session processes gone ${Date.now() - t0}ms after the client`);
  });

  t.test('request_timeout closes an idle session', async (t) => {
    const t0 = Date.now();
    const h = await hold(g.sock, alice);
    const closedAt = await Promise.race([h.closed, sleep(15_000).then(() => 0)]);
    t.ok(closedAt > 0, 'closed by gotd');
    t.ok(closedAt - t0 >= 3500 && closedAt - t0 < 12_000, `after about request_timeout (4s): ${closedAt - t0}ms`);
    h.proc.kill();
  });

  t.test('per-user limit: the next session hears "too many", the running one is unaffected', async (t) => {
    const h = await hold(g.sock, carol);
    const r = await gotsh(inst, g.sock, ['-c', "git-upload-pack 'src'"], carol);
    t.equal(r.code, 1);
    t.match(r.stderr, new RegExp(`gotsh: too many connections for user ${USERS.carol} \\(limit 1\\)`));
    const other = await hold(g.sock, alice);
    t.match(other.first, /"ok":true/, 'other users are not limited by carol');
    other.proc.kill('SIGKILL');
    t.ok(alive(h.proc.pid!), 'carol\'s first session still open');
    h.proc.kill('SIGKILL');
    await sleep(500);
    const again = await hold(g.sock, carol);
    t.match(again.first, /"ok":true/, 'served again after it ended');
    again.proc.kill('SIGKILL');
  });

  t.test('bad protocol input gets ERR and changes nothing', async (t) => {
    const refs = git(['--git-dir', src, 'for-each-ref']);
    const cases: Array<[string, string, string]> = [
      ['version=2', 'ffff', 'bad length'],
      ['version=2', 'zzzz', 'non-hex length'],
      ['version=2', '0013command=bogus\n0000', 'unknown command'],
      ['', '0032want 0123456789012345678901234567890123456789\n00000009done\n', 'missing object (v0)'],
    ];
    for (const [protocol, garbage, what] of cases) {
      const out = await new Promise<string>((resolve) => {
        const c = net.connect(g.sock);
        let buf = '';
        let sent = false;
        c.on('data', (d: Buffer) => {
          buf += d.toString('latin1');
          if (!sent && /0000$/.test(buf)) { sent = true; c.write(garbage); }
        });
        c.on('close', () => resolve(buf));
        c.on('error', () => undefined);
        c.write(REQUEST('src', protocol));
        setTimeout(() => c.destroy(), 8000).unref();
      });
      t.match(out, /[0-9a-f]{4}ERR /, `${what}: ERR packet`);
    }
    t.equal(git(['--git-dir', src, 'for-each-ref']), refs, 'refs unchanged');
    t.equal(fsckStrict(src), '');
    const still = await asAlice(['ls-remote', '--upload-pack', up, 'file:///src']);
    t.equal(still.code, 0, 'gotd still serves');
  });

  t.test('a reader killed while git waits for the ref listing: git fails at once, not hangs', async (t) => {
    // Git keeps its side open while it waits; gotsh used to wait for that too, so both waited for ever.
    const full = await asAlice(['ls-remote', '--upload-pack', up, 'file:///many']);
    t.equal(full.code, 0, full.stderr);
    t.ok(full.stdout.split('\n').length > MANY, `${MANY} refs listed when left alone`);
    const landed = await killReadersMidListing(g, () => run('git', ['ls-remote', '--upload-pack', up, 'file:///many'],
      { ...asUser(alice, { env }), cwd: work, timeout: 30_000, killSignal: 'SIGKILL' }));
    t.equal(landed.length, 3, 'kills landed in the middle of the listing');
    for (const { delay, r } of landed) {
      t.not(r.signal, 'SIGKILL', `killed ${delay} ms in: git ended by itself, not by the 30 s limit (${r.stderr.trim()})`);
      t.match(r.stderr, /EOF|hung up|expected/, 'and says the listing was cut');
    }
  });

  t.test('the repository is intact', async (t) => {
    t.equal(fsckStrict(src), '');
    t.ok(fs.existsSync(src));
  });
}

