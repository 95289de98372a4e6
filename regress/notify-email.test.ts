/**
 * E-mail notifications: real pushes summarized by the notify modules and
 * sent by our SMTP client to a local SMTP sink, which records the dialogue
 * and the message.  Checks the SMTP conversation (EHLO, HELO fallback,
 * MAIL/RCPT/DATA/QUIT, dot-stuffing), the headers, the `git log --stat`
 * style body, encodings and line lengths, and failure handling.
 */
import t from 'tap';
import { Notifier, type NotifierOptions } from '../src/notify/dispatch';
import { emailMessage, header, quotedPrintable, rfc5322Date } from '../src/notify/email';
import type { NotifySettings, Pushed } from '../src/ipc/messages';
import { sendMail } from '../src/notify/smtp';
import type { PushSummary } from '../src/notify/summary';
import { decodeHeader, decodeQP, mailText, parseMail, smtpSink, workspace, type Workspace } from './lib/notify';
import { fsckStrict, git } from './lib/util';

function logger(): { lines: string[]; log: NotifierOptions['log'] } {
  const lines: string[] = [];
  return { lines, log: { error: (m) => lines.push(`error: ${m}`), info: (m) => lines.push(`info: ${m}`), debug: () => undefined } };
}

function notifier(log: NotifierOptions['log'], extra: Partial<NotifierOptions> = {}): Notifier {
  return new Notifier({ log, helo: 'gotd.test', defaultFrom: '_gotd@gotd.test', timeoutMs: 2000, queue: { backoffMs: 20 }, ...extra });
}

function pushed(ws: Workspace, updates: Pushed['updates'], email: NotifySettings['email'], filter: Partial<NotifySettings> = {}): Pushed {
  return {
    type: 'pushed', repo: 'openbsd/ports', path: ws.bare, user: 'flan_hacker', updates,
    notify: { branches: [], namespaces: [], http: [], email, ...filter }, secrets: { hmac: {}, auth: {} },
  };
}

const MAX_LINE = 78;

