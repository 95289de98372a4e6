/**
 * The little HTTP/1.1 gotd speaks on its WebSocket port: read one bounded
 * request head (request line and header fields, no body), parse it
 * strictly, and write short, final responses.  Everything after a head is
 * either a WebSocket (answered by a session worker) or nothing: every
 * other answer closes the connection.  A strict parser with small limits
 * is less to attack than a general one.
 */
import type { Duplex } from 'node:stream';

/** Largest request head (request line, fields, blank line). */
export const MAX_HEAD = 8192;
/** Most header fields in one request. */
export const MAX_FIELDS = 64;

export class HeadError extends Error {
  override name = 'HeadError';
  /** The HTTP status to answer with (408 timeout, 431 too large, 400 otherwise); 0: say nothing. */
  constructor(message: string, readonly status: number) { super(message); }
}

export interface RequestHead {
  method: string;
  target: string;
  version: 'HTTP/1.0' | 'HTTP/1.1';
  /** Field values by lower-case name, in order of appearance. */
  fields: Map<string, string[]>;
}

const END = Buffer.from('\r\n\r\n');

/**
 * Reads up to the blank line that ends a request head, within max bytes and
 * timeoutMs.  Leaves the stream paused; bytes after the head come back as rest.
 */
export function readHead(stream: Duplex, max: number, timeoutMs: number): Promise<{ head: Buffer; rest: Buffer }> {
  return new Promise((resolve, reject) => {
    let buf = Buffer.alloc(0);
    const timer = setTimeout(() => done(new HeadError('no complete request in time', 408)), timeoutMs);

    function done(err: HeadError | null, head?: Buffer, rest?: Buffer): void {
      clearTimeout(timer);
      stream.off('data', onData);
      stream.off('end', onEnd);
      stream.off('close', onEnd);
      stream.off('error', onError);
      stream.pause();
      if (err) reject(err); else resolve({ head: head!, rest: rest! });
    }
    function onData(b: Buffer): void {
      // Search only where the end can newly be: the last 3 old bytes and the new ones.
      const from = Math.max(0, buf.length - 3);
      buf = Buffer.concat([buf, b]);
      const end = buf.indexOf(END, from);
      if (end >= 0 && end + 4 <= max) { done(null, buf.subarray(0, end + 4), buf.subarray(end + 4)); return; }
      if (buf.length >= max) done(new HeadError(`request head longer than ${max} bytes`, 431));
    }
    function onEnd(): void { done(new HeadError('connection closed before a complete request', 0)); }
    function onError(e: Error): void { done(new HeadError(`connection error: ${e.message}`, 0)); }

    stream.on('data', onData);
    stream.on('end', onEnd);
    stream.on('close', onEnd);
    stream.on('error', onError);
    stream.resume();
  });
}

const TOKEN = /^[!#$%&'*+.^_`|~0-9A-Za-z-]+$/;
// Visible ASCII, spaces and tabs inside; no control characters, no obs-fold.
const FIELD_VALUE = /^[\t\x20-\x7e\x80-\xff]*$/;
const TARGET = /^\/[\x21-\x7e]*$/;

/** Parses a head from readHead; throws HeadError(400) for anything not plainly HTTP/1.x. */
export function parseHead(head: Buffer): RequestHead {
  const text = head.subarray(0, head.length - 4).toString('latin1');
  const lines = text.split('\r\n');
  const m = /^([A-Z]{1,16}) (\S{1,4096}) (HTTP\/1\.[01])$/.exec(lines[0]!);
  if (!m) throw new HeadError('bad request line', 400);
  if (lines.length - 1 > MAX_FIELDS) throw new HeadError(`more than ${MAX_FIELDS} header fields`, 431);
  const fields = new Map<string, string[]>();
  for (const line of lines.slice(1)) {
    if (line.includes('\n') || line.includes('\r')) throw new HeadError('bare CR or LF in the head', 400);
    const colon = line.indexOf(':');
    const name = colon > 0 ? line.slice(0, colon) : '';
    if (!TOKEN.test(name)) throw new HeadError('bad header field', 400);
    const value = line.slice(colon + 1).replace(/^[ \t]+|[ \t]+$/g, '');
    if (!FIELD_VALUE.test(value)) throw new HeadError(`bad value of header field ${name}`, 400);
    const key = name.toLowerCase();
    fields.set(key, [...(fields.get(key) ?? []), value]);
  }
  if (!TARGET.test(m[2]!)) throw new HeadError('request target must be a path', 400);
  return { method: m[1]!, target: m[2]!, version: m[3] as RequestHead['version'], fields };
}

/** The one value of a field; throws when it is given more than once. */
export function field(h: RequestHead, name: string): string | undefined {
  const v = h.fields.get(name);
  if (!v) return undefined;
  if (v.length > 1) throw new HeadError(`header field ${name} given more than once`, 400);
  return v[0];
}

/** The comma-separated tokens of a field such as Connection, in lower case. */
export function tokens(h: RequestHead, name: string): string[] {
  return (h.fields.get(name) ?? []).flatMap((v) => v.split(',')).map((s) => s.trim().toLowerCase()).filter(Boolean);
}

const REASONS: Record<number, string> = {
  400: 'Bad Request', 401: 'Unauthorized', 403: 'Forbidden', 404: 'Not Found', 405: 'Method Not Allowed',
  408: 'Request Timeout', 426: 'Upgrade Required', 429: 'Too Many Requests', 431: 'Request Header Fields Too Large',
  500: 'Internal Server Error', 503: 'Service Unavailable',
};

/** A complete response that ends the connection: status, a one-line plain-text body, and extra fields. */
export function httpResponse(status: number, body: string, extra: Record<string, string> = {}): Buffer {
  const text = body.replace(/[\r\n]+/g, ' ').slice(0, 1000) + '\n';
  const lines = [
    `HTTP/1.1 ${status} ${REASONS[status] ?? 'Error'}`,
    ...Object.entries(extra).map(([k, v]) => `${k}: ${v}`),
    'Content-Type: text/plain; charset=utf-8',
    `Content-Length: ${Buffer.byteLength(text)}`,
    'Cache-Control: no-store',
    'Connection: close',
    '', '',
  ];
  return Buffer.concat([Buffer.from(lines.join('\r\n'), 'latin1'), Buffer.from(text, 'utf8')]);
}

/** How long a refused client may take to read why before the connection is cut. */
export const LINGER_MS = 2000;

/**
 * Sends a final response and closes politely: the client's unread bytes are
 * drained (closing over them would reset the connection and could lose the
 * answer), and the socket is cut after LINGER_MS whatever the client does.
 */
export function answer(sock: Duplex, response: Buffer): void {
  if (sock.destroyed) return;
  sock.on('error', () => sock.destroy());
  sock.on('end', () => sock.destroy());
  sock.on('data', () => undefined);
  sock.end(response);
  sock.resume();
  setTimeout(() => sock.destroy(), LINGER_MS).unref();
}
