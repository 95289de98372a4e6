/**
 * Notifications end to end: the installed gotd with a [repository.notify]
 * section, real `git push`es through gotsh, a local webhook receiver and a
 * local SMTP sink.  The parent hands each finished push to the notify
 * process; pushes never wait for delivery, even when the receiver never
 * answers.
 */
import t, { type Test } from 'tap';
import { createHmac } from 'node:crypto';
import * as fs from 'node:fs';
import * as path from 'node:path';
import {
  alive, DAEMON_USER, descendants, ensureAccounts, install, mustAccount, openTmpdir, repoFor, startGotd, uids,
} from './lib/daemon';
import { httpReceiver, mailText, parseMail, smtpSink, type Receiver } from './lib/notify';
import { fsckStrict, git, gitEnv, run } from './lib/util';

const why = ensureAccounts();
if (why) {
  t.plan(0, `notify daemon tests: ${why}`);
} else {
  void main();
}

const SECRET = 'a secret the CI knows too, 32+ chars';

interface Hook { notifications: Record<string, unknown>[] }
const bodyOf = (rx: Receiver, i: number): Hook => JSON.parse(rx.requests[i]!.body.toString('utf8')) as Hook;

async function main(): Promise<void> {
  const inst = install();
  const dir = openTmpdir();
  const daemon = mustAccount(DAEMON_USER);
  const src = repoFor(dir, 'src', daemon);
  const rx = await httpReceiver();
  const dead = await httpReceiver(() => 'hang');
  const sink = await smtpSink();
  t.teardown(async () => { await rx.close(); await dead.close(); await sink.close(); });

  const secrets = path.join(dir, 'gotd-secrets.conf');
  fs.writeFileSync(secrets, `[hmac]\nci = "${SECRET}"\n[auth.ci]\nuser = "flan"\npassword = "secret"\n`);
  fs.chownSync(secrets, 0, daemon.gid);
  fs.chmodSync(secrets, 0o640);
  const conf = (url: string): string => `
[[repository]]
name = "src"
path = "${src}"
access = ["permit rw root"]
[repository.notify]
branches = ["main"]
namespaces = ["refs/tags/"]
http = [{ url = "${url}", hmac = "ci", auth = "ci", insecure = true }]
email = [{ to = "commits@example.org", from = "gotd@example.org", reply_to = "dev@example.org", relay = "127.0.0.1", port = ${sink.port} }]
`;
  // Short deadlines for the dead receiver (passed through to the notify process).
  // A request deadline far beyond the test's pushes: the dead receiver's request stays open meanwhile.
  process.env.GOTD_NOTIFY_TIMEOUT = '60';
  const g = await startGotd(inst, dir, conf(rx.url), { secrets });
  t.teardown(() => g.stop());

  const env = gitEnv({ GOTD_UNIX_SOCKET: g.sock });
  const up = path.join(inst.bin, 'git-upload-pack');
  const rp = path.join(inst.bin, 'git-receive-pack');
  const work = path.join(dir, 'work');
  const sh = (args: string[]) => run('git', args, { env, cwd: work });
  const push = (...refs: string[]) => sh(['push', '-q', '--receive-pack', rp, 'origin', ...refs]);
  let tick = 0;
  const commit = async (t: Test, file: string, text: string, msg: string): Promise<string> => {
    fs.writeFileSync(path.join(work, file), text);
    tick++;
    const dates = { GIT_AUTHOR_DATE: `${1_750_000_000 + tick} +0000`, GIT_COMMITTER_DATE: `${1_750_000_000 + tick} +0000` };
    t.equal((await run('git', ['add', file], { env, cwd: work })).code, 0);
    t.equal((await run('git', ['commit', '-q', '-m', msg], { env: { ...env, ...dates }, cwd: work })).code, 0);
    return git(['-C', work, 'rev-parse', 'HEAD']).trim();
  };

  t.test('the notify process runs under gotd as the daemon user', async (t) => {
    const info = await g.gotctl(['info']);
    const m = /notify[^0-9]*([0-9]+)/.exec(info.stdout);
    t.ok(m, `gotctl info lists notify:\n${info.stdout}`);
    const pid = Number(m![1]);
    t.ok(descendants(g.pid).includes(pid), 'a child of gotd');
    t.same(uids(pid)?.slice(0, 3), [daemon.uid, daemon.uid, daemon.uid]);
  });

  t.test('a push to main: a signed webhook and an e-mail', async (t) => {
    const clone = await run('git', ['clone', '-q', '-u', up, 'file:///src', work], { env });
    t.equal(clone.code, 0, clone.stderr);
    const old = git(['-C', work, 'rev-parse', 'HEAD']).trim();
    const c1 = await commit(t, 'notify-1.txt', 'one\n', 'First pushed commit\n\nWith a body.');
    const c2 = await commit(t, 'notify-1.txt', 'one\ntwo\n', 'Second pushed commit');
    const r = await push('main');
    t.equal(r.code, 0, r.stderr);
    await rx.waitFor(1);
    await sink.waitFor(1);
    const req = rx.requests[0]!;
    t.equal(req.headers['x-gotd-signature'], createHmac('sha256', SECRET).update(req.body).digest('hex'));
    t.equal(req.headers.authorization, 'Basic ' + Buffer.from('flan:secret').toString('base64'));
    const body = bodyOf(rx, 0);
    t.same(body.notifications.map((n) => n.id), [c1, c2]);
    t.match(body.notifications[1], {
      type: 'commit', short: false, repo: 'src', auth_user: 'root', ref: 'refs/heads/main', short_message: 'Second pushed commit',
      diffstat: { files: [{ action: 'modified', file: 'notify-1.txt', added: 1, removed: 0 }], total: { added: 1, removed: 0 } },
    });
    const mail = sink.mails[0]!;
    const { headers } = parseMail(mail.data);
    t.equal(mail.from, 'gotd@example.org');
    t.same(mail.to, ['commits@example.org']);
    t.equal(headers.get('subject'), '[src] main: 2 new commits');
    t.equal(headers.get('reply-to'), 'dev@example.org');
    const text = mailText(mail);
    t.match(text, `refs/heads/main: ${old.slice(0, 10)}..${c2.slice(0, 10)}, 2 new commits`);
    t.match(text, `commit ${c2}`);
    t.match(text, ' notify-1.txt | 1 +');
  });

  t.test('filters: a topic branch is not announced, a tag is', async (t) => {
    t.equal((await sh(['checkout', '-q', '-b', 'notify-topic'])).code, 0);
    await commit(t, 'topic.txt', 'topic\n', 'Topic work');
    t.equal((await push('notify-topic')).code, 0);
    t.equal((await sh(['tag', '-a', '-m', 'Release 9\n\nNotes.', 'v9'])).code, 0);
    t.equal((await push('v9')).code, 0);
    await rx.waitFor(2);
    await sink.waitFor(2);
    // One target is served in order: had topic made a notification, it would be this one.
    const body = bodyOf(rx, 1);
    t.same(body.notifications.map((n) => n.type), ['tag']);
    t.match(body.notifications[0], { tag: 'refs/tags/v9', message: 'Release 9\n\nNotes.\n', object: { type: 'commit' } });
    t.equal(parseMail(sink.mails[1]!.data).headers.get('subject'), '[src] new tag v9');
    t.equal(rx.requests.length, 2);
  });

  t.test('a receiver that never answers does not hold up pushes', async (t) => {
    fs.writeFileSync(g.conf, fs.readFileSync(g.conf, 'utf8').replace(rx.url, dead.url));
    const reload = await g.gotctl(['reload']);
    t.equal(reload.code, 0, reload.stderr);
    t.equal((await sh(['checkout', '-q', 'main'])).code, 0);
    await commit(t, 'notify-2.txt', 'a\n', 'Third');
    const p1 = await push('main');
    t.equal(p1.code, 0, p1.stderr);
    await dead.waitFor(1);
    await commit(t, 'notify-2.txt', 'a\nb\n', 'Fourth');
    const p2 = await push('main');
    t.equal(p2.code, 0, 'a push while the receiver holds the last notification unanswered');
    t.equal(dead.open(), 1, 'the first notification is still unanswered');
    await sink.waitFor(4);
    t.same(sink.mails.slice(2).map((m) => parseMail(m.data).headers.get('subject')), ['[src] main: Third', '[src] main: Fourth'], 'mail is not held up by the dead webhook');
    t.equal(git(['--git-dir', src, 'rev-parse', 'refs/heads/main']).trim(), git(['-C', work, 'rev-parse', 'HEAD']).trim());
    t.equal(fsckStrict(src), '');
  });

  t.test('gotctl stop ends the notify process too', async (t) => {
    const info = await g.gotctl(['info']);
    const pid = Number(/notify[^0-9]*([0-9]+)/.exec(info.stdout)![1]);
    const stop = await g.gotctl(['stop']);
    t.equal(stop.code, 0);
    t.equal(await g.waitExit(20_000), 0);
    t.notOk(alive(pid), 'notify is gone');
  });
}
