/**
 * gotd behind the real sshd, in the three ways an administrator sets it
 * up: gotsh in PATH as git-upload-pack/git-receive-pack (users keep their
 * shell), gotsh as the login shell, and a shared account whose
 * authorized_keys force "gotsh -u NAME".  Stock git clones, fetches and
 * pushes; every repository is checked with git fsck --strict.
 */
import t from 'tap';
import { spawnSync } from 'node:child_process';
import * as fs from 'node:fs';
import * as path from 'node:path';
import {
  DAEMON_USER, ensureAccounts, GROUPS, install, mustAccount, openTmpdir, repoFor, startGotd, USERS,
} from './lib/daemon';
import { keygen, sshdMissing, startSshd, type Key } from './lib/sshd';
import { fsckStrict, git, gitEnv, refsOf, run } from './lib/util';

const why = ensureAccounts() ?? sshdMissing();
if (why) {
  t.plan(0, `ssh tests: ${why}`);
} else {
  void main();
}

function objectFiles(repo: string): string[] {
  const out: string[] = [];
  const walk = (d: string): void => {
    for (const e of fs.readdirSync(d, { withFileTypes: true })) {
      const p = path.join(d, e.name);
      if (e.isDirectory()) walk(p); else out.push(path.relative(repo, p));
    }
  };
  walk(path.join(repo, 'objects'));
  return out.sort();
}

