/**
 * The [websocket] sockets and TLS files, taken care of by the parent at
 * start-up while it may still be root: ports below 1024 and a key file
 * only root can read work, and neither listen nor a worker ever needs
 * those privileges.  Sockets are bound here but listened on in listen
 * (the same bound-handle hand-over as gotd.sock).
 */
import * as dns from 'node:dns/promises';
import * as fs from 'node:fs';
import * as net from 'node:net';
import * as tls from 'node:tls';
import * as util from 'node:util';
import type { WebSocketConfig } from '../config/schema';
import type { ServerHandle } from './socket';

export interface WebSockets {
  sockets: Array<{ address: string; handle: ServerHandle }>;
  tls: { cert: string; key: string } | null;
}

/** libuv's UV_TCP_IPV6ONLY: "[::]:443" next to "0.0.0.0:443" must not clash. */
const IPV6_ONLY = 1;

type CreateHandle = (address: string, port: number, addressType: number, fd?: number, flags?: number) => unknown;

function bindTcp(ip: string, port: number): ServerHandle {
  const create = (net as unknown as { _createServerHandle: CreateHandle })._createServerHandle;
  const v6 = net.isIP(ip) === 6;
  const handle = create(ip, port, v6 ? 6 : 4, undefined, v6 ? IPV6_ONLY : 0);
  const shown = v6 ? `[${ip}]:${port}` : `${ip}:${port}`;
  if (typeof handle === 'number') throw new Error(`websocket: cannot listen on ${shown}: ${util.getSystemErrorName(handle)}`);
  // libuv defers EADDRINUSE from bind to listen; listen() on the unbound socket would then
  // pick a random port on every interface.  A socket that is not bound where asked is refused now.
  const bound: { address?: string; port?: number } = {};
  const err = (handle as { getsockname(out: object): number }).getsockname(bound);
  if (err !== 0 || (port !== 0 && bound.port !== port)) {
    (handle as ServerHandle).close();
    throw new Error(`websocket: cannot listen on ${shown}: ${err !== 0 ? util.getSystemErrorName(err) : 'EADDRINUSE'}`);
  }
  return handle as ServerHandle;
}

async function addressesOf(host: string): Promise<string[]> {
  if (net.isIP(host)) return [host];
  try {
    const all = await dns.lookup(host, { all: true, verbatim: true });
    return [...new Set(all.map((a) => a.address))];
  } catch (e) {
    throw new Error(`websocket: listen: cannot resolve ${host}: ${(e as NodeJS.ErrnoException).code ?? (e as Error).message}`);
  }
}

/** Reads and checks the certificate and key (a bad pair is found now, not at the first client). */
export function loadTls(files: { cert: string; key: string }): { cert: string; key: string } {
  let cert: string, key: string;
  try {
    cert = fs.readFileSync(files.cert, 'utf8');
    key = fs.readFileSync(files.key, 'utf8');
  } catch (e) {
    throw new Error(`websocket: tls: ${(e as Error).message}`);
  }
  try {
    tls.createSecureContext({ cert, key });
  } catch (e) {
    throw new Error(`websocket: tls: ${files.cert} and ${files.key} are not a usable certificate and key: ${(e as Error).message}`);
  }
  return { cert, key };
}

/** Binds every [websocket] listen address and loads the TLS files. */
export async function bindWebSockets(w: WebSocketConfig): Promise<WebSockets> {
  const keyPair = w.tls ? loadTls(w.tls) : null;
  const sockets: WebSockets['sockets'] = [];
  try {
    for (const { host, port } of w.listen) {
      for (const ip of await addressesOf(host)) {
        sockets.push({ address: net.isIP(ip) === 6 ? `[${ip}]:${port}` : `${ip}:${port}`, handle: bindTcp(ip, port) });
      }
    }
  } catch (e) {
    for (const s of sockets) s.handle.close();
    throw e;
  }
  return { sockets, tls: keyPair };
}

/** True when a reload keeps what only a restart can change: the addresses and TLS files. */
export function sameWebListen(a: WebSocketConfig | null, b: WebSocketConfig | null): boolean {
  return JSON.stringify(a ? [a.listen, a.tls] : null) === JSON.stringify(b ? [b.listen, b.tls] : null);
}
