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
import { gitReplySchema, parseMessage, type GitRequest } from '../ipc/messages';
import { parseInvocation, type Invocation } from './command';

export const DEFAULT_SOCKET = '/var/run/gotd.sock';
/** The daemon answers within auth_timeout plus a worker start; this only guards against a stuck daemon. */
const REPLY_TIMEOUT_MS = 120_000;

function fail(reason: string, toGit = true): never {
  // stderr first, then the ERR packet (writes to pipes are synchronous on Linux), so that
  // git's "remote error" line follows ours.
  process.stderr.write(`gotsh: ${reason}\n`);
  if (toGit && !process.stdout.isTTY) process.stdout.write(errPkt(reason));
  process.exit(1);
}

/** The name gotsh was run by: node keeps the path as invoked (a git-upload-pack symlink) in argv[1]. */
function argv0(): string {
  return process.argv[1] || 'gotsh';
}

async function session(inv: Invocation): Promise<void> {
  const sockPath = process.env.GOTD_UNIX_SOCKET || DEFAULT_SOCKET;
  const sock = net.connect({ path: sockPath, allowHalfOpen: true });
  await new Promise<void>((resolve) => {
    sock.once('connect', resolve);
    sock.once('error', (e: NodeJS.ErrnoException) => fail(`cannot connect to gotd at ${sockPath}: ${e.code ?? e.message}`));
  });
  sock.removeAllListeners('error');
  sock.on('error', (e: NodeJS.ErrnoException) => { process.stderr.write(`gotsh: connection to gotd: ${e.code ?? e.message}\n`); process.exit(1); });

  const req: GitRequest = {
    type: 'git', service: inv.service, repo: inv.repo,
    protocol: (process.env.GIT_PROTOCOL ?? '').slice(0, 256),
    ...(inv.asUser !== undefined ? { user: inv.asUser } : {}),
  };
  sock.write(encodeLine(req));

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
  sock.on('close', (hadError) => {
    const exit = (): void => process.exit(hadError ? 1 : 0);
    if (process.stdout.writableLength === 0) exit();
    else process.stdout.once('drain', exit);
  });
}

function main(): void {
  const inv = parseInvocation(argv0(), process.argv.slice(2), process.env);
  if ('error' in inv) fail(inv.error, false);
  void session(inv);
}

main();
