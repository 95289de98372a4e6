/**
 * The notify process as the parent runs it: a fresh node process with an
 * IPC channel, fed "pushed" messages built by the parent's helper from a
 * validated configuration and secrets.  Checks that a push reaches a local
 * webhook receiver and a local SMTP sink, that bad messages are ignored
 * without harm, and that a dead receiver costs a bounded queue (drops are
 * logged) while other targets keep getting their notifications.
 */
import t from 'tap';
import { spawn, type ChildProcess } from 'node:child_process';
import { createHmac } from 'node:crypto';
import { validateConfig } from '../src/config/validate';
import { validateSecrets } from '../src/config/secrets';
import { notifyArgs } from '../src/gotd/notify_hook';
import { pushedMessage } from '../src/notify/request';
import { httpReceiver, mailText, parseMail, smtpSink, workspace } from './lib/notify';
import { fsckStrict } from './lib/util';

const SECRET = 'a shared secret for the CI hook';

interface Proc {
  child: ChildProcess;
  stderr: string[];
  waitForLog(re: RegExp, count?: number, timeoutMs?: number): Promise<void>;
  stop(): Promise<void>;
}

/** Starts notify as the parent does: under the permission model, allowed to read only `readable` besides the runtime. */
async function startNotify(readable: string[]): Promise<Proc> {
  const env: NodeJS.ProcessEnv = { PATH: process.env.PATH, GOTD_VERBOSE: '1', GOTD_NOTIFY_TIMEOUT: '2', GOTD_NOTIFY_RETRY_DELAY: '0.05' };
  // Through env -u: tap injects its NODE_OPTIONS hook into children it sees spawned,
  // and the permission model would (rightly) refuse to load it.
  const child = spawn('env', ['-u', 'NODE_OPTIONS', process.execPath, ...notifyArgs(readable)], { env, stdio: ['ignore', 'ignore', 'pipe', 'ipc'] });
  const stderr: string[] = [];
  let partial = '';
  const waiters: (() => void)[] = [];
  child.stderr!.setEncoding('utf8');
  child.stderr!.on('data', (s: string) => {
    const parts = (partial + s).split('\n');
    partial = parts.pop()!;
    stderr.push(...parts);
    for (const w of waiters.splice(0)) w();
  });
  await new Promise<void>((resolve, reject) => {
    child.once('message', (m: unknown) => ((m as { type?: string }).type === 'ready' ? resolve() : reject(new Error(`unexpected ${JSON.stringify(m)}`))));
    child.once('exit', (code) => reject(new Error(`notify exited (${code}): ${stderr.join('\n')}`)));
  });
  return {
    child,
    stderr,
    waitForLog: (re, count = 1, timeoutMs = 20_000) => new Promise((resolve, reject) => {
      const timer = setTimeout(() => reject(new Error(`timed out waiting for ${count}x ${re}; log:\n${stderr.slice(-20).join('\n')}`)), timeoutMs);
      const check = (): void => {
        if (stderr.filter((l) => re.test(l)).length >= count) { clearTimeout(timer); resolve(); } else waiters.push(check);
      };
      check();
    }),
    stop: () => new Promise((resolve) => {
      if (child.exitCode !== null) { resolve(); return; }
      child.once('exit', () => resolve());
      // The parent going away is how notify learns to stop.
      child.disconnect();
    }),
  };
}

