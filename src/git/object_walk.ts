/**
 * Which objects go into a pack: everything reachable from the wants that the
 * client does not have. Objects are identified by (pack, position) with one
 * flag byte per packed object, never by hex strings, so memory follows the
 * object count in bytes, not in JavaScript objects.
 *
 * Three ways to the same answer, cheapest first:
 *  - a clone with a reachability bitmap: OR the tips' bitmaps;
 *  - a clone without one: walk commits (newest first) and their trees;
 *  - a fetch with haves: git's limited walk finds the new commits and the
 *    boundary; the boundary commits' trees are marked as present on the
 *    client (also the bases a thin pack may use) and skipped while walking.
 */
import { MODE_GITLINK, MODE_TREE, OBJ_BLOB, OBJ_COMMIT, OBJ_TAG, OBJ_TREE, ObjectFormatError, parseTag, typeCode } from './object';
import type { ObjectStore } from './odb';
import type { PackFile } from './pack';
import { BitmapError, PackBitmap, orInto, newBits, popcount, testBit, type Bits } from './bitmap';
import { CommitGraph, DateQueue, MissingObjectError, parseCommitHeader, type CommitNode } from './revwalk';
import type { Progress } from './progress';

/** The object goes into the pack. */
export const F_SEND = 1;
/** The client has the object (thin-pack bases come from these). */
export const F_HAVE = 2;

/** Where an object lives: a pack position, or a loose object's id. */
interface Loc {
  pack: PackFile | null;
  pos: number;
  hex: string;
}

interface QueuedCommit extends CommitNode {
  loc: Loc;
}

export class ObjectSelection {
  readonly packFlags = new Map<PackFile, Uint8Array>();
  readonly looseFlags = new Map<string, number>();
  /** Objects to send. */
  count = 0;
  /** Whether reachability bitmaps answered (for the log). */
  bitmapUsed = false;

  flagsOf(pack: PackFile): Uint8Array {
    let f = this.packFlags.get(pack);
    if (!f) {
      f = new Uint8Array(pack.count);
      this.packFlags.set(pack, f);
    }
    return f;
  }

  get(loc: Loc): number {
    return loc.pack ? this.flagsOf(loc.pack)[loc.pos]! : this.looseFlags.get(loc.hex) ?? 0;
  }

  /** Sets flag bits unless one of `stop` is already set; returns the flags from before. */
  mark(loc: Loc, bits: number, stop = bits): number {
    if (loc.pack) {
      const f = this.flagsOf(loc.pack);
      const old = f[loc.pos]!;
      if (old & stop) return old;
      f[loc.pos] = old | bits;
      if (bits & F_SEND && !(old & F_SEND)) this.count++;
      return old;
    }
    const old = this.looseFlags.get(loc.hex) ?? 0;
    if (old & stop) return old;
    this.looseFlags.set(loc.hex, old | bits);
    if (bits & F_SEND && !(old & F_SEND)) this.count++;
    return old;
  }
}

export interface WalkRequest {
  /** What the client asked for (any object type). */
  wants: string[];
  /** Commits the client has (acknowledged haves, and unshallowed boundaries). */
  haves: string[];
  /** Commits walked as if they had no parents (the shallow boundary). */
  grafts: ReadonlySet<string>;
  /** Use reachability bitmaps when they apply (default true). */
  useBitmaps?: boolean;
}

export class ObjectWalker {
  sel = new ObjectSelection();
  readonly graph: CommitGraph;
  private readonly hexBuf = Buffer.alloc(20);

  constructor(readonly store: ObjectStore, private readonly progress: Progress | null = null) {
    this.graph = new CommitGraph(store);
  }

  /** Finds an object by its 20-byte name; a miss re-scans the packs once, then is an error. */
  private find(name: Buffer, off: number): Loc {
    const at = this.store.locate(name, off);
    if (at) return { pack: at.pack, pos: at.pos, hex: '' };
    const hex = name.toString('hex', off, off + 20);
    if (this.store.hasLoose(hex)) return { pack: null, pos: -1, hex };
    const again = this.store.locateFresh(name, off);
    if (again) return { pack: again.pack, pos: again.pos, hex: '' };
    if (this.store.hasLoose(hex)) return { pack: null, pos: -1, hex };
    throw new MissingObjectError(hex);
  }

  findHex(oid: string): Loc {
    this.hexBuf.write(oid, 0, 20, 'hex');
    return this.find(this.hexBuf, 0);
  }

  private read(loc: Loc): { code: number; data: Buffer } {
    if (loc.pack) return this.store.readPacked(loc.pack, loc.pos);
    const o = this.store.readLoose(loc.hex);
    if (!o) {
      // Packed away since we looked: find it again.
      const again = this.findHex(loc.hex);
      if (again.pack) return this.store.readPacked(again.pack, again.pos);
      throw new MissingObjectError(loc.hex);
    }
    return { code: typeCode(o.type), data: o.data };
  }

