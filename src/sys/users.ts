/**
 * The system's user database through getent(1), so that NSS (files, LDAP,
 * sssd, ...) answers exactly as it does for login.  Only the parent (at
 * start-up) and the auth process run these; session workers cannot run
 * programs at all.
 */
import { execFile, spawnSync } from 'node:child_process';
import { NAME } from '../config/access';

export interface Account { name: string; uid: number; gid: number; home: string }
export interface Groups { gids: number[]; names: string[] }

const GETENT_TIMEOUT_MS = 5000;

function validKey(key: string | number): boolean {
  return typeof key === 'number' ? Number.isInteger(key) && key >= 0 && key <= 0xffffffff : NAME.test(key);
}

function getentAsync(db: string, keys: Array<string | number>): Promise<string> {
  return new Promise((resolve) => {
    execFile('getent', [db, ...keys.map(String)], { timeout: GETENT_TIMEOUT_MS, maxBuffer: 1 << 20, env: { PATH: '/usr/bin:/bin' } },
      (_err, stdout) => resolve(typeof stdout === 'string' ? stdout : ''));
  });
}

function getentSync(db: string, keys: Array<string | number>): string {
  const r = spawnSync('getent', [db, ...keys.map(String)], { timeout: GETENT_TIMEOUT_MS, encoding: 'utf8', env: { PATH: '/usr/bin:/bin' } });
  return r.stdout ?? '';
}

export function parsePasswd(text: string): Account | null {
  const f = text.split('\n')[0]?.split(':');
  if (!f || f.length < 7) return null;
  const uid = Number(f[2]), gid = Number(f[3]);
  if (!f[0] || !Number.isInteger(uid) || !Number.isInteger(gid)) return null;
  return { name: f[0], uid, gid, home: f[5] ?? '/' };
}

function parseGroups(text: string): Map<number, string> {
  const out = new Map<number, string>();
  for (const line of text.split('\n')) {
    const f = line.split(':');
    if (f.length >= 3 && f[0] && /^[0-9]+$/.test(f[2]!)) out.set(Number(f[2]), f[0]);
  }
  return out;
}

/** getent initgroups NAME: "NAME   100 27 1001" */
function parseInitgroups(text: string): number[] {
  const words = text.split('\n')[0]?.trim().split(/\s+/) ?? [];
  return words.slice(1).filter((w) => /^[0-9]+$/.test(w)).map(Number);
}

export async function accountByUid(uid: number): Promise<Account | null> {
  return validKey(uid) ? parsePasswd(await getentAsync('passwd', [uid])) : null;
}

export async function accountByName(name: string): Promise<Account | null> {
  return validKey(name) ? parsePasswd(await getentAsync('passwd', [name])) : null;
}

/** All groups of an account: its primary group, its supplementary groups, and any extra gids given. */
export async function groupsOf(acct: Account, extraGids: number[] = []): Promise<Groups> {
  const gids = new Set<number>([acct.gid, ...extraGids, ...parseInitgroups(await getentAsync('initgroups', [acct.name]))]);
  const names = parseGroups(await getentAsync('group', [...gids]));
  return { gids: [...gids].sort((a, b) => a - b), names: [...names.values()].sort() };
}

/** Names of some gids (for identities with no account). */
export async function groupNames(gids: number[]): Promise<string[]> {
  if (gids.length === 0) return [];
  return [...parseGroups(await getentAsync('group', gids)).values()].sort();
}

/** Synchronous lookup for start-up (the daemon's own user). */
export function accountSync(nameOrUid: string | number): Account | null {
  const key = typeof nameOrUid === 'string' && /^[0-9]+$/.test(nameOrUid) ? Number(nameOrUid) : nameOrUid;
  return validKey(key) ? parsePasswd(getentSync('passwd', [key])) : null;
}
