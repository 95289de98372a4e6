/**
 * SO_PEERCRED through the tiny native addon in src/sys/peercred/.  gotd
 * refuses to start without it: there is no fallback way to learn who is
 * connected, and guessing would be failing open.
 */
import * as fs from 'node:fs';
import * as path from 'node:path';
import type * as net from 'node:net';
import type { Peer } from '../ipc/messages';

/** Where the build (and make install) puts the addon: next to this file. */
export const ADDON = path.join(__dirname, 'peercred', 'peercred.node');

interface Addon { peercred(fd: number): { uid: number; gid: number; pid: number } }

let addon: Addon | null = null;

/** Loads the addon; throws an error that says how to build it. */
export function loadPeercred(): void {
  if (addon) return;
  if (!fs.existsSync(ADDON)) throw new Error(`peer credential helper missing: ${ADDON} (run make)`);
  const mod = { exports: {} as Partial<Addon> };
  process.dlopen(mod, ADDON);
  if (typeof mod.exports.peercred !== 'function') throw new Error(`${ADDON}: not the peercred addon`);
  addon = mod.exports as Addon;
}

/** The file descriptor behind a net.Socket (unix sockets only). */
function fdOf(sock: net.Socket): number {
  const fd = (sock as unknown as { _handle?: { fd?: unknown } })._handle?.fd;
  if (typeof fd !== 'number' || fd < 0) throw new Error('socket has no file descriptor');
  return fd;
}

/** uid, gid and pid of the process at the other end of a unix socket. */
export function peerOf(sock: net.Socket): Peer {
  if (!addon) loadPeercred();
  const c = addon!.peercred(fdOf(sock));
  return { uid: c.uid, gid: c.gid, pid: c.pid };
}
