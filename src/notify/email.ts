/**
 * The e-mail for a push: RFC 5322 headers (Date, Message-ID, From, To,
 * Reply-To, Subject with the repository and the refs) and a text/plain
 * UTF-8 body that reads like `git log --stat` for each updated ref.
 * The message is 7-bit on the wire: plain ASCII bodies go as they are,
 * anything else (non-ASCII, control characters, lines over 998 bytes) as
 * quoted-printable; a non-ASCII subject becomes RFC 2047 encoded words.
 */
import { randomBytes } from 'node:crypto';
import type { FileStat } from '../git/diffstat';
import type { Signature } from '../git/object';
import type { Change, CommitSummary, PushSummary } from './summary';

export interface EmailHeaders {
  from: string;
  to: string;
  replyTo?: string;
}

const DAYS = ['Sun', 'Mon', 'Tue', 'Wed', 'Thu', 'Fri', 'Sat'];
const MONTHS = ['Jan', 'Feb', 'Mar', 'Apr', 'May', 'Jun', 'Jul', 'Aug', 'Sep', 'Oct', 'Nov', 'Dec'];
const pad2 = (n: number): string => String(n).padStart(2, '0');

/** RFC 5322 date-time in UTC: "Wed, 25 Nov 2026 17:51:04 +0000". */
export function rfc5322Date(d: Date): string {
  return `${DAYS[d.getUTCDay()]}, ${pad2(d.getUTCDate())} ${MONTHS[d.getUTCMonth()]} ${d.getUTCFullYear()} ` +
    `${pad2(d.getUTCHours())}:${pad2(d.getUTCMinutes())}:${pad2(d.getUTCSeconds())} +0000`;
}

/** git's default date format, in the signature's own time zone: "Wed Nov 25 17:51:04 2026 +0200". */
export function gitDate(sig: Signature | null, time?: number): string {
  const t = sig?.time ?? time ?? 0;
  const tz = sig?.tz ?? '+0000';
  const m = /^([+-])(\d\d)(\d\d)$/.exec(tz);
  const offset = m ? (m[1] === '-' ? -1 : 1) * (Number(m[2]) * 60 + Number(m[3])) * 60 : 0;
  const d = new Date((t + offset) * 1000);
  return `${DAYS[d.getUTCDay()]} ${MONTHS[d.getUTCMonth()]} ${d.getUTCDate()} ` +
    `${pad2(d.getUTCHours())}:${pad2(d.getUTCMinutes())}:${pad2(d.getUTCSeconds())} ${d.getUTCFullYear()} ${m ? tz : '+0000'}`;
}

/** refs/heads/main -> main, refs/tags/v1 -> v1; other refs keep their full name. */
export function shortRef(ref: string): string {
  for (const p of ['refs/heads/', 'refs/tags/']) if (ref.startsWith(p) && ref.length > p.length) return ref.slice(p.length);
  return ref;
}

const plural = (n: number, word: string): string => `${n} ${word}${n === 1 ? '' : 's'}`;
const abbrev = (oid: string): string => oid.slice(0, 10);

function isTagRef(ref: string): boolean {
  return ref.startsWith('refs/tags/');
}

/** One line per ref update, for the top of the body. */
function overviewLine(ch: Change): string {
  switch (ch.kind) {
    case 'deleted':
      return `${ch.ref}: deleted (was ${abbrev(ch.old)})`;
    case 'tag':
      return `${ch.ref}: ${ch.created ? 'new tag' : `tag moved from ${abbrev(ch.old)}`}, ${ch.tag.type} ${abbrev(ch.tag.object)}`;
    case 'other':
      return `${ch.ref}: now points at ${ch.type} ${abbrev(ch.new)}`;
    case 'commits': {
      const n = ch.commits.length;
      const count = ch.truncated ? `the newest ${plural(n, 'commit')} listed` : plural(n, 'new commit');
      if (ch.created) return `${ch.ref}: created at ${abbrev(ch.new)}${n > 0 && !(n === 1 && ch.commits[0]!.id === ch.new && !ch.truncated) ? `, ${count}` : ''}`;
      if (n === 0) return `${ch.ref}: ${abbrev(ch.old)}..${abbrev(ch.new)}, no new commits (rewound or reset)`;
      return `${ch.ref}: ${abbrev(ch.old)}..${abbrev(ch.new)}, ${count}`;
    }
  }
}

/** What one change amounts to, for a one-change subject. */
function subjectPart(ch: Change): string {
  const name = shortRef(ch.ref);
  switch (ch.kind) {
    case 'deleted':
      return `${isTagRef(ch.ref) ? 'tag ' : ''}${name} deleted`;
    case 'tag':
      return ch.created ? `new tag ${name}` : `tag ${name} moved`;
    case 'other':
      return `${name} updated`;
    case 'commits': {
      const n = ch.commits.length;
      if (ch.created) {
        const what = isTagRef(ch.ref) ? 'new tag' : ch.ref.startsWith('refs/heads/') ? 'new branch' : 'new ref';
        return n > 1 ? `${what} ${name}: ${plural(n, 'commit')}` : `${what} ${name}`;
      }
      if (n === 1) return `${name}: ${ch.commits[0]!.shortMessage}`;
      return n === 0 ? `${name} reset` : `${name}: ${n}${ch.truncated ? '+' : ''} new commits`;
    }
  }
}

