/**
 * make demo: a private gotd for whoever runs it, in the foreground, with a
 * sample repository and an embedded configuration; prints clone commands
 * that work at once.  State lives in build/demo (or, when run as root, in a
 * fresh /tmp/gotd-demo-* directory the unprivileged "nobody" can reach).
 * gotd and gotsh are used as installed (make install into the state
 * directory), exactly as a system would run them.
 */
import { spawn, spawnSync } from 'node:child_process';
import * as fs from 'node:fs';
import * as net from 'node:net';
import * as os from 'node:os';
import * as path from 'node:path';
import { accountSync } from '../sys/users';
import { demoWebSocket, waitForPort } from './websocket';

const ROOT = path.resolve(__dirname, '..', '..', '..');
const isRoot = process.getuid?.() === 0;

function sh(cmd: string, args: string[], opts: { cwd?: string; env?: NodeJS.ProcessEnv } = {}): void {
  const r = spawnSync(cmd, args, { stdio: ['ignore', 'ignore', 'inherit'], ...opts });
  if (r.status !== 0) { process.stderr.write(`demo: ${cmd} ${args.join(' ')} failed\n`); process.exit(1); }
}

function stateDir(): string {
  if (!isRoot) {
    const dir = path.join(ROOT, 'build', 'demo');
    fs.rmSync(dir, { recursive: true, force: true });
    fs.mkdirSync(dir, { recursive: true, mode: 0o700 });
    return dir;
  }
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'gotd-demo-'));
  fs.chmodSync(dir, 0o755);
  return dir;
}

function sampleRepo(dir: string, owner: { uid: number; gid: number } | null): string {
  const repo = path.join(dir, 'repos', 'demo.git');
  const work = path.join(dir, 'work');
  const env = { ...process.env, GIT_CONFIG_NOSYSTEM: '1', GIT_CONFIG_GLOBAL: '/dev/null', GIT_AUTHOR_NAME: 'gotd demo', GIT_AUTHOR_EMAIL: 'demo@gotd.invalid', GIT_COMMITTER_NAME: 'gotd demo', GIT_COMMITTER_EMAIL: 'demo@gotd.invalid' };
  sh('git', ['init', '-q', '-b', 'main', work], { env });
  fs.writeFileSync(path.join(work, 'README'), 'Served by gotd.\n');
  sh('git', ['-C', work, 'add', 'README'], { env });
  sh('git', ['-C', work, 'commit', '-q', '-m', 'Hello from gotd'], { env });
  sh('git', ['clone', '-q', '--bare', work, repo], { env });
  fs.rmSync(work, { recursive: true, force: true });
  if (owner) sh('chown', ['-R', `${owner.uid}:${owner.gid}`, path.join(dir, 'repos')]);
  return repo;
}

function waitForSocket(sock: string, child: ReturnType<typeof spawn>): Promise<void> {
  return new Promise((resolve, reject) => {
    const t0 = Date.now();
    const tick = (): void => {
      if (child.exitCode !== null) { reject(new Error('gotd exited')); return; }
      const c = net.connect(sock);
      c.once('connect', () => { c.destroy(); resolve(); });
      c.once('error', () => { c.destroy(); if (Date.now() - t0 > 20_000) reject(new Error('gotd did not start')); else setTimeout(tick, 100); });
    };
    tick();
  });
}

async function main(): Promise<void> {
  const me = accountSync(process.getuid!());
  const daemonUser = isRoot ? accountSync('nobody') : me;
  if (!me || !daemonUser) { process.stderr.write('demo: cannot look up the accounts to use\n'); process.exit(1); }
  const dir = stateDir();
  const prefix = path.join(dir, 'usr');
  sh('make', ['-s', '-C', ROOT, 'install', `PREFIX=${prefix}`, 'DESTDIR=']);
  const repo = sampleRepo(dir, isRoot ? daemonUser : null);
  const sock = path.join(dir, 'gotd.sock');
  const conf = path.join(dir, 'gotd.conf');
  const web = await demoWebSocket(dir);
  fs.writeFileSync(conf, [
    '# gotd demo configuration (written by make demo)',
    `user = "${daemonUser.name}"`,
    `listen = "${sock}"`,
    '',
    '[connection]',
    'request_timeout = "10m"',
    '',
    ...web.config,
    '',
    '[[repository]]',
    'name = "demo"',
    `path = "${repo}"`,
    `access = ["permit ro anonymous", "permit rw ${me.name}", "permit rw ${web.user}"]`,
    '',
  ].join('\n'));

  const gotd = spawn(path.join(prefix, 'sbin', 'gotd'), ['-d', '-v', '-f', conf, '-s', web.secrets], { stdio: ['ignore', 'inherit', 'inherit'] });
  for (const sig of ['SIGINT', 'SIGTERM'] as const) process.on(sig, () => gotd.kill('SIGTERM'));
  gotd.on('exit', (code) => process.exit(code ?? 1));
  try {
    await waitForSocket(sock, gotd);
    await waitForPort(web.port);
  } catch (e) {
    process.stderr.write(`demo: ${(e as Error).message}\n`);
    process.exit(1);
  }
  // gotsh under the names git runs on a server; kept out of PREFIX/bin so it shadows nothing.
  const bin = path.join(dir, 'bin');
  fs.mkdirSync(bin, { recursive: true });
  for (const name of ['git-upload-pack', 'git-receive-pack']) fs.symlinkSync(path.join(prefix, 'bin', 'gotsh'), path.join(bin, name));
  process.stdout.write([
    '',
    `gotd is serving ${repo} as "demo" (state in ${dir}). Try, from any directory:`,
    '',
    `  GOTD_UNIX_SOCKET=${sock} git clone -u ${bin}/git-upload-pack file:///demo gotd-demo`,
    `  cd gotd-demo && echo hi >> README && git -c user.name=you -c user.email=you@example.org commit -qam hi && GOTD_UNIX_SOCKET=${sock} git push --receive-pack=${bin}/git-receive-pack`,
    '',
    'Over a WebSocket (git-remote-ws is in the PATH given here; `make install` puts it in yours):',
    '',
    `  PATH=${path.join(prefix, 'bin')}:$PATH git clone ws://127.0.0.1:${web.port}/demo gotd-demo-ws`,
    `  cd gotd-demo-ws && echo hi >> README && git commit -qam hi && PATH=${path.join(prefix, 'bin')}:$PATH git push ws://${web.user}:${web.password}@127.0.0.1:${web.port}/demo HEAD:main`,
    '',
    `  ${path.join(prefix, 'sbin', 'gotctl')} -f ${sock} info`,
    '',
    'Over ssh, install gotsh as git-upload-pack/git-receive-pack on the server (see README, "Access over ssh").',
    'Stop with Ctrl-C.',
    '',
  ].join('\n'));
}

void main();
