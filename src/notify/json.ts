/**
 * The HTTP notification body, in OpenBSD gotd's format (gotd.conf(5),
 * got-notify-http):
 *
 *   {"notifications": [ {...}, ... ]}
 *
 * Every object has "type", "repo" (the configured repository name) and
 * "auth_user" (who pushed).  Types:
 *  - "commit": "short" (true when the push brought more commits than are
 *    listed in full), "id", "committer" and "author" ({full, name, mail,
 *    user}), "date" (committer time, seconds since the epoch),
 *    "short_message"; in full entries also "message", "diffstat"
 *    ({files: [{action, file, added, removed}], total: {added, removed}})
 *    and, for merges, "parents".  Commits come oldest first.
 *  - "branch-deleted": "ref", "id" (what the ref pointed at).
 *  - "tag": "tag" (the ref name), "tagger", "date", "object" ({type, id}),
 *    "message".
 * Our additions, which gotd receivers ignore: "ref" on commit objects (the
 * ref the commit was pushed to) and "binary": true on diffstat files whose
 * lines were not counted.
 */
import type { Signature } from '../git/object';
import type { Change, CommitSummary, PushSummary } from './summary';

export interface JsonPerson {
  full: string;
  name: string;
  mail: string;
  user: string;
}

/** "Flan Hacker <flan@openbsd.org>" -> full, name, mail and the mail's local part as user. */
export function person(sig: Signature | null): JsonPerson {
  if (!sig) return { full: '', name: '', mail: '', user: '' };
  const at = sig.email.indexOf('@');
  return {
    full: `${sig.name} <${sig.email}>`,
    name: sig.name,
    mail: sig.email,
    user: at >= 0 ? sig.email.slice(0, at) : sig.email,
  };
}

const ACTIONS = { A: 'added', D: 'deleted', M: 'modified', m: 'mode changed' } as const;

function commitObject(base: Record<string, unknown>, ref: string, c: CommitSummary, short: boolean): Record<string, unknown> {
  const o: Record<string, unknown> = {
    type: 'commit', short, ...base, ref, id: c.id,
    committer: person(c.committer),
  };
  if (!short) o.author = person(c.author);
  o.date = c.date;
  if (!short && c.parents.length > 1) o.parents = c.parents;
  o.short_message = c.shortMessage;
  if (!short) o.message = c.message;
  if (!short && c.diffstat) {
    o.diffstat = {
      files: c.diffstat.files.map((f) => ({
        action: ACTIONS[f.status], file: f.path, added: f.added, removed: f.removed, ...(f.binary ? { binary: true } : {}),
      })),
      total: { added: c.diffstat.added, removed: c.diffstat.removed },
    };
  }
  return o;
}

function changeObjects(base: Record<string, unknown>, ch: Change): Record<string, unknown>[] {
  switch (ch.kind) {
    case 'commits':
      return ch.commits.map((c) => commitObject(base, ch.ref, c, ch.short));
    case 'deleted':
      return [{ type: 'branch-deleted', ...base, ref: ch.ref, id: ch.old }];
    case 'tag':
      return [{
        type: 'tag', ...base, tag: ch.ref, tagger: person(ch.tag.tagger), date: ch.tag.date,
        object: { type: ch.tag.type, id: ch.tag.object }, message: ch.tag.message,
      }];
    case 'other':
      // gotd has no notification type for a ref to a tree or blob.
      return [];
  }
}

/** The JSON objects of a push, in ref-update order. */
export function notifications(summary: PushSummary): Record<string, unknown>[] {
  const base = { repo: summary.repo, auth_user: summary.user };
  return summary.changes.flatMap((ch) => changeObjects(base, ch));
}

/** The request body; null when the push has nothing gotd would announce. */
export function notificationBody(summary: PushSummary): Buffer | null {
  const list = notifications(summary);
  if (list.length === 0) return null;
  return Buffer.from(JSON.stringify({ notifications: list }), 'utf8');
}
