/**
 * Access rules of a repository ("permit ro alice", "permit rw :developers",
 * "deny 1001", "permit ro anonymous") and the identities they match.
 * Rules are evaluated in order and the last one that matches wins; when
 * none matches, access is denied.
 */

export type Who =
  | { kind: 'user'; name: string }
  | { kind: 'uid'; id: number }
  | { kind: 'group'; name: string }
  | { kind: 'gid'; id: number }
  | { kind: 'anonymous' };

export type AccessRule =
  | { action: 'permit'; mode: 'ro' | 'rw'; who: Who }
  | { action: 'deny'; who: Who };

export type Verdict = 'ro' | 'rw' | 'deny';

/** Who is asking, as established by the kernel (unix socket) or a password (WebSocket). */
export interface Identity {
  /** Account name; absent for a unix uid the user database does not know. */
  user?: string;
  uid?: number;
  groups: string[];
  gids: number[];
  /** An unauthenticated WebSocket client; never true for unix socket clients. */
  anonymous: boolean;
}

/** Unix-ish account and group names; never starting with "-" so they stay out of option parsing. */
export const NAME = /^[A-Za-z0-9_][A-Za-z0-9_.@-]{0,63}$/;
const NUMBER = /^[0-9]{1,10}$/;

function parseWho(text: string): Who | string {
  if (text === 'anonymous') return { kind: 'anonymous' };
  const group = text.startsWith(':');
  const body = group ? text.slice(1) : text;
  if (NUMBER.test(body)) {
    const id = Number(body);
    if (id > 0xffffffff) return `id ${body} is out of range`;
    return group ? { kind: 'gid', id } : { kind: 'uid', id };
  }
  if (!NAME.test(body)) return `bad ${group ? 'group' : 'user'} name ${JSON.stringify(body)}`;
  return group ? { kind: 'group', name: body } : { kind: 'user', name: body };
}

/** Parses one rule; returns an error text when it is not a rule. */
export function parseRule(text: string): AccessRule | string {
  const words = text.trim().split(/\s+/);
  const usage = `bad rule ${JSON.stringify(text)}: expected "permit ro|rw IDENTITY" or "deny IDENTITY"`;
  if (words[0] === 'permit' && words.length === 3) {
    if (words[1] !== 'ro' && words[1] !== 'rw') return `${usage} (mode must be ro or rw)`;
    const who = parseWho(words[2]!);
    if (typeof who === 'string') return `${usage} (${who})`;
    return { action: 'permit', mode: words[1], who };
  }
  if (words[0] === 'deny' && words.length === 2) {
    const who = parseWho(words[1]!);
    if (typeof who === 'string') return `${usage} (${who})`;
    return { action: 'deny', who };
  }
  return usage;
}

export function matches(who: Who, id: Identity): boolean {
  switch (who.kind) {
    case 'anonymous': return id.anonymous;
    case 'user': return !id.anonymous && id.user === who.name;
    case 'uid': return !id.anonymous && id.uid === who.id;
    case 'group': return !id.anonymous && id.groups.includes(who.name);
    case 'gid': return !id.anonymous && id.gids.includes(who.id);
  }
}

/** The last matching rule decides; no match means deny. */
export function evaluate(rules: readonly AccessRule[], id: Identity): Verdict {
  let verdict: Verdict = 'deny';
  for (const rule of rules) {
    if (matches(rule.who, id)) verdict = rule.action === 'deny' ? 'deny' : rule.mode;
  }
  return verdict;
}

export function formatRule(rule: AccessRule): string {
  const w = rule.who;
  const who = w.kind === 'anonymous' ? 'anonymous'
    : w.kind === 'user' ? w.name : w.kind === 'uid' ? String(w.id)
    : w.kind === 'group' ? `:${w.name}` : `:${w.id}`;
  return rule.action === 'deny' ? `deny ${who}` : `permit ${rule.mode} ${who}`;
}
