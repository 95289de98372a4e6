/**
 * The WebSocket listener, in the listen process: accepts TCP clients on
 * the [websocket] addresses, applies the per-address rate before anything
 * costs (TLS handshake, reading, password checks), the global connection
 * limit, and auth_timeout for the request head; reads that one bounded
 * head, and hands the client to the parent with the request.  It never
 * answers 101 itself: a worker does, once the parent has decided.
 *
 * Plain ws:// clients are handed over as they are (listen is then out of
 * the data path).  TLS clients stay here, since the TLS state and the key
 * cannot move: listen relays their plaintext to the worker over a unix
 * socket pair (see relay.ts).
 */
import * as net from 'node:net';
import * as tls from 'node:tls';
import type { Duplex } from 'node:stream';
import { parseRate } from '../config/units';
import { DEFAULTS } from '../config/schema';
import type { Rate } from '../config/units';
import { answer, HeadError, httpResponse, MAX_HEAD, parseHead, readHead } from './http_head';
import type { ListenContext, Listener } from './listener';
import { RateLimiter } from './rate';
import { relay, socketPair } from './relay';
import { basicCredentials, clientAddress, normalAddress, webRequest } from './web_request';
import { unauthorized } from './web_answers';

/** Tokens a wrong password costs its address on top of the connection's own. */
export const FAILED_AUTH_COST = 4;

const DEFAULT_RATE = parseRate(DEFAULTS.websocketRate) as Rate;

export class WebFront {
  private readonly limiter: RateLimiter;
  private trustedFor: unknown = null;
  private trusted: net.BlockList | null = null;

  constructor(private readonly ctx: ListenContext) {
    this.limiter = new RateLimiter(() => this.ctx.config().websocket?.rate ?? DEFAULT_RATE);
    setInterval(() => this.limiter.sweep(), 60_000).unref();
  }

  /** Starts accepting on a bound TCP handle from the parent. */
  listen(handle: object, address: string, keyPair: { cert: string; key: string } | null): Listener {
    const secure = keyPair ? tls.createSecureContext({ cert: keyPair.cert, key: keyPair.key, minVersion: 'TLSv1.2' }) : null;
    const server = net.createServer({ pauseOnConnect: true, noDelay: true }, (sock) => this.connection(sock, secure));
    server.on('error', (e) => {
      this.ctx.log.error(`websocket ${address}: ${e.message}`);
      process.exit(1);
    });
    server.listen(handle);
    this.ctx.log.info(`listening for WebSocket clients on ${secure ? 'wss' : 'ws'}://${address}`);
    return { close: () => server.close() };
  }

  /** The auth process refused credentials from this address. */
  failed(address: string): void {
    this.limiter.charge(address, FAILED_AUTH_COST);
  }

  private trustedProxies(): net.BlockList | null {
    const list = this.ctx.config().websocket?.trustedProxies ?? [];
    if (list === this.trustedFor) return this.trusted;
    this.trustedFor = list;
    this.trusted = null;
    if (list.length > 0) {
      const b = new net.BlockList();
      for (const p of list) {
        const type = net.isIP(p.address) === 6 ? 'ipv6' : 'ipv4';
        if (p.prefix === null) b.addAddress(p.address, type); else b.addSubnet(p.address, p.prefix, type);
      }
      this.trusted = b;
    }
    return this.trusted;
  }

  private connection(raw: net.Socket, secure: tls.SecureContext | null): void {
    raw.on('error', () => raw.destroy());
    const peer = normalAddress(raw.remoteAddress ?? '');
    if (!peer) { raw.destroy(); return; }
    const trusted = this.trustedProxies();
    const viaProxy = trusted !== null && trusted.check(peer, net.isIP(peer) === 6 ? 'ipv6' : 'ipv4');
    const stream: Duplex = secure ? new tls.TLSSocket(raw, { isServer: true, secureContext: secure }) : raw;
    stream.on('error', () => stream.destroy());

    // Behind a proxy the client is known only from its request; the rate is applied once that is read.
    if (!viaProxy) {
      const wait = this.limiter.take(peer);
      if (wait > 0) return this.tooFast(stream, peer, wait);
    }
    const max = this.ctx.config().connection.maxConnections;
    if (this.ctx.busy() >= max) {
      this.ctx.log.warn(`websocket ${peer}: refused, ${max} connections already (max_connections)`);
      return answer(stream, httpResponse(503, `too many connections: the server limit of ${max} is reached, try again later`, { 'Retry-After': '5' }));
    }
    const release = this.ctx.hold();
    raw.on('close', release);
    this.serve(stream, raw, peer, viaProxy).then(release, (e: unknown) => {
      release();
      if (e instanceof HeadError && e.status > 0) {
        this.ctx.log.debug(`websocket ${peer}: ${e.status} ${e.message}`);
        answer(stream, httpResponse(e.status, e.message));
      } else {
        this.ctx.log.debug(`websocket ${peer}: ${(e as Error).message}`);
        stream.destroy();
      }
    });
  }

  private tooFast(stream: Duplex, address: string, wait: number): void {
    this.ctx.log.debug(`websocket ${address}: over the rate, retry after ${wait}s`);
    const r = this.ctx.config().websocket?.rate ?? DEFAULT_RATE;
    const per = r.perMs === 1000 ? 's' : r.perMs === 60_000 ? 'min' : 'h';
    answer(stream, httpResponse(429, `too many new connections from ${address} (rate limit ${r.count}/${per}); retry after ${wait} s`, { 'Retry-After': String(wait) }));
  }

  private async serve(stream: Duplex, raw: net.Socket, peer: string, viaProxy: boolean): Promise<void> {
    const config = this.ctx.config();
    const { head, rest } = await readHead(stream, MAX_HEAD, config.connection.authTimeout);
    const h = parseHead(head);
    const address = clientAddress(h, peer, viaProxy ? this.trustedProxies() : null);
    if (viaProxy) {
      const wait = this.limiter.take(address);
      if (wait > 0) return this.tooFast(stream, address, wait);
    }
    const creds = basicCredentials(h);
    if (creds === 'bad') {
      this.limiter.charge(address, FAILED_AUTH_COST);
      return answer(stream, unauthorized());
    }
    const request = webRequest(h, address, creds);
    // A WebSocket client waits for 101 before it sends; bytes now would be lost in the hand-off.
    if (rest.length > 0 || stream.readableLength > 0) throw new HeadError('data sent before the upgrade was answered', 400);
    if (stream === raw) {
      this.ctx.handOff({ type: 'web', request }, raw);
      return;
    }
    const [near, far] = await socketPair();
    relay(stream, far);
    this.ctx.handOff({ type: 'web', request }, near);
  }
}
