/**
 * Commit-level walks: the parsed-commit cache, the date-ordered "limited"
 * walk git uses for want/have (UNINTERESTING propagation), reachability,
 * and the shallow-boundary computations behind deepen, deepen-since and
 * deepen-not (git's shallow.c, step for step).
 */
import { ObjectCorruptError, type ObjectStore } from './odb';
import { ObjectFormatError, parseTag } from './object';

export interface CommitNode {
  oid: string;
  tree: string;
  parents: string[];
  date: number;
}

export class MissingObjectError extends Error {
  override name = 'MissingObjectError';
  constructor(readonly oid: string, what = 'object') {
    super(`missing ${what} ${oid}`);
  }
}

const T = 0x74; // 't'
const P = 0x70; // 'p'
const NL = 0x0a;

/** True when data[at..at+40) is lower-case hex. */
function hexAt(data: Buffer, at: number): boolean {
  if (at + 40 > data.length) return false;
  for (let i = at; i < at + 40; i++) {
    const c = data[i]!;
    if (!((c >= 0x30 && c <= 0x39) || (c >= 0x61 && c <= 0x66))) return false;
  }
  return true;
}

/**
 * Fast commit header parse: tree, parents, committer date, nothing else
 * (what a walk needs), read from the bytes without decoding the commit.
 */
export function parseCommitHeader(oid: string, data: Buffer): CommitNode {
  if (data[0] !== T || data.toString('latin1', 0, 5) !== 'tree ' || !hexAt(data, 5) || data[45] !== NL) {
    throw new ObjectFormatError(`commit ${oid}: bad tree line`);
  }
  const tree = data.toString('latin1', 5, 45);
  const parents: string[] = [];
  let p = 46;
  while (data[p] === P && data.toString('latin1', p, p + 7) === 'parent ') {
    if (!hexAt(data, p + 7) || data[p + 47] !== NL) throw new ObjectFormatError(`commit ${oid}: bad parent line`);
    parents.push(data.toString('latin1', p + 7, p + 47));
    p += 48;
  }
  let date = 0;
  const c = data.indexOf('\ncommitter ', p - 1, 'latin1');
  if (c >= 0) {
    let eol = data.indexOf(NL, c + 1);
    if (eol < 0) eol = data.length;
    // "... <email> 1234567890 +0100": the number after the last "> ".
    let gt = eol - 1;
    while (gt > c && !(data[gt] === 0x20 && data[gt - 1] === 0x3e)) gt--;
    if (gt > c) {
      let n = 0;
      let digits = 0;
      for (let i = gt + 1; i < eol && data[i]! >= 0x30 && data[i]! <= 0x39 && digits < 16; i++, digits++) n = n * 10 + (data[i]! - 0x30);
      if (digits > 0) date = n;
    }
  }
  return { oid, tree, parents, date };
}

export const INFINITE_DEPTH = 0x7fffffff;

/** Max-heap of commits by date (ties: first pushed first), what git's date-ordered walks use. */
class DateQueue {
  private heap: { node: CommitNode; seq: number }[] = [];
  private seq = 0;

  get size(): number { return this.heap.length; }

  push(node: CommitNode): void {
    const h = this.heap;
    h.push({ node, seq: this.seq++ });
    let i = h.length - 1;
    while (i > 0) {
      const parent = (i - 1) >> 1;
      if (!this.before(h[i]!, h[parent]!)) break;
      [h[i], h[parent]] = [h[parent]!, h[i]!];
      i = parent;
    }
  }

  pop(): CommitNode | undefined {
    const h = this.heap;
    if (h.length === 0) return undefined;
    const top = h[0]!;
    const last = h.pop()!;
    if (h.length > 0) {
      h[0] = last;
      let i = 0;
      for (;;) {
        const l = 2 * i + 1;
        const r = l + 1;
        let m = i;
        if (l < h.length && this.before(h[l]!, h[m]!)) m = l;
        if (r < h.length && this.before(h[r]!, h[m]!)) m = r;
        if (m === i) break;
        [h[i], h[m]] = [h[m]!, h[i]!];
        i = m;
      }
    }
    return top.node;
  }

