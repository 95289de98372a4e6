import t from 'tap';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { spawnSync } from 'node:child_process';
import * as toml from 'toml';
import { evaluate, parseRule, type AccessRule, type Identity } from '../src/config/access';
import { loadConfig, loadSecrets } from '../src/config/load';
import { hashPassword, verifyPassword, parseHash } from '../src/config/password';
import { canonicalName, findRepository, limitFor } from '../src/config/schema';
import { parseDuration, parseRate } from '../src/config/units';
import { validateConfig } from '../src/config/validate';
import { BUILD, ROOT, tmpdir } from './lib/util';

const GOTD = path.join(BUILD, 'src', 'gotd', 'main.js');
const GOTCTL = path.join(BUILD, 'src', 'gotctl', 'main.js');

function check(text: string): string {
  try {
    validateConfig(toml.parse(text), '/etc/gotd.conf');
    return 'ok';
  } catch (e) {
    return (e as Error).message;
  }
}

t.test('the contract example is valid and means what it says', async (t) => {
  const { config } = loadConfig(path.join(ROOT, 'regress', 'fixtures', 'contract-example.conf'));
  t.equal(config.user, '_gotd');
  t.equal(config.listen, '/var/run/gotd.sock');
  t.same(config.connection, { requestTimeout: 3_600_000, authTimeout: 10_000, maxConnections: 256, limitPerUser: 4, limits: { flan_hacker: 16, anonymous: 32 } });
  t.same(config.ssh.trustedAccounts, ['git']);
  t.same(config.websocket?.listen, [{ host: '127.0.0.1', port: 8080 }]);
  t.same(config.websocket?.rate, { count: 20, perMs: 60_000 });
  const r = config.repositories[0]!;
  t.equal(r.name, 'src');
  t.equal(r.access.length, 4);
  t.same(r.protect, { branches: ['main'], branchNamespaces: ['refs/heads/release/'], tagNamespaces: ['refs/tags/'] });
  t.equal(r.notify?.http[0]?.hmac, 'ci');
});

t.test('valid forms and defaults', async (t) => {
  t.equal(check(''), 'ok', 'an empty file is a valid (useless) configuration');
  t.equal(check('[connection]\nrequest_timeout = 30\nauth_timeout = "5m"\nmax_connections = 1\nlimit_per_user = 1\nlimits = {}'), 'ok');
  t.equal(check('[ssh]\ntrusted_accounts = []'), 'ok');
  t.equal(check('[[repository]]\nname = "a/b"\npath = "/srv/a.git"\naccess = []'), 'ok');
  for (const rate of ['5/s', '20/min', '100/h']) t.equal(check(`[websocket]\nlisten = ["[::1]:8080"]\nrate = "${rate}"`), 'ok', rate);
  const c = validateConfig({});
  t.equal(c.connection.limitPerUser, 4);
  t.equal(c.listen, '/var/run/gotd.sock');
  t.equal(c.websocket, null);
});

