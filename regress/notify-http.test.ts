/**
 * HTTP notifications end to end below the daemon: real pushes into a bare
 * repository, the notify modules (summary, JSON, queue, poster) fed the
 * resulting ref updates, and a local HTTP(S) receiver that checks what
 * arrives: the body in gotd's format, the HMAC signature, Basic auth,
 * filters, batching, retries, timeouts and the bounded queue.
 */
import t from 'tap';
import { spawnSync } from 'node:child_process';
import { createHmac } from 'node:crypto';
import * as fs from 'node:fs';
import * as https from 'node:https';
import type { AddressInfo } from 'node:net';
import * as path from 'node:path';
import { validateConfig } from '../src/config/validate';
import { Notifier, type NotifierOptions } from '../src/notify/dispatch';
import { DeliveryError, post, signature } from '../src/notify/http';
import type { NotifySettings, Pushed } from '../src/ipc/messages';
import { DeliveryQueue } from '../src/notify/queue';
import { notifyWarnings, pushedMessage } from '../src/notify/request';
import { httpReceiver, workspace, ZERO, type Workspace } from './lib/notify';
import { fsckStrict, tmpdir } from './lib/util';

const SECRET = 'c2VjcmV0IHNoYXJlZCB3aXRoIHRoZSBDSQ==';

interface Logged { lines: string[]; log: NotifierOptions['log'] }
function logger(): Logged {
  const lines: string[] = [];
  return { lines, log: { error: (m) => lines.push(`error: ${m}`), info: (m) => lines.push(`info: ${m}`), debug: () => undefined } };
}

function notifier(l: Logged, extra: Partial<NotifierOptions> = {}): Notifier {
  return new Notifier({ log: l.log, helo: 'localhost', defaultFrom: 'gotd@localhost', timeoutMs: 2000, queue: { backoffMs: 50 }, ...extra });
}

function settings(http: NotifySettings['http'], filter: Partial<Pick<NotifySettings, 'branches' | 'namespaces'>> = {}): NotifySettings {
  return { branches: [], namespaces: [], http, email: [], ...filter };
}

function pushed(ws: Workspace, updates: Pushed['updates'], notify: NotifySettings, secrets: Pushed['secrets'] = { hmac: {}, auth: {} }): Pushed {
  return { type: 'pushed', repo: 'src', path: ws.bare, user: 'flan_hacker', updates, notify, secrets };
}

type Json = { notifications: Record<string, unknown>[] };

t.test('a push becomes one signed, authenticated POST in gotd format', async (t) => {
  const rx = await httpReceiver();
  t.teardown(() => rx.close());
  const ws = workspace();
  const a = ws.commit({ 'README': 'hello\n' }, 'Import');
  const b = ws.commit({ 'README': 'hello\nworld\n', 'src/x.c': 'int x;\nint y;\n' }, 'Add x.c\n\nBecause we need x.');
  const updates = ws.push(['main']);
  const l = logger();
  const n = notifier(l);
  const queued = n.handle(pushed(ws, updates, settings([{ url: rx.url, hmac: 'ci', auth: 'ci', insecure: true }]),
    { hmac: { ci: SECRET }, auth: { ci: { user: 'flan', password: 'pässword' } } }));
  t.equal(queued, 1);
  await rx.waitFor(1);
  await n.idle();
  const r = rx.requests[0]!;
  t.equal(r.method, 'POST');
  t.equal(r.url, '/hook');
  t.equal(r.headers['content-type'], 'application/json');
  t.equal(r.headers['content-length'], String(r.body.length));
  t.match(r.headers['user-agent'], /^gotd/);
  const expected = createHmac('sha256', SECRET).update(r.body).digest('hex');
  t.equal(r.headers['x-gotd-signature'], expected, 'X-Gotd-Signature is the hex HMAC-SHA256 of the body');
  t.match(r.headers['x-gotd-signature'], /^[0-9a-f]{64}$/);
  t.equal(r.headers.authorization, 'Basic ' + Buffer.from('flan:pässword').toString('base64'));
  const body = JSON.parse(r.body.toString('utf8')) as Json;
  t.same(Object.keys(body), ['notifications']);
  t.equal(body.notifications.length, 2, 'both commits in one request');
  const [first, second] = body.notifications as Record<string, any>[];
  t.equal(first!.id, a, 'oldest first');
  t.equal(second!.id, b);
  t.match(second, {
    type: 'commit', short: false, repo: 'src', auth_user: 'flan_hacker', ref: 'refs/heads/main',
    author: { full: 'Test Author <author@example.org>', name: 'Test Author', mail: 'author@example.org', user: 'author' },
    committer: { full: 'Test Committer <committer@example.org>', name: 'Test Committer', mail: 'committer@example.org', user: 'committer' },
    short_message: 'Add x.c',
    message: 'Add x.c\n\nBecause we need x.\n',
    diffstat: {
      files: [{ action: 'modified', file: 'README', added: 1, removed: 0 }, { action: 'added', file: 'src/x.c', added: 2, removed: 0 }],
      total: { added: 3, removed: 0 },
    },
  });
  t.equal(typeof second!.date, 'number');
  t.equal(n.stats().delivered, 1);
  t.same(l.lines.filter((x) => x.startsWith('error')), []);
  t.equal(fsckStrict(ws.bare), '');
});

