/**
 * What a push changed, read from the repository after the refs moved: for
 * each covered ref update, the new commits (with diffstats), the new tag,
 * or the deletion.  Both the JSON body and the e-mail are rendered from
 * this one summary.
 *
 * Ranges follow gotd: an update old->new lists the commits reachable from
 * new and not from old; a new ref lists the commits no ref had before the
 * push and no ref described before it in this push (or, when there are
 * none, the commit it points at).  Every kind of
 * work has a budget, so a huge push makes a shorter notification, never a
 * stuck or bloated notify process.
 */
import { diffTrees, type DiffBudget, type DiffStat } from '../git/diffstat';
import { ZERO_OID, parseCommit, parseTag, type ObjectType, type Signature } from '../git/object';
import { commitRange } from '../git/revrange';
import type { Repository } from '../git/repository';
import { refMatches, type RefFilter } from './filter';

export interface RefUpdate {
  ref: string;
  old: string;
  new: string;
  ok: boolean;
}

export interface CommitSummary {
  id: string;
  parents: string[];
  author: Signature | null;
  committer: Signature | null;
  /** Committer time, seconds since the epoch. */
  date: number;
  message: string;
  shortMessage: string;
  /** Only for commits listed in full. */
  diffstat: DiffStat | null;
}

export interface TagSummary {
  /** The tagged object and its type. */
  object: string;
  type: ObjectType;
  tagger: Signature | null;
  date: number;
  message: string;
}

export type Change =
  | {
    kind: 'commits'; ref: string; old: string; new: string; created: boolean;
    /** Oldest first. */
    commits: CommitSummary[];
    /** More commits than are listed in full: all are listed short (no message body, no diffstat). */
    short: boolean;
    /** The list was cut (the newest are kept). */
    truncated: boolean;
  }
  | { kind: 'deleted'; ref: string; old: string }
  | { kind: 'tag'; ref: string; old: string; new: string; created: boolean; tag: TagSummary }
  /** A ref pointed at a tree or blob: reported, not described. */
  | { kind: 'other'; ref: string; old: string; new: string; type: ObjectType };

export interface PushSummary {
  repo: string;
  user: string;
  changes: Change[];
  /** Covered ref updates left out because the push had too many. */
  omittedRefs: number;
}

export interface SummaryLimits {
  /** A ref update with more new commits lists them all short (gotd's shortlog threshold). */
  fullCommits: number;
  maxCommitsPerRef: number;
  maxCommitsPerPush: number;
  /** Commits read by all range walks of one push. */
  maxWalk: number;
  maxRefs: number;
  /** Longer commit and tag messages are cut. */
  maxMessageBytes: number;
  maxBlobBytes: number;
  /** Blob bytes read for all diffstats of one push. */
  diffBytes: number;
  /** Changed paths listed in all diffstats of one push. */
  diffFiles: number;
}

export const DEFAULT_LIMITS: SummaryLimits = {
  fullCommits: 50,
  maxCommitsPerRef: 1000,
  maxCommitsPerPush: 5000,
  maxWalk: 200_000,
  maxRefs: 1000,
  maxMessageBytes: 64 * 1024,
  maxBlobBytes: 1024 * 1024,
  diffBytes: 64 * 1024 * 1024,
  diffFiles: 10_000,
};

/** The ref updates of a push that the settings cover: applied ones only. */
export function coveredUpdates(updates: readonly RefUpdate[], filter: RefFilter): RefUpdate[] {
  return updates.filter((u) => u.ok && u.old !== u.new && refMatches(u.ref, filter));
}

function messageText(data: Buffer, max: number): string {
  if (data.length <= max) return data.toString('utf8');
  // Cut on a character boundary: drop a partial UTF-8 sequence at the end.
  let end = max;
  while (end > 0 && (data[end]! & 0xc0) === 0x80) end--;
  return data.toString('utf8', 0, end) + '\n[message truncated]\n';
}

/** gotd's short message: the first line with something on it. */
export function firstLine(message: string): string {
  for (const line of message.split('\n')) {
    const t = line.trim();
    if (t) return t;
  }
  return '';
}

class Summarizer {
  private walkLeft: number;
  private commitsLeft: number;
  private readonly diffBudget: DiffBudget;
  /** New tips of the refs already described in this push: a new ref's commits are not listed twice. */
  private readonly described: string[] = [];