t.test('errors name the key and say what is wrong', async (t) => {
  const cases: Array<[string, RegExp]> = [
    ['bogus = 1', /^\/etc\/gotd.conf: bogus: unknown key/],
    ['user = 5', /user: must be a string/],
    ['user = "root"', /user: must not be root/],
    ['listen = "relative.sock"', /listen: must be an absolute path/],
    ['[connection]\nauth_timeout = "10x"', /connection\.auth_timeout: bad duration "10x"/],
    ['[connection]\nrequest_timeout = 0', /connection\.request_timeout: must be a positive/],
    ['[connection]\nmax_connections = -1', /connection\.max_connections: must be at least 1/],
    ['[connection]\nlimits = { alice = 0 }', /connection\.limits\.alice: must be at least 1/],
    ['[connection]\nspeed = 1', /connection\.speed: unknown key/],
    ['[ssh]\ntrusted_accounts = "git"', /ssh\.trusted_accounts: must be an array/],
    ['[websocket]\nlisten = ["localhost"]', /websocket\.listen\[0\]: bad address "localhost"/],
    ['[websocket]\nlisten = ["a:1"]\nrate = "5/day"', /websocket\.rate: bad rate "5\/day"/],
    ['[[repository]]\npath = "/x"', /repository\[0\]\.name: missing/],
    ['[[repository]]\nname = "a"\npath = "/x"\naccess = ["permit rx bob"]', /repository\[0\]\.access\[0\]: bad rule "permit rx bob"/],
    ['[[repository]]\nname = "a"\npath = "/x"\n[[repository]]\nname = "b"\npath = "/y"\naccess = ["allow bob"]', /repository\[1\]\.access\[0\]: bad rule/],
    ['[[repository]]\nname = "a"\npath = "/x"\naccess = ["deny :"]', /repository\[0\]\.access\[0\]/],
    ['[[repository]]\nname = "a"\npath = "/x"\n[[repository]]\nname = "/a.git"\npath = "/y"', /repository\[1\]\.name: duplicate repository name/],
    ['[[repository]]\nname = "a"\npath = "/x"\n[[repository]]\nname = "b"\npath = "/x"', /repository\[1\]\.path: duplicate repository path/],
    ['[[repository]]\nname = "../a"\npath = "/x"', /repository\[0\]\.name: must not contain "\.\."/],
    ['[[repository]]\nname = "a"\npath = "/x/../y"', /repository\[0\]\.path: must be a normalized path/],
    ['[[repository]]\nname = "a"\npath = "/x"\n[repository.protect]\ntag_namespaces = ["tags/"]', /repository\[0\]\.protect\.tag_namespaces\[0\]: must start with "refs\/"/],
    ['[[repository]]\nname = "a"\npath = "/x"\n[repository.notify]\nhttp = [{ url = "ftp://x" }]', /repository\[0\]\.notify\.http\[0\]\.url: must be an http/],
    ['[[repository]]\nname = "a"\npath = "/x"\n[repository.notify]\nemail = [{ to = "nobody" }]', /repository\[0\]\.notify\.email\[0\]\.to: must be an e-mail/],
  ];
  for (const [text, want] of cases) t.match(check(text), want, text.replace(/\n/g, ' | '));
});

t.test('connection limits per user', async (t) => {
  const c = validateConfig(toml.parse('[connection]\nlimit_per_user = 2\nlimits = { alice = 9 }'));
  t.equal(limitFor(c, 'alice'), 9);
  t.equal(limitFor(c, 'bob'), 2);
  for (const odd of ['__proto__', 'constructor', 'toString', 'hasOwnProperty']) t.equal(limitFor(c, odd), 2, odd);
});

t.test('durations and rates', async (t) => {
  t.equal(parseDuration('1h'), 3_600_000);
  t.equal(parseDuration('10s'), 10_000);
  t.equal(parseDuration('5m'), 300_000);
  t.equal(parseDuration(7), 7000);
  t.equal(parseDuration('7'), 7000);
  t.type(parseDuration('1d'), 'string');
  t.type(parseDuration(1.5), 'string');
  t.same(parseRate('20/min'), { count: 20, perMs: 60_000 });
  t.same(parseRate('3/s'), { count: 3, perMs: 1000 });
  t.same(parseRate('9/h'), { count: 9, perMs: 3_600_000 });
  t.type(parseRate('0/s'), 'string');
});

t.test('access rules: last match wins, groups, numeric ids, anonymous', async (t) => {
  const rules = (...r: string[]): AccessRule[] => r.map((x) => { const p = parseRule(x); if (typeof p === 'string') throw new Error(p); return p; });
  const alice: Identity = { user: 'alice', uid: 1001, groups: ['developers', 'alice'], gids: [1001, 2000], anonymous: false };
  const anon: Identity = { groups: [], gids: [], anonymous: true };
  t.equal(evaluate([], alice), 'deny', 'no rules: denied');
  t.equal(evaluate(rules('permit ro alice'), alice), 'ro');
  t.equal(evaluate(rules('permit rw :developers', 'deny alice'), alice), 'deny', 'a later deny wins');
  t.equal(evaluate(rules('deny alice', 'permit rw :developers'), alice), 'rw', 'a later permit wins');
  t.equal(evaluate(rules('permit ro 1001'), alice), 'ro', 'numeric uid');
  t.equal(evaluate(rules('permit rw :2000'), alice), 'rw', 'numeric gid');
  t.equal(evaluate(rules('permit ro bob'), alice), 'deny');
  t.equal(evaluate(rules('permit ro anonymous'), alice), 'deny', 'anonymous rules do not apply to known users');
  t.equal(evaluate(rules('permit ro anonymous'), anon), 'ro');
  t.equal(evaluate(rules('permit rw :developers'), anon), 'deny');
  t.type(parseRule('permit ro'), 'string');
  t.type(parseRule('permit rw -rf'), 'string');
});

