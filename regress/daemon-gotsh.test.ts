/**
 * gotsh's judgement of how it was invoked, and that a refused invocation
 * executes nothing and never reaches gotd.
 */
import t from 'tap';
import * as fs from 'node:fs';
import * as net from 'node:net';
import * as path from 'node:path';
import { parseInvocation, splitCommand } from '../src/gotsh/command';
import { BUILD, run, tmpdir } from './lib/util';

const GOTSH = path.join(BUILD, 'src', 'gotsh', 'main.js');

t.test('the forms sshd and git use', async (t) => {
  const env = {};
  t.same(parseInvocation('/usr/bin/gotsh', ['-c', "git-upload-pack 'src'"], env), { service: 'git-upload-pack', repo: 'src' });
  t.same(parseInvocation('-gotsh', ['-c', "git-receive-pack '/team/app.git'"], env), { service: 'git-receive-pack', repo: '/team/app.git' }, 'login shell argv[0]');
  t.same(parseInvocation('gotsh', ['-c', 'git-upload-pack src'], env), { service: 'git-upload-pack', repo: 'src' }, 'unquoted');
  t.same(parseInvocation('gotsh', ['-c', "git-upload-pack 'it'\\''s'"], env), { service: 'git-upload-pack', repo: "it's" }, "git's quoting of '");
  t.same(parseInvocation('gotsh', ['-c', "/usr/local/bin/git-upload-pack 'src'"], env), { service: 'git-upload-pack', repo: 'src' }, 'git clone -u /path/to/git-upload-pack over ssh');
  t.same(parseInvocation('/x/bin/git-upload-pack', ['src'], env), { service: 'git-upload-pack', repo: 'src' }, 'by name');
  t.same(parseInvocation('git-receive-pack', ['/srv/src.git'], env), { service: 'git-receive-pack', repo: '/srv/src.git' });
  t.same(parseInvocation('gotsh', ['-u', 'alice'], { SSH_ORIGINAL_COMMAND: "git-upload-pack 'src'" }), { service: 'git-upload-pack', repo: 'src', asUser: 'alice' });
  t.same(parseInvocation('gotsh', ['-ualice'], { SSH_ORIGINAL_COMMAND: 'git-receive-pack src' }), { service: 'git-receive-pack', repo: 'src', asUser: 'alice' });
  t.same(parseInvocation('-gotsh', ['-c', 'gotsh -u alice'], { SSH_ORIGINAL_COMMAND: "git-upload-pack 'src'" }), { service: 'git-upload-pack', repo: 'src', asUser: 'alice' }, 'forced command with gotsh as login shell');
});