  private before(a: { node: CommitNode; seq: number }, b: { node: CommitNode; seq: number }): boolean {
    return a.node.date > b.node.date || (a.node.date === b.node.date && a.seq < b.seq);
  }
}

export { DateQueue };

const UNINTERESTING = 1;
const SEEN = 2;
const IN_QUEUE = 4;

export interface LimitedWalkResult {
  /** Interesting commits, newest first. */
  commits: CommitNode[];
  /** Uninteresting parents of interesting commits: what the client surely has. */
  boundary: CommitNode[];
  /** Every commit marked uninteresting during the walk. */
  uninteresting: Set<string>;
}

export class CommitGraph {
  private nodes = new Map<string, CommitNode>();

  constructor(readonly store: ObjectStore) {}

  /** The commit, or null when the object is missing or not a commit. */
  lookup(oid: string): CommitNode | null {
    const hit = this.nodes.get(oid);
    if (hit) return hit;
    const obj = this.store.read(oid);
    if (!obj || obj.type !== 'commit') return null;
    const node = parseCommitHeader(oid, obj.data);
    this.nodes.set(oid, node);
    return node;
  }

  /** Like lookup, but a missing commit is repository corruption. */
  get(oid: string): CommitNode {
    const n = this.lookup(oid);
    if (!n) throw new MissingObjectError(oid, 'commit');
    return n;
  }

  /** Follows annotated tags; returns the final object's id and type, or null when missing. */
  peel(oid: string): { oid: string; type: string } | null {
    let cur = oid;
    for (let i = 0; i < 64; i++) {
      const h = this.store.header(cur);
      if (!h) return null;
      if (h.type !== 'tag') return { oid: cur, type: h.type };
      const obj = this.store.read(cur);
      if (!obj) return null;
      try {
        cur = parseTag(obj.data).object;
      } catch (err) {
        if (err instanceof ObjectFormatError) throw new ObjectCorruptError(`tag ${cur}: ${err.message}`);
        throw err;
      }
    }
    throw new ObjectCorruptError(`tag chain from ${oid} is too long`);
  }

  /** The commit an object leads to through tags, or null for trees, blobs and missing objects. */
  commitOf(oid: string): CommitNode | null {
    const p = this.peel(oid);
    return p && p.type === 'commit' ? this.get(p.oid) : null;
  }

