/**
 * The listen process: owns the listening sockets, accepts clients, checks
 * the global connection limit, reads only the bounded first request and
 * hands each client's socket to the parent.  Listener modules plug in
 * below: the unix socket (listen_unix.ts) now, a WebSocket listener later.
 */
import type * as net from 'node:net';
import { validateConfig } from '../config/validate';
import type { Config } from '../config/schema';
import { fromListenSchema, parseMessage, toListenSchema, type FromListen } from '../ipc/messages';
import { loadPeercred } from '../sys/peercred';
import { childLog } from './log';
import type { ListenContext, Listener } from './listener';
import { startUnixListener } from './listen_unix';
import { WebFront } from './listen_ws';

const log = childLog('listen');

function main(): void {
  if (!process.send) { process.stderr.write('gotd listen: must be started by gotd\n'); process.exit(1); }
  try {
    loadPeercred();
  } catch (e) {
    // Fail closed: without SO_PEERCRED there is no knowing who connected.
    log.error(`${(e as Error).message}; refusing to listen`);
    process.exit(1);
  }

  let config: Config | null = null;
  let daemonUid = -1;
  let parentSessions = 0;
  let held = 0;
  const listeners: Listener[] = [];
  let web: WebFront | null = null;

  const ctx: ListenContext = {
    config: () => config!,
    daemonUid: () => daemonUid,
    busy: () => held + parentSessions,
    hold: () => {
      held++;
      let done = false;
      return () => { if (!done) { done = true; held--; } };
    },
    handOff: (msg, socket) => {
      const checked = parseMessage(fromListenSchema, msg);
      if (!checked) { socket.destroy(); return; }
      process.send!(checked, socket as net.Socket, { keepOpen: false }, (err) => {
        if (err) { log.error(`hand-off failed: ${err.message}`); socket.destroy(); }
      });
    },
    log,
  };

  function send(msg: FromListen): void {
    process.send!(msg);
  }

  process.on('message', (raw: unknown, handle: unknown) => {
    const msg = parseMessage(toListenSchema, raw);
    if (!msg) { log.error('malformed message from parent ignored'); return; }
    switch (msg.type) {
      case 'config':
        try {
          config = validateConfig(msg.config);
          daemonUid = msg.daemonUid;
        } catch (e) {
          log.error(`configuration from parent refused, keeping the old one: ${(e as Error).message}`);
        }
        break;
      case 'server':
        if (!config || typeof handle !== 'object' || handle === null) { log.error('listening socket without configuration ignored'); return; }
        listeners.push(startUnixListener(ctx, handle));
        log.info(`listening on ${msg.path}`);
        send({ type: 'listening', path: msg.path });
        break;
      case 'websocket':
        if (!config || typeof handle !== 'object' || handle === null) { log.error('WebSocket socket without configuration'); process.exit(3); }
        web ??= new WebFront(ctx);
        listeners.push(web.listen(handle, msg.address, msg.tls));
        break;
      case 'failed':
        web?.failed(msg.address);
        break;
      case 'load':
        parentSessions = msg.sessions;
        break;
      case 'stop':
        for (const l of listeners.splice(0)) l.close();
        break;
    }
  });
  process.on('disconnect', () => process.exit(0));
  send({ type: 'ready' });
}

main();
