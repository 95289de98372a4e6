/**
 * What a listener module (the unix socket now, the WebSocket listener
 * later) gets from the listen process, and what it gives back.
 */
import type * as net from 'node:net';
import type { Config } from '../config/schema';
import type { FromListen } from '../ipc/messages';
import type { Log } from './log';

export interface ListenContext {
  config(): Config;
  /** uid gotd runs as: with root, the only one that may use gotctl. */
  daemonUid(): number;
  /** Connections being read here plus sessions running in the parent. */
  busy(): number;
  /** Counts a connection until the returned function is called (idempotent). */
  hold(): () => void;
  /** Passes a client whose request has been read, and its socket, to the parent. */
  handOff(msg: Extract<FromListen, { type: 'client' | 'control' | 'web' }>, socket: net.Socket): void;
  log: Log;
}

export interface Listener {
  /** Stops accepting; connections already handed off are not affected. */
  close(): void;
}