  /**
   * git's limit_list(): a date-ordered walk from `interesting` down to where
   * everything left is reachable from `uninteresting`. `grafts` are commits
   * walked as if they had no parents (the client's shallow boundary);
   * commits older than `maxAge` count as uninteresting (deepen-since).
   */
  limitedWalk(
    interesting: string[],
    uninteresting: string[],
    opts: { grafts?: ReadonlySet<string>; maxAge?: number } = {},
  ): LimitedWalkResult {
    const grafts = opts.grafts ?? new Set<string>();
    const flags = new Map<string, number>();
    const queue = new DateQueue();
    let interestingQueued = 0;
    const parentsOf = (n: CommitNode) => (grafts.has(n.oid) ? [] : n.parents);
    const enqueue = (n: CommitNode) => {
      const f = flags.get(n.oid) ?? 0;
      flags.set(n.oid, f | SEEN | IN_QUEUE);
      if (!(f & UNINTERESTING)) interestingQueued++;
      queue.push(n);
    };
    const markUninteresting = (start: CommitNode) => {
      // mark_parents_uninteresting(): through parents already seen; unseen ones get it when reached.
      const stack = [start];
      while (stack.length) {
        const n = stack.pop()!;
        for (const p of parentsOf(n)) {
          const f = flags.get(p) ?? 0;
          if (f & UNINTERESTING) continue;
          flags.set(p, f | UNINTERESTING);
          if (f & IN_QUEUE) interestingQueued--;
          const pn = this.nodes.get(p);
          if (pn && f & SEEN) stack.push(pn);
        }
      }
    };
    for (const oid of uninteresting) {
      const n = this.commitOf(oid);
      if (!n) continue;
      const f = flags.get(n.oid) ?? 0;
      if (f & UNINTERESTING) continue;
      if (f & IN_QUEUE) interestingQueued--;
      flags.set(n.oid, f | UNINTERESTING);
      if (!(f & SEEN)) enqueue(n);
    }
    for (const oid of interesting) {
      const n = this.commitOf(oid);
      if (n && !((flags.get(n.oid) ?? 0) & SEEN)) enqueue(n);
    }
    const list: CommitNode[] = [];
    let slop = 5;
    while (queue.size > 0) {
      const n = queue.pop()!;
      let f = flags.get(n.oid)! & ~IN_QUEUE;
      if (!(f & UNINTERESTING)) interestingQueued--;
      if (opts.maxAge !== undefined && n.date < opts.maxAge && !(f & UNINTERESTING)) f |= UNINTERESTING;
      flags.set(n.oid, f);
      const un = (f & UNINTERESTING) !== 0;
      for (const p of parentsOf(n)) {
        const pf = flags.get(p) ?? 0;
        if (un && !(pf & UNINTERESTING)) {
          flags.set(p, pf | UNINTERESTING);
          if (pf & IN_QUEUE) interestingQueued--;
          const pn = this.nodes.get(p);
          if (pn && pf & SEEN) markUninteresting(pn);
        }
        if (pf & SEEN) continue;
        const pn = this.lookup(p);
        if (!pn) {
          if (un) continue; // the client's side of history may be incomplete; harmless
          throw new MissingObjectError(p, 'commit');
        }
        enqueue(pn);
      }
      if (un) {
        if (interestingQueued > 0) slop = 5;
        else if (--slop <= 0) break;
        continue;
      }
      list.push(n);
    }
    const isUn = (oid: string) => ((flags.get(oid) ?? 0) & UNINTERESTING) !== 0;
    const commits = list.filter((n) => !isUn(n.oid));
    const boundary: CommitNode[] = [];
    const inBoundary = new Set<string>();
    for (const n of commits) {
      for (const p of parentsOf(n)) {
        if (isUn(p) && !inBoundary.has(p)) {
          const pn = this.lookup(p);
          if (pn) {
            inBoundary.add(p);
            boundary.push(pn);
          }
        }
      }
    }
    const un = new Set<string>();
    for (const [oid, f] of flags) if (f & UNINTERESTING) un.add(oid);
    return { commits, boundary, uninteresting: un };
  }

  /** git's get_shallow_commits(): the commits at `depth` from heads become shallow. */
  shallowByDepth(heads: string[], depth: number): { shallow: string[]; notShallow: Set<string> } {
    const result: string[] = [];
    const notShallow = new Set<string>();
    const depths = new Map<string, number>();
    const stack: string[] = [];
    let i = 0;
    let commit: string | null = null;
    let cur = 0;
    while (commit || i < heads.length || stack.length) {
      if (!commit) {
        if (i < heads.length) {
          const c = this.commitOf(heads[i++]!);
          if (!c) continue;
          commit = c.oid;
          depths.set(commit, 0);
          cur = 0;
        } else {
          commit = stack.pop()!;
          cur = depths.get(commit)!;
        }
      }
      const node = this.get(commit);
      cur++;
      if (depth !== INFINITE_DEPTH && cur >= depth) {
        result.push(commit);
        commit = null;
        continue;
      }
      notShallow.add(commit);
      commit = null;
      const ps = node.parents;
      for (let k = 0; k < ps.length; k++) {
        const p = ps[k]!;
        const d = depths.get(p);
        if (d === undefined) depths.set(p, cur);
        else if (cur >= d) continue;
        else depths.set(p, cur);
        if (k < ps.length - 1) stack.push(p);
        else {
          commit = p;
          cur = depths.get(p)!;
        }
      }
    }
    return { shallow: result, notShallow };
  }