t.test('repository names as clients spell them', async (t) => {
  const c = validateConfig(toml.parse('[[repository]]\nname = "src"\npath = "/x"\n[[repository]]\nname = "team/app.git"\npath = "/y"'));
  for (const n of ['src', '/src', 'src.git', '/src.git']) t.equal(findRepository(c, n)?.name, 'src', n);
  for (const n of ['team/app', '/team/app.git', 'team/app.git']) t.equal(findRepository(c, n)?.name, 'team/app.git', n);
  for (const n of ['', 'sr', 'src/', '../src', 'x/../src', '//src', 'team//app', '/x', 'src\0', 'src.git.git']) t.equal(findRepository(c, n), null, JSON.stringify(n));
  t.equal(canonicalName('/a/b.git'), 'a/b');
});

t.test('password hashes', async (t) => {
  const h = await hashPassword('correct horse');
  t.match(h, /^\$scrypt\$ln=15,r=8,p=1\$[A-Za-z0-9+/]+\$[A-Za-z0-9+/]+$/);
  t.ok(parseHash(h));
  t.equal(await verifyPassword('correct horse', h), true);
  t.equal(await verifyPassword('correct horse ', h), false);
  t.equal(await verifyPassword('x', '$scrypt$ln=40,r=8,p=1$AAAAAAAAAAAAAAAAAAAAAA$AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA'), false, 'absurd cost is refused, not computed');
  t.not(await hashPassword('correct horse'), h, 'salted');

  const r = spawnSync(process.execPath, [GOTCTL, 'hash-password'], { input: 'secret\n', encoding: 'utf8' });
  t.equal(r.status, 0);
  const lines = r.stdout.split('\n');
  t.equal(lines.length, 2, 'one line');
  t.equal(lines[1], '');
  t.equal(await verifyPassword('secret', lines[0]!), true, 'the newline is not part of the password');
  t.equal(await verifyPassword('secret\n', lines[0]!), false);
  const empty = spawnSync(process.execPath, [GOTCTL, 'hash-password'], { input: '\n', encoding: 'utf8' });
  t.not(empty.status, 0, 'empty password refused');
});

