/**
 * bubblewrap under systemd's hardening.  ProtectKernelTunables= makes
 * /proc/sys read-only (bwrap --disable-userns cannot write
 * max_user_namespaces) and, like ProtectKernelLogs=, mounts over parts of
 * /proc (the kernel refuses bwrap --proc a fresh procfs).  The tests make
 * those same mounts in a private mount namespace (unshare, as root), and
 * check that gotd keeps bubblewrap with the options that still work, says
 * so in gotd -n -v and gotctl info, and serves clones and pushes that way.
 */
import t from 'tap';
import { spawn, spawnSync } from 'node:child_process';
import * as fs from 'node:fs';
import * as path from 'node:path';
import {
  asUser, connectable, DAEMON_USER, ensureAccounts, Gotd, install, IS_ROOT, mustAccount, openTmpdir, repoFor, sleep,
  USERS, workdir, type Install,
} from './lib/daemon';
import { fsckStrict, git, run } from './lib/util';

/** Shell commands that set up /proc as a systemd service with these settings sees it. */
const HARDENING = {
  none: [] as string[],
  ProtectKernelTunables: ['mount --bind /proc/sys /proc/sys', 'mount -o remount,bind,ro /proc/sys'],
  ProtectKernelLogs: ['mount --bind /dev/null /proc/kmsg'],
};
type Hardening = keyof typeof HARDENING;

/** The program and arguments that run `cmd` with /proc hardened as `h` says. */
function hardened(h: Hardening, cmd: string[]): [string, string[]] {
  const setup = [...HARDENING[h], 'exec "$@"'].join('\n');
  return ['unshare', ['--mount', '--propagation', 'private', 'sh', '-ec', setup, 'sh', ...cmd]];
}

function why(): string | null {
  if (!IS_ROOT) return 'needs root (mounts in a private mount namespace)';
  for (const tool of ['unshare', 'bwrap', 'mount']) {
    if (spawnSync('sh', ['-c', `command -v ${tool}`]).status !== 0) return `${tool} not installed`;
  }
  if (!fs.existsSync('/proc/kmsg')) return 'no /proc/kmsg to mask';
  if (spawnSync('unshare', ['--mount', 'true']).status !== 0) return 'unshare --mount does not work here';
  return ensureAccounts();
}

const skip = why();
if (skip) t.plan(0, `bubblewrap fallback tests: ${skip}`);
else void main();

function config(dir: string, repo: string): string {
  const conf = path.join(dir, 'gotd.conf');
  fs.writeFileSync(conf, `user = "${DAEMON_USER}"\nlisten = "${path.join(dir, 'gotd.sock')}"\n` +
    `[[repository]]\nname = "src"\npath = "${repo}"\naccess = ["permit rw ${USERS.alice}"]\n`);
  fs.chmodSync(conf, 0o644);
  return conf;
}

async function checkConfig(inst: Install, h: Hardening, conf: string): Promise<string[]> {
  const [cmd, args] = hardened(h, [inst.gotd, '-n', '-v', '-f', conf]);
  const r = await run(cmd, args);
  if (r.code !== 0) throw new Error(`gotd -n -v under ${h}: exit ${r.code}: ${r.stderr}`);
  return r.stderr.split('\n').filter((l) => l.startsWith('gotd: bubblewrap'));
}