  /**
   * git's get_shallow_commits_by_rev_list() for deepen-since / deepen-not:
   * the commits selected by the walk are kept; those with a parent outside
   * the selection become the shallow border. Null when nothing is selected.
   */
  shallowByRevList(wants: string[], opts: { since?: number; not?: string[] }): { shallow: string[]; notShallow: Set<string> } | null {
    const walk = this.limitedWalk(wants, opts.not ?? [], opts.since !== undefined ? { maxAge: opts.since } : {});
    if (walk.commits.length === 0) return null;
    const selected = new Set(walk.commits.map((n) => n.oid));
    const shallow: string[] = [];
    for (const n of walk.commits) {
      if (n.parents.some((p) => !selected.has(p))) shallow.push(n.oid);
    }
    for (const s of shallow) selected.delete(s);
    return { shallow, notShallow: selected };
  }
}

/**
 * Is a commit reachable from any of the tips? Walks once per session and
 * remembers everything seen, so many checks cost one walk.
 */
export class Reachability {
  private seen = new Set<string>();
  private frontier: string[];

  constructor(private readonly graph: CommitGraph, tips: string[]) {
    this.frontier = [];
    for (const t of tips) {
      const c = graph.commitOf(t);
      if (c && !this.seen.has(c.oid)) {
        this.seen.add(c.oid);
        this.frontier.push(c.oid);
      }
    }
  }

  reachable(oid: string): boolean {
    if (this.seen.has(oid)) return true;
    while (this.frontier.length) {
      const c = this.frontier.pop()!;
      const n = this.graph.lookup(c);
      if (!n) continue;
      for (const p of n.parents) {
        if (this.seen.has(p)) continue;
        this.seen.add(p);
        this.frontier.push(p);
      }
      if (this.seen.has(oid)) return true;
    }
    return false;
  }
}

/**
 * The have/ACK bookkeeping of git's upload-pack: which of the client's
 * haves we have, and whether every want now reaches one of them
 * (ok_to_give_up, i.e. we can stop negotiating and send "ready").
 */
export class Negotiation {
  readonly haves: string[] = [];
  private theyHave = new Set<string>();
  private oldestHave = 0;
  private known = new Set<string>();

  constructor(private readonly graph: CommitGraph, private readonly wants: string[]) {}

  /** -1: we do not have it; 1: a new common object; 0: already known common. */
  gotOid(oid: string): -1 | 0 | 1 {
    if (!this.graph.store.has(oid)) return -1;
    let knew = false;
    const c = this.graph.lookup(oid);
    if (c) {
      if (this.theyHave.has(oid)) knew = true;
      else this.theyHave.add(oid);
      if (!this.oldestHave || c.date < this.oldestHave) this.oldestHave = c.date;
      for (const p of c.parents) this.theyHave.add(p);
    }
    if (knew) return 0;
    this.haves.push(oid);
    return 1;
  }

  okToGiveUp(): boolean {
    if (this.haves.length === 0) return false;
    for (const w of this.wants) {
      if (this.known.has(w)) continue;
      const c = this.graph.commitOf(w);
      if (!c) {
        this.known.add(w); // not a commit: ancestry cannot tell, so do not wait for it
        continue;
      }
      if (!this.reaches(c)) return false;
      this.known.add(w);
    }
    return true;
  }

  private reaches(start: CommitNode): boolean {
    const seen = new Set<string>([start.oid]);
    const stack = [start];
    while (stack.length) {
      const n = stack.pop()!;
      if (this.theyHave.has(n.oid)) return true;
      for (const p of n.parents) {
        if (seen.has(p)) continue;
        seen.add(p);
        if (this.theyHave.has(p)) return true;
        const pn = this.graph.lookup(p);
        if (!pn || pn.date < this.oldestHave) continue;
        stack.push(pn);
      }
    }
    return false;
  }
}
