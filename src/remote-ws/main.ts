/**
 * git-remote-ws / git-remote-wss URL: the git remote helper (see
 * gitremote-helpers(7)) for gotd's WebSocket transport.  It offers git
 * the "connect" capability: on "connect git-upload-pack" (fetch, clone,
 * ls-remote) or "connect git-receive-pack" (push) it opens a WebSocket
 * to gotd, answers git with an empty line, and from then on copies
 * git's native protocol both ways, as ssh would.
 *
 * Exit status 0 when the session ended normally, 1 otherwise (git then
 * reports the failure and exits non-zero itself).
 */
import * as path from 'node:path';
import { CLOSE_NORMAL } from '../ipc/ws_stream';
import { ConnectError, open, type Opened, type Refusal } from './connect';
import { approve, fill, reject, type Credential } from './credential';
import { parseTarget, UsageError, type Target } from './target';

const ME = path.basename(process.argv[1] ?? 'git-remote-ws');
const MAX_LINE = 4096;

function fail(message: string): never {
  process.stderr.write(`fatal: ${message}\n`);
  process.exit(1);
}

/** git's commands, one per line, until "connect"; what follows the connect line belongs to the session. */
class Commands {
  private buf = Buffer.alloc(0);
  private ended = false;
  private wake: (() => void) | null = null;

  constructor(private readonly input: NodeJS.ReadableStream) {
    input.on('data', (b: Buffer) => {
      this.buf = Buffer.concat([this.buf, b]);
      if (this.buf.length > MAX_LINE && this.buf.indexOf(0x0a) < 0) fail(`${ME}: command from git too long`);
      this.wake?.();
    });
    input.on('end', () => { this.ended = true; this.wake?.(); });
  }

  async next(): Promise<string | null> {
    for (;;) {
      const nl = this.buf.indexOf(0x0a);
      if (nl >= 0) {
        const line = this.buf.subarray(0, nl).toString('utf8');
        this.buf = this.buf.subarray(nl + 1);
        return line;
      }
      if (this.ended) return null;
      await new Promise<void>((resolve) => { this.wake = resolve; });
      this.wake = null;
    }
  }

  /** Stops reading commands; returns the bytes already read past the last one. */
  detach(): Buffer {
    this.input.removeAllListeners('data');
    this.input.removeAllListeners('end');
    this.input.pause();
    const rest = this.buf;
    this.buf = Buffer.alloc(0);
    return rest;
  }
}

function isRefusal(r: Opened | Refusal): r is Refusal {
  return typeof (r as Refusal).status === 'number';
}

function refusalText(r: Refusal): string {
  const words: Record<number, string> = { 403: 'access denied', 404: 'not found', 429: 'too many connections', 503: 'server busy' };
  let text = r.body || words[r.status] || 'refused';
  text += ` (HTTP ${r.status}`;
  if (r.retryAfter !== null && (r.status === 429 || r.status === 503)) text += `, retry after ${r.retryAfter} s`;
  return `${text})`;
}

/**
 * Connects with the URL's credentials or none; after a 401 asks git's
 * credential helpers once and tries again, then tells them whether the
 * credentials worked.
 */
async function connect(t: Target, service: string): Promise<Opened> {
  const fromUrl: Credential | null = t.user !== null && t.password !== null ? { user: t.user, password: t.password } : null;
  let r = await open(t, service, fromUrl);
  if (isRefusal(r) && r.status === 401 && !fromUrl) {
    const cred = await fill(t);
    if (!cred) fail(`Authentication required for '${t.shown}' (HTTP 401)`);
    r = await open(t, service, cred);
    if (!isRefusal(r)) await approve(t, cred);
    else if (r.status === 401) {
      await reject(t, cred);
      fail(`Authentication failed for '${t.shown}' (HTTP 401)`);
    }
  }
  if (isRefusal(r)) {
    if (r.status === 401) fail(`Authentication failed for '${t.shown}' (HTTP 401)`);
    fail(`unable to access '${t.shown}': ${refusalText(r)}`);
  }
  return r;
}

/** Copies git's protocol between stdin/stdout and the WebSocket until the server closes. */
function session(opened: Opened, early: Buffer, t: Target): void {
  const { stream } = opened;
  stream.on('error', () => undefined);
  process.stdout.on('error', () => process.exit(1));
  if (early.length > 0) stream.write(early);
  process.stdin.pipe(stream);
  stream.pipe(process.stdout, { end: false });
  stream.on('end', () => {
    const code = opened.closed?.code ?? 0;
    const ok = code === CLOSE_NORMAL || code === 1005;
    // Whatever git has not read yet must reach it before the exit.
    process.stdout.write('', () => {
      if (!ok) process.stderr.write(`fatal: the connection to ${t.host} ended abnormally (WebSocket close ${code}${opened.closed?.reason ? ` ${opened.closed.reason}` : ''})\n`);
      process.exit(ok ? 0 : 1);
    });
  });
}

async function main(): Promise<void> {
  const url = process.argv[3] ?? process.argv[2];
  if (!url) fail(`usage: ${ME} REMOTE URL (run by git for ws:// and wss:// URLs)`);
  let target: Target;
  try {
    target = parseTarget(url);
  } catch (e) {
    fail(`${ME}: ${(e as UsageError).message}`);
  }
  const commands = new Commands(process.stdin);
  for (;;) {
    const line = await commands.next();
    if (line === null || line === '') process.exit(0);
    if (line === 'capabilities') {
      process.stdout.write('connect\n\n');
      continue;
    }
    const m = /^connect (\S+)$/.exec(line);
    if (!m) fail(`${ME}: unknown command from git: ${JSON.stringify(line.slice(0, 100))}`);
    const service = m[1]!;
    if (service !== 'git-upload-pack' && service !== 'git-receive-pack') fail(`${ME}: ${service} is not offered over WebSocket`);
    const early = commands.detach();
    let opened: Opened;
    try {
      opened = await connect(target, service);
    } catch (e) {
      if (e instanceof ConnectError) fail(e.message);
      throw e;
    }
    process.stdout.write('\n');
    session(opened, early, target);
    return;
  }
}

main().catch((e: unknown) => fail(`${ME}: ${(e as Error).message}`));
