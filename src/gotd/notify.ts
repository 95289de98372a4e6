/**
 * The notify process: long-lived, started by the parent like listen and
 * auth, fed one "pushed" message after each successful push to a
 * repository with a [repository.notify] section.  It reads the repository
 * (read-only) to describe the push, then sends the HTTP and e-mail
 * notifications from a bounded queue with retries.  It answers nothing but
 * "ready": pushes never wait for it, and a dead receiver costs at most the
 * queue's bound.
 *
 * GOTD_NOTIFY_TIMEOUT and GOTD_NOTIFY_RETRY_DELAY (seconds) shorten the
 * request deadline and the first retry delay; the regression tests use them.
 */
import * as os from 'node:os';
import { Notifier } from '../notify/dispatch';
import { fromNotifySchema, parseMessage, toNotifySchema, type FromNotify } from '../ipc/messages';
import { childLog } from './log';

const log = childLog('notify');

function envMs(name: string): number | undefined {
  const v = process.env[name];
  if (v === undefined || v === '') return undefined;
  const s = Number(v);
  if (!Number.isFinite(s) || s <= 0 || s > 3600) { log.error(`${name}=${JSON.stringify(v)} ignored: not a number of seconds`); return undefined; }
  return Math.round(s * 1000);
}

function whoAmI(): string {
  try {
    return os.userInfo().username;
  } catch {
    return String(process.getuid?.() ?? 'gotd');
  }
}

/** This host's name as EHLO wants it, or an address literal when it is not a usable name. */
function heloName(): string {
  const h = os.hostname();
  return /^[A-Za-z0-9.-]{1,253}$/.test(h) ? h : '[127.0.0.1]';
}

function send(msg: FromNotify): void {
  // Checked on the way out too: a bug here must not become a confusing message there.
  const ok = parseMessage(fromNotifySchema, msg);
  if (ok) process.send?.(ok);
}

function main(): void {
  if (!process.send) { process.stderr.write('gotd notify: must be started by gotd\n'); process.exit(1); }
  const timeoutMs = envMs('GOTD_NOTIFY_TIMEOUT');
  const backoffMs = envMs('GOTD_NOTIFY_RETRY_DELAY');
  const notifier = new Notifier({
    log,
    helo: heloName(),
    defaultFrom: `${whoAmI()}@${heloName().replace(/^\[.*\]$/, 'localhost')}`,
    ...(timeoutMs !== undefined ? { timeoutMs } : {}),
    queue: backoffMs !== undefined ? { backoffMs } : {},
  });

  process.on('message', (raw: unknown) => {
    const msg = parseMessage(toNotifySchema, raw);
    if (!msg) { log.error('malformed message from the parent ignored'); return; }
    try {
      notifier.handle(msg);
    } catch (e) {
      log.error(`${msg.repo}: notification not sent: ${(e as Error).message}`);
    }
  });
  // The parent is gone (gotctl stop, or a crash): queued notifications go with us.
  process.on('disconnect', () => { notifier.stop(); process.exit(0); });
  send({ type: 'ready' });
}

main();
