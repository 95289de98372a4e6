/**
 * Dropping root for good: supplementary groups, then gid, then uid (setuid
 * as root sets real, effective and saved uid at once), then proof from the
 * kernel that it worked and cannot be undone.
 */
import * as fs from 'node:fs';
import type { Account } from './users';

export interface ProcIds { uid: number[]; gid: number[]; groups: number[] }

/** Real, effective, saved and filesystem ids of a process, from /proc/PID/status. */
export function procIds(pid: number | 'self' = 'self'): ProcIds {
  const status = fs.readFileSync(`/proc/${pid}/status`, 'utf8');
  const line = (key: string): number[] => {
    const m = new RegExp(`^${key}:\\s*(.*)$`, 'm').exec(status);
    return m ? m[1]!.trim().split(/\s+/).filter(Boolean).map(Number) : [];
  };
  return { uid: line('Uid'), gid: line('Gid'), groups: line('Groups') };
}

export function dropPrivileges(acct: Account): void {
  if (acct.uid === 0) throw new Error(`user ${acct.name} is root; gotd needs an unprivileged account`);
  const posix = process as unknown as {
    initgroups(user: string, extraGroup: number): void; setgid(id: number): void; setuid(id: number): void;
  };
  if (typeof posix.initgroups !== 'function') throw new Error('this platform cannot change user ids');
  posix.initgroups(acct.name, acct.gid);
  posix.setgid(acct.gid);
  posix.setuid(acct.uid);

  const ids = procIds();
  if (ids.uid.length !== 4 || ids.uid.some((u) => u !== acct.uid) || ids.gid.some((g) => g !== acct.gid)) {
    throw new Error(`privilege drop to ${acct.name} failed: Uid ${ids.uid.join(' ')} Gid ${ids.gid.join(' ')}`);
  }
  let regained = false;
  try { posix.setuid(0); regained = true; } catch { /* expected */ }
  if (regained) throw new Error('privilege drop failed: setuid(0) still works');
}