const MAX_SUBJECT = 200;

export function subject(summary: PushSummary): string {
  const chs = summary.changes;
  let s: string;
  if (chs.length === 1) {
    s = `[${summary.repo}] ${subjectPart(chs[0]!)}`;
  } else {
    const names = chs.slice(0, 3).map((c) => shortRef(c.ref)).join(', ');
    const more = chs.length > 3 ? `, +${chs.length - 3} more` : '';
    const commits = chs.reduce((n, c) => n + (c.kind === 'commits' ? c.commits.length : 0), 0);
    s = `[${summary.repo}] ${names}${more}: ${commits > 0 ? plural(commits, 'new commit') : 'refs updated'}`;
  }
  // Never a control character in a header, whatever a commit message holds.
  // eslint-disable-next-line no-control-regex
  s = s.replace(/[\x00-\x1f\x7f]+/g, ' ');
  return [...s].length > MAX_SUBJECT ? [...s].slice(0, MAX_SUBJECT - 3).join('') + '...' : s;
}

/* ---------- the body ---------- */

function indentMessage(message: string): string[] {
  const lines = message.replace(/\n+$/, '').split('\n');
  return lines.map((l) => (l ? `    ${l}` : ''));
}

function statLines(files: FileStat[], totalAdded: number, totalRemoved: number, truncated: boolean): string[] {
  if (files.length === 0) return [];
  const names = files.map((f) => (f.path.length > 50 ? `...${f.path.slice(-47)}` : f.path));
  const nameWidth = Math.max(...names.map((n) => n.length));
  const counts = files.map((f) => (f.binary ? 0 : f.added + f.removed));
  const countWidth = Math.max(1, ...counts.map((c) => String(c).length));
  const maxCount = Math.max(0, ...counts);
  const graphWidth = Math.max(10, 80 - nameWidth - countWidth - 6);
  const out = files.map((f, i) => {
    const name = names[i]!.padEnd(nameWidth);
    if (f.binary) return ` ${name} | Bin ${f.oldSize} -> ${f.newSize} bytes`;
    let plus = f.added;
    let minus = f.removed;
    if (maxCount > graphWidth) {
      // Scale like git: keep a nonzero side visible.
      plus = f.added === 0 ? 0 : Math.max(1, Math.round((f.added * graphWidth) / maxCount));
      minus = f.removed === 0 ? 0 : Math.max(1, Math.round((f.removed * graphWidth) / maxCount));
    }
    return ` ${name} | ${String(counts[i]).padStart(countWidth)} ${'+'.repeat(plus)}${'-'.repeat(minus)}`.trimEnd();
  });
  const parts = [`${plural(files.length, 'file')} changed`];
  if (totalAdded > 0 || totalRemoved === 0) parts.push(`${totalAdded} insertion${totalAdded === 1 ? '' : 's'}(+)`);
  if (totalRemoved > 0 || totalAdded === 0) parts.push(`${totalRemoved} deletion${totalRemoved === 1 ? '' : 's'}(-)`);
  out.push(` ${parts.join(', ')}`);
  if (truncated) out.push(' (more changed files not listed)');
  return out;
}

function person(sig: Signature | null): string {
  return sig ? `${sig.name} <${sig.email}>` : '(unknown)';
}

function commitBlock(c: CommitSummary): string[] {
  const out = [`commit ${c.id}`];
  if (c.parents.length > 1) out.push(`Merge: ${c.parents.map((p) => p.slice(0, 7)).join(' ')}`);
  out.push(`Author: ${person(c.author)}`);
  if (c.committer && (!c.author || c.committer.name !== c.author.name || c.committer.email !== c.author.email)) {
    out.push(`Commit: ${person(c.committer)}`);
  }
  out.push(`Date:   ${gitDate(c.author, c.date)}`, '', ...indentMessage(c.message), '');
  if (c.diffstat) {
    const stat = statLines(c.diffstat.files, c.diffstat.added, c.diffstat.removed, c.diffstat.truncated);
    if (stat.length > 0) out.push(...stat, '');
  }
  return out;
}