  private typeOf(loc: Loc): number {
    if (loc.pack) return this.store.typeOfPacked(loc.pack, loc.pos);
    return this.read(loc).code;
  }

  oidOf(loc: Loc): string {
    return loc.pack ? loc.pack.oidAt(loc.pos) : loc.hex;
  }

  /**
   * Marks a tree and everything below it with `flag`, skipping entries that
   * already carry a `stop` flag (and, for trees, everything below them).
   * The hot loop of every walk: tree entries are parsed in place and looked
   * up without allocating.
   */
  private markTree(root: Loc, flag: number, stop: number): void {
    const sel = this.sel;
    const store = this.store;
    if (sel.mark(root, flag, stop) & stop) return;
    const send = (flag & F_SEND) !== 0;
    if (send) this.progress?.tick();
    const packs: (PackFile | null)[] = [root.pack];
    const positions: number[] = [root.pos];
    const hexes: string[] = [root.hex];
    let curPack: PackFile | null = null;
    let curFlags: Uint8Array | null = null;
    while (positions.length) {
      const tp = packs.pop()!;
      const tpos = positions.pop()!;
      const thex = hexes.pop()!;
      const { code, data } = tp ? store.readPacked(tp, tpos) : this.read({ pack: null, pos: -1, hex: thex });
      if (code !== OBJ_TREE) throw new MissingObjectError(tp ? tp.oidAt(tpos) : thex, 'tree');
      const n = data.length;
      let p = 0;
      while (p < n) {
        let mode = 0;
        let c = data[p]!;
        while (c !== 0x20) {
          if (c < 0x30 || c > 0x37 || ++p >= n) throw new ObjectFormatError('tree: bad mode');
          mode = mode * 8 + (c - 0x30);
          c = data[p]!;
        }
        let e = p + 1;
        while (e < n && data[e] !== 0) e++;
        const oidAt = e + 1;
        if (e === p + 1 || oidAt + 20 > n) throw new ObjectFormatError('tree: truncated entry');
        p = oidAt + 20;
        if (mode === MODE_GITLINK) continue; // submodule commits live elsewhere
        const pos = store.findPacked(data, oidAt);
        if (pos >= 0) {
          const pack = store.hitPack!;
          if (pack !== curPack) {
            curPack = pack;
            curFlags = sel.flagsOf(pack);
          }
          const old = curFlags![pos]!;
          if (old & stop) continue;
          curFlags![pos] = old | flag;
          if (send) {
            if (!(old & F_SEND)) sel.count++;
            this.progress?.tick();
          }
          if (mode === MODE_TREE) {
            packs.push(pack);
            positions.push(pos);
            hexes.push('');
          }
        } else {
          const loc = this.find(data, oidAt); // loose, or arrived since the last scan
          if (sel.mark(loc, flag, stop) & stop) continue;
          if (send) this.progress?.tick();
          if (mode === MODE_TREE) {
            packs.push(loc.pack);
            positions.push(loc.pos);
            hexes.push(loc.hex);
          }
        }
      }
    }
  }

  private queueCommit(queue: DateQueue, loc: Loc): void {
    const { code, data } = this.read(loc);
    const oid = this.oidOf(loc);
    if (code !== OBJ_COMMIT) throw new MissingObjectError(oid, 'commit');
    const node = parseCommitHeader(oid, data) as QueuedCommit;
    node.loc = loc;
    queue.push(node);
  }

  /**
   * Adds a wanted object that is not a commit (or peels a tag to one).
   * Returns the commit location when the chain ends in a commit.
   */
  private addNonCommit(loc: Loc): Loc | null {
    for (let depth = 0; depth < 64; depth++) {
      const type = this.typeOf(loc);
      if (type === OBJ_COMMIT) return loc;
      if (type === OBJ_TREE) {
        this.markTree(loc, F_SEND, F_SEND | F_HAVE);
        return null;
      }
      if (this.sel.mark(loc, F_SEND, F_SEND | F_HAVE) & (F_SEND | F_HAVE)) return null;
      this.progress?.tick();
      if (type === OBJ_BLOB) return null;
      if (type !== OBJ_TAG) throw new MissingObjectError(this.oidOf(loc));
      loc = this.findHex(parseTag(this.read(loc).data).object);
    }
    throw new MissingObjectError(this.oidOf(loc), 'tag target (chain too long)');
  }

