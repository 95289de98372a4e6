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
 * trees along the changed paths. Objects of the pushed pack are known by
 * their position in it, so the walk over a large push makes no strings.
 */
import { entryType } from './fsck';
import { forEachTreeEntry, parseCommit, parseTag, type ObjectType } from './object';

/** The pushed pack: lookup by binary name, type and content by position. */
export interface PackObjects {
  find(name: Buffer, off: number): number;
  type(pos: number): ObjectType;
  read(pos: number): Buffer;
}

/** The repository's objects. */
export interface OldObjects {
  header(oid: string): { type: ObjectType } | null;
  read(oid: string): { type: ObjectType; data: Buffer } | null;
}

export class ConnectivityError extends Error {
  override name = 'ConnectivityError';
}

const NO_PACK: PackObjects = { find: () => -1, type: () => 'blob', read: () => Buffer.alloc(0) };

export class Connectivity {
  private readonly pack: PackObjects;
  /** Pack objects known complete, or pending in the current check. */
  private readonly mark: Uint8Array;
  /** Pack objects known complete for good. */
  private readonly done: Uint8Array;
  private pendingPack: number[] = [];
  private readonly extDone = new Set<string>();
  private readonly extPending = new Set<string>();

  /**
   * @param pack the pushed pack (null when it brought no objects), with `count` objects
   * @param old the repository's objects
   * @param reachableFromRefs whether an old commit is reachable from the repository's refs
   */
  constructor(pack: PackObjects | null, count: number, private readonly old: OldObjects, private readonly reachableFromRefs: (oid: string) => boolean) {
    this.pack = pack ?? NO_PACK;
    this.mark = new Uint8Array(count);
    this.done = new Uint8Array(count);
  }

  /** Throws ConnectivityError unless everything reachable from `tip` exists. */
  check(tip: string): void {
    this.pendingPack = [];
    this.extPending.clear();
    try {
      this.verifyObject(tip);
    } catch (err) {
      for (const p of this.pendingPack) this.mark[p] = this.done[p]!;
      throw err;
    }
    for (const p of this.pendingPack) this.done[p] = 1;
    for (const o of this.extPending) this.extDone.add(o);
  }

  private find(oid: string): number {
    return this.pack.find(Buffer.from(oid, 'hex'), 0);
  }

  private marked(pos: number, oid: string): boolean {
    return pos >= 0 ? this.mark[pos] === 1 : this.extDone.has(oid) || this.extPending.has(oid);
  }

  private setPending(pos: number, oid: string): void {
    if (pos >= 0) {
      this.mark[pos] = 1;
      this.pendingPack.push(pos);
    } else {
      this.extPending.add(oid);
    }
  }

  private typeOf(pos: number, oid: string): ObjectType {
    if (pos >= 0) return this.pack.type(pos);
    const h = this.old.header(oid);
    if (!h) throw new ConnectivityError(`missing object ${oid}`);
    return h.type;
  }

  private read(pos: number, oid: string, want: ObjectType): Buffer {
    if (pos >= 0) return this.pack.read(pos);
    const o = this.old.read(oid);
    if (!o) throw new ConnectivityError(`missing ${want} ${oid}`);
    if (o.type !== want) throw new ConnectivityError(`object ${oid} is a ${o.type}, not a ${want}`);
    return o.data;
  }

  /** Any object, through tags down to what they name. */
  private verifyObject(tip: string): void {
    let oid = tip;
    let want: ObjectType | null = null;
    for (let depth = 0; ; depth++) {
      if (depth > 1000) throw new ConnectivityError(`tag chain too long at ${tip}`);
      const pos = this.find(oid);
      const type = this.typeOf(pos, oid);
      if (want && type !== want) throw new ConnectivityError(`object ${oid} is a ${type}, not a ${want}`);
      if (this.marked(pos, oid)) return;
      switch (type) {
        case 'blob':
          this.setPending(pos, oid);
          return;
        case 'tree':
          this.verifyTree(pos, oid, []);
          return;
        case 'commit':
          this.verifyCommits(oid);
          return;
        case 'tag': {
          const tag = parseTag(this.read(pos, oid, 'tag'));
          this.setPending(pos, oid);
          oid = tag.object;
          want = tag.type;
        }
      }
    }
  }

  /** A commit whose history is known to be complete: verified, or old and reachable. */
  private commitComplete(pos: number, oid: string): boolean {
    if (this.marked(pos, oid)) return true;
    if (pos >= 0) return false;
    if (this.reachableFromRefs(oid)) {
      this.extDone.add(oid); // reachable is complete, whatever becomes of this check
      return true;
    }
    return false;
  }

