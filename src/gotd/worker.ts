/**
 * What every session worker (reader or writer) does around the Git engine:
 * take exactly one session message and the client socket from the parent,
 * say {"ok":true} to gotsh, run the service with an inactivity timeout and
 * an input cap, report the outcome, and exit.  The worker is confined
 * (see src/sys/confine.ts) before any of this runs.
 */
import * as net from 'node:net';
import { Transform, type Duplex, type Readable, type TransformCallback, type Writable } from 'node:stream';
import { errPkt } from '../git/pktline';
import { encodeLine } from '../ipc/line';
import { fromWorkerSchema, parseMessage, sessionSchema, type FromWorker, type SessionMsg } from '../ipc/messages';
import { httpResponse } from './http_head';

export interface Conn { input: Readable; output: Writable }

export interface ServiceResult {
  ok: boolean;
  error?: string;
  bytesIn: number;
  bytesOut: number;
  updates?: Array<{ ref: string; old: string; new: string; ok: boolean; reason?: string }>;
  pushOptions?: string[];
}

export interface Service<R> {
  /** Opens the repository; throws when it cannot be served. */
  open(msg: SessionMsg): R;
  serve(repo: R, conn: Conn, msg: SessionMsg, log: (line: string) => void): Promise<ServiceResult>;
  /** How long the engine may keep going after the client vanished (a writer finishing a ref update). */
  graceMs: number;
}

/** Passes bytes through until more than max have come in, then fails. */
class InputCap extends Transform {
  private seen = 0;
  constructor(private readonly max: number, private readonly over: () => void) { super(); }
  override _transform(chunk: Buffer, _enc: BufferEncoding, cb: TransformCallback): void {
    this.seen += chunk.length;
    if (this.seen > this.max) { this.over(); cb(new Error('input too large')); return; }
    cb(null, chunk);
  }
}

function log(line: string): void {
  process.stderr.write(line.replace(/[\r\n]+/g, ' ') + '\n');
}

function report(msg: FromWorker, then: () => void): void {
  const checked = parseMessage(fromWorkerSchema, msg);
  if (!checked || !process.connected) { then(); return; }
  process.send!(checked, undefined, undefined, () => then());
}

function exitSoon(code: number): void {
  setTimeout(() => process.exit(code), 10).unref();
}

export function runWorker<R>(service: Service<R>): void {
  if (!process.send) { log('gotd worker: must be started by gotd'); process.exit(1); }

  process.once('message', (raw: unknown, handle: unknown) => {
    const msg = parseMessage(sessionSchema, raw);
    if (!msg || !(handle instanceof net.Socket)) {
      log('malformed session message from parent');
      if (handle instanceof net.Socket) handle.destroy();
      process.exit(2);
    }
    const sock = handle;
    report({ type: 'started' }, () => undefined);
    sock.allowHalfOpen = true; // the client may stop sending before it has read everything
    sock.on('error', () => sock.destroy());
    sock.on('close', () => setTimeout(() => { log('client gone; exiting'); process.exit(1); }, service.graceMs));

    let repo: R;
    try {
      repo = service.open(msg);
    } catch (e) {
      log(`cannot open repository: ${(e as Error).message}`);
      sock.end(msg.websocket ? httpResponse(503, 'repository not available', { 'Retry-After': '5' }) : encodeLine({ ok: false, error: 'repository not available' }));
      report({ type: 'done', ok: false, error: 'cannot open repository', bytesIn: 0, bytesOut: 0, updates: [], pushOptions: [] }, () => exitSoon(1));
      return;
    }

    // What the engine reads and writes: the socket itself, or WebSocket framing on it.
    const conn: Duplex = msg.websocket ? webSocket(sock, msg.websocket.accept) : sock;
    conn.on('error', () => conn.destroy());
    // Set after the WebSocket takes the socket (ws clears socket timeouts).
    sock.setTimeout(msg.requestTimeoutMs, () => {
      log(`no traffic for ${msg.requestTimeoutMs / 1000}s (request_timeout); closing`);
      sock.destroy();
    });
    const input = new InputCap(msg.maxInputBytes, () => {
      log(`client sent more than ${msg.maxInputBytes} bytes; closing`);
      conn.end(errPkt('input too large'));
      setTimeout(() => { conn.destroy(); sock.destroy(); }, 1000).unref();
    });
    input.on('error', () => { /* the engine sees the stream end */ });
    conn.pipe(input);
    if (!msg.websocket) sock.write(encodeLine({ ok: true }));

    service.serve(repo, { input, output: conn }, msg, log).then(
      (r) => finish(conn, sock, { type: 'done', ok: r.ok, error: r.error, bytesIn: r.bytesIn, bytesOut: r.bytesOut, updates: r.updates ?? [], pushOptions: r.pushOptions ?? [] }),
      (e: unknown) => {
        log(`engine failure: ${(e as Error).stack ?? String(e)}`);
        finish(conn, sock, { type: 'done', ok: false, error: `internal error: ${(e as Error).message}`, bytesIn: 0, bytesOut: 0, updates: [], pushOptions: [] });
      });
  });
  // Nothing arrives: the parent went away or is broken; do not linger.
  setTimeout(() => { if (process.listenerCount('message') > 0) { log('no session within 30s'); process.exit(2); } }, 30_000).unref();
  process.on('disconnect', () => exitSoon(1));
  report({ type: 'ready' }, () => undefined);
}

/** The WebSocket side, loaded only when needed (it brings in the ws module). */
function webSocket(sock: net.Socket, accept: string): Duplex {
  // eslint-disable-next-line @typescript-eslint/no-require-imports
  return (require('./worker_ws') as typeof import('./worker_ws')).webSocketConn(sock, accept);
}

/** Flushes what the engine wrote (through conn), reports, and exits. */
function finish(conn: Duplex, sock: net.Socket, done: FromWorker): void {
  let once = false;
  const after = (): void => {
    if (once) return;
    once = true;
    const ok = done.type === 'done' && done.ok;
    const close = (): void => { conn.destroy(); sock.destroy(); exitSoon(ok ? 0 : 1); };
    // A failed session may have stopped reading a client that is still sending.
    report(done, () => { if (ok) close(); else drain(conn, sock, close); });
  };
  if (conn.destroyed || conn.writableFinished) { after(); return; }
  if (!conn.writableEnded) conn.end();
  conn.once('finish', after);
  conn.once('close', after);
}

/** How long a client still sending (a pack the engine refused) may take to finish before the socket is cut. */
const DRAIN_MS = 5000;

/**
 * Our answer is written and our side shut; a client still sending (say, the
 * rest of a pack the engine refused early) would see its writes fail and
 * could lose that answer (gotsh's copy fails with EPIPE, a TCP socket
 * closed with unread data resets).  So its remaining bytes are read and
 * dropped until it is done, for at most DRAIN_MS.
 */
function drain(conn: Duplex, sock: net.Socket, then: () => void): void {
  if (sock.destroyed || sock.readableEnded) { then(); return; }
  const t = setTimeout(then, DRAIN_MS);
  t.unref?.();
  const done = (): void => { clearTimeout(t); then(); };
  sock.once('end', done);
  sock.once('close', done);
  conn.unpipe();
  conn.on('data', () => { /* dropped */ });
  conn.resume();
}
