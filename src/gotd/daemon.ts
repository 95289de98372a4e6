/**
 * The parent: owns the configuration, the listening socket, the listen and
 * auth processes and one worker per session.  It never parses client bytes:
 * listen reads the request, auth decides, a fresh confined worker speaks
 * Git.  gotctl requests arrive through listen like any client.
 */
import * as fs from 'node:fs';
import type * as net from 'node:net';
import { crossCheck, loadConfig, loadSecrets } from '../config/load';
import type { Config } from '../config/schema';
import { NO_SECRETS, type Secrets } from '../config/secrets';
import { encodeLine } from '../ipc/line';
import {
  fromAuthSchema, fromListenSchema, type ControlReply, type ControlRequest, type Decision, type FromAuth,
  type FromListen, type GitRequest, type Info, type Layers, type Peer, type Who,
} from '../ipc/messages';
import type { Confinement } from '../sys/confine';
import type { Account } from '../sys/users';
import { LongLived } from './children';
import type { Log } from './log';
import { NotifyProcess } from './notify_hook';
import { Session } from './session';
import type { ServerHandle } from './socket';
import { sameWebListen, type WebSockets } from './web_bind';
import { PasswordGate, WebClient } from './web_session';

/** How long running sessions may take to finish when gotd stops. */
export const STOP_GRACE_MS = 10_000;
const AUTH_TIMEOUT_MS = 15_000;

export interface DaemonOptions {
  configPath: string;
  /** null: no secrets file (the default one was absent). */
  secretsPath: string | null;
  account: Account;
  config: Config;
  configRaw: unknown;
  secrets: Secrets;
  secretsRaw: unknown;
  server: ServerHandle;
  /** The bound [websocket] sockets and TLS material, or null without a [websocket] section. */
  web: WebSockets | null;
  /** Inode of gotd.sock as created, so that stopping removes only our own socket. */
  socketIno: number;
  confinement: Confinement;
  layers: Layers;
  log: Log;
  /** Called once everything has stopped. */
  exit(code: number): void;
}

export class Daemon {
  private config: Config;
  private configRaw: unknown;
  private secretsRaw: unknown;
  private readonly sessions = new Map<number, Session>();
  /** Repository path -> when one of its writers last died without reporting. */
  private readonly crashed = new Map<string, number>();
  private readonly pending = new Map<number, { resolve(d: Decision): void; reject(e: Error): void; timer: NodeJS.Timeout }>();
  private nextId = 1;
  private nextAuthId = 1;
  private stopping: Promise<void> | null = null;
  private readonly started = Date.now();
  private readonly listen: LongLived<FromListen>;
  private readonly auth: LongLived<FromAuth>;
  private readonly notify: NotifyProcess;
  private secrets: Secrets;
  private readonly log: Log;
  private onListening: (() => void) | null = null;
  private readonly gate = new PasswordGate();

  constructor(private readonly o: DaemonOptions) {
    this.config = o.config;
    this.configRaw = o.configRaw;
    this.secretsRaw = o.secretsRaw;
    this.log = o.log;
    this.secrets = o.secrets;
    this.notify = new NotifyProcess(this.log, o.config, o.secrets, o.configPath);
    this.auth = new LongLived<FromAuth>({
      role: 'auth', schema: fromAuthSchema, log: this.log,
      onStart: () => this.auth.send({ type: 'config', config: this.configRaw, secrets: this.secretsRaw }),
      onMessage: (m) => this.fromAuth(m),
      onExit: (again) => {
        for (const [, p] of this.pending) p.reject(new Error('auth process died'));
        this.pending.clear();
        if (!again) this.fatal('auth keeps dying');
      },
    });
    this.listen = new LongLived<FromListen>({
      role: 'listen', schema: fromListenSchema, log: this.log,
      onStart: () => {
        this.listen.send({ type: 'config', config: this.configRaw, daemonUid: process.getuid?.() ?? 0 });
        this.listen.send({ type: 'load', sessions: this.sessions.size });
        this.listen.send({ type: 'server', path: this.config.listen }, this.o.server);
        for (const w of this.o.web?.sockets ?? []) this.listen.send({ type: 'websocket', address: w.address, tls: this.o.web!.tls }, w.handle);
      },
      onMessage: (m, handle) => this.fromListen(m, handle),
      onExit: (again) => { if (!again) this.fatal('listen keeps dying'); },
    });
  }

  /** Starts auth and listen; resolves once gotd.sock accepts (rejects after 20 s). */
  start(): Promise<void> {
    return new Promise((resolve, reject) => {
      const t = setTimeout(() => reject(new Error('listen did not start within 20s')), 20_000);
      this.onListening = () => { clearTimeout(t); resolve(); };
      this.auth.start();
      this.notify.start();
      this.listen.start();
    });
  }

