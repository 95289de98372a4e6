/**
 * TLS sessions cannot be handed to a worker as a file descriptor (the
 * TLS state and the private key stay in listen), so listen relays their
 * plaintext over a unix socket pair whose other end goes to the worker
 * like any client socket.  Node has no socketpair(); listen connects to
 * itself through a one-shot listening socket in Linux's abstract
 * namespace, and accepts only a connection whose peer is its own process
 * (SO_PEERCRED), since abstract names are visible to every local user.
 */
import * as crypto from 'node:crypto';
import * as net from 'node:net';
import type { Duplex } from 'node:stream';
import { peerOf } from '../sys/peercred';

const PAIR_TIMEOUT_MS = 5000;

/** Two connected unix stream sockets, both paused: [the end to hand off, the end to keep]. */
export function socketPair(): Promise<[net.Socket, net.Socket]> {
  const name = `\0gotd-relay-${process.pid}-${crypto.randomBytes(16).toString('hex')}`;
  return new Promise((resolve, reject) => {
    const server = net.createServer({ pauseOnConnect: true });
    let near: net.Socket | null = null;
    let far: net.Socket | null = null;
    let settled = false;
    const fail = (e: Error): void => {
      if (settled) return;
      settled = true;
      clearTimeout(timer);
      server.close();
      near?.destroy();
      far?.destroy();
      reject(e);
    };
    const check = (): void => {
      if (settled || !far || !near || near.connecting) return;
      settled = true;
      clearTimeout(timer);
      near.pause();
      resolve([near, far]);
    };
    const timer = setTimeout(() => fail(new Error('socket pair: timed out')), PAIR_TIMEOUT_MS);
    server.once('connection', (s) => {
      server.close();
      let pid = -1;
      try { pid = peerOf(s).pid; } catch { /* below */ }
      if (pid !== process.pid) { s.destroy(); fail(new Error(`socket pair: a stranger (pid ${pid}) connected first`)); return; }
      far = s;
      check();
    });
    server.on('error', fail);
    server.listen(name, () => {
      near = net.connect(name);
      near.once('connect', check);
      near.once('error', fail);
    });
  });
}

/** How long the surviving side may take to deliver what it was given once the other has gone. */
const DRAIN_MS = 30_000;

/**
 * Copies bytes both ways between a and b with the streams' own
 * backpressure (pipe), so that a slow side stalls the other instead of
 * filling listen's memory.  An end on one side ends the other once its
 * bytes are delivered; a side that closes without ending (reset, error)
 * takes the other down at once.
 */
export function relay(a: Duplex, b: Duplex): void {
  const gone = (other: Duplex) => (): void => {
    if (!other.writableEnded) other.destroy();
    else setTimeout(() => other.destroy(), DRAIN_MS).unref();
  };
  a.on('close', gone(b));
  b.on('close', gone(a));
  a.on('error', () => a.destroy());
  b.on('error', () => b.destroy());
  a.pipe(b);
  b.pipe(a);
}
