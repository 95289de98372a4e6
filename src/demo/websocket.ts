/**
 * The WebSocket part of make demo: a port on 127.0.0.1 (8080 when free),
 * and a WebSocket user with a fresh random password in a private secrets
 * file, so that the printed push command works as it is.
 */
import * as crypto from 'node:crypto';
import * as fs from 'node:fs';
import * as net from 'node:net';
import * as path from 'node:path';
import { hashPassword } from '../config/password';

export interface DemoWebSocket { port: number; user: string; password: string; secrets: string; config: string[] }

function portFree(port: number): Promise<number | null> {
  return new Promise((resolve) => {
    const s = net.createServer();
    s.once('error', () => resolve(null));
    s.listen(port, '127.0.0.1', () => {
      const got = (s.address() as net.AddressInfo).port;
      s.close(() => resolve(got));
    });
  });
}

export async function demoWebSocket(dir: string): Promise<DemoWebSocket> {
  const port = (await portFree(8080)) ?? (await portFree(0));
  if (port === null) throw new Error('no free TCP port on 127.0.0.1');
  const user = 'demo';
  const password = crypto.randomBytes(9).toString('base64url');
  const secrets = path.join(dir, 'gotd-secrets.conf');
  fs.writeFileSync(secrets, `# WebSocket users of the gotd demo (written by make demo)\n[users.${user}]\npassword = "${await hashPassword(password)}"\n`, { mode: 0o600 });
  return {
    port, user, password, secrets,
    config: ['[websocket]', `listen = ["127.0.0.1:${port}"]`],
  };
}

/** Resolves once something accepts on 127.0.0.1:port (gotd's listen process). */
export function waitForPort(port: number, ms = 20_000): Promise<void> {
  const t0 = Date.now();
  return new Promise((resolve, reject) => {
    const tick = (): void => {
      const c = net.connect({ host: '127.0.0.1', port });
      c.once('connect', () => { c.destroy(); resolve(); });
      c.once('error', () => { c.destroy(); if (Date.now() - t0 > ms) reject(new Error(`nothing listens on 127.0.0.1:${port}`)); else setTimeout(tick, 100); });
    };
    tick();
  });
}
