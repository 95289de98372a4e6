/**
 * gotd as a whole without Git traffic: privilege drop, who may talk to it,
 * identical refusals, limits and timeouts in listen, forced-command trust,
 * gotctl info/reload/stop.  Runs the installed gotd (make install) as root
 * with test accounts, as CI does.
 */
import t from 'tap';
import * as fs from 'node:fs';
import * as net from 'node:net';
import * as path from 'node:path';
import {
  alive, descendants, DAEMON_USER, ensureAccounts, gotsh, GROUPS, install, mustAccount, openTmpdir,
  rawRequest, repoFor, sleep, startGotd, uids, USERS, type Acct,
} from './lib/daemon';

const why = ensureAccounts();
if (why) {
  t.plan(0, `daemon control tests: ${why}`);
} else {
  void main();
}

const DENIED_LINE = '{"ok":false,"error":"access denied"}\n';

async function main(): Promise<void> {
  const inst = install();
  const dir = openTmpdir();
  const daemon = mustAccount(DAEMON_USER);
  const alice = mustAccount(USERS.alice), bob = mustAccount(USERS.bob), carol = mustAccount(USERS.carol), shared = mustAccount(USERS.git);
  const src = repoFor(dir, 'src', daemon);
  const secret = repoFor(dir, 'secret', daemon);
  const body = (extra = ''): string => `
[connection]
auth_timeout = "2s"
max_connections = 3
[ssh]
trusted_accounts = ["${USERS.git}"]
[[repository]]
name = "src"
path = "${src}"
access = ["permit rw ${USERS.alice}", "permit ro :${GROUPS.dev}", "deny ${USERS.bob}"${extra}]
[[repository]]
name = "team/secret"
path = "${secret}"
access = ["permit ro ${USERS.carol}"]
`;
  const g = await startGotd(inst, dir, body());
  t.teardown(() => g.stop());

  /** The first line gotd answers a request with, as an account would see it through gotsh. */
  async function ask(as: Acct | undefined, repo: string, service = 'git-upload-pack', args?: string[], env = {}): Promise<{ code: number | null; stdout: string; stderr: string }> {
    return gotsh(inst, g.sock, args ?? ['-c', `${service} '${repo}'`], as, env);
  }

  t.test('gotd and its children run as the daemon user, real, effective and saved', async (t) => {
    const pids = [g.pid, ...descendants(g.pid)];
    t.ok(pids.length >= 3, `gotd, listen and auth: ${pids.join(' ')}`);
    for (const pid of pids) t.same(uids(pid), [daemon.uid, daemon.uid, daemon.uid, daemon.uid], `Uid line of ${pid}`);
    t.equal(fs.statSync(g.sock).mode & 0o777, 0o666, 'socket mode 0666: peer credentials decide');
  });

  t.test('only root and the daemon user may use gotctl', async (t) => {
    const asRoot = await g.gotctl(['info']);
    t.equal(asRoot.code, 0, asRoot.stderr);
    t.match(asRoot.stdout, new RegExp(`gotd pid ${g.pid}`));
    t.match(asRoot.stdout, /confinement: permission model/);
    t.match(asRoot.stdout, /processes: (listen|auth) [0-9]+, (listen|auth) [0-9]+/);
    t.match(asRoot.stdout, new RegExp(`config: ${g.conf}`));
    const asDaemon = await g.gotctl(['info'], daemon);
    t.equal(asDaemon.code, 0, asDaemon.stderr);
    for (const other of [alice, shared]) {
      const r = await g.gotctl(['info'], other);
      t.not(r.code, 0, `${other.name} refused`);
      t.match(r.stderr, /permission denied/);
      const s = await g.gotctl(['stop'], other);
      t.not(s.code, 0, `${other.name} cannot stop gotd`);
    }
    t.ok(alive(g.pid), 'still running');
  });

  t.test('every kind of no is the same answer', async (t) => {
    const names = ['team/secret', 'nosuch', '../src', 'src/../src', 'team//secret', '//src', src, `${src}/`, 'src\nx', '/team/secret.git'];
    const seen = new Set<string>();
    for (const name of names) {
      const r = await ask(alice, name);
      t.equal(r.code, 1, `${JSON.stringify(name)}: exit 1`);
      t.equal(r.stderr, 'gotsh: access denied\n', `${JSON.stringify(name)}: stderr`);
      seen.add(r.stdout);
    }
    t.same([...seen], ['0016ERR access denied\n'], 'byte-identical ERR packet for all of them');
    for (const name of ['src', 'team/secret', 'nosuch']) {
      const raw = await rawRequest(g.sock, JSON.stringify({ type: 'git', service: 'git-upload-pack', repo: name, protocol: '' }) + '\n');
      t.equal(raw.data.toString(), DENIED_LINE, `root asking for ${name} (no rule for root) on the raw socket`);
    }
    const bobR = await ask(bob, 'src');
    t.equal(bobR.stderr, 'gotsh: access denied\n', 'a later deny beats an earlier group permit');
    const carolR = await ask(carol, 'src');
    t.equal(carolR.stderr, 'gotsh: access denied\n', 'no rule: denied');
  });

  t.test('groups count, and the last matching rule wins', async (t) => {
    // src: "permit rw alice", then "permit ro :gotd_dev" (alice is in it): ro wins.
    const read = await ask(alice, 'src');
    t.notMatch(read.stderr, /access denied/, 'alice may read');
    const write = await ask(alice, 'src', 'git-receive-pack');
    t.equal(write.stderr, 'gotsh: access denied\n', 'but not write: the later group rule decides');
    await g.waitLog(new RegExp(`user=${USERS.alice} repo="src" service=git-receive-pack .*outcome=denied: read-only access`));
  });

  t.test('read-only access cannot push; the worker is never started', async (t) => {
    const before = g.log.length;
    const r = await ask(carol, 'team/secret', 'git-receive-pack');
    t.equal(r.code, 1);
    t.equal(r.stdout, '0016ERR access denied\n', 'same refusal as any other');
    const line = await g.waitLog(new RegExp(`user=${USERS.carol} .*service=git-receive-pack .*outcome=denied: read-only access`));
    t.match(line, /repo="team\/secret"/);
    t.notOk(g.log.slice(before).some((l) => /cannot open repository|worker/.test(l)), 'no worker ran');
  });

  t.test('forced-command identities only from trusted accounts', async (t) => {
    const env = { SSH_ORIGINAL_COMMAND: "git-upload-pack 'src'" };
    const untrusted = await ask(carol, '', '', ['-u', USERS.alice], env);
    t.not(untrusted.code, 0, 'carol may not speak for alice');
    t.notMatch(untrusted.stdout, /^[0-9a-f]{4}[0-9a-f]{40} /m, 'no ref advertisement');
    t.match(untrusted.stderr, /gotsh: access denied/);
    await g.waitLog(new RegExp(`${USERS.carol} asserted user "${USERS.alice}" but is not in \\[ssh\\] trusted_accounts`));

    const trusted = await ask(shared, '', '', ['-u', USERS.carol], { SSH_ORIGINAL_COMMAND: "git-upload-pack 'team/secret'" });
    t.notMatch(trusted.stderr, /access denied/, 'the shared account speaks for carol');
    await g.waitLog(new RegExp(`user=${USERS.carol} repo="team/secret"`));
    const trustedDenied = await ask(shared, '', '', ['-u', USERS.bob], { SSH_ORIGINAL_COMMAND: "git-upload-pack 'src'" });
    t.equal(trustedDenied.stderr, 'gotsh: access denied\n', 'and carol\'s rules, not its own, apply');
    const viaLoginShell = await ask(shared, '', '', ['-c', `gotsh -u ${USERS.carol}`], { SSH_ORIGINAL_COMMAND: "git-upload-pack 'team/secret'" });
    t.notMatch(viaLoginShell.stderr, /access denied/, 'also with gotsh as the shared account\'s login shell');
  });

  t.test('auth_timeout drops a client that sends nothing', async (t) => {
    const t0 = Date.now();
    const r = await rawRequest(g.sock, null, 10_000);
    const took = Date.now() - t0;
    t.ok(r.closed, 'closed by gotd');
    t.ok(took >= 1500 && took < 6000, `after about auth_timeout (2s): ${took}ms`);
    t.match(r.data.toString(), /timed out/);
    const partial = await rawRequest(g.sock, '{"type":"git"', 10_000);
    t.ok(partial.closed, 'a half request too');
  });

  t.test('bad requests are refused and change nothing', async (t) => {
    const cases: Array<[string | Buffer, RegExp]> = [
      ['not json\n', /bad request/],
      ['{"type":"git","service":"git-upload-pack","repo":"src"}\n', /bad request/],
      ['{"type":"git","service":"sh","repo":"src","protocol":""}\n', /bad request/],
      ['{"type":"git","service":"git-upload-pack","repo":"src","protocol":"","extra":1}\n', /bad request/],
      ['{"type":"git","service":"git-upload-pack","repo":"src","protocol":""}\n0000', /data after the request/],
      [Buffer.alloc(5000, 0x61), /longer than 4096/],
      [Buffer.from([0xff, 0xfe, 0x0a]), /bad request/],
    ];
    for (const [line, want] of cases) {
      const r = await rawRequest(g.sock, line);
      t.match(r.data.toString(), want, String(line).slice(0, 60));
      t.ok(r.closed);
    }
    const info = await g.gotctl(['info']);
    t.equal(info.code, 0, 'still serving');
  });

  t.test('max_connections: the next client hears "too many"', async (t) => {
    const hold: net.Socket[] = [];
    for (let i = 0; i < 3; i++) {
      const c = net.connect(g.sock);
      c.on('error', () => undefined);
      hold.push(c);
      await new Promise((r) => c.once('connect', r));
    }
    await sleep(100);
    const r = await rawRequest(g.sock, JSON.stringify({ type: 'git', service: 'git-upload-pack', repo: 'src', protocol: '' }) + '\n');
    t.match(r.data.toString(), /too many connections/);
    const viaGotsh = await ask(alice, 'src');
    t.equal(viaGotsh.code, 1);
    t.match(viaGotsh.stderr, /gotsh: too many connections/);
    for (const c of hold) c.destroy();
    await sleep(300);
    const after = await ask(undefined, 'src');
    t.equal(after.stderr, 'gotsh: access denied\n', 'served again once they are gone');
  });

  t.test('gotctl reload: new rules for new sessions; a bad file changes nothing', async (t) => {
    t.equal((await ask(carol, 'src')).stderr, 'gotsh: access denied\n');
    fs.writeFileSync(g.conf, fs.readFileSync(g.conf, 'utf8').replace(`"deny ${USERS.bob}"`, `"deny ${USERS.bob}", "permit ro ${USERS.carol}"`));
    const r = await g.gotctl(['reload']);
    t.equal(r.code, 0, r.stderr);
    t.match(r.stdout, /reloaded/);
    t.notMatch((await ask(carol, 'src')).stderr, /access denied/, 'carol now gets in');

    const good = fs.readFileSync(g.conf, 'utf8');
    fs.writeFileSync(g.conf, good.replace('max_connections = 3', 'max_connections = "many"'));
    const bad = await g.gotctl(['reload']);
    t.not(bad.code, 0, 'bad configuration refused');
    t.match(bad.stderr, /connection\.max_connections/, 'with the reason, naming the key');
    t.notMatch((await ask(carol, 'src')).stderr, /access denied/, 'old configuration still in force');

    const other = path.join(dir, 'other.conf');
    fs.writeFileSync(other, good.replace(`, "permit ro ${USERS.carol}"`, ''));
    const viaC = await g.gotctl(['reload', '-c', other]);
    t.equal(viaC.code, 0, viaC.stderr);
    t.equal((await ask(carol, 'src')).stderr, 'gotsh: access denied\n', 'reload -c FILE');
    fs.writeFileSync(g.conf, good);
    t.equal((await g.gotctl(['reload'])).code, 0);
    t.notMatch((await ask(carol, 'src')).stderr, /access denied/, 'reload without -c reads the -f file again');

    fs.writeFileSync(other, good.replace(/^listen = .*$/m, `listen = "${dir}/elsewhere.sock"`));
    const listenChange = await g.gotctl(['reload', '-c', other]);
    t.not(listenChange.code, 0);
    t.match(listenChange.stderr, /listen: changing the socket needs a restart/);
  });

  t.test('a dead listen or auth process is replaced; gotd keeps serving', async (t) => {
    const role = (pid: number): string => { try { return fs.readFileSync(`/proc/${pid}/cmdline`, 'utf8'); } catch { return ''; } };
    const before = descendants(g.pid).filter((p) => /gotd\/(listen|auth)\.js/.test(role(p)));
    t.equal(before.length, 2, 'listen and auth');
    for (const p of before) process.kill(p, 'SIGKILL');
    const t0 = Date.now();
    let info = await g.gotctl(['info']);
    while ((info.code !== 0 || before.some((p) => info.stdout.includes(` ${p}`))) && Date.now() - t0 < 10_000) {
      await sleep(200);
      info = await g.gotctl(['info']);
    }
    t.equal(info.code, 0, 'gotctl answers again');
    t.match(info.stdout, /processes: (listen|auth) [0-9]+, (listen|auth) [0-9]+/);
    t.equal((await ask(alice, 'team/secret')).stderr, 'gotsh: access denied\n', 'decisions as before');
    t.notMatch((await ask(carol, 'src')).stderr, /access denied/, 'with the reloaded configuration');
    await g.waitLog(/listen process [0-9]+ died/);
  });

  t.test('gotctl stop ends gotd and every process within 20s', async (t) => {
    const pids = [g.pid, ...descendants(g.pid)];
    const t0 = Date.now();
    const r = await g.gotctl(['stop']);
    t.equal(r.code, 0, r.stderr);
    const code = await g.waitExit(20_000);
    t.equal(code, 0, 'gotd exit status 0');
    for (;;) {
      const left = pids.filter(alive);
      if (left.length === 0 || Date.now() - t0 > 20_000) { t.same(left, [], 'no process left'); break; }
      await sleep(100);
    }
    t.ok(Date.now() - t0 < 20_000);
    t.notOk(fs.existsSync(g.sock) && (await new Promise((res) => { const c = net.connect(g.sock); c.on('connect', () => { c.destroy(); res(true); }); c.on('error', () => res(false)); })), 'socket no longer answers');
  });
}
