/**
 * The parent's long-lived children (listen, auth): started as fresh node
 * processes with an IPC channel, their messages validated, restarted when
 * they die unexpectedly, and given up on (gotd stops) when they keep dying.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import * as fs from 'node:fs';
import * as path from 'node:path';
import type { z } from '../ipc/zod';
import { parseMessage } from '../ipc/messages';
import { childFlags, RUNTIME_SRC } from '../sys/confine';
import type { Log } from './log';

const RESTART_WINDOW_MS = 60_000;
const MAX_RESTARTS = 5;

export interface ChildOptions<In> {
  role: 'listen' | 'auth';
  schema: z.ZodType<In>;
  log: Log;
  /** A validated message arrived. */
  onMessage(msg: In, handle: unknown): void;
  /** A fresh process is up (first start or restart): configure it. */
  onStart(child: ChildProcess): void;
  /** The process died; restarting says whether a new one is coming. */
  onExit(restarting: boolean): void;
}

export class LongLived<In> {
  child: ChildProcess | null = null;
  private restarts: number[] = [];
  private stopping = false;

  constructor(private readonly opts: ChildOptions<In>) {}

  get pid(): number | undefined { return this.child?.pid; }

  start(): void {
    const { role, log } = this.opts;
    const entry = path.join(RUNTIME_SRC, 'gotd', `${role}.js`);
    if (!fs.existsSync(entry)) throw new Error(`missing ${entry}`);
    const child = spawn(process.execPath, [...childFlags(role), entry], {
      stdio: ['ignore', 'inherit', 'inherit', 'ipc'],
      env: { PATH: '/usr/bin:/bin', LANG: 'C', GOTD_VERBOSE: process.env.GOTD_VERBOSE ?? '0' },
    });
    this.child = child;
    child.on('message', (raw: unknown, handle: unknown) => {
      const msg = parseMessage(this.opts.schema, raw);
      if (msg === null) {
        log.error(`${role}: malformed message; restarting it`);
        child.kill('SIGKILL');
        return;
      }
      this.opts.onMessage(msg, handle);
    });
    child.on('error', (e) => log.error(`${role}: ${e.message}`));
    child.on('exit', (code, signal) => {
      if (this.child === child) this.child = null;
      if (this.stopping) return;
      log.error(`${role} process ${child.pid} died (${signal ?? `exit ${code}`})`);
      const now = Date.now();
      this.restarts = this.restarts.filter((t) => now - t < RESTART_WINDOW_MS);
      const again = this.restarts.length < MAX_RESTARTS;
      this.opts.onExit(again);
      if (again) {
        this.restarts.push(now);
        setTimeout(() => { if (!this.stopping) this.start(); }, 200 * this.restarts.length);
      }
    });
    log.info(`started ${role} process ${child.pid}`);
    this.opts.onStart(child);
  }

  send(msg: unknown, handle?: object): boolean {
    const c = this.child;
    if (!c || !c.connected) return false;
    try {
      c.send(msg as never, handle as never, { keepOpen: true } as never, (err) => { if (err) this.opts.log.debug(`${this.opts.role}: send failed: ${err.message}`); });
      return true;
    } catch {
      return false;
    }
  }

  /** Ends the child; resolves when it is gone (SIGKILL after timeoutMs). */
  stop(timeoutMs = 3000): Promise<void> {
    this.stopping = true;
    const c = this.child;
    if (!c || c.exitCode !== null || c.signalCode !== null) return Promise.resolve();
    return new Promise((resolve) => {
      const t = setTimeout(() => c.kill('SIGKILL'), timeoutMs);
      c.once('exit', () => { clearTimeout(t); resolve(); });
      c.kill('SIGTERM');
    });
  }
}