t.test('secrets file: modes, contents, never quoted', async (t) => {
  const dir = tmpdir();
  const file = path.join(dir, 'secrets.conf');
  const hash = await hashPassword('pw');
  fs.writeFileSync(file, `[users.alice]\npassword = "${hash}"\ngroups = ["developers"]\n[hmac]\nci = "0123456789abcdef0123"\n[auth.ci]\nuser = "flan"\npassword = "hunter2"\n`);
  const me = { uid: process.getuid!(), gid: process.getgid!() };
  for (const mode of [0o600, 0o640, 0o400]) {
    fs.chmodSync(file, mode);
    t.same(loadSecrets(file, me).secrets.users.alice?.groups, ['developers'], `mode ${mode.toString(8)} accepted`);
  }
  for (const mode of [0o644, 0o604, 0o660, 0o666]) {
    fs.chmodSync(file, mode);
    t.throws(() => loadSecrets(file, me), /lets (others access|its group write)/, `mode ${mode.toString(8)} refused`);
  }
  fs.chmodSync(file, 0o640);
  if (me.uid === 0) fs.chownSync(file, 0, 4243);
  t.throws(() => loadSecrets(file, { uid: me.uid, gid: 4244 }), /not the daemon's group/, 'group-readable by a foreign group');
  if (me.uid === 0) fs.chownSync(file, 0, 0);
  if (me.uid === 0) {
    fs.chownSync(file, 4242, me.gid);
    t.throws(() => loadSecrets(file, { uid: 1, gid: me.gid }), /owned by uid 4242/, 'owned by someone else');
    fs.chownSync(file, 0, me.gid);
  }
  fs.writeFileSync(file, '[users.alice]\npassword = "hunter2"\n');
  fs.chmodSync(file, 0o600);
  const err = (() => { try { loadSecrets(file, me); return ''; } catch (e) { return (e as Error).message; } })();
  t.match(err, /users\.alice\.password: must be a hash/);
  t.notMatch(err, /hunter2/, 'the secret is not in the message');
  fs.writeFileSync(file, 'x = "hunter2\n');
  t.notMatch((() => { try { loadSecrets(file, me); return ''; } catch (e) { return (e as Error).message; } })(), /hunter2/, 'nor in a syntax error');
});

t.test('gotd -n', async (t) => {
  const dir = tmpdir();
  const conf = path.join(dir, 'gotd.conf');
  const gotdN = (...args: string[]): ReturnType<typeof spawnSync> => spawnSync(process.execPath, [GOTD, '-n', '-f', conf, ...args], { encoding: 'utf8' });
  fs.writeFileSync(conf, `user = "nobody"\nlisten = "${dir}/s"\n[[repository]]\nname = "a"\npath = "/srv/a.git"\naccess = ["permit ro anonymous"]\n`);
  let r = gotdN();
  t.equal(r.status, 0, String(r.stderr));
  t.match(String(r.stderr), /configuration OK/);
  fs.writeFileSync(conf, `user = "nobody"\n[[repository]]\nname = "a"\npath = "/srv/a.git"\naccess = ["permit ro anonymous", "permit rw"]\n`);
  r = gotdN();
  t.equal(r.status, 1);
  t.match(String(r.stderr), /repository\[0\]\.access\[1\]/, 'names the offending key');
  fs.writeFileSync(conf, 'user = "nobody"\n[connection]\nlimit_per_user = "four"\n');
  r = gotdN();
  t.equal(r.status, 1);
  t.match(String(r.stderr), /connection\.limit_per_user/);
  r = spawnSync(process.execPath, [GOTD, '-n', '-f', path.join(dir, 'missing.conf')], { encoding: 'utf8' });
  t.equal(r.status, 1);
  t.match(String(r.stderr), /missing\.conf/);

  // Secrets named with -s are checked as gotd would use them.
  fs.writeFileSync(conf, `user = "nobody"\n[[repository]]\nname = "a"\npath = "/srv/a.git"\n[repository.notify]\nhttp = [{ url = "https://ci.example/x", hmac = "ci" }]\n`);
  const secrets = path.join(dir, 'secrets.conf');
  fs.writeFileSync(secrets, '[hmac]\nci = "0123456789abcdef0123"\n', { mode: 0o644 });
  fs.chmodSync(secrets, 0o644);
  r = gotdN('-s', secrets);
  t.equal(r.status, 1, 'world-readable secrets refused');
  t.match(String(r.stderr), /0644/);
  fs.chmodSync(secrets, 0o600);
  r = gotdN('-s', secrets);
  t.equal(r.status, 0, String(r.stderr));
  if (process.getuid!() === 0) {
    const nogroup = spawnSync('getent', ['passwd', 'nobody'], { encoding: 'utf8' }).stdout.split(':')[3];
    fs.chownSync(secrets, 0, Number(nogroup));
    fs.chmodSync(secrets, 0o640);
    r = gotdN('-s', secrets);
    t.equal(r.status, 0, `root:${nogroup} 0640 accepted: ${r.stderr}`);
  }
  fs.writeFileSync(secrets, '[hmac]\nother = "0123456789abcdef0123"\n');
  r = gotdN('-s', secrets);
  t.equal(r.status, 1);
  t.match(String(r.stderr), /repository\[0\]\.notify\.http\[0\]\.hmac/, 'labels must exist in the secrets file');

  r = spawnSync(process.execPath, [GOTD, '-x'], { encoding: 'utf8' });
  t.equal(r.status, 1);
  t.match(String(r.stderr), /usage: gotd \[-dnv\]/);
});
