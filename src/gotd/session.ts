/**
 * One client session as the parent sees it: ask auth, apply the per-user
 * limit, start a fresh confined worker for the one repository, hand it the
 * client socket, and log one line when it is over.  The parent never reads
 * from the client socket; it only writes a refusal line when there is no
 * session to be had.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import * as fs from 'node:fs';
import type * as net from 'node:net';
import { findRepository, limitFor, type Config } from '../config/schema';
import { encodeLine } from '../ipc/line';
import {
  fromWorkerSchema, parseMessage, protocolVersion, type Decision, type FromWorker, type GitRequest,
  type Peer, type SessionMsg, type Who,
} from '../ipc/messages';
import { entryPath, workerCommand, type Confinement } from '../sys/confine';
import type { Log } from './log';
import type { PasswordGate, WebClient } from './web_session';

/** Input caps: a fetch sends wants and haves, a push sends a pack. */
export const MAX_INPUT_READ = 128 * 1024 * 1024;
export const MAX_INPUT_WRITE = 4 * 1024 * 1024 * 1024;

/** The one refusal every client hears for every kind of "no" about a repository. */
export const ACCESS_DENIED = 'access denied';

export interface SessionDeps {
  log: Log;
  /** When gotd started (ms since the epoch). */
  startedAt: number;
  /**
   * Lock files and quarantines in repoPath last touched before this time
   * belong to no living writer (gotd's start, or later once a writer died).
   */
  staleBefore?(repoPath: string): number;
  /** A writer on repoPath died without reporting (killed): what it held is stale from now on. */
  writerDied?(repoPath: string, at: number): void;
  config(): Config;
  confinement(): Confinement;
  authorize(who: Who, repo: string, service: GitRequest['service']): Promise<Decision>;
  /** Admitted sessions of a user (for limit_per_user / limits). */
  countUser(user: string): number;
  /** Sessions in the parent, for max_connections. */
  countAll(): number;
  ended(s: Session): void;
  pushed(repo: string, user: string, updates: NonNullable<Extract<FromWorker, { type: 'done' }>['updates']>): void;
  /** WebSocket credentials were wrong: listen charges the address. */
  authFailed?(address: string): void;
  /** Password checks in flight per WebSocket client address. */
  gate?: PasswordGate;
}

export class Session {
  readonly started = Date.now();
  user = '?';
  repo: string;
  admitted = false;
  worker: ChildProcess | null = null;
  /** The repository this session's running writer may hold locks in. */
  writesTo: string | null = null;
  private socket: net.Socket | null;
  /**
   * The parent's copy of the client socket while the worker takes it over.
   * Node drops a handle whose receiver dies before acknowledging it without
   * closing it, and the client would wait forever: so the parent keeps its
   * copy until the worker says it has the socket, and answers the client
   * itself when the worker dies before that.
   */
  private handing: net.Socket | null = null;
  private done: Extract<FromWorker, { type: 'done' }> | null = null;
  private outcome: string | null = null;
  private over = false;

  /** web: a WebSocket client (peer is then null), answered in HTTP. */
  constructor(readonly id: number, socket: net.Socket, readonly peer: Peer | null, readonly request: GitRequest, private readonly deps: SessionDeps,
    readonly web: WebClient | null = null) {
    this.socket = socket;
    this.repo = request.repo;
    socket.on('error', () => socket.destroy());
    socket.on('close', () => { if (this.socket === socket && !this.worker) this.finish('client went away'); });
  }

  get service(): GitRequest['service'] { return this.request.service; }

  async run(): Promise<void> {
    const who: Who = this.web ? this.web.who() : { kind: 'unix', peer: this.peer!, ...(this.request.user !== undefined ? { asUser: this.request.user } : {}) };
    const checks = this.web?.request.user != null ? this.web.request.address : null;
    if (checks !== null && this.deps.gate && !this.deps.gate.enter(checks)) {
      return this.refuse(`too many logins at once from ${checks}, try again later`, 'refused: password checks in flight from this address', 429);
    }
    let d: Decision;
    try {
      d = await this.deps.authorize(who, this.request.repo, this.request.service);
    } catch (e) {
      return this.refuse('authorization unavailable, try again later', `auth: ${(e as Error).message}`);
    } finally {
      if (checks !== null) this.deps.gate?.leave(checks);
    }
    this.user = d.user;
    this.deps.log.debug(`session ${this.id}: auth answered in ${Date.now() - this.started}ms`);
    if (this.over) return;
    // Not a verdict on the client: a 401 would make git-remote-ws erase a good stored password.
    if (d.unavailable) return this.refuse('authorization unavailable, try again later', `auth: ${d.reason}`);
    if (this.web && !d.authenticated) this.deps.authFailed?.(this.web.request.address);
    // Over WebSocket, a "no" to anonymous or to wrong credentials is 401: the client may then log in.
    const no = d.authenticated && this.web?.request.user !== null ? 403 : 401;
    if (d.verdict === 'deny') return this.refuse(ACCESS_DENIED, `denied: ${d.reason}`, no);
    if (this.request.service === 'git-receive-pack' && d.verdict !== 'rw') return this.refuse(ACCESS_DENIED, 'denied: read-only access', no);

    const config = this.deps.config();
    const repo = findRepository(config, d.repo ?? '');
    if (!repo) return this.refuse(ACCESS_DENIED, `denied: repository ${d.repo ?? '?'} gone after reload`, no);
    if (this.web && this.web.request.accept === null) return this.refuse('not a WebSocket upgrade', 'refused: not a WebSocket upgrade', 426);
    this.repo = repo.name;

    const limit = limitFor(config, d.user);
    if (this.deps.countUser(d.user) >= limit) {
      return this.refuse(`too many connections for user ${d.user} (limit ${limit})`, `refused: per-user limit ${limit}`, 429);
    }
    if (this.deps.countAll() > config.connection.maxConnections) {
      return this.refuse(`too many connections: the server limit of ${config.connection.maxConnections} is reached, try again later`, 'refused: max_connections');
    }
    this.admitted = true;

    let repoPath: string;
    try {
      repoPath = fs.realpathSync(repo.path);
    } catch (e) {
      return this.refuse('repository not available', `cannot resolve ${repo.path}: ${(e as NodeJS.ErrnoException).code ?? (e as Error).message}`);
    }
    this.startWorker(repoPath, d.verdict, repo.protect, config);
  }

