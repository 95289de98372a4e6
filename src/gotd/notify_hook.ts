/**
 * Where a finished push's ref updates leave the parent.  The notify process
 * (issue 7) will receive them here as a ToNotify message; until then they
 * are only logged.
 */
import type { RefUpdateMsg, ToNotify } from '../ipc/messages';
import type { Log } from './log';

export function pushed(log: Log, repo: string, user: string, updates: RefUpdateMsg[]): void {
  const applied = updates.filter((u) => u.ok);
  if (applied.length === 0) return;
  const msg: ToNotify = { type: 'pushed', repo, user, updates: applied };
  log.info(`push to ${msg.repo} by ${msg.user}: ${msg.updates.map((u) => `${u.ref} ${u.old.slice(0, 12)}..${u.new.slice(0, 12)}`).join(', ')}`);
}
