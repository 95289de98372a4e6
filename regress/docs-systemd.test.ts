/**
 * etc/gotd.service and etc/gotd.tmpfiles: systemd accepts them, the unit's
 * exposure score stays at or below 2.5, and the unit, the tmpfiles link and the
 * example gotd.conf agree on where the socket and the repositories are.
 * Needs systemd-analyze (Debian package systemd; systemd need not be running).
 */
import t from 'tap';
import { spawnSync } from 'node:child_process';
import * as fs from 'node:fs';
import * as path from 'node:path';
import * as toml from 'toml';
import { ROOT, tmpdir } from './lib/util';

const UNIT = path.join(ROOT, 'etc', 'gotd.service');
const TMPFILES = path.join(ROOT, 'etc', 'gotd.tmpfiles');
const CONF = path.join(ROOT, 'etc', 'gotd.conf');
const MAX_EXPOSURE = 2.5;

function sh(cmd: string, args: string[]): { code: number | null; out: string; err: string } {
  const r = spawnSync(cmd, args, {
    encoding: 'utf8',
    env: { ...process.env, SYSTEMD_COLORS: '0', SYSTEMD_PAGER: '', LC_ALL: 'C' },
  });
  if (r.error) throw new Error(`${cmd}: ${r.error.message} (Debian: apt-get install systemd)`);
  return { code: r.status, out: r.stdout, err: r.stderr };
}

/** The values of one key in the [Service] section, in order (repeated keys accumulate). */
function serviceValues(unit: string, key: string): string[] {
  let section = '';
  const values: string[] = [];
  for (const raw of unit.split('\n')) {
    const line = raw.trim();
    if (line.startsWith('[')) section = line;
    else if (section === '[Service]' && line.startsWith(`${key}=`)) values.push(line.slice(key.length + 1));
  }
  return values;
}

t.test('systemd-analyze verify accepts the unit', async (t) => {
  // verify insists that ExecStart= binaries exist; gotd need not be installed
  // on the test machine, so check a copy that runs /bin/true instead.
  const dir = tmpdir('gotd-unit-');
  const unit = fs.readFileSync(UNIT, 'utf8').replace(/^(Exec\w+=)\S+/gm, '$1/bin/true');
  const copy = path.join(dir, 'gotd.service');
  fs.writeFileSync(copy, unit);
  const r = sh('systemd-analyze', ['verify', '--man=no', '--generators=no', copy]);
  const about = (r.out + r.err).split('\n').filter((l) => l.includes('gotd') || l.includes(dir));
  for (const l of (r.out + r.err).split('\n').filter(Boolean)) t.comment(`verify: ${l}`);
  t.equal(r.code, 0, 'systemd-analyze verify exits 0');
  t.same(about, [], 'no warning about the unit');
});

t.test('exposure score', async (t) => {
  const r = sh('systemd-analyze', ['security', '--offline=yes', UNIT]);
  const m = /Overall exposure level for gotd\.service: (\d+(?:\.\d+)?) (\S+)/.exec(r.out + r.err);
  t.ok(m, 'systemd-analyze security prints an overall exposure level');
  if (!m) return;
  const score = Number(m[1]);
  t.comment(`systemd-analyze security --offline=yes etc/gotd.service: ${score} ${m[2]}`);
  t.ok(score <= MAX_EXPOSURE, `exposure ${score} <= ${MAX_EXPOSURE}`);
  // The score must not come from giving up the settings the unit promises.
  const failed = (r.out + r.err).split('\n').filter((l) => l.startsWith('✗')).map((l) => l.split(/\s+/)[1]);
  for (const setting of ['User=/DynamicUser=', 'NoNewPrivileges=', 'ProtectSystem=', 'ProtectHome=',
    'PrivateTmp=', 'PrivateDevices=', 'CapabilityBoundingSet=~CAP_SYS_ADMIN', 'RestrictSUIDSGID=',
    'RestrictRealtime=', 'LockPersonality=', 'SystemCallArchitectures=']) {
    t.notOk(failed.includes(setting), `${setting} passes`);
  }
});

t.test('unit, tmpfiles link and example config agree', async (t) => {
  const unit = fs.readFileSync(UNIT, 'utf8');
  t.same(serviceValues(unit, 'ExecStart'), ['/usr/local/sbin/gotd -d -f /etc/gotd.conf']);
  t.same(serviceValues(unit, 'RuntimeDirectory'), ['gotd']);
  const user = serviceValues(unit, 'User');
  const conf = toml.parse(fs.readFileSync(CONF, 'utf8')) as {
    user: string; listen: string; repository?: { path: string }[];
  };
  t.same(user, [conf.user], 'unit runs as the configured user, so gotd needs no privilege drop');
  t.equal(conf.listen, '/run/gotd/gotd.sock', 'gotd.conf listens in the runtime directory');

  const writable = serviceValues(unit, 'ReadWritePaths').flatMap((v) => v.split(/\s+/)).map((p) => p.replace(/^-/, ''));
  const repos = conf.repository ?? [];
  t.ok(repos.length > 0, 'the example serves repositories');
  for (const repo of repos) {
    t.ok(writable.some((w) => repo.path === w || repo.path.startsWith(`${w}/`)), `${repo.path} is writable for gotd`);
  }

  // The link must point from gotsh's default socket to the one gotd.conf names.
  const root = tmpdir('gotd-tmpfiles-');
  const r = sh('systemd-tmpfiles', [`--root=${root}`, '--create', TMPFILES]);
  t.equal(r.code, 0, `systemd-tmpfiles --create: ${r.err}`);
  const link = path.join(root, 'run', 'gotd.sock');
  t.equal(path.resolve(path.dirname(link), fs.readlinkSync(link)), path.join(root, conf.listen),
    '/run/gotd.sock -> /run/gotd/gotd.sock');
});
