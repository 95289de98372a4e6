/**
 * Helpers for the notification tests: a local HTTP receiver and a local SMTP
 * sink that record what they get, a quoted-printable decoder, and a work
 * tree with a bare "server" repository to push real commits into.
 */
import * as fs from 'node:fs';
import * as http from 'node:http';
import * as net from 'node:net';
import * as path from 'node:path';
import { git, tmpdir } from './util';

/* ---------- HTTP receiver ---------- */

export interface Received {
  method: string;
  url: string;
  headers: http.IncomingHttpHeaders;
  body: Buffer;
  at: number;
}

/** What the receiver does with request number n (0-based): answer with a status, or never answer. */
export type Behaviour = (n: number, req: Received) => number | 'hang';

export interface Receiver {
  url: string;
  port: number;
  requests: Received[];
  /** Requests held unanswered right now (the client has not given up on them). */
  open(): number;
  waitFor(n: number, timeoutMs?: number): Promise<void>;
  close(): Promise<void>;
}

export async function httpReceiver(behave: Behaviour = () => 200): Promise<Receiver> {
  const requests: Received[] = [];
  const waiters: (() => void)[] = [];
  const hung: http.ServerResponse[] = [];
  const server = http.createServer((req, res) => {
    const chunks: Buffer[] = [];
    req.on('data', (c: Buffer) => chunks.push(c));
    req.on('end', () => {
      const r: Received = { method: req.method ?? '', url: req.url ?? '', headers: req.headers, body: Buffer.concat(chunks), at: Date.now() };
      const n = requests.length;
      requests.push(r);
      for (const w of waiters.splice(0)) w();
      const what = behave(n, r);
      if (what === 'hang') {
        hung.push(res);
        res.on('close', () => hung.splice(hung.indexOf(res), 1));
        return;
      }
      res.writeHead(what, { 'Content-Type': 'text/plain' });
      res.end('ok\n');
    });
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const port = (server.address() as net.AddressInfo).port;
  return {
    url: `http://127.0.0.1:${port}/hook`,
    port,
    requests,
    open: () => hung.length,
    waitFor: (n, timeoutMs = 20_000) => waitUntil(() => requests.length >= n, waiters, timeoutMs, `${n} HTTP requests (got ${requests.length})`),
    close: () => new Promise((resolve) => {
      for (const r of hung.slice()) r.destroy();
      server.closeAllConnections();
      server.close(() => resolve());
    }),
  };
}

function waitUntil(done: () => boolean, waiters: (() => void)[], timeoutMs: number, what: string): Promise<void> {
  return new Promise((resolve, reject) => {
    if (done()) { resolve(); return; }
    const timer = setTimeout(() => reject(new Error(`timed out waiting for ${what}`)), timeoutMs);
    const check = (): void => {
      if (done()) { clearTimeout(timer); resolve(); } else waiters.push(check);
    };
    waiters.push(check);
  });
}

/* ---------- SMTP sink ---------- */

export interface Mail {
  /** Every command line the client sent, in order (DATA content excluded). */
  commands: string[];
  from: string;
  to: string[];
  /** The message as sent on the wire, dot-stuffing undone, CRLF kept. */
  data: string;
  /** Raw DATA bytes before unstuffing. */
  raw: string;
}

export interface SinkOptions {
  /** Reply to EHLO (250 normally; 502 makes the client fall back to HELO). */
  ehlo?: number;
  /** Reply to RCPT TO. */
  rcpt?: number;
  /** When false, accept connections and never say anything. */
  greet?: boolean;
}

export interface Sink {
  port: number;
  mails: Mail[];
  /** Sessions that ended without a message (refused or cut). */
  sessions: string[][];
  waitFor(n: number, timeoutMs?: number): Promise<void>;
  waitForSessions(n: number, timeoutMs?: number): Promise<void>;
  close(): Promise<void>;
}

export async function smtpSink(opts: SinkOptions = {}): Promise<Sink> {
  const mails: Mail[] = [];
  const sessions: string[][] = [];
  const waiters: (() => void)[] = [];
  const sockets = new Set<net.Socket>();
  const wake = (): void => { for (const w of waiters.splice(0)) w(); };
  const server = net.createServer((sock) => {
    sockets.add(sock);
    sock.on('close', () => sockets.delete(sock));
    sock.on('error', () => { /* the client may vanish */ });
    if (opts.greet === false) return;
    const commands: string[] = [];
    let from = '';
    let to: string[] = [];
    let inData = false;
    let raw = '';
    let buf = '';
    let ended = false;
    const reply = (s: string): void => { sock.write(s + '\r\n'); };
    const end = (): void => { if (!ended) { ended = true; sessions.push(commands); wake(); } };
    sock.on('close', end);
    sock.setEncoding('latin1');
    reply('220 sink.test ESMTP ready');
    sock.on('data', (chunk: string) => {
      buf += chunk;
      for (;;) {
        if (inData) {
          const endAt = buf.indexOf('\r\n.\r\n');
          const atStart = raw === '' && buf.startsWith('.\r\n');
          if (endAt < 0 && !atStart) {
            // Keep a tail that may be the start of the end marker split across reads.
            const keep = Math.min(buf.length, 4);
            raw += buf.slice(0, buf.length - keep);
            buf = buf.slice(buf.length - keep);
            break;
          }
          const cut = atStart ? 0 : endAt + 2;
          raw += buf.slice(0, cut);
          buf = buf.slice(cut + 3);
          inData = false;
          const data = raw.split('\r\n').map((l) => (l.startsWith('.') ? l.slice(1) : l)).join('\r\n');
          mails.push({ commands: commands.slice(), from, to, data, raw });
          wake();
          reply('250 2.0.0 queued');
          continue;
        }
        const nl = buf.indexOf('\r\n');
        if (nl < 0) break;
        const line = buf.slice(0, nl);
        buf = buf.slice(nl + 2);
        commands.push(line);
        const verb = line.slice(0, 4).toUpperCase();
        if (verb === 'EHLO') {
          const code = opts.ehlo ?? 250;
          if (code === 250) { reply('250-sink.test hello'); reply('250-8BITMIME'); reply('250 SIZE 10000000'); } else reply(`${code} 5.5.1 command not recognized`);
        } else if (verb === 'HELO') {
          reply('250 sink.test');
        } else if (verb === 'MAIL') {
          from = /<(.*)>/.exec(line)?.[1] ?? '';
          to = [];
          reply('250 2.1.0 ok');
        } else if (verb === 'RCPT') {
          const code = opts.rcpt ?? 250;
          if (code === 250) to.push(/<(.*)>/.exec(line)?.[1] ?? '');
          reply(code === 250 ? '250 2.1.5 ok' : `${code} ${code >= 500 ? '5.1.1 no such user' : '4.2.0 try later'}`);
        } else if (verb === 'DATA') {
          inData = true;
          raw = '';
          reply('354 end with <CRLF>.<CRLF>');
        } else if (verb === 'QUIT') {
          reply('221 2.0.0 bye');
          sock.end();
        } else {
          reply('500 5.5.2 what?');
        }
      }
    });
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const port = (server.address() as net.AddressInfo).port;
  return {
    port,
    mails,
    sessions,
    waitFor: (n, timeoutMs = 20_000) => waitUntil(() => mails.length >= n, waiters, timeoutMs, `${n} mails (got ${mails.length})`),
    waitForSessions: (n, timeoutMs = 20_000) => waitUntil(() => sessions.length >= n, waiters, timeoutMs, `${n} SMTP sessions (got ${sessions.length})`),
    close: () => new Promise((resolve) => {
      for (const s of sockets) s.destroy();
      server.close(() => resolve());
    }),
  };
}

/** Splits a message into headers (unfolded, keyed in lower case) and body. */
export function parseMail(data: string): { headers: Map<string, string>; body: string; rawHeader: string } {
  const sep = data.indexOf('\r\n\r\n');
  const rawHeader = data.slice(0, sep);
  const headers = new Map<string, string>();
  for (const line of rawHeader.replace(/\r\n[ \t]/g, ' ').split('\r\n')) {
    const c = line.indexOf(':');
    headers.set(line.slice(0, c).toLowerCase(), line.slice(c + 1).trim());
  }
  return { headers, body: data.slice(sep + 4), rawHeader };
}

/** Decodes a quoted-printable body to text. */
export function decodeQP(s: string): string {
  const joined = s.replace(/=\r\n/g, '');
  const bytes: number[] = [];
  for (let i = 0; i < joined.length; i++) {
    const c = joined[i]!;
    if (c === '=' && /^[0-9A-F]{2}$/.test(joined.slice(i + 1, i + 3))) { bytes.push(parseInt(joined.slice(i + 1, i + 3), 16)); i += 2; } else bytes.push(joined.charCodeAt(i));
  }
  return Buffer.from(bytes).toString('utf8').replace(/\r\n/g, '\n');
}

/** The text of a mail's body, whatever its transfer encoding. */
export function mailText(m: Mail): string {
  const { headers, body } = parseMail(m.data);
  return headers.get('content-transfer-encoding') === 'quoted-printable' ? decodeQP(body) : body.replace(/\r\n/g, '\n');
}

/** Decodes RFC 2047 encoded words (UTF-8, B encoding) in a header value. */
export function decodeHeader(v: string): string {
  return v.replace(/=\?UTF-8\?B\?([^?]*)\?=\s*/gi, (_, b64: string) => Buffer.from(b64, 'base64').toString('utf8'));
}

/* ---------- a repository to push to ---------- */

export interface Workspace {
  /** The bare repository ("the server"). */
  bare: string;
  /** A work tree whose origin is bare. */
  work: string;
  /** Writes files (null deletes), commits everything, returns the new commit id. */
  commit(files: Record<string, string | Buffer | null>, message: string, env?: NodeJS.ProcessEnv): string;
  git(args: string[], env?: NodeJS.ProcessEnv): string;
  /** Refs of the bare repository: name -> id. */
  refs(): Map<string, string>;
  /** Runs git push from the work tree and returns the ref updates as the server saw them (old/new per changed ref). */
  push(args: string[]): { ref: string; old: string; new: string; ok: boolean }[];
}

export const ZERO = '0'.repeat(40);

export function workspace(): Workspace {
  const dir = tmpdir('gotd-notify-');
  const bare = path.join(dir, 'server.git');
  const work = path.join(dir, 'work');
  git(['init', '-q', '--bare', '-b', 'main', bare]);
  git(['init', '-q', '-b', 'main', work]);
  git(['remote', 'add', 'origin', bare], { cwd: work });
  let tick = 0;
  const ws: Workspace = {
    bare,
    work,
    git: (args, env) => git(args, { cwd: work, ...(env ? { env } : {}) }),
    commit(files, message, env) {
      for (const [name, content] of Object.entries(files)) {
        const p = path.join(work, name);
        if (content === null) { fs.rmSync(p, { recursive: true, force: true }); continue; }
        fs.mkdirSync(path.dirname(p), { recursive: true });
        fs.writeFileSync(p, content);
      }
      tick++;
      const date = `${1_700_000_000 + tick * 60} +0100`;
      git(['add', '-A'], { cwd: work });
      git(['commit', '-q', '--allow-empty', '-m', message], { cwd: work, env: { GIT_AUTHOR_DATE: date, GIT_COMMITTER_DATE: date, ...env } });
      return git(['rev-parse', 'HEAD'], { cwd: work }).trim();
    },
    refs() {
      const out = git(['--git-dir', bare, 'for-each-ref', '--format=%(refname) %(objectname)']);
      return new Map(out.split('\n').filter(Boolean).map((l) => l.split(' ') as [string, string]));
    },
    push(args) {
      const before = ws.refs();
      git(['push', '-q', 'origin', ...args], { cwd: work });
      const after = ws.refs();
      const names = new Set([...before.keys(), ...after.keys()]);
      const updates: { ref: string; old: string; new: string; ok: boolean }[] = [];
      for (const ref of [...names].sort()) {
        const o = before.get(ref) ?? ZERO;
        const n = after.get(ref) ?? ZERO;
        if (o !== n) updates.push({ ref, old: o, new: n, ok: true });
      }
      return updates;
    },
  };
  return ws;
}