  /**
   * Commits from `tip` down to complete ones, parents first; then each
   * commit's tree against its parents' trees.
   */
  private verifyCommits(tip: string): void {
    interface Frame { oid: string; pos: number; tree: string; parents: string[]; next: number }
    const order: Frame[] = [];
    const seen = new Set<string>([tip]);
    const stack: Frame[] = [];
    const enter = (oid: string, pos: number): void => {
      const c = parseCommit(this.read(pos, oid, 'commit'));
      stack.push({ oid, pos, tree: c.tree, parents: c.parents, next: 0 });
    };
    const tipPos = this.find(tip);
    if (this.commitComplete(tipPos, tip)) return;
    enter(tip, tipPos);
    while (stack.length > 0) {
      const top = stack[stack.length - 1]!;
      if (top.next < top.parents.length) {
        const p = top.parents[top.next++]!;
        if (seen.has(p)) continue;
        seen.add(p);
        const pos = this.find(p);
        const type = this.typeOf(pos, p);
        if (type !== 'commit') throw new ConnectivityError(`parent ${p} of ${top.oid} is a ${type}, not a commit`);
        if (this.commitComplete(pos, p)) continue;
        enter(p, pos);
        continue;
      }
      stack.pop();
      order.push(top);
    }
    const verified = new Set<string>();
    for (const c of order) {
      // Old parents' trees guide the walk; a parent verified just now has
      // marked everything under its tree already.
      const refs: string[] = [];
      for (const p of c.parents) {
        const t = verified.has(p) ? null : this.treeOfCommit(p);
        if (t) refs.push(t);
      }
      const pos = this.find(c.tree);
      const type = this.typeOf(pos, c.tree);
      if (type !== 'tree') throw new ConnectivityError(`tree ${c.tree} of commit ${c.oid} is a ${type}`);
      this.verifyTree(pos, c.tree, refs);
      this.setPending(c.pos, c.oid);
      verified.add(c.oid);
    }
  }

  private treeOfCommit(oid: string): string | null {
    const pos = this.find(oid);
    const data = pos >= 0 ? this.pack.read(pos) : this.old.read(oid)?.data;
    return data ? parseCommit(data).tree : null;
  }

  /**
   * A tree and everything below it, skipping entries equal to those at the
   * same path in `refs` (complete trees).
   */
  private verifyTree(rootPos: number, rootOid: string, rootRefs: string[]): void {
    const work: { pos: number; oid: string; refs: string[] }[] = [{ pos: rootPos, oid: rootOid, refs: rootRefs }];
    while (work.length > 0) {
      const { pos, oid, refs } = work.pop()!;
      if (this.marked(pos, oid) || refs.includes(oid)) continue;
      const data = this.read(pos, oid, 'tree');
      this.setPending(pos, oid);
      const refEntries = refs.map((r) => this.subtrees(r));
      forEachTreeEntry(data, (mode, s, e, o) => {
        const kind = entryType(mode);
        if (kind === null) return; // a submodule's commit lives elsewhere
        const cpos = this.pack.find(data, o);
        if (cpos >= 0 && this.mark[cpos]) return;
        const hex = cpos >= 0 && refEntries.length === 0 ? '' : data.toString('hex', o, o + 20);
        if (cpos < 0 && (this.extDone.has(hex) || this.extPending.has(hex))) return;
        const childRefs: string[] = [];
        if (refEntries.length > 0) {
          const name = data.toString('latin1', s, e);
          for (const m of refEntries) {
            const r = m.get(name);
            if (r === hex) return; // the same as in a complete tree
            if (r && kind === 'tree') childRefs.push(r);
          }
        }
        const type = this.typeOf(cpos, hex);
        if (type !== kind) throw new ConnectivityError(`entry ${data.toString('utf8', s, e)} of tree ${oid || pos} is a ${type}, not a ${kind}`);
        if (kind === 'blob') {
          this.setPending(cpos, hex);
          return;
        }
        work.push({ pos: cpos, oid: hex, refs: childRefs });
      });
    }
  }

  /** name -> id of each entry (blob or tree) of a complete tree. */
  private subtrees(oid: string): Map<string, string> {
    const out = new Map<string, string>();
    const pos = this.find(oid);
    const data = pos >= 0 ? this.pack.read(pos) : this.old.read(oid)?.data;
    if (!data) return out;
    forEachTreeEntry(data, (mode, s, e, o) => {
      if (entryType(mode) !== null) out.set(data.toString('latin1', s, e), data.toString('hex', o, o + 20));
    });
    return out;
  }
}