async function main(): Promise<void> {
  const inst = install();
  const dir = openTmpdir();
  const daemon = mustAccount(DAEMON_USER);
  const alice = mustAccount(USERS.alice);
  const src = repoFor(dir, 'src', daemon);
  const conf = config(dir, src);

  const baseline = await checkConfig(inst, 'none', conf);
  if (!baseline[0] || baseline[0].includes('not usable') || baseline[0].includes('not installed')) {
    t.plan(0, `bubblewrap does not work here at all: ${baseline.join(' / ')}`);
    return;
  }
  const hasDisable = !baseline.some((l) => l.includes('not in this bwrap'));

  t.test('gotd -n -v: the strongest option set that works', async (t) => {
    t.match(baseline[0], /^gotd: bubblewrap: \S+ \(mount, pid, net, ipc, uts, user namespaces; /);
    t.notMatch(baseline[0], /no \/proc/, `unhardened: bubblewrap mounts its own /proc: ${baseline[0]}`);
    if (hasDisable) t.match(baseline[0], /; no nested user namespaces\)$/, 'and blocks nested user namespaces');

    const tunables = await checkConfig(inst, 'ProtectKernelTunables', conf);
    t.match(tunables[0], /; nested user namespaces not blocked: --disable-userns unavailable; no \/proc: --proc unavailable\)$/,
      `read-only /proc/sys: ${tunables.join(' / ')}`);
    if (hasDisable) t.ok(tunables.some((l) => /--disable-userns: .*max_user_namespaces: Read-only file system/.test(l)), 'says why --disable-userns failed');
    t.ok(tunables.some((l) => /--proc: .*Can't mount proc/.test(l)), 'says why --proc failed');

    const logs = await checkConfig(inst, 'ProtectKernelLogs', conf);
    if (hasDisable) t.match(logs[0], /; no nested user namespaces; no \/proc: --proc unavailable\)$/, `masked /proc/kmsg: only --proc goes: ${logs.join(' / ')}`);
    else t.match(logs[0], /no \/proc: --proc unavailable\)$/, logs.join(' / '));
  });

  t.test('gotd under ProtectKernelTunables=: bubblewrap without /proc, clones and pushes', async (t) => {
    const sock = path.join(dir, 'gotd.sock');
    const [cmd, args] = hardened('ProtectKernelTunables', [inst.gotd, '-d', '-v', '-f', conf]);
    const g = new Gotd(spawn(cmd, args, { stdio: ['ignore', 'ignore', 'pipe'] }), sock, conf, inst);
    t.teardown(() => g.stop());
    const t0 = Date.now();
    while (!(await connectable(sock))) {
      if (g.proc.exitCode !== null || Date.now() - t0 > 20_000) { t.fail(`gotd did not start:\n${g.log.join('\n')}`); return; }
      await sleep(50);
    }
    t.notOk(g.log.some((l) => /without bubblewrap/.test(l)), 'no warning about running without bubblewrap');
    const info = await g.gotctl(['info']);
    t.equal(info.code, 0, info.stderr);
    t.match(info.stdout, /^confinement: permission model, bubblewrap \(nested user namespaces not blocked: --disable-userns unavailable; no \/proc: --proc unavailable\), unprivileged user, resource limits$/m,
      'gotctl info names the bubblewrap options in force');

    const env = { GOTD_UNIX_SOCKET: sock };
    const work = workdir(dir, alice, 'alice-work');
    const asAlice = (a: string[], cwd = work): ReturnType<typeof run> => run('git', a, { ...asUser(alice, { env }), cwd });
    const clone = await asAlice(['clone', '-q', '-u', path.join(inst.bin, 'git-upload-pack'), 'file:///src', 'c']);
    t.equal(clone.code, 0, `clone: ${clone.stderr}`);
    const c = path.join(work, 'c');
    fs.writeFileSync(path.join(c, 'hardened.txt'), 'pushed by a writer without /proc\n');
    t.equal((await asAlice(['add', 'hardened.txt'], c)).code, 0);
    t.equal((await asAlice(['commit', '-q', '-m', 'under systemd hardening'], c)).code, 0);
    const push = await asAlice(['push', '--receive-pack', path.join(inst.bin, 'git-receive-pack'), 'origin', 'HEAD:main'], c);
    t.equal(push.code, 0, `push: ${push.stderr}`);
    t.equal(git(['--git-dir', src, 'rev-parse', 'refs/heads/main']).trim(), git(['-c', 'safe.directory=*', '-C', c, 'rev-parse', 'HEAD']).trim(), 'the push arrived');
    t.equal(fsckStrict(src), '');
    await g.waitLog(/service=git-receive-pack .*outcome=ok/);
  });
}