  /** Computes the selection for a request. */
  walk(req: WalkRequest): ObjectSelection {
    const useBitmaps = req.useBitmaps !== false && req.grafts.size === 0;
    if (useBitmaps && req.haves.length === 0) {
      try {
        if (this.wholePackByBitmap(req.wants)) return this.sel;
      } catch (err) {
        if (!(err instanceof BitmapError)) throw err;
      }
    }
    if (useBitmaps) {
      try {
        const wantCommits = this.addWants(req.wants);
        if (this.walkWithBitmaps(wantCommits, req.haves)) return this.sel;
      } catch (err) {
        if (!(err instanceof BitmapError)) throw err;
      }
      this.sel = new ObjectSelection(); // a bad bitmap only costs us the walk: start over
    }
    const wantCommits = this.addWants(req.wants);
    if (req.haves.length > 0) this.walkWithHaves(wantCommits, req);
    else this.walkAll(wantCommits, req.grafts);
    return this.sel;
  }

  /**
   * The common clone: one pack with a bitmap, and the wants reach all of it
   * (every tag in it is wanted, and the wanted commits' bitmaps cover all
   * else). Decided from the .idx and the bitmap alone, without the pack's
   * reverse index, and then the pack goes out as it is. Nothing is marked
   * unless the answer is yes.
   */
  private wholePackByBitmap(wants: string[]): boolean {
    const packs = this.store.packs;
    if (packs.length !== 1) return false;
    const pack = packs[0]!;
    const bitmap = PackBitmap.open(pack);
    if (!bitmap) return false;
    const name = Buffer.alloc(20);
    const indexOf = (oid: string) => {
      name.write(oid, 0, 20, 'hex');
      return pack.idx.find(name, 0);
    };
    const result = newBits(pack.count);
    const tags = new Set<string>();
    for (const w of wants) {
      let cur = w;
      for (let depth = 0; ; depth++) {
        const i = indexOf(cur);
        if (i < 0 || depth > 64) return false; // not in this pack: walk
        const h = this.store.headerAt(pack, pack.idx.offset(i));
        if (h.type === 'tag') {
          tags.add(cur);
          cur = parseTag(this.store.readAt(pack, pack.idx.offset(i)).data).object;
          continue;
        }
        if (h.type === 'commit') {
          const bits = bitmap.reachable(i);
          if (bits) orInto(result, bits);
        }
        break; // a commit without a bitmap, a tree or a blob: covered only if the pack is
      }
    }
    const tagBits = bitmap.typeBits(3);
    if (tags.size !== popcount(tagBits)) return false; // some tag is not wanted
    orInto(result, tagBits);
    if (popcount(result) !== pack.count) return false;
    this.sel.flagsOf(pack).fill(F_SEND);
    this.sel.count = pack.count;
    this.sel.bitmapUsed = true;
    this.progress?.tick(pack.count);
    return true;
  }

  /** Marks wanted non-commits (tags, trees, blobs); returns the commits to walk from. */
  private addWants(wants: string[]): Loc[] {
    const out: Loc[] = [];
    for (const w of wants) {
      const c = this.addNonCommit(this.findHex(w));
      if (c) out.push(c);
    }
    return out;
  }

  /** No haves: every commit reachable from the wants, newest first, with its tree. */
  private walkAll(starts: Loc[], grafts: ReadonlySet<string>): void {
    const queue = new DateQueue();
    for (const loc of starts) {
      if (this.sel.mark(loc, F_SEND, F_SEND | F_HAVE) & (F_SEND | F_HAVE)) continue;
      this.progress?.tick();
      this.queueCommit(queue, loc);
    }
    this.drain(queue, grafts);
  }

  private drain(queue: DateQueue, grafts: ReadonlySet<string>): void {
    while (queue.size > 0) {
      const c = queue.pop() as QueuedCommit;
      this.markTree(this.findHex(c.tree), F_SEND, F_SEND | F_HAVE);
      if (grafts.has(c.oid)) continue;
      for (const p of c.parents) {
        const loc = this.findHex(p);
        if (this.sel.mark(loc, F_SEND, F_SEND | F_HAVE) & (F_SEND | F_HAVE)) continue;
        this.progress?.tick();
        this.queueCommit(queue, loc);
      }
    }
  }

  /**
   * With a reachability bitmap: what the client has (everything reachable
   * from its haves) and what it wants are each a few ORs of stored bitmaps;
   * commits without one (pushed since the last repack) are walked until
   * bitmapped history is reached. False when no pack has a bitmap.
   */
  private walkWithBitmaps(wants: Loc[], haves: string[]): boolean {
    let bitmap: PackBitmap | null = null;
    for (const pack of this.store.packs) {
      bitmap = PackBitmap.open(pack);
      if (bitmap) break;
    }
    if (!bitmap) return false;
    const haveCommits: Loc[] = [];
    for (const h of haves) {
      const c = this.graph.commitOf(h);
      if (c) haveCommits.push(this.findHex(c.oid));
    }
    if (haveCommits.length) this.closure(bitmap, haveCommits, F_HAVE, F_HAVE);
    this.closure(bitmap, wants, F_SEND, F_SEND | F_HAVE);
    this.sel.bitmapUsed = true;
    return true;
  }

