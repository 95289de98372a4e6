/**
 * Commit ranges: the commits reachable from some tips and not from others
 * (what `git rev-list TIP --not EXCLUDED...` prints), newest first by
 * committer date.  The walk is git's limit_list in miniature: a queue
 * ordered by date, "uninteresting" marks spreading down from the excluded
 * tips, and a stop once only uninteresting commits are left (plus a few
 * steps of slop against clock skew) — so the cost follows the size of the
 * range, not the size of the history.  A budget bounds the work on
 * pathological input; the caller learns when it was hit.
 */
import { parseCommit, parseTag, type Commit } from './object';
import type { ObjectStore } from './odb';

export interface RangeLimits {
  /** Most commits returned; the newest are kept. */
  maxCommits: number;
  /** Most commits read in all; beyond it the walk stops and the result is marked truncated. */
  maxWalk: number;
}

export interface RangeCommit {
  oid: string;
  commit: Commit;
}

export interface CommitRange {
  /** Newest first (committer date, then discovery order). */
  commits: RangeCommit[];
  /** True when maxCommits or maxWalk cut the list short. */
  truncated: boolean;
  /** Commits read, for callers that share one walk budget among several ranges. */
  walked: number;
}

const UNINTERESTING = 1;
const QUEUED = 2;
const DONE = 4;
/** Extra commits walked after only uninteresting ones remain; git uses the same slop. */
const SLOP = 5;
const MAX_PEEL = 10;

interface Node {
  oid: string;
  date: number;
  seq: number;
  parents: string[];
  flags: number;
  commit: Commit | null;
}

/** A max-heap on (date, -seq): newest first, ties in the order found. */
class DateQueue {
  private heap: Node[] = [];

  get length(): number {
    return this.heap.length;
  }

  private static before(a: Node, b: Node): boolean {
    return a.date !== b.date ? a.date > b.date : a.seq < b.seq;
  }

  push(n: Node): void {
    const h = this.heap;
    h.push(n);
    let i = h.length - 1;
    while (i > 0) {
      const p = (i - 1) >> 1;
      if (!DateQueue.before(h[i]!, h[p]!)) break;
      [h[i], h[p]] = [h[p]!, h[i]!];
      i = p;
    }
  }

  pop(): Node | undefined {
    const h = this.heap;
    const top = h[0];
    const last = h.pop();
    if (h.length > 0 && last) {
      h[0] = last;
      let i = 0;
      for (;;) {
        const l = 2 * i + 1;
        const r = l + 1;
        let m = i;
        if (l < h.length && DateQueue.before(h[l]!, h[m]!)) m = l;
        if (r < h.length && DateQueue.before(h[r]!, h[m]!)) m = r;
        if (m === i) break;
        [h[i], h[m]] = [h[m]!, h[i]!];
        i = m;
      }
    }
    return top;
  }

}

/** The commit an object id finally names (annotated tags peeled), or null for trees, blobs and missing objects. */
export function peelToCommit(objects: ObjectStore, oid: string): string | null {
  let id = oid;
  for (let i = 0; i < MAX_PEEL; i++) {
    const obj = objects.read(id);
    if (!obj) return null;
    if (obj.type === 'commit') return id;
    if (obj.type !== 'tag') return null;
    id = parseTag(obj.data).object;
  }
  return null;
}

/**
 * Commits reachable from `tips` but not from `exclude` (both may name
 * annotated tags; trees, blobs and missing objects are ignored).  Missing
 * parents (a shallow or damaged repository) end the walk on that line.
 */
export function commitRange(objects: ObjectStore, tips: string[], exclude: string[], limits: RangeLimits): CommitRange {
  const nodes = new Map<string, Node>();
  const queue = new DateQueue();
  let seq = 0;
  let walked = 0;
  let truncated = false;

  const load = (oid: string): Node | null => {
    let n = nodes.get(oid);
    if (n) return n;
    if (walked >= limits.maxWalk) { truncated = true; return null; }
    const obj = objects.read(oid);
    if (!obj || obj.type !== 'commit') return null;
    walked++;
    const commit = parseCommit(obj.data);
    n = { oid, date: commit.date, seq: seq++, parents: commit.parents, flags: 0, commit };
    nodes.set(oid, n);
    return n;
  };

  // How many queued commits are still interesting: the walk may stop when none are.
  let interesting = 0;
  const enqueue = (n: Node): void => {
    if (n.flags & (QUEUED | DONE)) return;
    n.flags |= QUEUED;
    if (!(n.flags & UNINTERESTING)) interesting++;
    queue.push(n);
  };
  const setUninteresting = (n: Node): boolean => {
    if (n.flags & UNINTERESTING) return false;
    n.flags |= UNINTERESTING;
    n.commit = null;
    if (n.flags & QUEUED) interesting--;
    return true;
  };

  /** Spreads an uninteresting mark to ancestors already loaded (those not loaded get it when reached). */
  const markUninteresting = (start: Node): void => {
    const stack = [start];
    while (stack.length > 0) {
      const n = stack.pop()!;
      for (const p of n.parents) {
        const pn = nodes.get(p);
        if (pn && setUninteresting(pn)) stack.push(pn);
      }
    }
  };

  for (const oid of exclude) {
    const c = peelToCommit(objects, oid);
    const n = c ? load(c) : null;
    if (n) { setUninteresting(n); enqueue(n); }
  }
  for (const oid of tips) {
    const c = peelToCommit(objects, oid);
    const n = c ? load(c) : null;
    if (n) enqueue(n);
  }

  const found: Node[] = [];
  let slop = SLOP;
  while (queue.length > 0) {
    const n = queue.pop()!;
    n.flags = (n.flags & ~QUEUED) | DONE;
    if (n.flags & UNINTERESTING) {
      markUninteresting(n);
    } else {
      interesting--;
      found.push(n);
    }
    for (const p of n.parents) {
      const pn = load(p);
      if (!pn) continue;
      if (n.flags & UNINTERESTING) setUninteresting(pn);
      enqueue(pn);
    }
    if (truncated) break;
    if (interesting === 0) {
      if (--slop <= 0) break;
    } else {
      slop = SLOP;
    }
  }

  const commits: RangeCommit[] = [];
  for (const n of found) {
    if (n.flags & UNINTERESTING) continue;
    if (commits.length >= limits.maxCommits) { truncated = true; break; }
    commits.push({ oid: n.oid, commit: n.commit! });
  }
  return { commits, truncated, walked };
}
