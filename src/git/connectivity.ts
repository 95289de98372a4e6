/**
 * The connectivity check before a ref may point at something new: every
 * object reachable from the new value must exist, with the type its
 * referrer claims. The walk stops at objects known to be complete: commits
 * reachable from the existing refs (whose history the repository is known to
 * hold) and the trees and blobs under them. An object that merely exists is
 * not enough for a commit or tree: a dangling commit left by an old gc may
 * miss its parents, so it is walked like a new one.
 *
 * Trees are compared path by path with the trees of the commit's parents
 * (once those are known complete): an entry equal to the parent's at the
 * same path is complete, so a push that changes a few files reads only the
 * trees along the changed paths.
 */
import { entryType } from './fsck';
import { forEachTreeEntry, parseCommit, parseTag, type ObjectType } from './object';

export interface ObjectAccess {
  /** Type of an object, or null when it is missing. */
  typeOf(oid: string): ObjectType | null;
  read(oid: string): { type: ObjectType; data: Buffer } | null;
}

export class ConnectivityError extends Error {
  override name = 'ConnectivityError';
}

/** Commits by date, newest on top: history is expanded newest first, as git's revision walk does. */
class CommitHeap {
  private items: { oid: string; date: number; parents: string[] }[] = [];

  get size(): number {
    return this.items.length;
  }

  push(item: { oid: string; date: number; parents: string[] }): void {
    const a = this.items;
    a.push(item);
    let i = a.length - 1;
    while (i > 0) {
      const up = (i - 1) >> 1;
      if (a[up]!.date >= a[i]!.date) break;
      [a[up], a[i]] = [a[i]!, a[up]!];
      i = up;
    }
  }

  pop(): { oid: string; date: number; parents: string[] } | undefined {
    const a = this.items;
    const top = a[0];
    const last = a.pop();
    if (a.length > 0 && last) {
      a[0] = last;
      let i = 0;
      for (;;) {
        const l = 2 * i + 1;
        const r = l + 1;
        let m = i;
        if (l < a.length && a[l]!.date > a[m]!.date) m = l;
        if (r < a.length && a[r]!.date > a[m]!.date) m = r;
        if (m === i) break;
        [a[m], a[i]] = [a[i]!, a[m]!];
        i = m;
      }
    }
    return top;
  }
}

export class Connectivity {
  /** Objects whose whole closure is known to exist (never rolled back). */
  private complete = new Set<string>();
  /** Commits known reachable from the refs as they were when the push started. */
  private reachable = new Set<string>();
  /** Reachable commits not yet expanded. */
  private frontier = new CommitHeap();
  private seeded = false;

  /**
   * @param objects new and old objects together
   * @param isNew true for objects that arrived with this push
   * @param refTips current values of the repository's refs
   */
  constructor(
    private readonly objects: ObjectAccess,
    private readonly isNew: (oid: string) => boolean,
    private readonly refTips: () => string[],
  ) {}

  /** Throws ConnectivityError unless everything reachable from `tip` exists. */
  check(tip: string): void {
    const added = new Set<string>();
    this.verifyObject(tip, null, added);
    for (const o of added) this.complete.add(o);
  }

  private isComplete(oid: string, pending: Set<string>): boolean {
    return this.complete.has(oid) || pending.has(oid);
  }

  private typeOf(oid: string): ObjectType {
    const t = this.objects.typeOf(oid);
    if (!t) throw new ConnectivityError(`missing object ${oid}`);
    return t;
  }

  private read(oid: string, want: ObjectType): Buffer {
    const o = this.objects.read(oid);
    if (!o) throw new ConnectivityError(`missing ${want} ${oid}`);
    if (o.type !== want) throw new ConnectivityError(`object ${oid} is a ${o.type}, not a ${want}`);
    return o.data;
  }

  /** Any object, through tags down to what they name. */
  private verifyObject(oid: string, want: ObjectType | null, pending: Set<string>): void {
    for (let depth = 0; ; depth++) {
      if (depth > 1000) throw new ConnectivityError(`tag chain too long at ${oid}`);
      const type = this.typeOf(oid);
      if (want && type !== want) throw new ConnectivityError(`object ${oid} is a ${type}, not a ${want}`);
      if (this.isComplete(oid, pending)) return;
      switch (type) {
        case 'blob':
          pending.add(oid);
          return;
        case 'tree':
          this.verifyTree(oid, [], pending);
          return;
        case 'commit':
          this.verifyCommits(oid, pending);
          return;
        case 'tag': {
          const tag = parseTag(this.read(oid, 'tag'));
          pending.add(oid);
          oid = tag.object;
          want = tag.type;
        }
      }
    }
  }

  /** True when `oid` (an existing commit) is reachable from a ref. */
  private reachableFromRefs(oid: string): boolean {
    if (!this.seeded) {
      this.seeded = true;
      for (const tip of this.refTips()) this.seed(tip);
    }
    while (!this.reachable.has(oid) && this.frontier.size > 0) {
      for (const p of this.frontier.pop()!.parents) this.addReachable(p);
    }
    return this.reachable.has(oid);
  }