t.test('signature helper, and a receiver can verify with the secret alone', async (t) => {
  const body = Buffer.from('{"notifications":[]}');
  t.equal(signature('k', body), createHmac('sha256', Buffer.from('k')).update(body).digest('hex'));
});

t.test('Basic auth is never sent over plain http without insecure = true', async (t) => {
  const rx = await httpReceiver();
  t.teardown(() => rx.close());
  const ws = workspace();
  ws.commit({ 'f': '1\n' }, 'one');
  const updates = ws.push(['main']);
  const l = logger();
  const n = notifier(l);
  const secrets = { hmac: {}, auth: { ci: { user: 'flan', password: 'secret' } } };
  t.equal(n.handle(pushed(ws, updates, settings([{ url: rx.url, auth: 'ci', insecure: false }]), secrets)), 0, 'the target is skipped');
  t.match(l.lines.join('\n'), /not sent: refusing to send Basic auth credentials over plain http/);
  t.notMatch(l.lines.join('\n'), /secret/, 'the password is not logged');
  // The same target without credentials is fine, and carries no Authorization header.
  t.equal(n.handle(pushed(ws, updates, settings([{ url: rx.url, insecure: false }]))), 1);
  await rx.waitFor(1);
  await n.idle();
  t.equal(rx.requests.length, 1);
  t.equal(rx.requests[0]!.headers.authorization, undefined);
  t.equal(rx.requests[0]!.headers['x-gotd-signature'], undefined, 'no hmac label, no signature');
  // The poster refuses on its own too, whoever calls it.
  await t.rejects(post({ url: rx.url, insecure: false, auth: { user: 'a', password: 'b' } }, Buffer.from('{}'), { timeoutMs: 1000 }), /plain http/);
  t.equal(rx.requests.length, 1);

  // The configuration check names the key.
  const config = validateConfig({
    repository: [{ name: 'src', path: '/var/git/src.git', notify: { http: [{ url: 'http://ci.example/hook', auth: 'ci' }, { url: 'http://ci.example/ok', auth: 'ci', insecure: true }, { url: 'https://ci.example/hook', auth: 'ci' }] } }],
  });
  t.same(notifyWarnings(config, 'gotd.conf'), ['gotd.conf: repository[0].notify.http[0]: refusing to send Basic auth credentials over plain http:// (use https://, or set insecure = true); this target will be skipped']);
});