t.test('a push reaches the webhook and the mailing list', async (t) => {
  const rx = await httpReceiver();
  t.teardown(() => rx.close());
  const sink = await smtpSink();
  t.teardown(() => sink.close());
  const ws = workspace();
  const config = validateConfig({
    repository: [{
      name: 'src', path: ws.bare, access: ['permit rw flan_hacker'],
      notify: {
        branches: ['main'],
        http: [{ url: rx.url, hmac: 'ci', auth: 'ci', insecure: true }],
        email: [{ to: 'commits@example.org', from: 'gotd@example.org', relay: '127.0.0.1', port: sink.port }],
      },
    }],
  });
  const secrets = validateSecrets({ hmac: { ci: SECRET }, auth: { ci: { user: 'flan', password: 'secret' } } });
  const p = await startNotify([ws.bare]);
  t.teardown(() => p.stop());

  const c1 = ws.commit({ 'README': 'one\n' }, 'First');
  const c2 = ws.commit({ 'README': 'one\ntwo\n' }, 'Second');
  const updates = ws.push(['main']);
  const msg = pushedMessage(config.repositories[0]!, secrets, 'flan_hacker', updates);
  t.ok(msg);
  p.child.send(msg!);
  await rx.waitFor(1);
  await sink.waitFor(1);

  const r = rx.requests[0]!;
  t.equal(r.headers['x-gotd-signature'], createHmac('sha256', SECRET).update(r.body).digest('hex'));
  t.equal(r.headers.authorization, 'Basic ' + Buffer.from('flan:secret').toString('base64'));
  const body = JSON.parse(r.body.toString()) as { notifications: { type: string; id: string; auth_user: string }[] };
  t.same(body.notifications.map((n) => [n.type, n.id, n.auth_user]), [['commit', c1, 'flan_hacker'], ['commit', c2, 'flan_hacker']]);

  const mail = sink.mails[0]!;
  t.equal(parseMail(mail.data).headers.get('subject'), '[src] new branch main: 2 commits');
  t.match(mailText(mail), `commit ${c2}`);
  await p.waitForLog(/src: push by flan_hacker: 1 refs, 2 commits; 2 notifications queued/);

  // Garbage from the parent is logged and ignored; the process carries on.
  p.child.send({ type: 'pushed', repo: 'src' });
  p.child.send('nonsense');
  await p.waitForLog(/malformed message from the parent ignored/, 2);
  ws.git(['checkout', '-q', '-b', 'dev']);
  ws.commit({ 'x': '1\n' }, 'on dev');
  const devUpdates = ws.push(['dev']);
  t.equal(pushedMessage(config.repositories[0]!, secrets, 'flan_hacker', devUpdates), null, 'dev is not covered: the parent sends nothing');
  ws.git(['checkout', '-q', 'main']);
  const c3 = ws.commit({ 'README': 'three\n' }, 'Third');
  p.child.send(pushedMessage(config.repositories[0]!, secrets, 'flan_hacker', ws.push(['main']))!);
  await rx.waitFor(2);
  t.equal((JSON.parse(rx.requests[1]!.body.toString()) as { notifications: { id: string }[] }).notifications[0]!.id, c3);
  // The permission model: a repository it was not given is out of reach.
  const other = workspace();
  other.commit({ 'f': '1\n' }, 'elsewhere');
  const otherRepo = { ...config.repositories[0]!, path: other.bare };
  p.child.send(pushedMessage(otherRepo, secrets, 'flan_hacker', other.push(['main']))!);
  await p.waitForLog(new RegExp(`src: cannot open ${other.bare}: not a git repository`));
  t.equal(rx.requests.length, 2, 'nothing sent for it');
  t.ok(p.child.exitCode === null, 'still running');
  await p.stop();
  t.equal(p.child.exitCode, 0, 'exits when the parent disconnects');
  t.equal(fsckStrict(ws.bare), '');
});

t.test('a dead receiver: bounded queue, logged drops, other targets still served', async (t) => {
  const dead = await httpReceiver(() => 'hang');
  t.teardown(() => dead.close());
  const live = await httpReceiver();
  t.teardown(() => live.close());
  const ws = workspace();
  const repo = (url: string) => validateConfig({ repository: [{ name: 'src', path: ws.bare, notify: { http: [{ url }] } }] }).repositories[0]!;
  const secrets = validateSecrets({});
  const p = await startNotify([ws.bare]);
  t.teardown(() => p.stop());
  ws.commit({ 'f': '1\n' }, 'one');
  const updates = ws.push(['main']);
  const deadRepo = repo(dead.url);
  const N = 600;
  for (let i = 0; i < N; i++) p.child.send(pushedMessage(deadRepo, secrets, 'u', updates)!);
  // The default queue holds 256 jobs; one is being sent, every later push drops the oldest waiting one.
  await p.waitForLog(/notification queue full .* dropped the oldest/, N - 256);
  t.equal(p.stderr.filter((l) => /dropped the oldest/.test(l)).length, N - 256, 'exactly the overflow was dropped');
  p.child.send(pushedMessage(repo(live.url), secrets, 'u', updates)!);
  await live.waitFor(1);
  t.ok(dead.requests.length >= 1 && dead.requests.length <= 3, `the dead receiver saw one request at a time (${dead.requests.length} so far)`);
  await p.waitForLog(/attempt 1 failed \(no answer within 2000 ms\)/);
});
