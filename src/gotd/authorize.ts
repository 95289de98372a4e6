/**
 * The auth process's decision: who is this client (the kernel's uid, a
 * trusted account's forced-command assertion, or a WebSocket password), and
 * what may they do with the repository they named.  Every refusal looks the
 * same to the client; the reason is only for the log.
 */
import { evaluate, NAME, type Identity } from '../config/access';
import { findRepository, type Config } from '../config/schema';
import type { Secrets } from '../config/secrets';
import type { Service, Who } from '../ipc/messages';
import type { Account, Groups } from '../sys/users';
import { checkPassword } from './password_check';

export interface UserDb {
  byUid(uid: number): Promise<Account | null>;
  byName(name: string): Promise<Account | null>;
  groups(acct: Account, extraGids: number[]): Promise<Groups>;
  groupNames(gids: number[]): Promise<string[]>;
}

export interface AuthResult {
  verdict: 'ro' | 'rw' | 'deny';
  authenticated: boolean;
  user: string;
  repo?: string;
  reason: string;
}

/** A fixed hash to spend the same time on unknown WebSocket users as on known ones. */
const DUMMY_HASH = '$scrypt$ln=15,r=8,p=1$AAAAAAAAAAAAAAAAAAAAAA$AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA';

export function displayName(id: Identity): string {
  if (id.anonymous) return 'anonymous';
  return id.user ?? `uid:${id.uid ?? '?'}`;
}

async function unixIdentity(db: UserDb, acct: Account | null, uid: number, gid: number): Promise<Identity> {
  if (acct) {
    const g = await db.groups(acct, [gid]);
    return { user: acct.name, uid: acct.uid, groups: g.names, gids: g.gids, anonymous: false };
  }
  return { uid, groups: await db.groupNames([gid]), gids: [gid], anonymous: false };
}

function trusted(config: Config, acct: Account | null, uid: number): boolean {
  return config.ssh.trustedAccounts.some((t) => t === String(uid) || (acct !== null && t === acct.name));
}

/** Establishes the identity, or refuses with a reason. */
async function identify(config: Config, secrets: Secrets, db: UserDb, who: Who): Promise<Identity | { refused: string; user: string }> {
  if (who.kind === 'web') {
    if (who.user === null) return { groups: [], gids: [], anonymous: true };
    const entry = Object.hasOwn(secrets.users, who.user) ? secrets.users[who.user] : undefined;
    const good = await checkPassword(who.user, who.password, entry?.password ?? DUMMY_HASH);
    if (!entry || !good) return { refused: entry ? 'wrong password' : 'unknown user', user: who.user };
    return { user: who.user, groups: entry.groups, gids: [], anonymous: false };
  }
  const peer = who.peer;
  const acct = await db.byUid(peer.uid);
  if (who.asUser === undefined) return unixIdentity(db, acct, peer.uid, peer.gid);

  const by = acct?.name ?? `uid ${peer.uid}`;
  if (!trusted(config, acct, peer.uid)) {
    return { refused: `${by} asserted user ${JSON.stringify(who.asUser)} but is not in [ssh] trusted_accounts`, user: by };
  }
  if (!NAME.test(who.asUser) || who.asUser === 'anonymous') {
    return { refused: `${by} asserted a bad user name ${JSON.stringify(who.asUser)}`, user: by };
  }
  const asAcct = await db.byName(who.asUser);
  if (!asAcct) return { user: who.asUser, groups: [], gids: [], anonymous: false };
  const g = await db.groups(asAcct, []);
  return { user: asAcct.name, uid: asAcct.uid, groups: g.names, gids: g.gids, anonymous: false };
}

export async function authorize(config: Config, secrets: Secrets, db: UserDb, who: Who, repoName: string, service: Service): Promise<AuthResult> {
  const id = await identify(config, secrets, db, who);
  if ('refused' in id) return { verdict: 'deny', authenticated: false, user: id.user, reason: id.refused };
  const user = displayName(id);
  const repo = findRepository(config, repoName);
  if (!repo) return { verdict: 'deny', authenticated: true, user, reason: `no repository ${JSON.stringify(repoName)}` };
  const verdict = evaluate(repo.access, id);
  if (verdict === 'deny') return { verdict, authenticated: true, user, reason: `no rule of ${repo.name} permits ${user}` };
  return { verdict, authenticated: true, user, repo: repo.name, reason: `${service} ${verdict}` };
}