  private seed(tip: string): void {
    let oid = tip;
    for (let depth = 0; depth < 100; depth++) {
      if (this.isNew(oid)) return;
      const obj = this.objects.read(oid);
      if (!obj) return;
      if (obj.type === 'commit') {
        this.addReachable(oid, obj.data);
        return;
      }
      if (obj.type !== 'tag') {
        this.complete.add(oid); // a tree or blob a ref names is complete too
        return;
      }
      oid = parseTag(obj.data).object;
    }
  }

  private addReachable(oid: string, data?: Buffer): void {
    if (this.reachable.has(oid)) return;
    this.reachable.add(oid);
    const obj = data ?? this.objects.read(oid)?.data;
    if (!obj) return;
    const c = parseCommit(obj);
    this.frontier.push({ oid, date: c.date, parents: c.parents });
  }

  /** A commit known to hold its whole history: verified, or old and reachable. */
  private commitComplete(oid: string, pending: Set<string>): boolean {
    if (this.isComplete(oid, pending)) return true;
    if (this.isNew(oid)) return false;
    if (this.reachableFromRefs(oid)) {
      this.complete.add(oid);
      return true;
    }
    return false;
  }

  /**
   * Commits from `tip` down to complete ones, parents first; then each
   * commit's tree against its parents' trees.
   */
  private verifyCommits(tip: string, pending: Set<string>): void {
    const order: { oid: string; tree: string; parents: string[] }[] = [];
    const seen = new Set<string>([tip]);
    const stack: { oid: string; parents: string[] | null; tree: string; next: number }[] = [];
    const enter = (oid: string): void => {
      const c = parseCommit(this.read(oid, 'commit'));
      stack.push({ oid, parents: c.parents, tree: c.tree, next: 0 });
    };
    if (this.commitComplete(tip, pending)) return;
    enter(tip);
    while (stack.length > 0) {
      const top = stack[stack.length - 1]!;
      if (top.next < top.parents!.length) {
        const p = top.parents![top.next++]!;
        if (seen.has(p)) continue;
        seen.add(p);
        if (this.typeOf(p) !== 'commit') throw new ConnectivityError(`parent ${p} of ${top.oid} is not a commit`);
        if (this.commitComplete(p, pending)) continue;
        enter(p);
        continue;
      }
      stack.pop();
      order.push({ oid: top.oid, tree: top.tree, parents: top.parents! });
    }
    const treeOf = new Map<string, string>();
    for (const c of order) {
      const refs: string[] = [];
      for (const p of c.parents) {
        const t = treeOf.get(p) ?? this.parentTree(p);
        if (t) refs.push(t);
      }
      if (this.typeOf(c.tree) !== 'tree') throw new ConnectivityError(`tree ${c.tree} of commit ${c.oid} is not a tree`);
      this.verifyTree(c.tree, refs, pending);
      pending.add(c.oid);
      treeOf.set(c.oid, c.tree);
    }
  }

  private parentTree(oid: string): string | null {
    const obj = this.objects.read(oid);
    return obj && obj.type === 'commit' ? parseCommit(obj.data).tree : null;
  }

  /**
   * A tree and everything below it, skipping entries equal to those at the
   * same path in `refs` (complete trees).
   */
  private verifyTree(root: string, rootRefs: string[], pending: Set<string>): void {
    const work: { oid: string; refs: string[] }[] = [{ oid: root, refs: rootRefs }];
    while (work.length > 0) {
      const { oid, refs } = work.pop()!;
      if (this.isComplete(oid, pending) || refs.includes(oid)) continue;
      const data = this.read(oid, 'tree');
      pending.add(oid);
      const refEntries = refs.map((r) => this.subtrees(r));
      forEachTreeEntry(data, (mode, s, e, o) => {
        const kind = entryType(mode);
        if (kind === null) return; // a submodule's commit lives elsewhere
        const child = data.toString('hex', o, o + 20);
        if (this.isComplete(child, pending)) return;
        if (kind === 'blob') {
          const t = this.typeOf(child);
          if (t !== 'blob') throw new ConnectivityError(`entry of tree ${oid} is a ${t}, not a blob: ${child}`);
          pending.add(child);
          return;
        }
        const name = data.toString('latin1', s, e);
        const childRefs: string[] = [];
        for (const m of refEntries) {
          const r = m.get(name);
          if (r) childRefs.push(r);
        }
        if (childRefs.includes(child)) return;
        const t = this.typeOf(child);
        if (t !== 'tree') throw new ConnectivityError(`entry of tree ${oid} is a ${t}, not a tree: ${child}`);
        work.push({ oid: child, refs: childRefs });
      });
    }
  }

  /** name -> subtree id of a complete tree. */
  private subtrees(oid: string): Map<string, string> {
    const out = new Map<string, string>();
    const obj = this.objects.read(oid);
    if (!obj || obj.type !== 'tree') return out;
    forEachTreeEntry(obj.data, (mode, s, e, o) => {
      if (entryType(mode) === 'tree') out.set(obj.data.toString('latin1', s, e), obj.data.toString('hex', o, o + 20));
    });
    return out;
  }
}
