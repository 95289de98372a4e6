/**
 * wss://: gotd terminates TLS in listen (with a self-signed certificate
 * made by openssl for the test) and relays to the confined worker; stock
 * git clones, fetches and pushes through git-remote-wss, trusting the
 * certificate through GOTD_WS_CAFILE or git's http.sslCAInfo.  Without
 * that trust, and for ws:// to a TLS port, the helper says what is wrong.
 */
import t from 'tap';
import * as fs from 'node:fs';
import * as path from 'node:path';
import * as tls from 'node:tls';
import { DAEMON_USER, ensureAccounts, install, mustAccount, openTmpdir, repoFor } from './lib/daemon';
import { fsckStrict, git } from './lib/util';
import { freePort, selfSignedCert, startWsGotd, upgradeHead, writeSecrets, wsGit } from './lib/ws';

const why = ensureAccounts();
if (why) {
  t.plan(0, `WebSocket TLS tests: ${why}`);
} else {
  void main();
}

async function main(): Promise<void> {
  const inst = install();
  const dir = openTmpdir();
  const daemon = mustAccount(DAEMON_USER);
  const src = repoFor(dir, 'src', daemon);
  const port = await freePort();
  const { cert, key } = selfSignedCert(dir);
  const secrets = await writeSecrets(dir, { alice: { password: 'tls-pw' } });
  const g = await startWsGotd(inst, dir, `
[websocket]
listen = ["127.0.0.1:${port}"]
tls = { cert = "${cert}", key = "${key}" }
rate = "1000/min"
[[repository]]
name = "src"
path = "${src}"
access = ["permit ro anonymous", "permit rw alice"]
`, port, { secrets });
  t.teardown(() => g.stop());
  // This machine's own trust settings must not decide the outcome.
  const trust = { GOTD_WS_CAFILE: cert, GIT_SSL_CAINFO: '' };
  const untrusted = { GOTD_WS_CAFILE: '', GIT_SSL_CAINFO: '' };
  const url = `wss://127.0.0.1:${port}/src`;
  const work = path.join(dir, 'work');
  fs.mkdirSync(work);
  const head = (): string => git(['--git-dir', src, 'rev-parse', 'refs/heads/main']).trim();

  t.test('clone, push and fetch over wss:// with the certificate trusted through GOTD_WS_CAFILE', async (t) => {
    const c = await wsGit(inst, ['clone', '-q', url, 'c'], { cwd: work, env: trust });
    t.equal(c.code, 0, c.stderr);
    const clone = path.join(work, 'c');
    t.equal(git(['-C', clone, 'rev-parse', 'HEAD']).trim(), head());
    t.equal(fsckStrict(path.join(clone, '.git')), '');

    fs.writeFileSync(path.join(clone, 'tls.txt'), 'over TLS\n');
    git(['-C', clone, 'add', 'tls.txt']);
    git(['-C', clone, 'commit', '-q', '-m', 'over TLS']);
    const push = await wsGit(inst, ['push', `wss://alice:tls-pw@127.0.0.1:${port}/src`, 'HEAD:main'], { cwd: clone, env: trust });
    t.equal(push.code, 0, push.stderr);
    t.equal(head(), git(['-C', clone, 'rev-parse', 'HEAD']).trim());
    t.equal(fsckStrict(src), '');

    const c2 = await wsGit(inst, ['clone', '-q', '-c', 'protocol.version=0', url, 'c2'], { cwd: work, env: trust });
    t.equal(c2.code, 0, c2.stderr);
    const f = await wsGit(inst, ['fetch', '-q', 'origin'], { cwd: path.join(work, 'c2'), env: trust });
    t.equal(f.code, 0, f.stderr);
    t.equal(git(['-C', path.join(work, 'c2'), 'rev-parse', 'origin/main']).trim(), head());
    t.equal(fsckStrict(path.join(work, 'c2', '.git')), '');
  });

  t.test('git\'s http.sslCAInfo is honoured too', async (t) => {
    const r = await wsGit(inst, ['-c', `http.sslCAInfo=${cert}`, 'ls-remote', url], { env: untrusted });
    t.equal(r.code, 0, r.stderr);
    t.match(r.stdout, /refs\/heads\/main/);
  });

  t.test('an untrusted certificate: a clear message, nothing cloned', async (t) => {
    const r = await wsGit(inst, ['clone', '-q', url, 'never'], { cwd: work, env: untrusted });
    t.not(r.code, 0);
    t.match(r.stderr, /TLS: cannot verify 127\.0\.0\.1:[0-9]+: its certificate is self-signed .*GOTD_WS_CAFILE/);
    t.notOk(fs.existsSync(path.join(work, 'never')));
  });

  t.test('ws:// to the TLS port: a clear message', async (t) => {
    const r = await wsGit(inst, ['ls-remote', `ws://127.0.0.1:${port}/src`]);
    t.not(r.code, 0);
    t.match(r.stderr, /is it a wss:\/\/ \(TLS\) port\?/);
  });

  t.test('refusals travel through TLS the same: 401 with WWW-Authenticate', async (t) => {
    const raw = await new Promise<string>((resolve) => {
      const s = tls.connect({ host: '127.0.0.1', port, ca: fs.readFileSync(cert) }, () => s.write(upgradeHead('/src?service=git-receive-pack')));
      let out = '';
      s.on('data', (b: Buffer) => { out += b.toString('latin1'); });
      s.on('close', () => resolve(out));
      s.on('error', () => resolve(out));
      setTimeout(() => s.destroy(), 5000).unref();
    });
    t.match(raw, /^HTTP\/1\.1 401 Unauthorized\r\n/);
    t.match(raw, /\r\nWWW-Authenticate: Basic realm="gotd"\r\n/);
  });

  t.test('the repository is intact', async (t) => {
    t.equal(fsckStrict(src), '');
  });
}
