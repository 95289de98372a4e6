/**
 * gotsh: the ssh side of gotd.  Run by sshd as a login shell (gotsh -c
 * CMD), as a forced command (gotsh -u NAME with SSH_ORIGINAL_COMMAND), or
 * under the names git-upload-pack / git-receive-pack.  It asks gotd over
 * the unix socket for the service and, once gotd says yes, relays bytes
 * between the git client (stdin/stdout) and the session worker.
 */
import * as net from 'node:net';
import { errPkt } from '../git/pktline';
import { encodeLine, parseJson, readLine } from '../ipc/line';
import type { GitRequest } from '../ipc/messages';
import { parseInvocation, type Invocation } from './command';

export const DEFAULT_SOCKET = '/var/run/gotd.sock';
/** The daemon answers within auth_timeout plus a worker start; this only guards against a stuck daemon. */
const REPLY_TIMEOUT_MS = 120_000;

function fail(reason: string, toGit = true): never {
  process.stderr.write(`gotsh: ${reason}\n`);
  if (!toGit || process.stdout.isTTY) process.exit(1);
  // Over ssh our stderr and stdout travel as separate streams; a moment between them
  // keeps the order fixed: our line, then git's "remote error: ...".
  process.stdin.pause();
  setTimeout(() => process.stdout.write(errPkt(reason), () => process.exit(1)), 100);
  return halt();
}

/** Stops the caller without exiting (a refusal is on its way out). */
function halt(): never {
  throw new Halt();
}

class Halt extends Error {}

/** The name gotsh was run by: node keeps the path as invoked (a git-upload-pack symlink) in argv[1]. */
function argv0(): string {
  return process.argv[1] || 'gotsh';
}

async function session(inv: Invocation): Promise<void> {
  const sockPath = process.env.GOTD_UNIX_SOCKET || DEFAULT_SOCKET;
  const sock = net.connect({ path: sockPath, allowHalfOpen: true });
  const err = await new Promise<NodeJS.ErrnoException | null>((resolve) => {
    sock.once('connect', () => resolve(null));
    sock.once('error', resolve);
  });
  if (err) fail(`cannot connect to gotd at ${sockPath}: ${err.code ?? err.message}`);
  sock.removeAllListeners('error');
  sock.on('error', (e: NodeJS.ErrnoException) => { process.stderr.write(`gotsh: connection to gotd: ${e.code ?? e.message}\n`); process.exit(1); });

  const req: GitRequest = {
    type: 'git', service: inv.service, repo: inv.repo,
    protocol: (process.env.GIT_PROTOCOL ?? '').slice(0, 256),
    ...(inv.asUser !== undefined ? { user: inv.asUser } : {}),
  };
  sock.write(encodeLine(req));
  // Loading the schemas (zod) takes a while; it happens while gotd starts the session.
  // eslint-disable-next-line @typescript-eslint/no-require-imports
  const { gitReplySchema, parseMessage } = require('../ipc/messages') as typeof import('../ipc/messages');

  let reply;
  try {
    reply = await readLine(sock, 4096, REPLY_TIMEOUT_MS);
  } catch (e) {
    fail(`gotd closed the connection (${(e as Error).message})`);
  }
  const r = parseMessage(gitReplySchema, parseJson(reply.line));
  if (!r) fail('bad reply from gotd');
  if (!r.ok) fail(r.error ?? 'refused');

  // From here on it is Git between the client and the worker; gotsh only copies.
  process.stdout.on('error', () => { sock.destroy(); process.exit(1); });
  if (reply.rest.length > 0) process.stdout.write(reply.rest);
  sock.pipe(process.stdout);
  process.stdin.on('error', () => sock.end());
  process.stdin.pipe(sock);
  sock.resume();
  // The worker's end is the session's end, as when sshd's remote command exits. Node never
  // ends process.stdout for a pipe, so waiting for 'close' (which also needs git to end its
  // side) would leave a git that waits for more data - a worker killed mid-session - stuck.
  const exit = (code: number): void => {
    if (process.stdout.writableLength === 0) process.exit(code);
    else process.stdout.once('drain', () => process.exit(code));
  };
  sock.on('end', () => exit(0));
  sock.on('close', (hadError) => exit(hadError ? 1 : 0));
}

function main(): void {
  const inv = parseInvocation(argv0(), process.argv.slice(2), process.env);
  if ('error' in inv) fail(inv.error, false);
  session(inv).catch((e: unknown) => {
    if (!(e instanceof Halt)) { process.stderr.write(`gotsh: ${(e as Error).message}\n`); process.exit(1); }
  });
}

main();