async function main(): Promise<void> {
  const inst = install();
  const dir = openTmpdir();
  const daemon = mustAccount(DAEMON_USER);
  const src = repoFor(dir, 'src', daemon);
  const pub = repoFor(dir, 'pub', daemon);
  const secret = repoFor(dir, 'secret', daemon);
  // dave logs in to gotsh itself.
  const usermod = spawnSync('flock', ['/tmp/.gotd-test-accounts.lock', 'usermod', '-s', inst.gotsh, USERS.dave], { encoding: 'utf8' });
  if (usermod.status !== 0) throw new Error(usermod.stderr);

  const g = await startGotd(inst, dir, `
[ssh]
trusted_accounts = ["${USERS.git}"]
[[repository]]
name = "src"
path = "${src}"
access = ["permit rw ${USERS.alice}", "permit ro ${USERS.dave}", "permit rw ${USERS.carol}", "permit rw :${GROUPS.dev}", "deny ${USERS.bob}"]
[[repository]]
name = "pub"
path = "${pub}"
access = ["permit ro anonymous"]
[[repository]]
name = "team/secret"
path = "${secret}"
access = ["permit ro ${USERS.carol}"]
`);
  const sshd = await startSshd(dir, { GOTD_UNIX_SOCKET: g.sock, PATH: `${inst.bin}:/usr/local/bin:/usr/bin:/bin` },
    [USERS.alice, USERS.bob, USERS.dave, USERS.git]);
  t.teardown(async () => { sshd.stop(); await g.stop(); });

  const keys = fs.mkdtempSync(path.join(dir, 'keys-'));
  const kAlice = keygen(keys, 'alice'), kDave = keygen(keys, 'dave'), kBob = keygen(keys, 'bob');
  const kCarol = keygen(keys, 'carol-shared'), kBobShared = keygen(keys, 'bob-shared');
  sshd.authorize(USERS.alice, [kAlice.pub]);
  sshd.authorize(USERS.dave, [kDave.pub]);
  sshd.authorize(USERS.bob, [`command="${inst.gotsh} -u ${USERS.alice}",restrict ${kBob.pub}`]);
  sshd.authorize(USERS.git, [
    `command="${inst.gotsh} -u ${USERS.carol}",restrict ${kCarol.pub}`,
    `command="${inst.gotsh} -u ${USERS.bob}",restrict ${kBobShared.pub}`,
  ]);

  const work = fs.mkdtempSync(path.join(dir, 'work-'));
  const gitSsh = (key: Key, args: string[], cwd = work, extra: NodeJS.ProcessEnv = {}): ReturnType<typeof run> =>
    run('git', args, { cwd, env: gitEnv({ GIT_SSH_COMMAND: sshd.sshCommand(key), ...extra }) });
  const url = (user: string, repo: string): string => `ssh://${user}@127.0.0.1/${repo}`;
  const head = git(['--git-dir', src, 'rev-parse', 'refs/heads/main']).trim();

  t.test('gotsh in PATH as git-upload-pack / git-receive-pack', async (t) => {
    for (const [proto, name] of [['2', 'v2'], ['0', 'v0']] as const) {
      const r = await gitSsh(kAlice, ['-c', `protocol.version=${proto}`, 'clone', '-q', url(USERS.alice, 'src'), `alice-${name}`]);
      t.equal(r.code, 0, `clone ${name}: ${r.stderr}`);
      t.equal(git(['-c', 'safe.directory=*', '-C', path.join(work, `alice-${name}`), 'rev-parse', 'HEAD']).trim(), head, `${name}: HEAD as on the server`);
    }
    const scp = await gitSsh(kAlice, ['ls-remote', `${USERS.alice}@127.0.0.1:src.git`]);
    t.equal(scp.code, 0, scp.stderr);
    t.match(scp.stdout, new RegExp(`^${head}\\tHEAD$`, 'm'), 'scp-style URL, .git suffix');

    const clone = path.join(work, 'alice-v2');
    fs.writeFileSync(path.join(clone, 'alice.txt'), 'from alice over ssh\n');
    git(['-C', clone, 'add', 'alice.txt']);
    git(['-C', clone, 'commit', '-q', '-m', 'alice over ssh']);
    const push = await gitSsh(kAlice, ['push', 'origin', 'HEAD:refs/heads/main', 'HEAD:refs/heads/alice-topic'], clone);
    t.equal(push.code, 0, `push: ${push.stderr}`);
    const newHead = git(['-C', clone, 'rev-parse', 'HEAD']).trim();
    t.equal(git(['--git-dir', src, 'rev-parse', 'refs/heads/main']).trim(), newHead, 'main moved on the server');
    t.equal(fsckStrict(src), '', 'fsck --strict');
    const fetch = await gitSsh(kAlice, ['-C', path.join(work, 'alice-v0'), 'fetch', '-q', 'origin']);
    t.equal(fetch.code, 0, fetch.stderr);
    t.equal(git(['-C', path.join(work, 'alice-v0'), 'rev-parse', 'origin/alice-topic']).trim(), newHead, 'fetch sees the push');

    const explicit = await gitSsh(kAlice, ['clone', '-q', '-u', path.join(inst.bin, 'git-upload-pack'), `${USERS.alice}@127.0.0.1:/src`, 'alice-u']);
    t.equal(explicit.code, 0, `git clone -u /path/to/git-upload-pack: ${explicit.stderr}`);
  });

  t.test('gotsh as the login shell', async (t) => {
    const r = await gitSsh(kDave, ['clone', '-q', url(USERS.dave, 'src'), 'dave']);
    t.equal(r.code, 0, r.stderr);
    const clone = path.join(work, 'dave');
    fs.writeFileSync(path.join(clone, 'dave.txt'), 'dave may only read\n');
    git(['-C', clone, 'add', 'dave.txt']);
    git(['-C', clone, 'commit', '-q', '-m', 'dave tries']);
    const objects = objectFiles(src);
    const refs = refsOf(src);
    const push = await gitSsh(kDave, ['push', 'origin', 'HEAD:refs/heads/dave'], clone);
    t.not(push.code, 0, 'read-only push refused');
    t.match(push.stderr, /access denied/);
    t.same(objectFiles(src), objects, 'not one object written, no quarantine left');
    t.equal(refsOf(src), refs, 'refs unchanged');

    const shell = await run('ssh', [...sshd.sshCommand(kDave).split(' ').slice(1), '-T', `${USERS.dave}@127.0.0.1`]);
    t.equal(shell.code, 1, 'interactive login refused');
    t.match(shell.stderr, /gotsh: interactive logins are not allowed/);
    const marker = path.join(dir, 'dave-was-here');
    const cmd = await run('ssh', [...sshd.sshCommand(kDave).split(' ').slice(1), `${USERS.dave}@127.0.0.1`, `touch ${marker}`]);
    t.equal(cmd.code, 1);
    t.match(cmd.stderr, /gotsh: only git-upload-pack and git-receive-pack are allowed/);
    const meta = await run('ssh', [...sshd.sshCommand(kDave).split(' ').slice(1), `${USERS.dave}@127.0.0.1`, `git-upload-pack 'src'; touch ${marker}`]);
    t.equal(meta.code, 1);
    t.match(meta.stderr, /gotsh: shell metacharacters are not allowed/);
    t.notOk(fs.existsSync(marker), 'nothing executed');
  });

  t.test('a shared account with forced commands (gotsh -u NAME)', async (t) => {
    const r = await gitSsh(kCarol, ['clone', '-q', url(USERS.git, 'src'), 'carol']);
    t.equal(r.code, 0, r.stderr);
    const clone = path.join(work, 'carol');
    fs.writeFileSync(path.join(clone, 'carol.txt'), 'carol through the shared account\n');
    git(['-C', clone, 'add', 'carol.txt']);
    git(['-C', clone, 'commit', '-q', '-m', 'carol']);
    const push = await gitSsh(kCarol, ['push', 'origin', 'HEAD:refs/heads/carol'], clone);
    t.equal(push.code, 0, push.stderr);
    t.equal(git(['--git-dir', src, 'rev-parse', 'refs/heads/carol']).trim(), git(['-C', clone, 'rev-parse', 'HEAD']).trim());
    t.ok(await g.waitLog(new RegExp(`user=${USERS.carol} repo="src" service=git-receive-pack .*outcome=ok`)), 'logged as carol');
    const secretR = await gitSsh(kCarol, ['ls-remote', url(USERS.git, 'team/secret')]);
    t.equal(secretR.code, 0, 'carol\'s own rules apply');

    const bobShared = await gitSsh(kBobShared, ['ls-remote', url(USERS.git, 'src')]);
    t.not(bobShared.code, 0, 'the shared account speaking for bob gets bob\'s deny');
    t.match(bobShared.stderr, /access denied/);

    // bob's own account is not trusted to speak for alice.
    const untrusted = await run('ssh', [...sshd.sshCommand(kBob).split(' ').slice(1), `${USERS.bob}@127.0.0.1`, "git-upload-pack 'src'"]);
    t.not(untrusted.code, 0, 'gotsh -u from an untrusted account fails');
    t.notMatch(untrusted.stdout, /[0-9a-f]{40} /, 'no ref advertisement');
    t.match(untrusted.stderr, /gotsh: access denied/);
  });

  t.test('refusals over ssh are indistinguishable', async (t) => {
    const outputs = new Set<string>();
    for (const name of ['team/secret', 'pub', 'nosuch', '../src', 'src/../src', 'team//secret', src.slice(1)]) {
      const r = await gitSsh(kAlice, ['ls-remote', `${USERS.alice}@127.0.0.1:${name}`]);
      t.not(r.code, 0, `${name} refused`);
      t.match(r.stderr, /access denied/, name);
      outputs.add(r.stderr.split(name).join('NAME'));
    }
    t.equal(outputs.size, 1, `one answer for all: ${[...outputs].join(' | ')}`);
    t.ok([...outputs][0]!.includes('remote error: access denied'), 'git shows the ERR packet');
  });

  t.test('every repository passes git fsck --strict', async (t) => {
    for (const r of [src, pub, secret]) t.equal(fsckStrict(r), '', r);
  });
}
