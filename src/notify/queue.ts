/**
 * The delivery queue: bounded in jobs and bytes, a few deliveries at a time,
 * retries with exponential backoff.  When it is full the oldest job that is
 * not being sent right now is dropped, with a log line — a dead receiver
 * costs at most the bound, never the daemon's memory, and never a push.
 * Each target gets one delivery at a time (so a receiver hears about pushes
 * in order, retries aside), and jobs waiting for a retry hold no slot: a
 * dead receiver ties up one slot, never the others' deliveries.
 */
import { DeliveryError } from './http';

export interface Job {
  /** For log lines: "https://ci.example/hook (src)". */
  label: string;
  /** The target: jobs with the same key are sent one at a time, oldest first. */
  key: string;
  /** Memory the job holds (its body), counted against the bound. */
  bytes: number;
  /** One attempt; throws DeliveryError (or anything else: treated as temporary). */
  run(): Promise<void>;
}

export interface QueueOptions {
  maxJobs: number;
  maxBytes: number;
  concurrency: number;
  /** Attempts in all, the first included. */
  maxAttempts: number;
  /** Wait before the first retry; doubles for each further one, up to maxBackoffMs. */
  backoffMs: number;
  maxBackoffMs: number;
  log: { error(m: string): void; info(m: string): void };
}

export const DEFAULT_QUEUE: Omit<QueueOptions, 'log'> = {
  maxJobs: 256,
  maxBytes: 32 * 1024 * 1024,
  concurrency: 4,
  maxAttempts: 5,
  backoffMs: 2000,
  maxBackoffMs: 5 * 60 * 1000,
};

interface Entry {
  job: Job;
  attempts: number;
  readyAt: number;
  running: boolean;
}

export interface QueueStats {
  queued: number;
  bytes: number;
  running: number;
  delivered: number;
  failed: number;
  dropped: number;
}

export class DeliveryQueue {
  /** Oldest first. */
  private entries: Entry[] = [];
  private bytes = 0;
  private running = 0;
  private busyKeys = new Set<string>();
  private timer: NodeJS.Timeout | null = null;
  private idleWaiters: (() => void)[] = [];
  private stopped = false;
  private readonly counts = { delivered: 0, failed: 0, dropped: 0 };

  constructor(private readonly opts: QueueOptions) {}

  stats(): QueueStats {
    return { queued: this.entries.length, bytes: this.bytes, running: this.running, ...this.counts };
  }

  push(job: Job): void {
    if (this.stopped) return;
    if (job.bytes > this.opts.maxBytes) {
      this.counts.dropped++;
      this.opts.log.error(`notification for ${job.label} dropped: ${job.bytes} bytes is more than the queue holds`);
      return;
    }
    while (this.entries.length >= this.opts.maxJobs || this.bytes + job.bytes > this.opts.maxBytes) {
      const victim = this.entries.find((e) => !e.running);
      if (!victim) break;
      this.remove(victim);
      this.counts.dropped++;
      this.opts.log.error(`notification queue full (${this.entries.length + 1} jobs, ${this.bytes + victim.job.bytes} bytes): dropped the oldest, for ${victim.job.label}`);
    }
    this.entries.push({ job, attempts: 0, readyAt: 0, running: false });
    this.bytes += job.bytes;
    this.pump();
  }

  /** Resolves when nothing is queued or running (tests, shutdown). */
  idle(): Promise<void> {
    if (this.entries.length === 0) return Promise.resolve();
    return new Promise((resolve) => this.idleWaiters.push(resolve));
  }

  /** Forgets everything queued; running attempts finish but are not retried. */
  stop(): void {
    this.stopped = true;
    if (this.timer) clearTimeout(this.timer);
    this.timer = null;
    for (const e of this.entries.filter((x) => !x.running)) this.remove(e);
  }

  private remove(e: Entry): void {
    const i = this.entries.indexOf(e);
    if (i < 0) return;
    this.entries.splice(i, 1);
    this.bytes -= e.job.bytes;
    if (this.entries.length === 0) {
      for (const w of this.idleWaiters.splice(0)) w();
    }
  }

  private pump(): void {
    if (this.stopped) return;
    const now = Date.now();
    let next = Infinity;
    for (const e of this.entries) {
      if (this.running >= this.opts.concurrency) break;
      if (e.running || this.busyKeys.has(e.job.key)) continue;
      if (e.readyAt > now) { next = Math.min(next, e.readyAt); continue; }
      this.start(e);
    }
    if (this.timer) { clearTimeout(this.timer); this.timer = null; }
    if (next !== Infinity && this.running < this.opts.concurrency) {
      this.timer = setTimeout(() => { this.timer = null; this.pump(); }, Math.max(0, next - now));
    }
  }

  private start(e: Entry): void {
    e.running = true;
    e.attempts++;
    this.running++;
    this.busyKeys.add(e.job.key);
    e.job.run().then(
      () => {
        this.counts.delivered++;
        if (e.attempts > 1) this.opts.log.info(`notification for ${e.job.label} delivered on attempt ${e.attempts}`);
        this.finish(e, true);
      },
      (err: unknown) => {
        const permanent = err instanceof DeliveryError && err.permanent;
        const msg = err instanceof Error ? err.message : String(err);
        if (permanent || e.attempts >= this.opts.maxAttempts || this.stopped) {
          this.counts.failed++;
          this.opts.log.error(`notification for ${e.job.label} failed${permanent ? '' : ` after ${e.attempts} attempts`}: ${msg}`);
          this.finish(e, true);
          return;
        }
        const delay = Math.min(this.opts.maxBackoffMs, this.opts.backoffMs * 2 ** (e.attempts - 1));
        // A little jitter, so that targets that failed together do not retry in lockstep.
        e.readyAt = Date.now() + delay + Math.floor(Math.random() * delay * 0.1);
        this.opts.log.info(`notification for ${e.job.label}: attempt ${e.attempts} failed (${msg}); retrying in ${Math.round(delay / 1000)} s`);
        this.finish(e, false);
      },
    );
  }

  private finish(e: Entry, done: boolean): void {
    e.running = false;
    this.running--;
    this.busyKeys.delete(e.job.key);
    if (done) this.remove(e);
    this.pump();
  }
}
