/**
 * gotd.sock: created by the parent (as root, before dropping privileges),
 * bound but never listened on in the parent, so that only listen accepts;
 * the parent keeps the handle to give a restarted listen process.
 */
import * as fs from 'node:fs';
import * as net from 'node:net';
import * as path from 'node:path';
import * as util from 'node:util';

/** The bound-but-not-listening handle node's cluster module uses; it is sendable over IPC. */
export interface ServerHandle { fd: number; close(): void }

/** True when a gotd (or anything) is accepting on the socket. */
function answers(sockPath: string): Promise<boolean> {
  return new Promise((resolve) => {
    const c = net.connect(sockPath);
    const done = (v: boolean): void => { c.destroy(); resolve(v); };
    c.once('connect', () => done(true));
    c.once('error', () => done(false));
    setTimeout(() => done(false), 2000).unref();
  });
}

/**
 * Binds the unix socket at sockPath with mode 0666 (who may do what is
 * decided from peer credentials, not file modes).  It is bound under a
 * temporary name and renamed into place, which replaces a stale socket
 * atomically; an existing socket that still answers is not stolen.
 */
export async function createUnixSocket(sockPath: string): Promise<ServerHandle> {
  const dir = path.dirname(sockPath);
  let st: fs.Stats | null = null;
  try { st = fs.lstatSync(sockPath); } catch { /* absent */ }
  if (st) {
    if (!st.isSocket()) throw new Error(`${sockPath} exists and is not a socket`);
    if (await answers(sockPath)) throw new Error(`${sockPath} is in use (is gotd already running?)`);
  }
  const tmp = path.join(dir, `.${path.basename(sockPath)}.${process.pid}`);
  try { fs.unlinkSync(tmp); } catch { /* absent */ }
  const create = (net as unknown as { _createServerHandle(address: string, port: number, addressType: number): unknown })._createServerHandle;
  const handle = create(tmp, -1, -1);
  if (typeof handle === 'number') {
    throw new Error(`cannot create ${sockPath}: ${util.getSystemErrorName(handle)}`);
  }
  try {
    fs.chmodSync(tmp, 0o666);
    fs.renameSync(tmp, sockPath);
  } catch (e) {
    (handle as ServerHandle).close();
    try { fs.unlinkSync(tmp); } catch { /* gone */ }
    throw e;
  }
  return handle as ServerHandle;
}
