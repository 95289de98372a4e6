/**
 * make install: the contract's layout under DESTDIR/PREFIX, commands that
 * find their runtime by absolute path, and gotsh under its other names.
 */
import t from 'tap';
import { spawnSync } from 'node:child_process';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { ROOT, run, tmpdir } from './lib/util';

t.test('DESTDIR and PREFIX', async (t) => {
  const dest = tmpdir('gotd-destdir-');
  const r = spawnSync('make', ['-s', '-C', ROOT, 'install', `DESTDIR=${dest}`, 'PREFIX=/opt/gotd-test'], { encoding: 'utf8' });
  t.equal(r.status, 0, r.stderr);
  t.same(fs.readdirSync(dest), ['opt'], 'nothing outside DESTDIR');
  const p = path.join(dest, 'opt', 'gotd-test');
  for (const f of ['sbin/gotd', 'sbin/gotctl', 'bin/gotsh', 'bin/git-remote-ws', 'bin/git-remote-wss']) {
    const st = fs.statSync(path.join(p, f));
    t.equal(st.mode & 0o777, 0o755, `${f} executable by all`);
    t.match(fs.readFileSync(path.join(p, f), 'utf8'), /^#!\/.*node\n[^]*'\/opt\/gotd-test\/lib\/gotd\/src\//, `${f} loads the runtime from PREFIX, not DESTDIR`);
  }
  for (const f of ['lib/gotd/src/gotd/main.js', 'lib/gotd/src/sys/peercred/peercred.node', 'lib/gotd/node_modules/zod/package.json',
    'lib/gotd/node_modules/toml/package.json', 'lib/gotd/node_modules/ws/package.json', 'share/man/man8/gotd.8',
    'share/man/man5/gotd.conf.5', 'share/man/man1/gotsh.1', 'share/man/man8/gotctl.8']) {
    t.ok(fs.existsSync(path.join(p, f)), f);
  }
  t.notOk(fs.existsSync(path.join(p, 'lib/gotd/node_modules/typescript')), 'no development packages');
});

t.test('installed commands from any directory, gotsh under its other names', async (t) => {
  const prefix = path.join(tmpdir('gotd-prefix-'), 'usr');
  t.equal(spawnSync('make', ['-s', '-C', ROOT, 'install', `PREFIX=${prefix}`]).status, 0);
  const links = tmpdir('gotd-links-');
  for (const n of ['git-upload-pack', 'git-receive-pack']) fs.symlinkSync(path.join(prefix, 'bin', 'gotsh'), path.join(links, n));
  const env = { ...process.env, GOTD_UNIX_SOCKET: path.join(links, 'none.sock') };
  const up = await run(path.join(links, 'git-upload-pack'), ['src'], { cwd: '/', env });
  t.match(up.stderr, /^gotsh: cannot connect to gotd/, 'git-upload-pack symlink is gotsh, talking to gotd');
  const two = await run(path.join(links, 'git-receive-pack'), ['a', 'b'], { cwd: '/', env });
  t.match(two.stderr, /git-receive-pack takes exactly one argument/, 'and knows which service it is');
  const ctl = await run(path.join(prefix, 'sbin', 'gotctl'), ['-f', path.join(links, 'none.sock'), 'info'], { cwd: '/' });
  t.equal(ctl.code, 1);
  t.match(ctl.stderr, /gotctl: cannot connect to gotd/);
  const n = await run(path.join(prefix, 'sbin', 'gotd'), ['-n', '-f', path.join(ROOT, 'etc', 'gotd.conf')], { cwd: '/' });
  t.equal(n.code, 0, `gotd -n on the example configuration: ${n.stderr}`);
});