function detailBlock(ch: Change): string[] {
  switch (ch.kind) {
    case 'deleted':
    case 'other':
      return [];
    case 'tag':
      return [
        `tag ${ch.ref}`, `Tagger: ${person(ch.tag.tagger)}`, `Date:   ${gitDate(ch.tag.tagger, ch.tag.date)}`,
        `Object: ${ch.tag.type} ${ch.tag.object}`, '', ...indentMessage(ch.tag.message), '',
      ];
    case 'commits': {
      if (ch.commits.length === 0) return [];
      // git log order: newest first.
      const newest = ch.commits.slice().reverse();
      const out = [`--- ${ch.ref} ---`, ''];
      if (ch.short) {
        for (const c of newest) out.push(`${c.id.slice(0, 10)} ${c.shortMessage} (${c.author?.name ?? c.committer?.name ?? '?'})`);
        out.push('');
      } else {
        for (const c of newest) out.push(...commitBlock(c));
      }
      if (ch.truncated) out.push(`(only the newest ${plural(ch.commits.length, 'commit')} are listed)`, '');
      return out;
    }
  }
}

export function bodyText(summary: PushSummary): string {
  const lines = [`${summary.user} pushed to ${summary.repo}:`, ''];
  for (const ch of summary.changes) lines.push(`  ${overviewLine(ch)}`);
  if (summary.omittedRefs > 0) lines.push(`  (and ${plural(summary.omittedRefs, 'more ref')}, not described)`);
  lines.push('');
  for (const ch of summary.changes) lines.push(...detailBlock(ch));
  return lines.join('\n').replace(/\n+$/, '\n');
}

/* ---------- encodings ---------- */

/** Quoted-printable (RFC 2045 6.7) of UTF-8 text; lines at most 76 characters, CRLF line breaks. */
export function quotedPrintable(text: string): string {
  const out: string[] = [];
  for (const line of text.split('\n')) {
    const bytes = Buffer.from(line, 'utf8');
    let cur = '';
    for (let i = 0; i < bytes.length; i++) {
      const b = bytes[i]!;
      const last = i === bytes.length - 1;
      const tok = (b >= 33 && b <= 126 && b !== 61) || ((b === 32 || b === 9) && !last)
        ? String.fromCharCode(b)
        : `=${b.toString(16).toUpperCase().padStart(2, '0')}`;
      // Room for the soft break "=" at the end of a 76-character line.
      if (cur.length + tok.length > 75) { out.push(cur + '='); cur = ''; }
      cur += tok;
    }
    out.push(cur);
  }
  return out.join('\r\n');
}

/** True when text can go as 7bit: printable ASCII, tabs, newlines, lines of at most 998 bytes. */
export function isSevenBitSafe(text: string): boolean {
  // eslint-disable-next-line no-control-regex
  if (/[^\x20-\x7e\t\n]/.test(text)) return false;
  return text.split('\n').every((l) => l.length <= 998);
}

/** A header line "Name: value", folded below 78 characters; non-ASCII values as RFC 2047 encoded words. */
export function header(name: string, value: string): string {
  if (/^[\x20-\x7e]*$/.test(value)) {
    const words = value.split(' ');
    const lines: string[] = [];
    let cur = `${name}:`;
    for (const w of words) {
      if (cur.length + 1 + w.length > 78 && cur.length > name.length + 1) { lines.push(cur); cur = ''; }
      cur += ` ${w}`;
    }
    lines.push(cur);
    return lines.join('\r\n');
  }
  // Encoded words of at most 75 characters (45 bytes of UTF-8), the first
  // shorter to leave room for the header name; cut between characters.
  const words: string[] = [];
  let chunk = '';
  let room = Math.max(3, Math.floor((78 - name.length - 2 - 12) / 4) * 3);
  for (const ch of value) {
    if (Buffer.byteLength(chunk + ch, 'utf8') > room) { words.push(chunk); chunk = ''; room = 45; }
    chunk += ch;
  }
  if (chunk) words.push(chunk);
  const encoded = words.map((w) => `=?UTF-8?B?${Buffer.from(w, 'utf8').toString('base64')}?=`);
  return `${name}: ${encoded.join('\r\n ')}`;
}

function messageId(from: string): string {
  const domain = from.slice(from.lastIndexOf('@') + 1).replace(/[^A-Za-z0-9.-]/g, '') || 'gotd.invalid';
  return `<${Date.now().toString(36)}.${randomBytes(8).toString('hex')}@${domain}>`;
}

/** The whole message, CRLF line breaks, ready for SMTP DATA (before dot-stuffing). */
export function emailMessage(summary: PushSummary, h: EmailHeaders, now = new Date()): string {
  const body = bodyText(summary);
  const seven = isSevenBitSafe(body);
  const lines = [
    header('From', h.from),
    header('To', h.to),
    ...(h.replyTo ? [header('Reply-To', h.replyTo)] : []),
    header('Subject', subject(summary)),
    header('Date', rfc5322Date(now)),
    header('Message-ID', messageId(h.from)),
    'MIME-Version: 1.0',
    'Content-Type: text/plain; charset=utf-8',
    `Content-Transfer-Encoding: ${seven ? '7bit' : 'quoted-printable'}`,
    // RFC 3834: mark it automatic so that vacation responders stay quiet.
    'Auto-Submitted: auto-generated',
    '',
    seven ? body.replace(/\n/g, '\r\n') : quotedPrintable(body),
  ];
  return lines.join('\r\n');
}