t.test('a push becomes one e-mail like git log --stat', async (t) => {
  const sink = await smtpSink();
  t.teardown(() => sink.close());
  const ws = workspace();
  ws.commit({ 'Makefile': 'all:\n\ttrue\n' }, 'Base');
  ws.push(['main']);
  const c1 = ws.commit({ 'README': 'hello\n', 'Makefile': 'all:\n\techo\n' }, 'Add a README\n\nSome explanation\n.\n.hidden line starts with a dot');
  const c2 = ws.commit({ 'README': 'hello\nworld\n', 'logo.png': Buffer.from([0x89, 0x50, 0x4e, 0x47, 0, 0, 0, 1]) }, 'Grow the README');
  const updates = ws.push(['main']);
  const l = logger();
  const n = notifier(l.log);
  t.equal(n.handle(pushed(ws, updates, [{ to: 'ports-changes@example.org', from: 'gotd@example.org', replyTo: 'ports@example.org', relay: '127.0.0.1', port: sink.port }])), 1);
  await sink.waitFor(1);
  await n.idle();
  const m = sink.mails[0]!;
  t.same(m.commands.slice(0, 4), ['EHLO gotd.test', 'MAIL FROM:<gotd@example.org>', 'RCPT TO:<ports-changes@example.org>', 'DATA']);
  await sink.waitForSessions(1);
  t.equal(sink.sessions[0]![sink.sessions[0]!.length - 1], 'QUIT');
  t.equal(m.from, 'gotd@example.org');
  t.same(m.to, ['ports-changes@example.org']);

  const { headers, body, rawHeader } = parseMail(m.data);
  t.equal(headers.get('from'), 'gotd@example.org');
  t.equal(headers.get('to'), 'ports-changes@example.org');
  t.equal(headers.get('reply-to'), 'ports@example.org');
  t.equal(headers.get('subject'), '[openbsd/ports] main: 2 new commits');
  t.match(headers.get('date'), /^(Mon|Tue|Wed|Thu|Fri|Sat|Sun), \d\d (Jan|Feb|Mar|Apr|May|Jun|Jul|Aug|Sep|Oct|Nov|Dec) \d{4} \d\d:\d\d:\d\d \+0000$/);
  t.ok(Math.abs(Date.parse(headers.get('date')!) - Date.now()) < 60_000, 'Date is now');
  t.match(headers.get('message-id'), /^<[^<>@\s]+@example\.org>$/);
  t.equal(headers.get('mime-version'), '1.0');
  t.equal(headers.get('content-type'), 'text/plain; charset=utf-8');
  t.equal(headers.get('content-transfer-encoding'), '7bit');
  t.equal(headers.get('auto-submitted'), 'auto-generated');
  t.ok(rawHeader.split('\r\n').every((h) => h.length <= MAX_LINE), 'header lines are short');
  t.ok(m.data.split('\r\n').every((line) => line.length <= 998), 'no line over 998 bytes');
  t.notMatch(m.data.replace(/\r\n/g, ''), /[\r\n]/, 'CRLF line ends only');

  const text = mailText(m);
  t.match(text, /^flan_hacker pushed to openbsd\/ports:\n\n  refs\/heads\/main: [0-9a-f]{10}\.\.[0-9a-f]{10}, 2 new commits\n/);
  // Newest first, each like `git log --stat`.
  const i2 = text.indexOf(`commit ${c2}`);
  const i1 = text.indexOf(`commit ${c1}`);
  t.ok(i2 > 0 && i1 > i2, 'newest commit first');
  t.match(text, `commit ${c1}\nAuthor: Test Author <author@example.org>\nCommit: Test Committer <committer@example.org>\nDate:   Tue Nov 14 23:15:20 2023 +0100\n\n    Add a README\n\n    Some explanation\n    .\n    .hidden line starts with a dot\n\n`);
  t.match(text, / Makefile \| 2 \+-\n README   \| 1 \+\n 2 files changed, 2 insertions\(\+\), 1 deletion\(-\)\n/);
  t.match(text, / README   \| 1 \+\n logo\.png \| Bin 0 -> 8 bytes\n 2 files changed, 1 insertion\(\+\)\n/);
  // The same numbers as git's own --stat for these small files.
  const stat = git(['--git-dir', ws.bare, 'show', '--stat=80', '--format=', c1]);
  t.match(text, stat.split('\n').filter(Boolean).map((x) => x.trimEnd()).join('\n'));
  t.equal(body.length > 0, true);
  t.same(l.lines.filter((x) => x.startsWith('error')), []);
  t.equal(fsckStrict(ws.bare), '');
});

t.test('non-ASCII and long lines go quoted-printable; subjects are encoded words', async (t) => {
  const sink = await smtpSink();
  t.teardown(() => sink.close());
  const ws = workspace();
  const long = 'x'.repeat(1200);
  ws.commit({ 'résumé.txt': 'ça\n' }, `Écrire le résumé — ✓\n\n${long}\n`, { GIT_AUTHOR_NAME: 'Zoë Ünicode' });
  ws.git(['branch', '-m', 'main', 'fête']);
  const updates = ws.push(['fête']);
  const n = notifier(logger().log);
  n.handle(pushed(ws, updates, [{ to: 'list@example.org', relay: '127.0.0.1', port: sink.port }]));
  await sink.waitFor(1);
  await n.idle();
  const m = sink.mails[0]!;
  const { headers, rawHeader } = parseMail(m.data);
  t.equal(m.from, '_gotd@gotd.test', 'the default sender');
  t.equal(headers.get('content-transfer-encoding'), 'quoted-printable');
  t.ok(m.data.split('\r\n').every((line) => line.length <= 76 || line.startsWith('Subject:') === false && line.length <= MAX_LINE), 'every line at most 76-78 characters');
  // eslint-disable-next-line no-control-regex
  t.notMatch(m.data, /[^\x00-\x7f]/, '7-bit on the wire');
  t.ok(rawHeader.split('\r\n').every((h) => h.length <= MAX_LINE));
  t.equal(decodeHeader(headers.get('subject')!), '[openbsd/ports] new branch fête');
  const text = mailText(m);
  t.match(text, 'Author: Zoë Ünicode <author@example.org>');
  t.match(text, '    Écrire le résumé — ✓');
  t.match(text, `    ${long}\n`, 'a 1200-character line survives intact');
  t.match(text, ' résumé.txt | 1 +');
});