  /** Marks everything reachable from the commits `roots` with `flag`, skipping what carries `stop`. */
  private closure(bitmap: PackBitmap, roots: Loc[], flag: number, stop: number): void {
    const pack = bitmap.pack;
    const result: Bits = newBits(pack.count);
    const loose: Loc[] = [];
    const seen = new Set<string>();
    // Commits with a bitmap of their own first: their history needs no walk at all.
    const stack: Loc[] = [];
    for (const loc of roots) {
      const bits = loc.pack === pack ? bitmap.reachable(pack.indexOf(loc.pos)) : null;
      if (bits) orInto(result, bits);
      else stack.push(loc);
    }
    while (stack.length) {
      const loc = stack.pop()!;
      if (this.sel.get(loc) & stop) continue;
      if (loc.pack === pack) {
        if (testBit(result, loc.pos)) continue;
        const bits = bitmap.reachable(pack.indexOf(loc.pos));
        if (bits) {
          orInto(result, bits);
          continue;
        }
      }
      const oid = this.oidOf(loc);
      if (seen.has(oid)) continue;
      seen.add(oid);
      loose.push(loc);
      const { data } = this.read(loc);
      for (const p of parseCommitHeader(oid, data).parents) stack.push(this.findHex(p));
    }
    const flags = this.sel.flagsOf(pack);
    const send = (flag & F_SEND) !== 0;
    let n = 0;
    for (let w = 0; w < result.length; w++) {
      let word = result[w]!;
      while (word !== 0) {
        const bit = 31 - Math.clz32(word & -word);
        word &= word - 1;
        const pos = (w << 5) + bit;
        const old = flags[pos]!;
        if (old & stop) continue;
        flags[pos] = old | flag;
        if (send && !(old & F_SEND)) n++;
      }
    }
    if (send) {
      this.sel.count += n;
      this.progress?.tick(n);
    }
    // Commits outside the bitmaps, with whatever their trees add.
    for (const loc of loose) {
      if (loc.pack === pack && testBit(result, loc.pos)) continue; // covered by a bitmap ORed later
      if (!(this.sel.mark(loc, flag, stop) & stop) && send) this.progress?.tick();
      const { data } = this.read(loc);
      this.markTree(this.findHex(parseCommitHeader(this.oidOf(loc), data).tree), flag, stop);
    }
  }

  /** A fetch: new commits from the limited walk, minus what the boundary commits' trees hold. */
  private walkWithHaves(starts: Loc[], req: WalkRequest): void {
    const walk = this.graph.limitedWalk(starts.map((l) => this.oidOf(l)), req.haves, { grafts: req.grafts });
    for (const h of req.haves) {
      const c = this.graph.commitOf(h);
      if (c) this.sel.mark(this.findHex(c.oid), F_HAVE);
    }
    for (const b of walk.boundary) {
      this.sel.mark(this.findHex(b.oid), F_HAVE);
      this.markTree(this.findHex(b.tree), F_HAVE, F_HAVE);
    }
    for (const c of walk.commits) {
      const loc = this.findHex(c.oid);
      if (this.sel.mark(loc, F_SEND, F_SEND | F_HAVE) & (F_SEND | F_HAVE)) continue;
      this.progress?.tick();
      this.markTree(this.findHex(c.tree), F_SEND, F_SEND | F_HAVE);
    }
  }

  /**
   * include-tag: annotated tags (and tags of tags) under refs/tags/ whose
   * target is being sent go along, unless the client has them.
   */
  includeTags(tags: { oid: string; peeled?: string }[]): void {
    for (const t of tags) {
      if (!t.peeled) continue;
      let target: Loc;
      try {
        target = this.findHex(t.peeled);
      } catch {
        continue;
      }
      if (!(this.sel.get(target) & F_SEND)) continue;
      const chain: Loc[] = [];
      let cur = this.findHex(t.oid);
      for (let i = 0; i < 64 && this.typeOf(cur) === OBJ_TAG; i++) {
        chain.push(cur);
        cur = this.findHex(parseTag(this.read(cur).data).object);
      }
      for (const loc of chain) {
        if (!(this.sel.mark(loc, F_SEND, F_SEND | F_HAVE) & (F_SEND | F_HAVE))) this.progress?.tick();
      }
    }
  }
}
