/**
 * etc/sshd_config.gotd and etc/authorized_keys.example: OpenSSH accepts them,
 * and the shared account really gets what the comments promise.
 * Needs sshd and ssh-keygen (Debian: openssh-server, openssh-client).
 */
import t from 'tap';
import { spawnSync } from 'node:child_process';
import * as fs from 'node:fs';
import * as path from 'node:path';
import * as toml from 'toml';
import { ROOT, tmpdir } from './lib/util';

const SNIPPET = path.join(ROOT, 'etc', 'sshd_config.gotd');
const KEYS = path.join(ROOT, 'etc', 'authorized_keys.example');
const SSHD = fs.existsSync('/usr/sbin/sshd') ? '/usr/sbin/sshd' : 'sshd';

function sh(cmd: string, args: string[]): { code: number | null; out: string; err: string } {
  const r = spawnSync(cmd, args, { encoding: 'utf8', env: { ...process.env, LC_ALL: 'C' } });
  if (r.error) throw new Error(`${cmd}: ${r.error.message} (Debian: apt-get install openssh-server openssh-client)`);
  return { code: r.status, out: r.stdout, err: r.stderr };
}

/** sshd refuses to check any configuration without its privilege separation directory. */
function privsepDir(): boolean {
  if (fs.existsSync('/run/sshd')) return true;
  if (process.getuid?.() !== 0) return false;
  fs.mkdirSync('/run/sshd', { mode: 0o755 }); // what the ssh service creates at start
  return true;
}

const skip = privsepDir() ? false : '/run/sshd is missing and only root may create it';

t.test('sshd accepts the snippet and applies it to the shared account', { skip }, async (t) => {
  const dir = tmpdir('gotd-sshd-');
  const hostKey = path.join(dir, 'host_key');
  t.equal(sh('ssh-keygen', ['-q', '-t', 'ed25519', '-N', '', '-f', hostKey]).code, 0, 'host key');
  const base = ['-f', SNIPPET, '-o', `HostKey=${hostKey}`];

  const check = sh(SSHD, ['-t', ...base]);
  t.equal(check.code, 0, `sshd -t: ${check.err}`);

  const effective = (user: string): Map<string, string> => {
    const r = sh(SSHD, ['-T', ...base, '-C', `user=${user},host=client.example.org,addr=192.0.2.1`]);
    t.equal(r.code, 0, `sshd -T -C user=${user}: ${r.err}`);
    const m = new Map<string, string>();
    for (const line of r.out.split('\n')) {
      const i = line.indexOf(' ');
      if (i > 0) m.set(line.slice(0, i), `${m.has(line.slice(0, i)) ? `${m.get(line.slice(0, i))} ` : ''}${line.slice(i + 1)}`);
    }
    return m;
  };
  const git = effective('git');
  t.equal(git.get('disableforwarding'), 'yes', 'git: DisableForwarding yes');
  t.equal(git.get('permittty'), 'no', 'git: PermitTTY no');
  t.match(git.get('acceptenv') ?? '', /\bGIT_PROTOCOL\b/, 'git: AcceptEnv GIT_PROTOCOL');
  t.equal(git.get('authenticationmethods'), 'publickey', 'git: keys only');
  t.equal(git.get('forcecommand'), 'none', 'git: no ForceCommand, which would override the per-key command=');

  const other = effective('root');
  t.equal(other.get('disableforwarding'), 'no', 'other users are not affected');
});

t.test('authorized_keys example', async (t) => {
  const r = sh('ssh-keygen', ['-l', '-f', KEYS]);
  t.equal(r.code, 0, `ssh-keygen -l parses every line: ${r.err}`);
  const lines = fs.readFileSync(KEYS, 'utf8').split('\n').filter((l) => l && !l.startsWith('#'));
  t.equal(r.out.trim().split('\n').length, lines.length, 'one key per line');
  t.ok(lines.length >= 2, 'several users share the account');
  for (const line of lines) {
    t.match(line, /^command="\/usr\/local\/bin\/gotsh -u [a-z_][a-z0-9_-]*",restrict ssh-ed25519 \S+ \S+$/,
      'forced gotsh -u NAME with restrict');
  }
});

t.test('the shared account is trusted in the example gotd.conf', async (t) => {
  const conf = toml.parse(fs.readFileSync(path.join(ROOT, 'etc', 'gotd.conf'), 'utf8')) as { ssh?: { trusted_accounts?: string[] } };
  const snippet = fs.readFileSync(SNIPPET, 'utf8');
  const shared = /^Match User (\S+)$/m.exec(snippet)?.[1];
  t.equal(shared, 'git');
  t.ok(conf.ssh?.trusted_accounts?.includes(shared!), 'trusted_accounts lists it');
});