t.test('tags and deletions in the mail; filters', async (t) => {
  const sink = await smtpSink();
  t.teardown(() => sink.close());
  const ws = workspace();
  ws.commit({ 'f': '1\n' }, 'one');
  ws.git(['branch', 'topic']);
  ws.push(['main', 'topic']);
  ws.git(['tag', '-a', '-m', 'Release 7.5\n\nSee the notes.', 'v7.5'], { GIT_COMMITTER_DATE: '1700000000 +0000' });
  const updates = ws.push(['v7.5', ':topic']);
  const n = notifier(logger().log);
  const to = [{ to: 'a@example.org', relay: '127.0.0.1', port: sink.port }];
  t.equal(n.handle(pushed(ws, updates, to, { branches: ['main'] })), 0, 'neither the tag nor topic is covered by branches = ["main"]');
  t.equal(n.handle(pushed(ws, updates, to, { namespaces: ['refs/tags/'] })), 1);
  t.equal(n.handle(pushed(ws, updates, to)), 1);
  await sink.waitFor(2);
  await n.idle();
  // Two deliveries run side by side; take them in subject order.
  const [tagOnly, both] = sink.mails.map((m) => ({ subject: parseMail(m.data).headers.get('subject')!, text: mailText(m) }))
    .sort((a, b) => a.subject.localeCompare(b.subject));
  t.equal(tagOnly!.subject, '[openbsd/ports] new tag v7.5');
  t.match(tagOnly!.text, /tag refs\/tags\/v7\.5\nTagger: Test Committer <committer@example\.org>\nDate:   Tue Nov 14 22:13:20 2023 \+0000\nObject: commit [0-9a-f]{40}\n\n    Release 7\.5\n\n    See the notes\.\n/);
  t.notMatch(tagOnly!.text, /topic/);
  t.equal(both!.subject, '[openbsd/ports] topic, v7.5: refs updated');
  t.match(both!.text, /refs\/heads\/topic: deleted \(was [0-9a-f]{10}\)/);
});