t.test('the parent sends only what the notify settings need', async (t) => {
  const config = validateConfig({
    repository: [
      { name: 'src', path: '/var/git/src.git', notify: { branches: ['main'], http: [{ url: 'https://ci.example/hook', hmac: 'ci', auth: 'ci' }], email: [{ to: 'commits@example.org', reply_to: 'list@example.org' }] } },
      { name: 'quiet', path: '/var/git/quiet.git' },
    ],
  });
  const secrets = { users: {}, hmac: { ci: SECRET, other: 'another secret value' }, auth: { ci: { user: 'flan', password: 'p' }, x: { user: 'y', password: 'z' } } };
  const up = { ref: 'refs/heads/main', old: ZERO, new: 'a'.repeat(40), ok: true };
  const msg = pushedMessage(config.repositories[0]!, secrets, 'alice', [up, { ref: 'refs/heads/x', old: ZERO, new: 'b'.repeat(40), ok: false }]);
  t.ok(msg);
  t.same(msg!.secrets, { hmac: { ci: SECRET }, auth: { ci: { user: 'flan', password: 'p' } } });
  t.same(msg!.updates, [up], 'refused updates are left out');
  t.same(msg!.notify.email, [{ to: 'commits@example.org', relay: '127.0.0.1', port: 25, replyTo: 'list@example.org' }]);
  t.equal(pushedMessage(config.repositories[1]!, secrets, 'alice', [up]), null, 'no notify section, no message');
  t.equal(pushedMessage(config.repositories[0]!, secrets, 'alice', [{ ...up, ref: 'refs/heads/dev' }]), null, 'nothing covered, no message');
});

t.test('filters: branches and namespaces', async (t) => {
  const rx = await httpReceiver();
  t.teardown(() => rx.close());
  const ws = workspace();
  ws.commit({ 'f': '1\n' }, 'one');
  const u1 = ws.push(['main']);
  ws.git(['checkout', '-q', '-b', 'dev']);
  ws.commit({ 'f': '2\n' }, 'two');
  const u2 = ws.push(['dev']);
  ws.git(['tag', '-a', '-m', 'v1', 'v1.0']);
  const u3 = ws.push(['v1.0']);
  const l = logger();
  const n = notifier(l);
  const only = settings([{ url: rx.url, insecure: false }], { branches: ['main'], namespaces: ['refs/tags/'] });
  t.equal(n.handle(pushed(ws, u2, only)), 0, 'dev is not covered');
  t.equal(n.handle(pushed(ws, u1, only)), 1, 'main is');
  t.equal(n.handle(pushed(ws, u3, only)), 1, 'refs/tags/ is');
  await rx.waitFor(2);
  await n.idle();
  const bodies = rx.requests.map((r) => JSON.parse(r.body.toString()) as Json);
  t.same(bodies.map((b) => b.notifications.map((x) => x.type)), [['commit'], ['tag']]);
  t.equal(bodies[1]!.notifications[0]!.tag, 'refs/tags/v1.0');
  t.equal(n.handle(pushed(ws, u2, settings([{ url: rx.url, insecure: false }]))), 1, 'no filter: every ref');
  await rx.waitFor(3);
  await n.idle();
});

t.test('one push with several refs: commits, a deletion and a tag in one body', async (t) => {
  const rx = await httpReceiver();
  t.teardown(() => rx.close());
  const ws = workspace();
  ws.commit({ 'f': '1\n' }, 'one');
  ws.git(['branch', 'old']);
  ws.push(['main', 'old']);
  const oldTip = ws.refs().get('refs/heads/old')!;
  const c2 = ws.commit({ 'f': '2\n' }, 'two');
  const c3 = ws.commit({ 'f': '3\n', 'g': 'new\n' }, 'three');
  ws.git(['tag', '-a', '-m', 'Release\n\nwith notes', 'v2', c2]);
  const updates = ws.push(['main', ':old', 'v2']);
  t.equal(updates.length, 3);
  const l = logger();
  const n = notifier(l);
  n.handle(pushed(ws, updates, settings([{ url: rx.url, insecure: false }])));
  await rx.waitFor(1);
  await n.idle();
  const body = JSON.parse(rx.requests[0]!.body.toString()) as Json;
  t.same(body.notifications.map((x) => `${x.type} ${x.id ?? x.tag}`), [`commit ${c2}`, `commit ${c3}`, `branch-deleted ${oldTip}`, 'tag refs/tags/v2'], 'in ref-update order');
  t.same(body.notifications[2], { type: 'branch-deleted', repo: 'src', auth_user: 'flan_hacker', ref: 'refs/heads/old', id: oldTip });
  t.match(body.notifications[3], { type: 'tag', tag: 'refs/tags/v2', object: { type: 'commit', id: c2 }, message: 'Release\n\nwith notes\n', tagger: { user: 'committer' } });
  t.equal(rx.requests.length, 1);
  t.equal(fsckStrict(ws.bare), '');
});

