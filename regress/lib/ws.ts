/**
 * Helpers for the WebSocket tests: a gotd with a [websocket] listener,
 * stock git with the installed git-remote-ws(s) on its PATH, raw HTTP
 * upgrade requests (to see exactly what the server answers), secrets
 * files, and a self-signed certificate made with openssl.
 */
import { spawn, spawnSync } from 'node:child_process';
import * as fs from 'node:fs';
import * as net from 'node:net';
import * as path from 'node:path';
import { hashPassword } from '../../src/config/password';
import { connectable, Gotd, IS_ROOT, DAEMON_USER, sleep, type Install } from './daemon';
import { gitEnv, run, type RunResult } from './util';

/** A TCP port nobody listens on right now. */
export function freePort(host = '127.0.0.1'): Promise<number> {
  return new Promise((resolve, reject) => {
    const s = net.createServer();
    s.once('error', reject);
    s.listen(0, host, () => {
      const port = (s.address() as net.AddressInfo).port;
      s.close(() => resolve(port));
    });
  });
}

function tcpOpen(host: string, port: number): Promise<boolean> {
  return new Promise((resolve) => {
    const c = net.connect({ host, port });
    c.once('connect', () => { c.destroy(); resolve(true); });
    c.once('error', () => resolve(false));
  });
}

/**
 * Starts the installed gotd -d -v with a configuration body (user and
 * listen are added), waiting for gotd.sock and the WebSocket port.  tap
 * puts a loader into NODE_OPTIONS of every child; gotd must run without
 * it (its confinement probe would fail), as it would on a real system.
 */
export async function startWsGotd(inst: Install, dir: string, body: string, port: number, opts: { secrets?: string } = {}): Promise<Gotd> {
  const sock = path.join(dir, 'gotd.sock');
  const conf = path.join(dir, 'gotd.conf');
  const user = IS_ROOT ? DAEMON_USER : (process.env.USER ?? 'root');
  fs.writeFileSync(conf, `user = "${user}"\nlisten = "${sock}"\n${body}\n`);
  fs.chmodSync(conf, 0o644);
  const args = ['-u', 'NODE_OPTIONS', inst.gotd, '-d', '-v', '-f', conf, ...(opts.secrets ? ['-s', opts.secrets] : [])];
  const proc = spawn('env', args, { stdio: ['ignore', 'ignore', 'pipe'] });
  const g = new Gotd(proc, sock, conf, inst);
  // Not left behind when the test dies (tap ends a test that runs too long with SIGTERM).
  const kill = (): void => { if (proc.exitCode === null) proc.kill('SIGKILL'); };
  const term = (): void => { kill(); process.exit(1); };
  process.once('exit', kill);
  process.once('SIGTERM', term);
  // A run that starts gotd many times (make stress restarts it) keeps no stale listeners.
  proc.once('exit', () => { process.off('exit', kill); process.off('SIGTERM', term); });
  const t0 = Date.now();
  while (!(await connectable(sock)) || !(await tcpOpen('127.0.0.1', port))) {
    if (proc.exitCode !== null) throw new Error(`gotd exited ${proc.exitCode}:\n${g.log.join('\n')}`);
    if (Date.now() - t0 > 20_000) { proc.kill('SIGKILL'); throw new Error(`gotd did not start:\n${g.log.join('\n')}`); }
    await sleep(50);
  }
  return g;
}

/** A secrets file (mode 0600, root's) with these users' passwords and groups. */
export async function writeSecrets(dir: string, users: Record<string, { password: string; groups?: string[] }>): Promise<string> {
  const file = path.join(dir, 'gotd-secrets.conf');
  const lines: string[] = [];
  for (const [name, u] of Object.entries(users)) {
    lines.push(`[users.${name}]`, `password = "${await hashPassword(u.password)}"`, `groups = ${JSON.stringify(u.groups ?? [])}`, '');
  }
  fs.writeFileSync(file, lines.join('\n'), { mode: 0o600 });
  fs.chmodSync(file, 0o600);
  return file;
}