t.test('the SMTP client: HELO fallback, refusals, silence', async (t) => {
  const message = emailMessage({ repo: 'r', user: 'u', changes: [], omittedRefs: 0 } as PushSummary, { from: 'a@b.c', to: 'd@e.f' });
  const opts = (port: number, timeoutMs = 2000) => ({ host: '127.0.0.1', port, helo: 'gotd.test', timeoutMs });

  const old = await smtpSink({ ehlo: 502 });
  t.teardown(() => old.close());
  await sendMail(opts(old.port), { from: 'a@b.c', to: ['d@e.f'] }, message);
  t.same(old.mails[0]!.commands.slice(0, 3), ['EHLO gotd.test', 'HELO gotd.test', 'MAIL FROM:<a@b.c>'], 'HELO after EHLO is refused');

  const refusing = await smtpSink({ rcpt: 550 });
  t.teardown(() => refusing.close());
  const e1 = await sendMail(opts(refusing.port), { from: 'a@b.c', to: ['d@e.f'] }, message).then(() => null, (e: Error & { permanent?: boolean }) => e);
  t.match(e1?.message, /RCPT TO: 550/);
  t.equal(e1?.permanent, true, '5xx is permanent');
  const busy = await smtpSink({ rcpt: 451 });
  t.teardown(() => busy.close());
  const e2 = await sendMail(opts(busy.port), { from: 'a@b.c', to: ['d@e.f'] }, message).then(() => null, (e: Error & { permanent?: boolean }) => e);
  t.equal(e2?.permanent, false, '4xx is worth a retry');

  // Dot-stuffing: lines starting with a dot get another one on the wire, and lose it at the other end.
  const dots = await smtpSink();
  t.teardown(() => dots.close());
  const dotted = 'Subject: dots\r\n\r\n.\r\n.leading\r\n..two\r\nend\r\n';
  await sendMail(opts(dots.port), { from: 'a@b.c', to: ['d@e.f'] }, dotted);
  t.match(dots.mails[0]!.raw, /\r\n\.\.\r\n\.\.leading\r\n\.\.\.two\r\nend\r\n$/);
  t.equal(dots.mails[0]!.data, dotted);
  const bare = await smtpSink();
  t.teardown(() => bare.close());
  await sendMail(opts(bare.port), { from: 'a@b.c', to: ['d@e.f'] }, 'Subject: x\n\nno final newline');
  t.equal(bare.mails[0]!.data, 'Subject: x\r\n\r\nno final newline\r\n', 'bare LF becomes CRLF, and the data ends in CRLF');

  const mute = await smtpSink({ greet: false });
  t.teardown(() => mute.close());
  await t.rejects(sendMail(opts(mute.port, 300), { from: 'a@b.c', to: ['d@e.f'] }, message), /did not answer greeting within 300 ms/);
  await t.rejects(sendMail(opts(mute.port), { from: 'a@b.c', to: ['d@e.f>\r\nRCPT TO:<evil@x'] }, message), /bad e-mail address/, 'no command injection through an address');

  // Through the queue: a temporary refusal is retried, a permanent one logged once.
  const ws = workspace();
  ws.commit({ 'f': '1\n' }, 'one');
  const updates = ws.push(['main']);
  const l = logger();
  const n = notifier(l.log, { queue: { backoffMs: 10, maxAttempts: 3 } });
  n.handle(pushed(ws, updates, [{ to: 'x@example.org', relay: '127.0.0.1', port: busy.port }, { to: 'y@example.org', relay: '127.0.0.1', port: refusing.port }]));
  await n.idle();
  await busy.waitForSessions(1 + 3);
  await refusing.waitForSessions(1 + 1);
  t.equal(busy.sessions.length, 1 + 3, 'three attempts at the busy relay');
  t.equal(refusing.sessions.length, 1 + 1, 'one at the refusing relay');
  t.equal(n.stats().failed, 2);
  t.match(l.lines.join('\n'), /mail to y@example\.org via 127\.0\.0\.1:\d+ \(openbsd\/ports\) failed: SMTP RCPT TO: 550/);
});

t.test('encoding helpers', async (t) => {
  t.equal(rfc5322Date(new Date(Date.UTC(2026, 10, 25, 7, 5, 9))), 'Wed, 25 Nov 2026 07:05:09 +0000');
  const qp = quotedPrintable('a = b\ttrailing \nnaïve\n' + 'y'.repeat(200));
  t.ok(qp.split('\r\n').every((l) => l.length <= 76));
  t.equal(decodeQP(qp), 'a = b\ttrailing \nnaïve\n' + 'y'.repeat(200));
  t.match(qp, /trailing=20\r\n/, 'trailing space encoded');
  const h = header('Subject', '[r] ' + 'é'.repeat(60));
  t.ok(h.split('\r\n').every((l) => l.length <= 78));
  t.equal(decodeHeader(h.replace(/^Subject: /, '').replace(/\r\n /g, ' ')), '[r] ' + 'é'.repeat(60));
  const ascii = header('Subject', 'word '.repeat(40).trim());
  t.ok(ascii.split('\r\n').length > 1 && ascii.split('\r\n').every((l) => l.length <= 78), 'long ASCII headers are folded');
});
