/**
 * Where a finished push's ref updates leave the parent: the notify process.
 * It is a long-lived fresh node process like listen and auth, started only
 * while some repository has notification targets, under Node's permission
 * model with reads limited to gotd's runtime and the repositories it
 * describes (so a compromise cannot read the secrets file or other
 * repositories), and a bounded heap.  The parent sends it one message per
 * push and never waits: a slow or dead receiver never holds up a push.
 * It is restarted when it dies (a few times a minute at most), and when a
 * reload changes the set of repositories it must read.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { findRepository, type Config } from '../config/schema';
import type { Secrets } from '../config/secrets';
import { fromNotifySchema, parseMessage, type RefUpdateMsg } from '../ipc/messages';
import { notifyWarnings, pushedMessage } from '../notify/request';
import { RUNTIME_SRC } from '../sys/confine';
import type { Log } from './log';

const RESTART_WINDOW_MS = 60_000;
const MAX_RESTARTS = 5;
const HEAP_MB = 256;
/** Passed through for the regression tests (see src/gotd/notify.ts). */
const PASS_ENV = ['GOTD_NOTIFY_TIMEOUT', 'GOTD_NOTIFY_RETRY_DELAY'];

/** Repository paths (as configured and as resolved) the notify process must read. */
function notifyPaths(config: Config): string[] {
  const out = new Set<string>();
  for (const r of config.repositories) {
    if (!r.notify || (r.notify.http.length === 0 && r.notify.email.length === 0)) continue;
    out.add(r.path);
    try { out.add(fs.realpathSync(r.path)); } catch { /* not there yet: opening it will fail and be logged */ }
  }
  return [...out].sort();
}

/** node's arguments for the notify process: permission model flags, then the entry script. */
export function notifyArgs(paths: string[]): string[] {
  const zod = fs.realpathSync(path.dirname(require.resolve('zod/package.json')));
  return [
    '--experimental-permission',
    `--allow-fs-read=${RUNTIME_SRC}`,
    `--allow-fs-read=${zod}`,
    ...paths.map((p) => `--allow-fs-read=${p}`),
    '--disallow-code-generation-from-strings',
    '--disable-warning=ExperimentalWarning',
    '--disable-warning=SecurityWarning',
    `--max-old-space-size=${HEAP_MB}`,
    path.join(RUNTIME_SRC, 'gotd', 'notify.js'),
  ];
}

export class NotifyProcess {
  private child: ChildProcess | null = null;
  private paths: string[] = [];
  private restarts: number[] = [];
  private stopping = false;

  constructor(private readonly log: Log, private config: Config, private secrets: Secrets, private readonly configPath: string) {}

  get pid(): number | undefined {
    return this.child?.pid;
  }

  /** Starts the process if some repository has notification targets. */
  start(): void {
    for (const w of notifyWarnings(this.config, this.configPath)) this.log.warn(w);
    const wanted = notifyPaths(this.config);
    if (wanted.length > 0) this.spawn(wanted);
  }

  /** A reloaded configuration: new sessions' pushes use it; the process restarts if it must read other repositories. */
  configure(config: Config, secrets: Secrets): void {
    this.config = config;
    this.secrets = secrets;
    for (const w of notifyWarnings(config, this.configPath)) this.log.warn(w);
    const wanted = notifyPaths(config);
    if (wanted.join('\n') === this.paths.join('\n') && (this.child || wanted.length === 0)) return;
    const old = this.child;
    this.child = null;
    if (old) {
      this.log.info(`notify: restarting for the new configuration (${wanted.length} repository paths)`);
      old.removeAllListeners('exit');
      end(old, 3000);
    }
    this.paths = [];
    if (wanted.length > 0) this.spawn(wanted);
  }

  /** A push finished: hand its updates over, never waiting. */
  pushed(repoName: string, user: string, updates: RefUpdateMsg[]): void {
    const repo = findRepository(this.config, repoName);
    if (!repo) return;
    const msg = pushedMessage(repo, this.secrets, user, updates);
    if (!msg) return;
    const c = this.child;
    if (!c || !c.connected) {
      this.log.error(`notify process not running; notifications for a push to ${repo.name} are lost`);
      return;
    }
    try {
      c.send(msg, (err) => { if (err) this.log.error(`notify: could not hand over a push to ${repo.name}: ${err.message}`); });
    } catch (e) {
      this.log.error(`notify: could not hand over a push to ${repo.name}: ${(e as Error).message}`);
    }
  }

  /** Ends the process (queued notifications are dropped); resolves when it is gone. */
  stop(timeoutMs = 3000): Promise<void> {
    this.stopping = true;
    const c = this.child;
    this.child = null;
    return c ? end(c, timeoutMs) : Promise.resolve();
  }

  private spawn(paths: string[]): void {
    const env: NodeJS.ProcessEnv = { PATH: '/usr/bin:/bin', LANG: 'C', GOTD_VERBOSE: process.env.GOTD_VERBOSE ?? '0' };
    for (const k of PASS_ENV) if (process.env[k]) env[k] = process.env[k];
    const child = spawn(process.execPath, notifyArgs(paths), { stdio: ['ignore', 'inherit', 'inherit', 'ipc'], env });
    this.child = child;
    this.paths = paths;
    child.on('message', (raw: unknown) => {
      // It has nothing to say but "ready"; anything else is a misbehaving child.
      if (parseMessage(fromNotifySchema, raw) === null) {
        this.log.error('notify: malformed message; restarting it');
        child.kill('SIGKILL');
      }
    });
    child.on('error', (e) => this.log.error(`notify: ${e.message}`));
    child.on('exit', (code, signal) => {
      if (this.child !== child || this.stopping) return;
      this.child = null;
      this.log.error(`notify process ${child.pid} died (${signal ?? `exit ${code}`})`);
      const now = Date.now();
      this.restarts = this.restarts.filter((t) => now - t < RESTART_WINDOW_MS);
      if (this.restarts.length >= MAX_RESTARTS) {
        this.log.error('notify keeps dying; notifications are off until the next reload');
        this.paths = [];
        return;
      }
      this.restarts.push(now);
      setTimeout(() => { if (!this.stopping && !this.child && this.paths.length > 0) this.spawn(this.paths); }, 200 * this.restarts.length);
    });
    this.log.info(`started notify process ${child.pid}`);
  }
}

function end(c: ChildProcess, timeoutMs: number): Promise<void> {
  if (c.exitCode !== null || c.signalCode !== null) return Promise.resolve();
  return new Promise((resolve) => {
    const t = setTimeout(() => c.kill('SIGKILL'), timeoutMs);
    c.once('exit', () => { clearTimeout(t); resolve(); });
    // Losing its parent is how notify knows to go; SIGTERM in case the channel is already gone.
    if (c.connected) c.disconnect(); else c.kill('SIGTERM');
  });
}
