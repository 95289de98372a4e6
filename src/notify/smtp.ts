/**
 * A small SMTP client (RFC 5321) for handing one message to a relay:
 * greeting, EHLO (HELO when the server does not know EHLO), MAIL FROM,
 * RCPT TO, DATA with dot-stuffing, QUIT — one command at a time, each with
 * a deadline.  No STARTTLS and no AUTH: the relay is expected to be a local
 * or trusted MTA that accepts mail from gotd, as gotd itself expects.  The
 * message must already be 7-bit (email.ts encodes it), so no extension is
 * needed.  4xx answers and network trouble are temporary failures, 5xx
 * permanent ones.
 */
import * as net from 'node:net';
import { DeliveryError } from './http';

export interface SmtpOptions {
  host: string;
  port: number;
  /** Our name in EHLO/HELO. */
  helo: string;
  /** Deadline for connecting and for each reply. */
  timeoutMs: number;
}

export interface Envelope {
  from: string;
  to: string[];
}

interface Reply {
  code: number;
  text: string;
}

/** Longest reply line and reply accepted from a server (RFC 5321 allows 512-byte lines). */
const MAX_LINE = 4096;
const MAX_REPLY = 64 * 1024;

/** Reads SMTP replies (possibly multi-line: "250-..." lines, then "250 ...") off a socket. */
class ReplyReader {
  private buf = '';
  private lines: string[] = [];
  private replies: Reply[] = [];
  private waiter: { resolve: (r: Reply) => void; reject: (e: Error) => void } | null = null;
  private failure: Error | null = null;

  constructor(socket: net.Socket) {
    socket.setEncoding('latin1');
    socket.on('data', (s: string) => this.feed(s));
    socket.on('error', (e) => this.fail(new DeliveryError(`SMTP connection: ${e.message}`, false)));
    socket.on('close', () => this.fail(new DeliveryError('SMTP server closed the connection', false)));
  }

  private feed(s: string): void {
    this.buf += s;
    let nl: number;
    while ((nl = this.buf.indexOf('\n')) >= 0) {
      const line = this.buf.slice(0, nl).replace(/\r$/, '');
      this.buf = this.buf.slice(nl + 1);
      this.line(line);
    }
    if (this.buf.length > MAX_LINE) this.fail(new DeliveryError('SMTP server sent an overlong line', false));
  }

  private line(line: string): void {
    const m = /^([2-5][0-9][0-9])([ -]?)(.*)$/.exec(line);
    if (!m) { this.fail(new DeliveryError(`SMTP server sent a malformed reply: ${JSON.stringify(line.slice(0, 80))}`, false)); return; }
    this.lines.push(line);
    if (this.lines.join('\n').length > MAX_REPLY) { this.fail(new DeliveryError('SMTP server sent an overlong reply', false)); return; }
    if (m[2] === '-') return;
    const reply = { code: Number(m[1]), text: this.lines.map((l) => l.slice(4)).join(' ') };
    this.lines = [];
    this.replies.push(reply);
    this.wake();
  }

  private fail(e: Error): void {
    if (!this.failure) this.failure = e;
    this.wake();
  }

  private wake(): void {
    const w = this.waiter;
    if (!w) return;
    const r = this.replies.shift();
    if (r) { this.waiter = null; w.resolve(r); return; }
    if (this.failure) { this.waiter = null; w.reject(this.failure); }
  }

  next(timeoutMs: number, what: string): Promise<Reply> {
    return new Promise((resolve, reject) => {
      const timer = setTimeout(() => {
        this.waiter = null;
        reject(new DeliveryError(`SMTP server did not answer ${what} within ${timeoutMs} ms`, false));
      }, timeoutMs);
      this.waiter = {
        resolve: (r) => { clearTimeout(timer); resolve(r); },
        reject: (e) => { clearTimeout(timer); reject(e); },
      };
      this.wake();
    });
  }
}

/** Dot-stuffs a message for DATA and appends the end-of-data line. */
export function dataBlock(message: string): Buffer {
  let text = message.replace(/\r?\n/g, '\r\n');
  if (!text.endsWith('\r\n')) text += '\r\n';
  text = text.replace(/^\./gm, '..');
  return Buffer.from(text + '.\r\n', 'latin1');
}

/** A mailbox safe to put between < and > in a command. */
function checkAddress(a: string): string {
  // eslint-disable-next-line no-control-regex
  if (!/^[^\s<>\x00-\x1f\x7f]+@[^\s<>\x00-\x1f\x7f]+$/.test(a)) throw new DeliveryError(`bad e-mail address ${JSON.stringify(a)}`, true);
  return a;
}

function connect(opts: SmtpOptions): Promise<net.Socket> {
  return new Promise((resolve, reject) => {
    const socket = net.connect({ host: opts.host, port: opts.port });
    const timer = setTimeout(() => {
      socket.destroy();
      reject(new DeliveryError(`could not connect to ${opts.host}:${opts.port} within ${opts.timeoutMs} ms`, false));
    }, opts.timeoutMs);
    socket.once('connect', () => { clearTimeout(timer); resolve(socket); });
    socket.once('error', (e) => { clearTimeout(timer); reject(new DeliveryError(`${opts.host}:${opts.port}: ${e.message}`, false)); });
  });
}

/** Hands `message` (7-bit text, any line endings) to the relay for the envelope's recipients. */
export async function sendMail(opts: SmtpOptions, envelope: Envelope, message: string): Promise<void> {
  const from = checkAddress(envelope.from);
  const to = envelope.to.map(checkAddress);
  if (!/^[A-Za-z0-9.-]+$|^\[[0-9A-Fa-f:.]+\]$/.test(opts.helo)) throw new DeliveryError(`bad EHLO name ${JSON.stringify(opts.helo)}`, true);
  const socket = await connect(opts);
  const replies = new ReplyReader(socket);

  const expect = async (what: string, ok: (code: number) => boolean): Promise<Reply> => {
    const r = await replies.next(opts.timeoutMs, what);
    if (!ok(r.code)) throw new DeliveryError(`SMTP ${what}: ${r.code} ${r.text}`.slice(0, 600), r.code >= 500);
    return r;
  };
  const command = (line: string): void => {
    socket.write(line + '\r\n', 'latin1');
  };

  try {
    await expect('greeting', (c) => c === 220);
    command(`EHLO ${opts.helo}`);
    const ehlo = await replies.next(opts.timeoutMs, 'EHLO');
    if (ehlo.code !== 250) {
      // RFC 5321 4.1.4: a server that does not know EHLO answers 5xx; fall back to HELO.
      if (ehlo.code < 500) throw new DeliveryError(`SMTP EHLO: ${ehlo.code} ${ehlo.text}`, false);
      command(`HELO ${opts.helo}`);
      await expect('HELO', (c) => c === 250);
    }
    command(`MAIL FROM:<${from}>`);
    await expect('MAIL FROM', (c) => c === 250);
    for (const rcpt of to) {
      command(`RCPT TO:<${rcpt}>`);
      await expect('RCPT TO', (c) => c === 250 || c === 251);
    }
    command('DATA');
    await expect('DATA', (c) => c === 354);
    socket.write(dataBlock(message));
    await expect('end of data', (c) => c === 250);
    // The message is accepted; a rude goodbye does not change that.
    command('QUIT');
    await replies.next(opts.timeoutMs, 'QUIT').catch(() => undefined);
  } finally {
    socket.destroy();
  }
}