  private fatal(why: string): void {
    this.log.error(`${why}; stopping`);
    void this.stop().then(() => this.o.exit(1));
  }

  /* ---------- listen ---------- */

  private fromListen(m: FromListen, handle: unknown): void {
    switch (m.type) {
      case 'ready':
        return;
      case 'listening':
        this.log.info(`listening on ${m.path}`);
        this.onListening?.();
        this.onListening = null;
        return;
      case 'client':
        if (!isSocket(handle)) { this.log.error('listen sent a client without its socket'); return; }
        return this.client(m.peer, m.request, handle);
      case 'control':
        if (!isSocket(handle)) { this.log.error('listen sent a control request without its socket'); return; }
        return void this.control(m.peer, m.request, handle);
      case 'web': {
        if (!isSocket(handle)) { this.log.error('listen sent a WebSocket client without its socket'); return; }
        const web = new WebClient(m.request);
        return this.client(null, web.gitRequest(), handle, web);
      }
    }
  }

  private client(peer: Peer | null, request: GitRequest, socket: net.Socket, web: WebClient | null = null): void {
    socket.pause();
    const id = this.nextId++;
    const s = new Session(id, socket, peer, request, {
      log: this.log,
      startedAt: this.started,
      staleBefore: (repoPath) => this.staleBefore(repoPath),
      writerDied: (repoPath, at) => { this.crashed.set(repoPath, at); },
      config: () => this.config,
      confinement: () => this.o.confinement,
      authorize: (who, repo, service) => this.authorize(who, repo, service),
      countUser: (user) => [...this.sessions.values()].filter((x) => x.admitted && x.user === user).length,
      countAll: () => this.sessions.size,
      ended: (x) => { this.sessions.delete(x.id); this.load(); this.drained?.(); },
      pushed: (repo, user, updates) => this.notify.pushed(repo, user, updates),
      authFailed: (address) => this.listen.send({ type: 'failed', address }),
      gate: this.gate,
    }, web);
    this.sessions.set(id, s);
    this.load();
    if (this.stopping) { s.kill(); return; }
    void s.run();
  }

  /**
   * Before gotd's start nothing in a repository can be a living writer's.
   * After a writer of that repository died without a report (SIGKILL, the
   * OOM killer), whatever it held must not block the ref for good: locks
   * older than every writer still running there, and than the death, are
   * the dead one's.
   */
  private staleBefore(repoPath: string): number {
    const died = this.crashed.get(repoPath);
    if (died === undefined) return this.started;
    let t = died;
    for (const s of this.sessions.values()) if (s.writesTo === repoPath) t = Math.min(t, s.started);
    return Math.max(this.started, t);
  }

  private load(): void {
    this.listen.send({ type: 'load', sessions: this.sessions.size });
  }

  /* ---------- auth ---------- */

  authorize(who: Who, repo: string, service: GitRequest['service']): Promise<Decision> {
    return new Promise((resolve, reject) => {
      const id = this.nextAuthId++;
      const timer = setTimeout(() => { this.pending.delete(id); reject(new Error('auth did not answer')); }, AUTH_TIMEOUT_MS);
      this.pending.set(id, { resolve, reject, timer });
      if (!this.auth.send({ type: 'authorize', id, who, repo, service })) {
        clearTimeout(timer);
        this.pending.delete(id);
        reject(new Error('auth process not running'));
      }
    });
  }

  private fromAuth(m: FromAuth): void {
    if (m.type !== 'decision') return;
    const p = this.pending.get(m.id);
    if (!p) return;
    this.pending.delete(m.id);
    clearTimeout(p.timer);
    p.resolve(m);
  }

  /* ---------- gotctl ---------- */

  private async control(peer: Peer, req: ControlRequest, socket: net.Socket): Promise<void> {
    socket.on('error', () => socket.destroy());
    const me = process.getuid?.() ?? 0;
    const reply = (r: ControlReply): void => { socket.end(encodeLine(r)); setTimeout(() => socket.destroy(), 2000).unref(); };
    // listen checked this already; the parent does not take its word for it.
    if (peer.uid !== 0 && peer.uid !== me) return reply({ ok: false, error: 'permission denied' });
    this.log.info(`gotctl ${req.command} from uid ${peer.uid}`);
    switch (req.command) {
      case 'info':
        return reply({ ok: true, info: this.info() });
      case 'reload':
        try {
          return reply({ ok: true, message: await this.reload(req.config) });
        } catch (e) {
          this.log.error(`reload refused: ${(e as Error).message}`);
          return reply({ ok: false, error: (e as Error).message });
        }
      case 'stop':
        await this.stop();
        socket.once('close', () => this.o.exit(0));
        reply({ ok: true, message: 'gotd stopped' });
        setTimeout(() => this.o.exit(0), 1000).unref();
        return;
    }
  }

