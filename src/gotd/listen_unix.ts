/**
 * The unix socket listener (gotd.sock): accepts, asks the kernel who
 * connected (SO_PEERCRED), reads the one bounded request line within
 * auth_timeout, and passes socket and request to the parent.  Nothing the
 * client says about itself is believed except through auth.
 */
import * as net from 'node:net';
import { clientRequestSchema, MAX_REQUEST, parseMessage, type Peer } from '../ipc/messages';
import { encodeLine, parseJson, readLine } from '../ipc/line';
import { peerOf } from '../sys/peercred';
import type { ListenContext, Listener } from './listener';

/** Accept queue: a unix socket whose queue is full fails connect() at once, unlike TCP, which retries. */
const BACKLOG = 4096;

/** How long a refused client may take to read why. */
const LINGER_MS = 2000;

export function refuse(sock: net.Socket, error: string): void {
  sock.end(encodeLine({ ok: false, error }));
  setTimeout(() => sock.destroy(), LINGER_MS).unref();
}

async function serve(ctx: ListenContext, sock: net.Socket, peer: Peer): Promise<void> {
  const { line, rest } = await readLine(sock, MAX_REQUEST, ctx.config().connection.authTimeout);
  if (rest.length > 0) return refuse(sock, 'protocol error: data after the request (wait for the reply)');
  const request = parseMessage(clientRequestSchema, parseJson(line));
  if (!request) return refuse(sock, 'protocol error: bad request');
  if (request.type === 'control') {
    if (peer.uid !== 0 && peer.uid !== ctx.daemonUid()) {
      ctx.log.info(`control request from uid ${peer.uid} refused`);
      return refuse(sock, 'permission denied: only root and the daemon\'s user may control gotd');
    }
    return ctx.handOff({ type: 'control', peer, request }, sock);
  }
  ctx.handOff({ type: 'client', peer, request }, sock);
}

export function startUnixListener(ctx: ListenContext, handle: object): Listener {
  const server = net.createServer({ pauseOnConnect: true }, (sock) => {
    sock.on('error', () => sock.destroy());
    const max = ctx.config().connection.maxConnections;
    if (ctx.busy() >= max) {
      ctx.log.warn(`connection refused: ${max} connections already (max_connections)`);
      return refuse(sock, `too many connections: the server limit of ${max} is reached, try again later`);
    }
    const release = ctx.hold();
    sock.on('close', release);
    let peer: Peer;
    try {
      peer = peerOf(sock);
    } catch (e) {
      ctx.log.error(`peer credentials: ${(e as Error).message}`);
      sock.destroy();
      return;
    }
    // A handed-off socket never emits 'close' here (its handle is gone), so release then too.
    serve(ctx, sock, peer).then(release, (e: unknown) => {
      ctx.log.debug(`uid ${peer.uid}: ${(e as Error).message}`);
      refuse(sock, (e as Error).message);
    });
  });
  server.on('error', (e) => {
    ctx.log.error(`unix socket: ${e.message}`);
    process.exit(1);
  });
  // A burst of clients waits in the kernel's queue rather than failing with EAGAIN (the kernel caps it at somaxconn).
  server.listen(handle, BACKLOG);
  return { close: () => server.close() };
}