  constructor(private readonly repo: Repository, private readonly limits: SummaryLimits, private readonly before: Map<string, string>) {
    this.walkLeft = limits.maxWalk;
    this.commitsLeft = limits.maxCommitsPerPush;
    this.diffBudget = { blobBytes: limits.diffBytes, files: limits.diffFiles };
  }

  change(u: RefUpdate): Change {
    if (u.new === ZERO_OID) return { kind: 'deleted', ref: u.ref, old: u.old };
    const created = u.old === ZERO_OID;
    const h = this.repo.objects.header(u.new);
    if (!h) throw new Error(`${u.ref}: new object ${u.new} is missing`);
    if (h.type === 'tag') return { kind: 'tag', ref: u.ref, old: u.old, new: u.new, created, tag: this.tag(u.new) };
    if (h.type !== 'commit') return { kind: 'other', ref: u.ref, old: u.old, new: u.new, type: h.type };
    return this.commits(u, created);
  }

  private tag(oid: string): TagSummary {
    const obj = this.repo.objects.read(oid)!;
    const t = parseTag(obj.data);
    return { object: t.object, type: t.type, tagger: t.tagger, date: t.date, message: messageText(t.message, this.limits.maxMessageBytes) };
  }

  private commits(u: RefUpdate, created: boolean): Change {
    const exclude = created
      ? [...[...this.before].filter(([name]) => name !== u.ref).map(([, oid]) => oid), ...this.described]
      : [u.old];
    this.described.push(u.new);
    const max = Math.min(this.limits.maxCommitsPerRef, this.commitsLeft);
    const range = commitRange(this.repo.objects, [u.new], exclude, { maxCommits: max, maxWalk: Math.max(1, this.walkLeft) });
    this.walkLeft -= range.walked;
    let list = range.commits;
    if (created && list.length === 0 && !range.truncated) {
      // A new ref at a commit the repository already had (a branch or a
      // lightweight tag): announce the commit it points at, as gotd does.
      const obj = this.repo.objects.read(u.new)!;
      list = [{ oid: u.new, commit: parseCommit(obj.data) }];
    }
    this.commitsLeft -= list.length;
    const short = list.length > this.limits.fullCommits;
    const commits = list.slice().reverse().map(({ oid, commit }): CommitSummary => {
      const message = messageText(commit.message, short ? 4096 : this.limits.maxMessageBytes);
      return {
        id: oid,
        parents: commit.parents,
        author: commit.author,
        committer: commit.committer,
        date: commit.date,
        message,
        shortMessage: firstLine(message),
        diffstat: short ? null : this.diffstat(commit.tree, commit.parents[0]),
      };
    });
    return { kind: 'commits', ref: u.ref, old: u.old, new: u.new, created, commits, short, truncated: range.truncated };
  }

  private diffstat(tree: string, parent: string | undefined): DiffStat {
    let parentTree: string | null = null;
    if (parent) {
      const p = this.repo.objects.read(parent);
      if (p && p.type === 'commit') parentTree = parseCommit(p.data).tree;
    }
    return diffTrees(this.repo.objects, parentTree, tree, this.diffBudget, { maxBlobBytes: this.limits.maxBlobBytes });
  }
}

/**
 * Summarizes the covered updates of one push.  `onError` hears about a ref
 * that could not be described (a corrupt or missing object); the others are
 * still summarized.
 */
export function summarizePush(
  repo: Repository, name: string, user: string, updates: readonly RefUpdate[], filter: RefFilter,
  opts: { limits?: SummaryLimits; onError?: (ref: string, err: Error) => void } = {},
): PushSummary {
  const limits = opts.limits ?? DEFAULT_LIMITS;
  const covered = coveredUpdates(updates, filter);
  // The refs as they were before this push: what a new ref's commits are new relative to.
  const before = new Map(repo.refs.list().map((r) => [r.name, r.oid] as [string, string]));
  for (const u of updates) {
    if (!u.ok) continue;
    if (u.old === ZERO_OID) before.delete(u.ref); else before.set(u.ref, u.old);
  }
  const s = new Summarizer(repo, limits, before);
  const changes: Change[] = [];
  for (const u of covered.slice(0, limits.maxRefs)) {
    try {
      changes.push(s.change(u));
    } catch (e) {
      opts.onError?.(u.ref, e as Error);
    }
  }
  return { repo: name, user, changes, omittedRefs: Math.max(0, covered.length - limits.maxRefs) };
}
