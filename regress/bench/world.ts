/**
 * What the daemon sections of make bench start from: an installed gotd,
 * the test accounts, and copies of `medium` (ours) and `small` (owned by
 * the daemon user) in a fresh directory. Null, with the reason printed,
 * when the accounts cannot be made (not root).
 */
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { DAEMON_USER, ensureAccounts, install, mustAccount, openTmpdir, repoFor, type Install } from '../lib/daemon';
import { benchRepo } from './lib';

export interface BenchWorld { inst: Install; dir: string; medium: string; small: string; me: string }

export function benchWorld(prefix: string): BenchWorld | null {
  const why = ensureAccounts();
  if (why) { console.log(`skipped: ${why}`); return null; }
  const inst = install();
  const dir = openTmpdir(prefix);
  const medium = path.join(dir, 'medium.git');
  fs.cpSync(benchRepo('medium'), medium, { recursive: true });
  fs.chmodSync(medium, 0o755);
  const small = repoFor(dir, 'small', mustAccount(DAEMON_USER));
  return { inst, dir, medium, small, me: os.userInfo().username };
}
