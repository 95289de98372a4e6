/**
 * What a WebSocket client asks for, read from its request head:
 * "GET /REPO?service=git-upload-pack" with an Upgrade, HTTP Basic
 * credentials, the Git-Protocol header, and (behind a trusted proxy)
 * the client's address from X-Forwarded-For.  Nothing here decides
 * access; it only turns the head into the request the parent decides on.
 */
import * as crypto from 'node:crypto';
import * as net from 'node:net';
import { SERVICES, type Service, type WebRequest } from '../ipc/messages';
import { field, HeadError, tokens, type RequestHead } from './http_head';

const WS_GUID = '258EAFA5-E914-47DA-95CA-C5AB0DC85B11';

/** Sec-WebSocket-Accept for a client's key (RFC 6455, 4.2.2). */
export function acceptFor(key: string): string {
  return crypto.createHash('sha1').update(key + WS_GUID).digest('base64');
}

export type Credentials = { user: string; password: string } | null;

/**
 * HTTP Basic credentials (RFC 7617), or null when none were sent.  Throws
 * 'bad' for anything else in Authorization: the client then hears 401, as
 * for a wrong password.
 */
export function basicCredentials(h: RequestHead): Credentials | 'bad' {
  const all = h.fields.get('authorization');
  if (!all) return null;
  if (all.length !== 1) return 'bad';
  const m = /^Basic +([A-Za-z0-9+/]{1,2000}={0,2})$/i.exec(all[0]!);
  if (!m) return 'bad';
  const raw = Buffer.from(m[1]!, 'base64');
  if (raw.toString('base64').replace(/=+$/, '') !== m[1]!.replace(/=+$/, '')) return 'bad';
  const text = new TextDecoder('utf-8', { fatal: false }).decode(raw);
  const colon = text.indexOf(':');
  if (colon <= 0) return 'bad';
  const user = text.slice(0, colon);
  const password = text.slice(colon + 1);
  // eslint-disable-next-line no-control-regex
  if (user.length > 256 || password.length > 1024 || /[\x00-\x1f\x7f\ufffd]/.test(user)) return 'bad';
  return { user, password };
}

/** The repository path of the target, percent-decoded, without the leading "/". */
function repoOf(path: string): string {
  let name: string;
  try {
    name = decodeURIComponent(path);
  } catch {
    throw new HeadError('bad percent-encoding in the path', 400);
  }
  return name.slice(1, 1025);
}

/**
 * The client's address: the peer's, or, when the peer is a trusted proxy,
 * the last address in X-Forwarded-For that is not itself a trusted proxy.
 */
export function clientAddress(h: RequestHead, peer: string, trusted: net.BlockList | null): string {
  if (!trusted || !isTrusted(trusted, peer)) return peer;
  const hops = (h.fields.get('x-forwarded-for') ?? []).flatMap((v) => v.split(',')).map((s) => s.trim());
  for (let i = hops.length - 1; i >= 0; i--) {
    const a = normalAddress(hops[i]!);
    if (net.isIP(a) === 0) throw new HeadError('bad X-Forwarded-For from a trusted proxy', 400);
    if (!isTrusted(trusted, a)) return a;
  }
  return hops.length > 0 ? normalAddress(hops[0]!) : peer;
}

function isTrusted(list: net.BlockList, a: string): boolean {
  const family = net.isIP(a);
  return family !== 0 && list.check(a, family === 6 ? 'ipv6' : 'ipv4');
}

/** "::ffff:1.2.3.4" is 1.2.3.4; brackets and zone ids go. */
export function normalAddress(a: string): string {
  let s = a.replace(/^\[|\]$/g, '').replace(/%.*$/, '');
  if (/^::ffff:[0-9.]+$/i.test(s)) s = s.slice(7);
  return s;
}

/**
 * Turns a parsed head into the request for the parent.  Throws HeadError
 * for requests that cannot be Git over WebSocket whoever sends them
 * (wrong method, an unknown service).  Credentials are not judged here.
 */
export function webRequest(h: RequestHead, address: string, creds: Exclude<Credentials, null> | null): WebRequest {
  if (h.method !== 'GET') throw new HeadError('only GET', 405);
  const q = h.target.indexOf('?');
  const path = q >= 0 ? h.target.slice(0, q) : h.target;
  const query = new URLSearchParams(q >= 0 ? h.target.slice(q + 1) : '');
  // No service named is a read: whoever probes a path without one still hears the answer for it.
  const services = query.has('service') ? query.getAll('service') : ['git-upload-pack'];
  if (services.length !== 1 || !(SERVICES as readonly string[]).includes(services[0]!)) {
    throw new HeadError('name the service: ?service=git-upload-pack or ?service=git-receive-pack', 400);
  }
  const protocol = field(h, 'git-protocol') ?? '';
  return {
    service: services[0] as Service,
    repo: repoOf(path),
    protocol: protocol.slice(0, 256),
    user: creds?.user ?? null,
    password: creds?.password ?? '',
    address,
    accept: handshakeAccept(h),
  };
}

/** Sec-WebSocket-Accept when the head is a valid WebSocket opening handshake (RFC 6455, 4.2.1), else null. */
function handshakeAccept(h: RequestHead): string | null {
  if (h.version !== 'HTTP/1.1') return null;
  if (!tokens(h, 'upgrade').includes('websocket') || !tokens(h, 'connection').includes('upgrade')) return null;
  const version = h.fields.get('sec-websocket-version');
  const key = h.fields.get('sec-websocket-key');
  if (version?.length !== 1 || version[0] !== '13' || key?.length !== 1) return null;
  if (!/^[A-Za-z0-9+/]{22}==$/.test(key[0]!)) return null;
  return acceptFor(key[0]!);
}