  private startWorker(repoPath: string, access: 'ro' | 'rw', protect: SessionMsg['protect'], config: Config): void {
    const write = this.request.service === 'git-receive-pack';
    const cmd = workerCommand(this.deps.confinement(), [entryPath(write ? 'repo_write' : 'repo_read')], repoPath, write);
    const worker = spawn(cmd.file, cmd.args, {
      stdio: ['ignore', 'ignore', 'pipe', 'ipc'],
      env: { LANG: 'C', GOTD_VERBOSE: process.env.GOTD_VERBOSE ?? '0' },
    });
    this.worker = worker;
    const log = this.deps.log;
    let partial = '';
    worker.stderr!.setEncoding('utf8');
    worker.stderr!.on('data', (s: string) => {
      const lines = (partial + s).split('\n');
      partial = lines.pop()!.slice(0, 4096);
      for (const l of lines.slice(0, 50)) if (l) log.info(`session ${this.id}: ${l.slice(0, 1000)}`);
    });
    worker.on('error', (e) => this.finish(`cannot start worker: ${e.message}`));
    worker.on('message', (raw: unknown) => {
      const msg = parseMessage(fromWorkerSchema, raw);
      if (!msg) { this.outcome = 'malformed message from worker'; worker.kill('SIGKILL'); return; }
      if (msg.type === 'ready') log.debug(`session ${this.id}: worker ${worker.pid} ready ${Date.now() - this.started}ms after the request`);
      if (msg.type === 'started') { this.handing?.destroy(); this.handing = null; }
      if (msg.type === 'done') {
        this.done = msg;
        // It reported; it has no business staying around.
        setTimeout(() => worker.kill('SIGKILL'), 5000).unref();
      }
    });
    const staleBefore = write ? this.deps.staleBefore?.(repoPath) ?? this.deps.startedAt : this.deps.startedAt;
    if (write) this.writesTo = repoPath;
    worker.on('exit', (code, signal) => {
      this.worker = null;
      this.writesTo = null;
      if (write && !this.done) this.deps.writerDied?.(repoPath, Date.now());
      const held = this.handing;
      this.handing = null;
      if (held && !held.destroyed) {
        this.socket = held;
        return this.refuse('the session worker died before the session began, try again', `worker ended (${signal ?? `exit ${code}`}) before taking the client`);
      }
      this.finish(this.outcome ?? (this.done ? (this.done.ok ? 'ok' : `failed: ${this.done.error ?? 'error'}`) : `worker ended (${signal ?? `exit ${code}`}) without a report`));
    });

    const msg: SessionMsg = {
      type: 'session', repoPath, access, protocol: protocolVersion(this.request.protocol), protect,
      requestTimeoutMs: config.connection.requestTimeout,
      maxInputBytes: write ? MAX_INPUT_WRITE : MAX_INPUT_READ,
      staleBefore,
      ...(this.web?.request.accept ? { websocket: { accept: this.web.request.accept } } : {}),
    };
    const sock = this.socket!;
    this.socket = null;
    this.handing = sock;
    worker.send(msg, sock, { keepOpen: true }, (err) => {
      if (err) { log.error(`session ${this.id}: hand-off to worker failed: ${err.message}`); this.handing = null; sock.destroy(); worker.kill('SIGKILL'); }
    });
  }

  /** status: what a WebSocket client is answered (401, 403, 426, 429, 503). */
  private refuse(clientError: string, outcome: string, status: 401 | 403 | 426 | 429 | 503 = 503): void {
    const sock = this.socket;
    this.socket = null;
    if (sock && !sock.destroyed && this.web) {
      this.web.refuse(sock, status, clientError);
    } else if (sock && !sock.destroyed) {
      sock.end(encodeLine({ ok: false, error: clientError }));
      setTimeout(() => sock.destroy(), 2000).unref();
    }
    this.finish(outcome);
  }

  private finish(outcome: string): void {
    if (this.over) return;
    this.over = true;
    this.socket?.destroy();
    this.socket = null;
    const secs = ((Date.now() - this.started) / 1000).toFixed(2);
    const d = this.done;
    this.deps.log.session(`session ${this.id}: user=${this.user} repo=${JSON.stringify(this.repo).slice(0, 200)} service=${this.service} ` +
      `in=${d?.bytesIn ?? 0} out=${d?.bytesOut ?? 0} time=${secs}s outcome=${outcome}${this.web ? ` from=${this.web.request.address}` : ''}`);
    if (d && d.updates.length > 0) this.deps.pushed(this.repo, this.user, d.updates);
    this.deps.ended(this);
  }

  /** Ends the session now (shutdown). */
  kill(): void {
    if (this.worker) this.worker.kill('SIGKILL');
    else this.refuse('gotd is shutting down', 'cut at shutdown');
  }

  info(): { id: number; user: string; repo: string; service: GitRequest['service']; ageMs: number; pid?: number } {
    return { id: this.id, user: this.user, repo: this.repo, service: this.service, ageMs: Date.now() - this.started, ...(this.worker?.pid ? { pid: this.worker.pid } : {}) };
  }
}
