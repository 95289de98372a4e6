/**
 * The worker's side of a WebSocket session: answer the upgrade the parent
 * permitted (101 with the Sec-WebSocket-Accept listen computed) and speak
 * WebSocket framing on the client socket, so that the frame parser, like
 * the Git parser, runs in the confined process.  Loaded only for
 * WebSocket sessions.
 */
import type * as net from 'node:net';
import type { Duplex } from 'node:stream';
import type WebSocketType from 'ws';
import { gitStream, MAX_PAYLOAD } from '../ipc/ws_stream';
import { switchingProtocols } from './web_answers';

/** ws's server-side attach, which its own WebSocketServer uses after writing the 101. */
interface Attachable {
  setSocket(socket: net.Socket, head: Buffer, options: {
    allowSynchronousEvents: boolean; maxPayload: number; maxFragments: number; maxBufferedChunks: number; skipUTF8Validation: boolean;
  }): void;
}

interface ServerSideOptions { autoPong: boolean; maxPendingAutoPongs: number; closeTimeout: number }

/** How long the worker waits for the client's answer to its close frame. */
const CLOSE_TIMEOUT_MS = 10_000;

export function webSocketConn(sock: net.Socket, accept: string): Duplex {
  // ws would look for optional native add-ons; a worker may load none.
  process.env.WS_NO_BUFFER_UTIL = '1';
  process.env.WS_NO_UTF_8_VALIDATE = '1';
  // eslint-disable-next-line @typescript-eslint/no-require-imports
  const WebSocket = require('ws') as typeof WebSocketType;
  sock.write(switchingProtocols(accept));
  // As WebSocketServer does it: a server-side WebSocket with no request of its own.
  const ServerSide = WebSocket as unknown as new (address: null, protocols: undefined, options: ServerSideOptions) => WebSocketType;
  const ws = new ServerSide(null, undefined, { autoPong: true, maxPendingAutoPongs: 60, closeTimeout: CLOSE_TIMEOUT_MS });
  (ws as unknown as Attachable).setSocket(sock, Buffer.alloc(0), {
    allowSynchronousEvents: true,
    maxPayload: MAX_PAYLOAD,
    maxFragments: 1024,
    maxBufferedChunks: 1024,
    skipUTF8Validation: false,
  });
  return gitStream(ws, { onEnd: 'close', socket: sock });
}
