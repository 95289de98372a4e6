/**
 * Who gets in over WebSocket, decided before the upgrade: 401 with
 * WWW-Authenticate for missing or wrong credentials whatever the path,
 * 403 for an authenticated user who is denied or names nothing, 426 for
 * a permitted request that is not an upgrade; byte-identical refusals;
 * bounded, timed request heads.  Raw HTTP shows exactly what the server
 * says; stock git with git-remote-ws shows what users see, including git's
 * credential helpers and GIT_TERMINAL_PROMPT=0.
 */
import t from 'tap';
import * as fs from 'node:fs';
import * as net from 'node:net';
import * as path from 'node:path';
import { DAEMON_USER, ensureAccounts, install, mustAccount, openTmpdir, repoFor } from './lib/daemon';
import { fsckStrict, git } from './lib/util';
import { basic, freePort, rawHttp, startWsGotd, upgradeHead, writeSecrets, wsGit } from './lib/ws';

const why = ensureAccounts();
if (why) {
  t.plan(0, `WebSocket auth tests: ${why}`);
} else {
  void main();
}

/** RFC 6455's sample key and its accept value. */
const SAMPLE_ACCEPT = 's3pPLMBiTxaQ9kYGzzhZRbK+xOo=';

async function main(): Promise<void> {
  const inst = install();
  const dir = openTmpdir();
  const daemon = mustAccount(DAEMON_USER);
  const src = repoFor(dir, 'src', daemon);
  const priv = repoFor(dir, 'private', daemon);
  const port = await freePort();
  const secrets = await writeSecrets(dir, {
    alice: { password: 'alice pw', groups: ['dev'] },
    bob: { password: 'bob-pw' },
    mallory: { password: 'mallory-pw', groups: ['dev'] },
  });
  const g = await startWsGotd(inst, dir, `
[connection]
auth_timeout = "2s"
[websocket]
listen = ["127.0.0.1:${port}"]
rate = "1000/min"
[[repository]]
name = "src"
path = "${src}"
access = ["permit ro anonymous", "permit rw :dev", "deny mallory"]
[[repository]]
name = "team/private"
path = "${priv}"
access = ["permit rw alice", "permit ro bob"]
`, port, { secrets });
  t.teardown(() => g.stop());
  const base = `ws://127.0.0.1:${port}`;
  const up = (repo: string, extra: Record<string, string> = {}): Promise<ReturnType<typeof rawHttp> extends Promise<infer A> ? A : never> =>
    rawHttp(port, upgradeHead(`/${repo}?service=git-upload-pack`, extra));
  const refsBefore = { src: git(['--git-dir', src, 'for-each-ref']), priv: git(['--git-dir', priv, 'for-each-ref']) };

  t.test('no credentials: 401 with WWW-Authenticate, the same for every path anonymous may not use', async (t) => {
    const answers = await Promise.all(['team/private', 'team/private.git', '/team/private', 'nonexistent', 'src/../team/private', 'a//b', encodeURIComponent(priv), 'team%2Fprivate']
      .map((r) => up(r)));
    for (const a of answers) {
      t.equal(a.status, 401);
      t.equal(a.headers['www-authenticate'], 'Basic realm="gotd"');
    }
    t.equal(new Set(answers.map((a) => a.raw)).size, 1, 'byte-identical answers');
    const push = await rawHttp(port, upgradeHead('/src?service=git-receive-pack'));
    t.equal(push.status, 401, 'anonymous may read src but not push: 401, so that the client logs in');
    t.equal(push.raw, answers[0]!.raw);
  });

  t.test('wrong credentials: 401 whatever the path, even where anonymous may read', async (t) => {
    const answers = await Promise.all([
      up('src', { Authorization: basic('alice', 'wrong') }),
      up('team/private', { Authorization: basic('alice', 'wrong') }),
      up('nonexistent', { Authorization: basic('alice', 'wrong') }),
      up('src', { Authorization: basic('nobody-here', 'x') }),
      up('src', { Authorization: 'Basic !!!' }),
      up('src', { Authorization: 'Bearer abc' }),
      up('src', { Authorization: `Basic ${Buffer.from('no colon').toString('base64')}` }),
    ]);
    for (const a of answers) t.equal(a.status, 401, a.raw.split('\r\n')[0]);
    t.equal(new Set(answers.map((a) => a.raw)).size, 1, 'byte-identical answers');
  });

  t.test('authenticated but denied, or no such repository: 403, identical', async (t) => {
    const answers = await Promise.all([
      up('nonexistent', { Authorization: basic('alice', 'alice pw') }),
      up('team/private', { Authorization: basic('mallory', 'mallory-pw') }),
      up('src', { Authorization: basic('mallory', 'mallory-pw') }),
      up('src/../team/private', { Authorization: basic('bob', 'bob-pw') }),
      rawHttp(port, upgradeHead('/team/private?service=git-receive-pack', { Authorization: basic('bob', 'bob-pw') })),
    ]);
    for (const a of answers) {
      t.equal(a.status, 403, a.raw.split('\r\n')[0]);
      t.notOk(a.headers['www-authenticate']);
    }
    t.equal(new Set(answers.map((a) => a.raw)).size, 1, 'byte-identical answers');
    t.match(answers[0]!.body, /access denied/);
  });

  t.test('permitted: 101 with the right Sec-WebSocket-Accept, from the worker', async (t) => {
    const a = await up('team/private', { Authorization: basic('alice', 'alice pw') });
    t.equal(a.status, 101);
    t.equal(a.headers['sec-websocket-accept'], SAMPLE_ACCEPT);
    t.equal(a.headers.upgrade?.toLowerCase(), 'websocket');
    const anon = await up('src.git');
    t.equal(anon.status, 101, 'anonymous may read src');
  });

  t.test('not an upgrade: 401 when anonymous may not, else 426', async (t) => {
    const plain = (target: string, extra = ''): Promise<Awaited<ReturnType<typeof rawHttp>>> =>
      rawHttp(port, `GET ${target} HTTP/1.1\r\nHost: x\r\n${extra}\r\n`);
    const denied = await plain('/team/private?service=git-upload-pack');
    t.equal(denied.status, 401);
    const allowed = await plain('/src?service=git-upload-pack');
    t.equal(allowed.status, 426);
    t.equal(allowed.headers.upgrade, 'websocket');
    const noService = await plain('/team/private');
    t.equal(noService.status, 401, 'no ?service= is a read');
    const badKey = await rawHttp(port, upgradeHead('/src?service=git-upload-pack', { 'Sec-WebSocket-Key': 'short' }));
    t.equal(badKey.status, 426, 'a broken handshake is not an upgrade');
    const post = await rawHttp(port, `POST /src?service=git-upload-pack HTTP/1.1\r\nHost: x\r\nContent-Length: 0\r\n\r\n`);
    t.equal(post.status, 405);
    const badService = await rawHttp(port, upgradeHead('/src?service=git-upload-archive'));
    t.equal(badService.status, 400);
  });

  t.test('request heads are bounded and timed', async (t) => {
    const many: Record<string, string> = {};
    for (let i = 0; i < 80; i++) many[`X-Field-${i}`] = 'x';
    t.equal((await rawHttp(port, upgradeHead('/src?service=git-upload-pack', many))).status, 431, 'too many fields');
    t.equal((await rawHttp(port, upgradeHead('/src?service=git-upload-pack', { 'X-Big': 'y'.repeat(9000) }))).status, 431, 'too long');
    t.equal((await rawHttp(port, 'HELLO\r\n\r\n')).status, 400, 'not HTTP');
    t.equal((await rawHttp(port, 'GET /src?service=git-upload-pack HTTP/1.1\r\nBad Field: x\r\n\r\n')).status, 400, 'bad field name');
    t.equal((await rawHttp(port, 'GET /src?service=git-upload-pack HTTP/1.1\r\nA: 1\r\n folded\r\n\r\n')).status, 400, 'obsolete line folding');
    const early = await rawHttp(port, upgradeHead('/src?service=git-upload-pack') + 'data before the 101');
    t.equal(early.status, 400, 'bytes sent before the upgrade was answered');

    const t0 = Date.now();
    const silent = await rawHttp(port, '', { ms: 8000 });
    const took = Date.now() - t0;
    t.ok(took < 7000, `a client that sends nothing is dropped after auth_timeout (${took} ms)`);
    t.equal(silent.status, 408);
    const slow = await rawHttp(port, 'GET /src?service=git-upload-pack HTTP/1.1\r\n', { ms: 8000 });
    t.equal(slow.status, 408, 'a head that never ends');
  });

  t.test('git: anonymous clone where permitted; a clear 401 and no prompt where not', async (t) => {
    const work = path.join(dir, 'anon');
    fs.mkdirSync(work);
    const c = await wsGit(inst, ['clone', '-q', `${base}/src`, 'src'], { cwd: work });
    t.equal(c.code, 0, c.stderr);
    t.equal(git(['-C', path.join(work, 'src'), 'rev-parse', 'HEAD']).trim(), git(['--git-dir', src, 'rev-parse', 'HEAD']).trim());
    const p = await wsGit(inst, ['clone', '-q', `${base}/team/private`, 'priv'], { cwd: work });
    t.not(p.code, 0);
    t.match(p.stderr, /Authentication required for 'ws:\/\/127\.0\.0\.1:[0-9]+\/team\/private' \(HTTP 401\)/);
    t.match(p.stderr, /could not read Username for 'ws:\/\/127\.0\.0\.1:[0-9]+': terminal prompts disabled/, 'git credential fill did not prompt');
    t.notOk(fs.existsSync(path.join(work, 'priv')), 'nothing left behind');
    const nothing = await wsGit(inst, ['ls-remote', `${base}/does/not/exist`]);
    t.match(nothing.stderr, /HTTP 401/, 'unknown repository: the same 401');
  });

  t.test('git: credentials in the URL, right and wrong', async (t) => {
    const ok = await wsGit(inst, ['ls-remote', `ws://alice:alice%20pw@127.0.0.1:${port}/team/private`]);
    t.equal(ok.code, 0, ok.stderr);
    t.match(ok.stdout, /refs\/heads\/main/);
    const wrong = await wsGit(inst, ['ls-remote', `ws://alice:nope@127.0.0.1:${port}/team/private`]);
    t.not(wrong.code, 0);
    t.match(wrong.stderr, /Authentication failed for 'ws:\/\/alice@127\.0\.0\.1:[0-9]+\/team\/private' \(HTTP 401\)/);
    t.notMatch(wrong.stderr, /nope/, 'the password is not shown');
    const denied = await wsGit(inst, ['ls-remote', `ws://mallory:mallory-pw@127.0.0.1:${port}/src`]);
    t.match(denied.stderr, /unable to access 'ws:\/\/mallory@127\.0\.0\.1:[0-9]+\/src': access denied \(HTTP 403\)/);
    const roPush = await wsGit(inst, ['push', `ws://bob:bob-pw@127.0.0.1:${port}/team/private`, 'HEAD:refs/heads/x'], { cwd: path.join(dir, 'anon', 'src') });
    t.not(roPush.code, 0);
    t.match(roPush.stderr, /access denied \(HTTP 403\)/, 'read-only user may not push');
  });

  t.test('git: credentials from a credential helper; approved when right, rejected when wrong', async (t) => {
    const store = path.join(dir, 'credentials');
    fs.writeFileSync(store, `ws://alice:alice%20pw@127.0.0.1:${port}\n`, { mode: 0o600 });
    const helper = ['-c', `credential.helper=store --file=${store}`];
    const work = path.join(dir, 'cred');
    fs.mkdirSync(work);
    const c = await wsGit(inst, [...helper, 'clone', '-q', `${base}/team/private`, 'priv'], { cwd: work });
    t.equal(c.code, 0, c.stderr);
    t.equal(git(['-C', path.join(work, 'priv'), 'rev-parse', 'HEAD']).trim(), git(['--git-dir', priv, 'rev-parse', 'HEAD']).trim());
    t.match(fs.readFileSync(store, 'utf8'), /alice/, 'still stored after success');

    fs.writeFileSync(store, `ws://alice:stale@127.0.0.1:${port}\n`, { mode: 0o600 });
    const stale = await wsGit(inst, [...helper, 'ls-remote', `${base}/team/private`]);
    t.not(stale.code, 0);
    t.match(stale.stderr, /Authentication failed/);
    t.notMatch(fs.readFileSync(store, 'utf8'), /stale/, 'the refused password was rejected (erased from the store)');
  });

  t.test('the log tells refusals apart; the client never could', async (t) => {
    await g.waitLog(/user=alice repo="nonexistent" .*outcome=denied: no repository/);
    await g.waitLog(/user=alice repo="src" .*outcome=denied: wrong password from=127\.0\.0\.1/);
    t.notOk(g.log.some((l) => l.includes('alice pw') || l.includes('mallory-pw')), 'no password in the log');
  });

  t.test('nothing was written', async (t) => {
    t.equal(git(['--git-dir', src, 'for-each-ref']), refsBefore.src);
    t.equal(git(['--git-dir', priv, 'for-each-ref']), refsBefore.priv);
    t.equal(fsckStrict(src), '');
    t.equal(fsckStrict(priv), '');
    t.ok(await new Promise<boolean>((resolve) => {
      const c = net.connect(port, '127.0.0.1', () => { c.destroy(); resolve(true); });
      c.on('error', () => resolve(false));
    }), 'still listening');
  });
}
