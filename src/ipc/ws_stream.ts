/**
 * Git's byte stream over one WebSocket, the same at both ends (the
 * session worker and git-remote-ws):
 *
 * - bytes travel in binary messages, split anywhere (at most MAX_MESSAGE
 *   bytes each); message boundaries mean nothing to Git;
 * - an empty binary message says "no more bytes from me": the half-close
 *   ssh and pipes have and WebSocket lacks (git closes its end after a
 *   push's pack and still waits for report-status);
 * - the close handshake ends the session; the server starts it when it is
 *   done, after its last byte.
 *
 * Writes complete when the bytes are handed to the socket, so a slow peer
 * stalls the writer rather than filling memory; reading pauses the
 * socket when the consumer does not keep up.
 */
import { Duplex } from 'node:stream';
import type WebSocket from 'ws';

/** Largest message either end sends. */
export const MAX_MESSAGE = 64 * 1024;
/** Largest message either end accepts (ws maxPayload). */
export const MAX_PAYLOAD = 1024 * 1024;

/** Close codes (RFC 6455, 7.4.1). */
export const CLOSE_NORMAL = 1000;
const CLOSE_PROTOCOL = 1002;
const CLOSE_UNSUPPORTED = 1003;

export interface GitStreamOptions {
  /** What ending the writable side does: close the WebSocket (server) or send the end marker (client). */
  onEnd: 'close' | 'marker';
  /**
   * The socket under the WebSocket, when the caller attached it: its
   * close ends the input even when it came before ws was listening.
   */
  socket?: { destroyed: boolean; once(event: 'close', f: () => void): unknown };
}

export function gitStream(ws: WebSocket, opts: GitStreamOptions): Duplex {
  let readEnded = false;
  const endRead = (): void => {
    if (readEnded) return;
    readEnded = true;
    stream.push(null);
  };
  const open = (): boolean => ws.readyState === ws.OPEN;

  const stream = new Duplex({
    allowHalfOpen: true,
    read() {
      if (ws.isPaused) ws.resume();
    },
    write(chunk: Buffer, _enc, cb) {
      // The peer is gone: nobody will read this, and the writer learns of it from its input.
      if (!open()) { cb(); return; }
      if (chunk.length === 0) { cb(); return; }
      for (let at = 0; at < chunk.length; at += MAX_MESSAGE) {
        const last = at + MAX_MESSAGE >= chunk.length;
        ws.send(chunk.subarray(at, at + MAX_MESSAGE), { binary: true }, last ? (err?: Error) => cb(err ?? null) : undefined);
      }
    },
    final(cb) {
      if (!open()) { cb(); return; }
      if (opts.onEnd === 'marker') { ws.send(Buffer.alloc(0), { binary: true }, (err?: Error) => cb(err ?? null)); return; }
      ws.once('close', () => cb());
      ws.close(CLOSE_NORMAL);
    },
    destroy(err, cb) {
      if (ws.readyState !== ws.CLOSED) ws.terminate();
      cb(err);
    },
  });

  ws.on('message', (data: Buffer, isBinary: boolean) => {
    if (readEnded) { ws.close(CLOSE_PROTOCOL, 'data after the end of input'); return; }
    if (!isBinary) { ws.close(CLOSE_UNSUPPORTED, 'binary messages only'); endRead(); return; }
    if (data.length === 0) { endRead(); return; }
    if (!stream.push(data)) ws.pause();
  });
  // The peer's close ends what can be read; what was read stays readable.
  ws.on('close', endRead);
  ws.on('error', () => endRead());
  if (opts.socket) {
    if (opts.socket.destroyed) endRead();
    else opts.socket.once('close', endRead);
  }
  return stream;
}