/** git, with the installed git-remote-ws(s) first on PATH and prompts off. */
export function wsGit(inst: Install, args: string[], opts: { cwd?: string; env?: NodeJS.ProcessEnv; timeoutMs?: number } = {}): Promise<RunResult> {
  const env = gitEnv({ PATH: `${path.join(inst.prefix, 'bin')}:${process.env.PATH ?? '/usr/bin:/bin'}`, ...opts.env });
  return run('git', args, { env, ...(opts.cwd ? { cwd: opts.cwd } : {}), ...(opts.timeoutMs ? { timeout: opts.timeoutMs, killSignal: 'SIGKILL' as const } : {}) });
}

export interface HttpAnswer { status: number; headers: Record<string, string>; body: string; raw: string }

/** The opening handshake of a WebSocket, as a client sends it. */
export function upgradeHead(target: string, extra: Record<string, string> = {}): string {
  const fields: Record<string, string> = {
    Host: 'gotd.test',
    Upgrade: 'websocket',
    Connection: 'Upgrade',
    'Sec-WebSocket-Version': '13',
    'Sec-WebSocket-Key': 'dGhlIHNhbXBsZSBub25jZQ==',
    ...extra,
  };
  return `GET ${target} HTTP/1.1\r\n${Object.entries(fields).map(([k, v]) => `${k}: ${v}\r\n`).join('')}\r\n`;
}

export function basic(user: string, password: string): string {
  return `Basic ${Buffer.from(`${user}:${password}`).toString('base64')}`;
}

/**
 * Sends raw bytes to the WebSocket port and reads the answer's head and
 * body (up to the close, or ms).  from picks the client's address.
 */
export function rawHttp(port: number, request: string | Buffer, opts: { from?: string; host?: string; ms?: number } = {}): Promise<HttpAnswer> {
  return new Promise((resolve) => {
    const c = net.connect({ host: opts.host ?? '127.0.0.1', port, ...(opts.from ? { localAddress: opts.from } : {}) });
    const chunks: Buffer[] = [];
    let done = false;
    const finish = (): void => {
      if (done) return;
      done = true;
      c.destroy();
      const raw = Buffer.concat(chunks).toString('latin1');
      const end = raw.indexOf('\r\n\r\n');
      const lines = (end >= 0 ? raw.slice(0, end) : raw).split('\r\n');
      const headers: Record<string, string> = {};
      for (const l of lines.slice(1)) {
        const i = l.indexOf(':');
        if (i > 0) headers[l.slice(0, i).toLowerCase()] = l.slice(i + 1).trim();
      }
      const m = /^HTTP\/1\.1 ([0-9]{3})/.exec(lines[0] ?? '');
      resolve({ status: m ? Number(m[1]) : 0, headers, body: end >= 0 ? raw.slice(end + 4) : '', raw });
    };
    c.on('data', (b: Buffer) => {
      chunks.push(b);
      // A 101 is followed by the session, which does not end by itself.
      if (/^HTTP\/1\.1 101 /.test(Buffer.concat(chunks).toString('latin1')) && Buffer.concat(chunks).includes('\r\n\r\n')) setTimeout(finish, 300);
    });
    c.on('close', finish);
    c.on('error', finish);
    c.write(request);
    setTimeout(finish, opts.ms ?? 5000).unref();
  });
}

/** A self-signed certificate for 127.0.0.1 and localhost, made with openssl; key readable by root only. */
export function selfSignedCert(dir: string): { cert: string; key: string } {
  const cert = path.join(dir, 'cert.pem');
  const key = path.join(dir, 'key.pem');
  const r = spawnSync('openssl', [
    'req', '-x509', '-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:prime256v1', '-nodes', '-days', '2',
    '-subj', '/CN=gotd test', '-addext', 'subjectAltName=IP:127.0.0.1,DNS:localhost',
    '-keyout', key, '-out', cert,
  ], { encoding: 'utf8' });
  if (r.status !== 0) throw new Error(`openssl req failed: ${r.stderr}`);
  fs.chmodSync(key, 0o600);
  fs.chmodSync(cert, 0o644);
  return { cert, key };
}
