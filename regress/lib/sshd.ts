/**
 * A private sshd for the ssh tests: its own host key, config, port and
 * authorized_keys files, run in the foreground as root (CI runs as root).
 */
import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import * as fs from 'node:fs';
import * as net from 'node:net';
import * as path from 'node:path';
import { sleep } from './daemon';

export const SSHD = '/usr/sbin/sshd';

export function sshdMissing(): string | null {
  if (process.getuid?.() !== 0) return 'needs root to run sshd';
  if (!fs.existsSync(SSHD)) return 'openssh-server is not installed';
  if (spawnSync('sh', ['-c', 'command -v ssh && command -v ssh-keygen']).status !== 0) return 'openssh-client is not installed';
  return null;
}

function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const s = net.createServer();
    s.once('error', reject);
    s.listen(0, '127.0.0.1', () => {
      const port = (s.address() as net.AddressInfo).port;
      s.close(() => resolve(port));
    });
  });
}

export interface Key { file: string; pub: string }

export function keygen(dir: string, name: string): Key {
  const file = path.join(dir, name);
  const r = spawnSync('ssh-keygen', ['-q', '-t', 'ed25519', '-N', '', '-C', name, '-f', file], { encoding: 'utf8' });
  if (r.status !== 0) throw new Error(`ssh-keygen: ${r.stderr}`);
  return { file, pub: fs.readFileSync(`${file}.pub`, 'utf8').trim() };
}

export class Sshd {
  constructor(readonly proc: ChildProcess, readonly port: number, readonly keysDir: string, readonly log: string[]) {}

  /** authorized_keys for a user (lines as given). */
  authorize(user: string, lines: string[]): void {
    fs.writeFileSync(path.join(this.keysDir, user), lines.join('\n') + '\n', { mode: 0o644 });
  }

  /** GIT_SSH_COMMAND for a key. */
  sshCommand(key: Key): string {
    return `ssh -F /dev/null -p ${this.port} -i ${key.file} -o IdentitiesOnly=yes -o BatchMode=yes -o StrictHostKeyChecking=no -o UserKnownHostsFile=/dev/null -o LogLevel=ERROR`;
  }

  stop(): void {
    this.proc.kill('SIGTERM');
  }
}

/** Starts sshd; env is set for every session (SetEnv), GIT_PROTOCOL is accepted from clients. */
export async function startSshd(dir: string, env: Record<string, string>, users: string[]): Promise<Sshd> {
  fs.mkdirSync('/run/sshd', { recursive: true, mode: 0o755 });
  const hostKey = path.join(dir, 'ssh_host_ed25519_key');
  if (!fs.existsSync(hostKey)) spawnSync('ssh-keygen', ['-q', '-t', 'ed25519', '-N', '', '-f', hostKey]);
  const keysDir = path.join(dir, 'authorized_keys');
  fs.mkdirSync(keysDir, { recursive: true, mode: 0o755 });
  for (let attempt = 0; ; attempt++) {
    const port = await freePort();
    const conf = path.join(dir, 'sshd_config');
    fs.writeFileSync(conf, [
      `Port ${port}`,
      'ListenAddress 127.0.0.1',
      `HostKey ${hostKey}`,
      'PidFile none',
      `AuthorizedKeysFile ${keysDir}/%u`,
      'StrictModes no',
      'UsePAM no',
      'PasswordAuthentication no',
      'KbdInteractiveAuthentication no',
      'PubkeyAuthentication yes',
      'PermitRootLogin no',
      `AllowUsers ${users.join(' ')}`,
      'AcceptEnv GIT_PROTOCOL',
      `SetEnv ${Object.entries(env).map(([k, v]) => `${k}=${v}`).join(' ')}`,
      'PrintMotd no',
      'X11Forwarding no',
      'AllowTcpForwarding no',
      'LogLevel ERROR',
      '',
    ].join('\n'));
    const check = spawnSync(SSHD, ['-t', '-f', conf], { encoding: 'utf8' });
    if (check.status !== 0) throw new Error(`sshd -t: ${check.stderr}`);
    const log: string[] = [];
    const proc = spawn(SSHD, ['-D', '-e', '-f', conf], { stdio: ['ignore', 'ignore', 'pipe'] });
    proc.stderr!.on('data', (b: Buffer) => log.push(...b.toString().split('\n').filter(Boolean)));
    const t0 = Date.now();
    while (Date.now() - t0 < 10_000 && proc.exitCode === null) {
      const up = await new Promise<boolean>((resolve) => {
        const c = net.connect(port, '127.0.0.1');
        c.once('connect', () => { c.destroy(); resolve(true); });
        c.once('error', () => resolve(false));
      });
      if (up) return new Sshd(proc, port, keysDir, log);
      await sleep(50);
    }
    proc.kill('SIGKILL');
    if (attempt >= 3) throw new Error(`sshd did not start: ${log.join('\n')}`);
  }
}