t.test('failures: retries with backoff, no retry for a 4xx, timeouts', async (t) => {
  const ws = workspace();
  ws.commit({ 'f': '1\n' }, 'one');
  const updates = ws.push(['main']);

  const flaky = await httpReceiver((i) => (i < 2 ? 503 : 200));
  t.teardown(() => flaky.close());
  const l = logger();
  const n = notifier(l, { queue: { backoffMs: 100, maxAttempts: 5 } });
  n.handle(pushed(ws, updates, settings([{ url: flaky.url, insecure: false }])));
  await flaky.waitFor(3);
  await n.idle();
  t.equal(flaky.requests.length, 3, 'two 503s, then delivered');
  const gaps = [flaky.requests[1]!.at - flaky.requests[0]!.at, flaky.requests[2]!.at - flaky.requests[1]!.at];
  // Backoff doubles: at least 100 ms, then at least 200 ms (timers may fire a hair early).
  t.ok(gaps[0]! >= 90 && gaps[1]! >= 190, `backoff gaps ${gaps.join(', ')} ms`);
  t.same(n.stats(), { queued: 0, bytes: 0, running: 0, delivered: 1, failed: 0, dropped: 0 });

  const gone = await httpReceiver(() => 404);
  t.teardown(() => gone.close());
  const l2 = logger();
  const n2 = notifier(l2, { queue: { backoffMs: 10 } });
  n2.handle(pushed(ws, updates, settings([{ url: gone.url, insecure: false }])));
  await n2.idle();
  t.equal(gone.requests.length, 1, 'a 404 is not retried');
  t.match(l2.lines.join('\n'), /failed: HTTP 404/);
  t.equal(n2.stats().failed, 1);

  const slow = await httpReceiver((i) => (i === 0 ? 'hang' : 200));
  t.teardown(() => slow.close());
  const l3 = logger();
  const n3 = notifier(l3, { timeoutMs: 300, queue: { backoffMs: 10 } });
  n3.handle(pushed(ws, updates, settings([{ url: slow.url, insecure: false }])));
  await n3.idle();
  t.equal(slow.requests.length, 2, 'a request without an answer times out and is tried again');
  t.equal(n3.stats().delivered, 1);
  t.match(l3.lines.join('\n'), /no answer within 300 ms/);

  // Nobody listening at all: every attempt fails, then one error line.
  const l4 = logger();
  const n4 = notifier(l4, { queue: { backoffMs: 10, maxAttempts: 3 } });
  const closed = await httpReceiver();
  await closed.close();
  n4.handle(pushed(ws, updates, settings([{ url: closed.url, insecure: false }])));
  await n4.idle();
  t.match(l4.lines.filter((x) => x.startsWith('error')).join('\n'), /failed after 3 attempts: .*ECONNREFUSED/);
});

t.test('a dead receiver neither blocks nor grows the queue without bound', async (t) => {
  const dead = await httpReceiver(() => 'hang');
  t.teardown(() => dead.close());
  const live = await httpReceiver();
  t.teardown(() => live.close());
  const ws = workspace();
  ws.commit({ 'f': '1\n' }, 'one');
  const updates = ws.push(['main']);
  const l = logger();
  const n = notifier(l, { timeoutMs: 60_000, queue: { maxJobs: 20, concurrency: 3, backoffMs: 10 } });
  let peak = 0;
  for (let i = 0; i < 300; i++) {
    n.handle(pushed(ws, updates, settings([{ url: dead.url, insecure: false }])));
    const s = n.stats();
    peak = Math.max(peak, s.queued);
  }
  t.ok(peak <= 20, `queue never held more than its bound (peak ${peak})`);
  const s = n.stats();
  t.equal(s.dropped, 280, 'the oldest waiting jobs were dropped');
  t.equal(s.running, 1, 'one request at a time per target: one hangs at the dead receiver');
  t.ok(s.bytes <= 20 * 2000);
  t.equal(l.lines.filter((x) => /queue full .*dropped the oldest/.test(x)).length, 280, 'each drop is logged');
  await dead.waitFor(1);
  // Other targets are not held up by the dead one.
  n.handle(pushed(ws, updates, settings([{ url: live.url, insecure: false }])));
  await live.waitFor(1);
  t.equal(dead.requests.length, 1, 'the dead receiver still holds its one request');
  n.stop();
});