t.test('everything else is refused', async (t) => {
  const refused: Array<[string, string[], NodeJS.ProcessEnv, RegExp]> = [
    ['gotsh', [], {}, /interactive logins are not allowed/],
    ['-gotsh', [], {}, /interactive logins are not allowed/],
    ['gotsh', ['-c', 'sh'], {}, /only git-upload-pack and git-receive-pack/],
    ['gotsh', ['-c', 'rm -rf /'], {}, /only git-upload-pack and git-receive-pack/],
    ['gotsh', ['-c', 'git upload-pack src'], {}, /only git-upload-pack/],
    ['gotsh', ['-c', "git-upload-pack 'src' 'other'"], {}, /exactly one argument/],
    ['gotsh', ['-c', 'git-upload-pack'], {}, /exactly one argument/],
    ['gotsh', ['-c', "git-upload-pack 'src'; rm -rf /"], {}, /shell metacharacters/],
    ['gotsh', ['-c', 'git-upload-pack src|cat'], {}, /shell metacharacters/],
    ['gotsh', ['-c', 'git-upload-pack $(id)'], {}, /shell metacharacters/],
    ['gotsh', ['-c', 'git-upload-pack `id`'], {}, /shell metacharacters/],
    ['gotsh', ['-c', 'git-upload-pack src\nid'], {}, /shell metacharacters/],
    ['gotsh', ['-c', 'git-upload-pack "src"'], {}, /shell metacharacters/],
    ['gotsh', ['-c', "git-upload-pack 'src"], {}, /unterminated quote/],
    ['gotsh', ['-c', 'git-upload-pack --help'], {}, /options are not allowed/],
    ['gotsh', ['-c', "git-upload-pack 'a'", 'extra'], {}, /usage/],
    ['gotsh', ['-x'], {}, /unknown option/],
    ['gotsh', ['-i'], {}, /unknown option/],
    ['gotsh', ['--login'], {}, /unknown option/],
    ['gotsh', ['somefile'], {}, /unexpected arguments/],
    ['gotsh', ['-u', 'alice'], {}, /SSH_ORIGINAL_COMMAND is not set/],
    ['gotsh', ['-u', 'alice', 'x'], { SSH_ORIGINAL_COMMAND: 'git-upload-pack src' }, /usage: gotsh -u NAME/],
    ['gotsh', ['-u', '-rf'], { SSH_ORIGINAL_COMMAND: 'git-upload-pack src' }, /bad user name/],
    ['gotsh', ['-u', 'alice'], { SSH_ORIGINAL_COMMAND: 'bash' }, /only git-upload-pack/],
    ['gotsh', ['-u', 'alice'], { SSH_ORIGINAL_COMMAND: 'gotsh -u root' }, /only git-upload-pack/],
    ['gotsh', ['-u', 'alice'], { SSH_ORIGINAL_COMMAND: '' }, /interactive logins/],
    ['git-upload-pack', [], {}, /exactly one argument/],
    ['git-upload-pack', ['a', 'b'], {}, /exactly one argument/],
    ['git-upload-pack', ['--strict', 'a'], {}, /exactly one argument/],
    ['git-receive-pack', ['-h'], {}, /options are not allowed/],
  ];
  for (const [argv0, args, env, want] of refused) {
    const r = parseInvocation(argv0, args, env);
    t.ok('error' in r, `${argv0} ${JSON.stringify(args)} refused`);
    if ('error' in r) t.match(r.error, want);
  }
  t.same(splitCommand("a 'b c'd  e"), ['a', 'b cd', 'e']);
});

t.test('the real gotsh executes nothing and never connects when refusing', async (t) => {
  const dir = tmpdir();
  const marker = path.join(dir, 'marker');
  const sock = path.join(dir, 'gotd.sock');
  let connections = 0;
  const server = net.createServer((c) => { connections++; c.destroy(); });
  await new Promise<void>((r) => server.listen(sock, r));
  t.teardown(() => server.close());
  const env = { GOTD_UNIX_SOCKET: sock };
  for (const args of [
    ['-c', `touch ${marker}`],
    ['-c', `git-upload-pack 'src'; touch ${marker}`],
    ['-c', `git-upload-pack $(touch ${marker})`],
    ['-c', `git-upload-pack src && touch ${marker}`],
    ['-c', `git-upload-pack src > ${marker}`],
    ['-u', 'alice'],
    [],
    ['-i'],
  ]) {
    const r = await run(process.execPath, [GOTSH, ...args], { env: { ...process.env, ...env, SSH_ORIGINAL_COMMAND: `touch ${marker}` } });
    t.equal(r.code, 1, `${JSON.stringify(args)}: exit 1`);
    t.match(r.stderr, /^gotsh: .+\n$/, 'one line: gotsh: <reason>');
    t.equal(r.stdout, '', 'nothing for git on stdout');
  }
  t.notOk(fs.existsSync(marker), 'nothing was executed');
  t.equal(connections, 0, 'gotd was never asked');

  const down = await run(process.execPath, [GOTSH, '-c', "git-upload-pack 'src'"], { env: { ...process.env, GOTD_UNIX_SOCKET: path.join(dir, 'none.sock') } });
  t.equal(down.code, 1);
  t.match(down.stderr, /gotsh: cannot connect to gotd at .*none\.sock/);
  t.match(down.stdout, /^[0-9a-f]{4}ERR cannot connect to gotd/, 'git hears why');
});
