/**
 * From "this push happened" to queued deliveries: pick the covered ref
 * updates, open the repository read-only to summarize them, render the JSON
 * body once and one e-mail per recipient, and queue a job per target.
 * Nothing here waits for a delivery.
 */
import { Repository } from '../git/repository';
import { emailMessage } from './email';
import { displayUrl, post, targetProblem } from './http';
import type { Pushed } from '../ipc/messages';
import { notificationBody } from './json';
import { DEFAULT_QUEUE, DeliveryQueue, type QueueOptions, type QueueStats } from './queue';
import { sendMail } from './smtp';
import { DEFAULT_LIMITS, coveredUpdates, summarizePush, type SummaryLimits } from './summary';

export interface NotifierLog {
  error(m: string): void;
  info(m: string): void;
  debug(m: string): void;
}

export interface NotifierOptions {
  log: NotifierLog;
  queue?: Partial<Omit<QueueOptions, 'log'>>;
  /** Deadline of one HTTP request, and of each SMTP reply. */
  timeoutMs?: number;
  /** Our name in EHLO. */
  helo: string;
  /** Sender when an e-mail target names none: the daemon's user at this host. */
  defaultFrom: string;
  limits?: SummaryLimits;
  /** Extra trusted CA certificates for https (tests). */
  ca?: string | Buffer;
}

export const DEFAULT_TIMEOUT_MS = 30_000;

export class Notifier {
  private readonly queue: DeliveryQueue;
  private readonly timeoutMs: number;

  constructor(private readonly opts: NotifierOptions) {
    this.queue = new DeliveryQueue({ ...DEFAULT_QUEUE, ...opts.queue, log: opts.log });
    this.timeoutMs = opts.timeoutMs ?? DEFAULT_TIMEOUT_MS;
  }

  stats(): QueueStats {
    return this.queue.stats();
  }

  idle(): Promise<void> {
    return this.queue.idle();
  }

  stop(): void {
    this.queue.stop();
  }

  /** Summarizes a push and queues its notifications; returns how many deliveries were queued. */
  handle(msg: Pushed): number {
    const { log } = this.opts;
    const n = msg.notify;
    if (n.http.length === 0 && n.email.length === 0) return 0;
    if (coveredUpdates(msg.updates, n).length === 0) return 0;

    let repo: Repository;
    try {
      repo = Repository.open(msg.path);
    } catch (e) {
      log.error(`${msg.repo}: cannot open ${msg.path}: ${(e as Error).message}`);
      return 0;
    }
    let summary;
    try {
      summary = summarizePush(repo, msg.repo, msg.user, msg.updates, n, {
        limits: this.opts.limits ?? DEFAULT_LIMITS,
        onError: (ref, err) => log.error(`${msg.repo}: cannot describe ${ref}: ${err.message}`),
      });
    } finally {
      repo.close();
    }
    if (summary.changes.length === 0) return 0;

    let queued = 0;
    const body = notificationBody(summary);
    if (body) {
      for (const t of n.http) {
        const where = `${displayUrl(t.url)} (${msg.repo})`;
        const hmacSecret = t.hmac !== undefined ? msg.secrets.hmac[t.hmac] : undefined;
        const auth = t.auth !== undefined ? msg.secrets.auth[t.auth] : undefined;
        if ((t.hmac !== undefined && hmacSecret === undefined) || (t.auth !== undefined && auth === undefined)) {
          log.error(`notification for ${where} not sent: its hmac or auth label has no secret`);
          continue;
        }
        const problem = targetProblem(t.url, auth !== undefined, t.insecure);
        if (problem) {
          log.error(`notification for ${where} not sent: ${problem}`);
          continue;
        }
        const target = { url: t.url, insecure: t.insecure, ...(hmacSecret !== undefined ? { hmacSecret } : {}), ...(auth ? { auth } : {}) };
        const ca = this.opts.ca;
        this.queue.push({
          label: where,
          key: `http ${t.url}`,
          bytes: body.length,
          run: () => post(target, body, { timeoutMs: this.timeoutMs, ...(ca !== undefined ? { ca } : {}) }),
        });
        queued++;
      }
    }
    for (const t of n.email) {
      const from = t.from ?? this.opts.defaultFrom;
      let message: string;
      try {
        message = emailMessage(summary, { from, to: t.to, ...(t.replyTo ? { replyTo: t.replyTo } : {}) });
      } catch (e) {
        log.error(`e-mail to ${t.to} (${msg.repo}) not sent: ${(e as Error).message}`);
        continue;
      }
      const smtp = { host: t.relay, port: t.port, helo: this.opts.helo, timeoutMs: this.timeoutMs };
      this.queue.push({
        label: `mail to ${t.to} via ${t.relay}:${t.port} (${msg.repo})`,
        key: `smtp ${t.relay}:${t.port} ${t.to}`,
        bytes: message.length,
        run: () => sendMail(smtp, { from, to: [t.to] }, message),
      });
      queued++;
    }
    const commits = summary.changes.reduce((k, c) => k + (c.kind === 'commits' ? c.commits.length : 0), 0);
    log.info(`${msg.repo}: push by ${msg.user}: ${summary.changes.length} refs, ${commits} commits; ${queued} notifications queued`);
    return queued;
  }
}
