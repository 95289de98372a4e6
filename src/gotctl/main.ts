/**
 * gotctl [-f socket] info | stop | reload [-c config]
 * gotctl hash-password
 *
 * Talks to a running gotd over its unix socket; gotd answers only root and
 * its own user (it checks the kernel's peer credentials).
 */
import * as net from 'node:net';
import * as path from 'node:path';
import { hashPassword } from '../config/password';
import { encodeLine, parseJson, readLine } from '../ipc/line';
import { controlReplySchema, parseMessage, type ControlRequest, type Info } from '../ipc/messages';
import { getopt, last, UsageError } from '../util/getopt';

const USAGE = 'usage: gotctl [-f socket] info | stop | reload [-c config]\n       gotctl hash-password';
const DEFAULT_SOCKET = '/var/run/gotd.sock';
const REPLY_TIMEOUT_MS = 60_000;

function die(msg: string): never {
  process.stderr.write(`gotctl: ${msg}\n`);
  process.exit(1);
}

function usage(msg?: string): never {
  process.stderr.write(`${msg ? `gotctl: ${msg}\n` : ''}${USAGE}\n`);
  process.exit(1);
}

/** One line from stdin, without its newline. */
function readPassword(): Promise<string> {
  return new Promise((resolve, reject) => {
    const chunks: Buffer[] = [];
    let size = 0;
    const done = (): void => {
      process.stdin.pause();
      const all = Buffer.concat(chunks);
      const nl = all.indexOf(0x0a);
      resolve((nl >= 0 ? all.subarray(0, nl) : all).toString('utf8'));
    };
    process.stdin.on('data', (b: Buffer) => {
      chunks.push(b);
      size += b.length;
      if (b.includes(0x0a) || size > 65536) { process.stdin.removeAllListeners('data'); done(); }
    });
    process.stdin.on('end', done);
    process.stdin.on('error', reject);
  });
}

function age(ms: number): string {
  const s = Math.floor(ms / 1000);
  if (s < 60) return `${s}s`;
  if (s < 3600) return `${Math.floor(s / 60)}m${s % 60}s`;
  return `${Math.floor(s / 3600)}h${Math.floor((s % 3600) / 60)}m`;
}

function printInfo(i: Info): void {
  const layers = [
    i.layers.permissionModel && (i.layers.permissionModelWriters ? 'permission model' : 'permission model (readers)'),
    i.layers.bwrap && 'bubblewrap',
    i.layers.unprivilegedUser && 'unprivileged user',
    i.layers.resourceLimits && 'resource limits',
  ].filter(Boolean).join(', ');
  const out = [
    `gotd pid ${i.pid}, up ${age(i.uptimeMs)}, running as ${i.user} (uid ${i.uid})`,
    `config: ${i.configPath}`,
    `socket: ${i.listen}`,
    `confinement: ${layers || 'none'}`,
    ...i.layers.detail.map((d) => `  ${d}`),
    `processes: ${i.children.map((c) => `${c.role} ${c.pid}`).join(', ') || 'none'}`,
    `sessions: ${i.sessions.length}`,
    ...i.sessions.map((s) => `  ${s.id} ${s.user} ${s.repo} ${s.service} ${age(s.ageMs)}${s.pid ? ` pid ${s.pid}` : ''}`),
  ];
  process.stdout.write(out.join('\n') + '\n');
}

async function control(sockPath: string, req: ControlRequest): Promise<void> {
  const sock = net.connect(sockPath);
  await new Promise<void>((resolve) => {
    sock.once('connect', resolve);
    sock.once('error', (e: NodeJS.ErrnoException) => die(`cannot connect to gotd at ${sockPath}: ${e.code ?? e.message}`));
  });
  sock.removeAllListeners('error');
  sock.on('error', () => undefined);
  sock.write(encodeLine(req));
  let line: string;
  try {
    ({ line } = await readLine(sock, 1 << 24, REPLY_TIMEOUT_MS));
  } catch (e) {
    die(`no answer from gotd (${(e as Error).message})`);
  }
  sock.destroy();
  const r = parseMessage(controlReplySchema, parseJson(line));
  if (!r) die('bad reply from gotd');
  if (!r.ok) die(r.error ?? 'refused');
  if (r.info) printInfo(r.info);
  if (r.message) process.stdout.write(`${r.message}\n`);
}

async function main(): Promise<void> {
  let p;
  try { p = getopt(process.argv.slice(2), 'f:'); } catch (e) { usage((e as UsageError).message); }
  const sockPath = last(p, 'f') ?? (process.env.GOTD_UNIX_SOCKET || DEFAULT_SOCKET);
  const [cmd, ...rest] = p.operands;
  switch (cmd) {
    case 'hash-password': {
      if (rest.length > 0) usage();
      const pw = await readPassword();
      if (pw.length === 0) die('empty password');
      process.stdout.write(`${await hashPassword(pw)}\n`);
      return;
    }
    case 'info':
    case 'stop':
      if (rest.length > 0) usage();
      return control(sockPath, { type: 'control', command: cmd });
    case 'reload': {
      let r;
      try { r = getopt(rest, 'c:'); } catch (e) { usage((e as UsageError).message); }
      if (r.operands.length > 0) usage();
      const file = last(r, 'c');
      return control(sockPath, { type: 'control', command: 'reload', ...(file ? { config: path.resolve(file) } : {}) });
    }
    default:
      usage(cmd ? `unknown command ${JSON.stringify(cmd)}` : undefined);
  }
}

void main();
