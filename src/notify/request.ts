/**
 * The parent's side of notifications: after a successful push, the one
 * message for the notify process — the repository, who pushed, the applied
 * ref updates, that repository's notify settings and only the secrets they
 * name.  Also the configuration warnings gotd logs at start, reload and
 * `gotd -n` for targets that would be skipped at delivery.
 */
import type { Config, RepositoryConfig } from '../config/schema';
import type { Secrets } from '../config/secrets';
import { refMatches } from './filter';
import { targetProblem } from './http';
import type { NotifySecrets, Pushed } from '../ipc/messages';

export interface PushedRef {
  ref: string;
  old: string;
  new: string;
  ok: boolean;
}

/** The notify message for a finished push, or null when there is nothing to announce. */
export function pushedMessage(repo: RepositoryConfig, secrets: Secrets, user: string, updates: readonly PushedRef[]): Pushed | null {
  const n = repo.notify;
  if (!n || (n.http.length === 0 && n.email.length === 0)) return null;
  const applied = updates.filter((u) => u.ok && u.old !== u.new);
  if (!applied.some((u) => refMatches(u.ref, n))) return null;
  const picked: NotifySecrets = { hmac: {}, auth: {} };
  for (const h of n.http) {
    if (h.hmac !== undefined && h.hmac in secrets.hmac) picked.hmac[h.hmac] = secrets.hmac[h.hmac]!;
    if (h.auth !== undefined && h.auth in secrets.auth) picked.auth[h.auth] = secrets.auth[h.auth]!;
  }
  return {
    type: 'pushed',
    repo: repo.name,
    path: repo.path,
    user,
    // All applied updates go along (not only the covered ones): a new branch's
    // commits are those no ref had before the push, which needs the others' old values.
    updates: applied.map((u) => ({ ref: u.ref, old: u.old, new: u.new, ok: true })),
    notify: {
      branches: n.branches,
      namespaces: n.namespaces,
      http: n.http.map((h) => ({ url: h.url, insecure: h.insecure, ...(h.hmac !== undefined ? { hmac: h.hmac } : {}), ...(h.auth !== undefined ? { auth: h.auth } : {}) })),
      email: n.email.map((e) => ({
        to: e.to, relay: e.relay, port: e.port,
        ...(e.from !== undefined ? { from: e.from } : {}),
        ...(e.reply_to !== undefined ? { replyTo: e.reply_to } : {}),
      })),
    },
    secrets: picked,
  };
}

/** One line per HTTP target that would be skipped at delivery (e.g. Basic auth over plain http://). */
export function notifyWarnings(config: Config, file: string): string[] {
  const out: string[] = [];
  config.repositories.forEach((r, i) => {
    r.notify?.http.forEach((h, j) => {
      const problem = targetProblem(h.url, h.auth !== undefined, h.insecure);
      if (problem) out.push(`${file}: repository[${i}].notify.http[${j}]: ${problem}; this target will be skipped`);
    });
  });
  return out;
}