  info(): Info {
    return {
      pid: process.pid,
      uptimeMs: Date.now() - this.started,
      configPath: this.o.configPath,
      user: this.o.account.name,
      uid: process.getuid?.() ?? -1,
      listen: this.config.listen,
      layers: this.o.layers,
      children: [
        ...(this.listen.pid ? [{ role: 'listen', pid: this.listen.pid }] : []),
        ...(this.auth.pid ? [{ role: 'auth', pid: this.auth.pid }] : []),
        ...(this.notify.pid ? [{ role: 'notify', pid: this.notify.pid }] : []),
      ],
      sessions: [...this.sessions.values()].map((s) => s.info()),
    };
  }

  /**
   * Reads the configuration again (from file when given, else the -f file)
   * and the secrets; new sessions use them, running ones are untouched.
   */
  async reload(file?: string): Promise<string> {
    const path = file ?? this.o.configPath;
    const { config, raw } = loadConfig(path);
    if (config.listen !== this.config.listen) throw new Error(`${path}: listen: changing the socket needs a restart of gotd`);
    if (config.user !== this.config.user) throw new Error(`${path}: user: changing the user needs a restart of gotd`);
    if (!sameWebListen(config.websocket, this.config.websocket)) throw new Error(`${path}: websocket: changing the WebSocket addresses or TLS files needs a restart of gotd`);
    let secretsRaw = this.secretsRaw;
    let secrets: Secrets = NO_SECRETS;
    let note = '';
    if (this.o.secretsPath) {
      try {
        const s = loadSecrets(this.o.secretsPath, { uid: this.o.account.uid, gid: this.o.account.gid });
        secrets = s.secrets; secretsRaw = s.raw;
      } catch (e) {
        if ((e as Error).message.includes('EACCES')) note = ` (secrets file unreadable as ${this.o.account.name}; kept the old secrets)`;
        else throw e;
      }
    }
    if (!note && this.o.secretsPath) crossCheck(config, secrets, path);
    this.config = config;
    this.configRaw = raw;
    this.secretsRaw = secretsRaw;
    this.auth.send({ type: 'config', config: raw, secrets: secretsRaw });
    this.listen.send({ type: 'config', config: raw, daemonUid: process.getuid?.() ?? 0 });
    if (!note) this.secrets = secrets;
    this.notify.configure(config, this.secrets);
    const msg = `configuration reloaded from ${path}${note}`;
    this.log.info(msg);
    return msg;
  }

  /* ---------- stopping ---------- */

  private drained: (() => void) | null = null;

  /** No new sessions; running ones get STOP_GRACE_MS, then are cut; then the children go. */
  stop(): Promise<void> {
    if (this.stopping) return this.stopping;
    this.stopping = (async () => {
      this.log.info('stopping');
      this.listen.send({ type: 'stop' });
      if (this.sessions.size > 0) {
        await new Promise<void>((resolve) => {
          const t = setTimeout(resolve, STOP_GRACE_MS);
          this.drained = () => { if (this.sessions.size === 0) { clearTimeout(t); resolve(); } };
        });
      }
      for (const s of this.sessions.values()) s.kill();
      if (this.sessions.size > 0) {
        await new Promise<void>((resolve) => {
          const t = setTimeout(resolve, 3000);
          this.drained = () => { if (this.sessions.size === 0) { clearTimeout(t); resolve(); } };
        });
      }
      await Promise.all([this.listen.stop(), this.auth.stop(), this.notify.stop()]);
      try { this.o.server.close(); } catch { /* already closed */ }
      for (const w of this.o.web?.sockets ?? []) try { w.handle.close(); } catch { /* already closed */ }
      removeSocket(this.config.listen, this.o.socketIno);
      this.log.info('stopped');
    })();
    return this.stopping;
  }
}

function removeSocket(path: string, ino: number): void {
  try {
    if (fs.lstatSync(path).ino === ino) fs.unlinkSync(path);
  } catch { /* not ours to remove (or not permitted); harmless */ }
}

function isSocket(h: unknown): h is net.Socket {
  return typeof h === 'object' && h !== null && typeof (h as net.Socket).write === 'function' && typeof (h as net.Socket).destroy === 'function';
}