t.test('https: the server certificate is verified', { skip: spawnSync('openssl', ['version']).status !== 0 ? 'no openssl to make a certificate' : false }, async (t) => {
  const dir = tmpdir('gotd-tls-');
  const key = path.join(dir, 'key.pem');
  const cert = path.join(dir, 'cert.pem');
  const r = spawnSync('openssl', ['req', '-x509', '-newkey', 'rsa:2048', '-nodes', '-keyout', key, '-out', cert, '-days', '2',
    '-subj', '/CN=localhost', '-addext', 'subjectAltName=IP:127.0.0.1,DNS:localhost'], { encoding: 'utf8' });
  t.equal(r.status, 0, r.stderr);
  const got: { auth?: string; sig?: string; body: string }[] = [];
  const server = https.createServer({ key: fs.readFileSync(key), cert: fs.readFileSync(cert) }, (req, res) => {
    const chunks: Buffer[] = [];
    req.on('data', (c: Buffer) => chunks.push(c));
    req.on('end', () => {
      got.push({ auth: req.headers.authorization, sig: req.headers['x-gotd-signature'] as string, body: Buffer.concat(chunks).toString() });
      res.end();
    });
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  t.teardown(() => new Promise<void>((resolve) => { server.closeAllConnections(); server.close(() => resolve()); }));
  const url = `https://127.0.0.1:${(server.address() as AddressInfo).port}/hook`;
  const body = Buffer.from('{"notifications":[]}');
  const target = { url, insecure: false, hmacSecret: SECRET, auth: { user: 'flan', password: 'secret' } };
  await post(target, body, { timeoutMs: 5000, ca: fs.readFileSync(cert) });
  t.equal(got.length, 1);
  t.equal(got[0]!.auth, 'Basic ' + Buffer.from('flan:secret').toString('base64'), 'Basic auth is fine over https');
  t.equal(got[0]!.sig, signature(SECRET, body));
  const err = await post(target, body, { timeoutMs: 5000 }).then(() => null, (e: unknown) => e);
  t.ok(err instanceof DeliveryError && err.permanent, 'an untrusted certificate fails, for good');
  t.equal(got.length, 1, 'and nothing was sent');
});

t.test('the queue on its own: drop-oldest order and bytes bound', async (t) => {
  const lines: string[] = [];
  const q = new DeliveryQueue({ maxJobs: 100, maxBytes: 1000, concurrency: 1, maxAttempts: 1, backoffMs: 10, maxBackoffMs: 100, log: { error: (m) => lines.push(m), info: () => undefined } });
  const ran: string[] = [];
  let release: () => void = () => undefined;
  const gate = new Promise<void>((resolve) => { release = resolve; });
  const job = (label: string, bytes: number) => ({ label, key: label, bytes, run: async () => { ran.push(label); await gate; } });
  q.push(job('first', 100));
  for (let i = 0; i < 5; i++) q.push(job(`j${i}`, 300));
  t.same(q.stats().bytes <= 1000, true);
  t.same(lines.map((l) => /for (\S+)$/.exec(l)?.[1]), ['j0', 'j1'], 'the oldest waiting jobs go first; the running one stays');
  q.push(job('huge', 5000));
  t.match(lines[lines.length - 1], /huge dropped: 5000 bytes is more than the queue holds/);
  release();
  await q.idle();
  t.same(ran, ['first', 'j2', 'j3', 'j4']);
});
