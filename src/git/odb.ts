/**
 * The object database: loose objects and packs (with a multi-pack-index
 * when present). Packs appear and disappear under a running reader when
 * `git gc` or a push runs concurrently: every miss re-scans the pack
 * directory once before it is believed, and packs already opened keep their
 * descriptors (still readable after an unlink) until the store is closed.
 */
import * as fs from 'node:fs';
import * as path from 'node:path';
import * as zlib from 'node:zlib';
import { applyDelta, deltaHeaderSize } from './delta';
import { inflateExactly } from './zlib_handle';
import { MultiPackIndex } from './midx';
import { OBJ_OFS_DELTA, OBJ_REF_DELTA, isObjectType, typeCode, typeName, type ObjectType } from './object';
import { PackError, PackFile, parseEntryHeader, type EntryHeader } from './pack';

export type { ObjectType } from './object';

/** A packed object: its pack and its position in pack order. */
export interface Located {
  pack: PackFile;
  pos: number;
}

export interface RawObject {
  /** Pack type code (1 commit, 2 tree, 3 blob, 4 tag). */
  code: number;
  data: Buffer;
}

/** Longest delta chain followed before the pack is called corrupt (git's own limit is far lower). */
const MAX_CHAIN = 10000;

/**
 * Cache of inflated objects (delta bases mostly), bounded in bytes, evicted
 * oldest-first: cheaper than LRU bookkeeping on every hit, and a base that
 * is evicted while still in use simply gets inflated again.
 */
export class BaseCache {
  // Small-integer keys keep the Map fast: position * 1024 + pack slot; the
  // pack is checked on a hit because slots repeat after 1024 packs.
  private map = new Map<number, { pack: PackFile; obj: RawObject }>();
  private bytes = 0;

  constructor(readonly budget: number) {}

  get(pack: PackFile, pos: number): RawObject | undefined {
    const e = this.map.get(pos * 1024 + (pack.id & 1023));
    return e && e.pack === pack ? e.obj : undefined;
  }

  put(pack: PackFile, pos: number, obj: RawObject): void {
    const size = obj.data.length + 64;
    if (size > this.budget / 4) return;
    if (obj.data.buffer.byteLength > obj.data.length * 2) {
      // A slice of Node's shared 8 KiB pool would pin the whole slab: keep a private copy.
      const own = Buffer.allocUnsafeSlow(obj.data.length);
      obj.data.copy(own);
      obj = { code: obj.code, data: own };
    }
    const k = pos * 1024 + (pack.id & 1023);
    const old = this.map.get(k);
    if (old) {
      this.bytes -= old.obj.data.length + 64;
      this.map.delete(k);
    }
    this.map.set(k, { pack, obj });
    this.bytes += size;
    if (this.bytes > this.budget) {
      for (const [key, v] of this.map) {
        this.map.delete(key);
        this.bytes -= v.obj.data.length + 64;
        if (this.bytes <= this.budget * 0.75) break;
      }
    }
  }

  clear(): void {
    this.map.clear();
    this.bytes = 0;
  }
}

export class ObjectCorruptError extends Error {
  override name = 'ObjectCorruptError';
}

function inflateExact(data: Buffer, size: number, what: () => string): Buffer {
  let out: Buffer;
  try {
    out = inflateExactly(data, size);
  } catch (err) {
    throw new ObjectCorruptError(`${what()}: ${(err as Error).message}`);
  }
  return out;
}

export interface ObjectStoreOptions {
  /** Byte budget of the delta base cache (default 4 MiB). */
  cacheBytes?: number;
}

export class ObjectStore {
  readonly packDir: string;
  readonly cache: BaseCache;
  private active: PackFile[] = [];
  private byName = new Map<string, PackFile>();
  private retired: PackFile[] = [];
  private midx: { index: MultiPackIndex; packs: (PackFile | null)[]; mtimeMs: number } | null = null;
  /** Packs not covered by the multi-pack-index (all of them when there is none). */
  private uncovered: PackFile[] = [];
  private scanned = false;

  constructor(readonly dir: string, opts: ObjectStoreOptions = {}) {
    this.packDir = path.join(dir, 'pack');
    this.cache = new BaseCache(opts.cacheBytes ?? (4 << 20));
  }

  /** Packs currently in the repository, newest first. */
  get packs(): readonly PackFile[] {
    if (!this.scanned) this.rescan();
    return this.active;
  }

  /** Re-reads the pack directory: opens new packs, retires vanished ones. */
  rescan(): void {
    this.scanned = true;
    let names: string[];
    try {
      names = fs.readdirSync(this.packDir);
    } catch {
      names = [];
    }
    const present = new Set(names);
    const next: { pack: PackFile; mtime: number }[] = [];
    for (const f of names) {
      if (!f.endsWith('.pack') || !present.has(f.slice(0, -5) + '.idx')) continue;
      let pack = this.byName.get(f);
      if (!pack) {
        try {
          pack = PackFile.open(path.join(this.packDir, f));
        } catch {
          continue; // being written, or deleted since readdir; a later miss re-scans
        }
        this.byName.set(f, pack);
      }
      let mtime = 0;
      try { mtime = fs.statSync(path.join(this.packDir, f)).mtimeMs; } catch { /* vanished: keep it anyway this round */ }
      next.push({ pack, mtime });
    }
    next.sort((a, b) => b.mtime - a.mtime || (a.pack.name < b.pack.name ? -1 : 1));
    const keep = new Set(next.map((e) => e.pack));
    for (const [name, pack] of this.byName) {
      if (!keep.has(pack)) {
        this.byName.delete(name);
        this.retired.push(pack); // objects already handed out may still point into it
      }
    }
    this.active = next.map((e) => e.pack);
    this.loadMidx(present.has('multi-pack-index'));
  }

  private loadMidx(exists: boolean): void {
    const file = path.join(this.packDir, 'multi-pack-index');
    let mtimeMs = -1;
    if (exists) {
      try { mtimeMs = fs.statSync(file).mtimeMs; } catch { /* gone */ }
    }
    if (mtimeMs < 0) {
      this.midx = null;
    } else if (!this.midx || this.midx.mtimeMs !== mtimeMs) {
      try {
        const index = MultiPackIndex.load(file);
        this.midx = { index, packs: [], mtimeMs };
      } catch {
        this.midx = null; // a corrupt or foreign midx is only an optimisation lost
      }
    }
    if (this.midx) {
      this.midx.packs = this.midx.index.packNames.map((n) => this.byName.get(n.replace(/\.idx$/, '.pack')) ?? null);
      const covered = new Set(this.midx.packs.filter((p): p is PackFile => p !== null));
      this.uncovered = this.active.filter((p) => !covered.has(p));
    } else {
      this.uncovered = this.active;
    }
  }

  /** Closes every pack descriptor; the store must not be used afterwards. */
  close(): void {
    for (const p of this.byName.values()) p.close();
    for (const p of this.retired) p.close();
    this.byName.clear();
    this.retired = [];
    this.active = [];
    this.uncovered = [];
    this.midx = null;
    this.cache.clear();
  }

  /** The pack of the last successful findPacked(). */
  hitPack: PackFile | null = null;

  /**
   * locate() without allocating, for object walks: returns the pack
   * position and leaves the pack in hitPack; -1 on a miss. Always the same
   * copy of an object that is in several packs, so flags never split.
   */
  findPacked(name: Buffer, off: number): number {
    if (!this.scanned) this.rescan();
    const m = this.midx;
    if (m) {
      const i = m.index.find(name, off);
      if (i >= 0) {
        const pack = m.packs[m.index.packOf(i)];
        if (pack) {
          const pos = pack.positionAt(m.index.offsetOf(i));
          if (pos >= 0) {
            this.hitPack = pack;
            return pos;
          }
        }
      }
    }
    const packs = this.uncovered;
    for (let k = 0; k < packs.length; k++) {
      const pos = packs[k]!.find(name, off);
      if (pos >= 0) {
        this.hitPack = packs[k]!;
        return pos;
      }
    }
    if (m) {
      // The midx may be stale (a pack it names was replaced): try every pack.
      for (const pack of this.active) {
        const pos = pack.find(name, off);
        if (pos >= 0) {
          this.hitPack = pack;
          return pos;
        }
      }
    }
    return -1;
  }

  /** Finds a packed object by its 20-byte name at name[off]; does not re-scan. */
  locate(name: Buffer, off = 0): Located | null {
    const pos = this.findPacked(name, off);
    return pos < 0 ? null : { pack: this.hitPack!, pos };
  }

  /** Like locate, but re-scans the pack directory once on a miss. */
  locateFresh(name: Buffer, off = 0): Located | null {
    const hit = this.locate(name, off);
    if (hit) return hit;
    this.rescan();
    return this.locate(name, off);
  }

  private loosePath(oid: string): string {
    return path.join(this.dir, oid.slice(0, 2), oid.slice(2));
  }

  hasLoose(oid: string): boolean {
    return fs.statSync(this.loosePath(oid), { throwIfNoEntry: false })?.isFile() ?? false;
  }

  /** Reads a loose object; null when there is none (or it vanished into a pack meanwhile). */
  readLoose(oid: string): { type: ObjectType; data: Buffer } | null {
    let file: Buffer;
    try {
      file = fs.readFileSync(this.loosePath(oid));
    } catch {
      return null;
    }
    let raw: Buffer;
    try {
      raw = zlib.inflateSync(file);
    } catch (err) {
      throw new ObjectCorruptError(`loose object ${oid}: ${(err as Error).message}`);
    }
    const nul = raw.indexOf(0);
    const header = nul > 0 ? raw.toString('latin1', 0, nul) : '';
    const m = /^([a-z]+) (\d+)$/.exec(header);
    if (!m || !isObjectType(m[1]!) || Number(m[2]) !== raw.length - nul - 1) {
      throw new ObjectCorruptError(`loose object ${oid}: bad header`);
    }
    return { type: m[1], data: raw.subarray(nul + 1) };
  }

  /**
   * Where a packed object starts, from the .idx (or midx) alone: enough to
   * read one object without building a pack's reverse index, which only
   * walks need. Same copy as findPacked() picks.
   */
  locateOffset(name: Buffer, off = 0): { pack: PackFile; offset: number } | null {
    if (!this.scanned) this.rescan();
    const m = this.midx;
    if (m) {
      const i = m.index.find(name, off);
      if (i >= 0) {
        const pack = m.packs[m.index.packOf(i)];
        if (pack) return { pack, offset: m.index.offsetOf(i) };
      }
    }
    for (const pack of m ? this.active : this.uncovered) {
      const i = pack.idx.find(name, off);
      if (i >= 0) return { pack, offset: pack.idx.offset(i) };
    }
    return null;
  }

  has(oid: string): boolean {
    const name = Buffer.from(oid, 'hex');
    if (name.length !== 20) return false;
    if (this.locateOffset(name)) return true;
    if (this.hasLoose(oid)) return true;
    this.rescan();
    return this.locateOffset(name) !== null;
  }

  private readonly scratch = Buffer.alloc(20);

  read(oid: string): { type: ObjectType; data: Buffer } | null {
    if (oid.length !== 40) return null;
    const name = this.scratch; // only looked up with, never kept
    if (name.write(oid, 0, 20, 'hex') !== 20) return null;
    for (let attempt = 0; attempt < 2; attempt++) {
      const at = this.locateOffset(name);
      if (at) {
        const o = this.readAt(at.pack, at.offset);
        return { type: typeName(o.code), data: o.data };
      }
      const loose = this.readLoose(oid);
      if (loose) return loose;
      this.rescan();
    }
    return null;
  }

  header(oid: string): { type: ObjectType; size: number } | null {
    const name = Buffer.from(oid, 'hex');
    if (name.length !== 20) return null;
    for (let attempt = 0; attempt < 2; attempt++) {
      const at = this.locateOffset(name);
      if (at) return this.headerAt(at.pack, at.offset);
      const loose = this.readLoose(oid);
      if (loose) return { type: loose.type, size: loose.data.length };
      this.rescan();
    }
    return null;
  }

  /** The header of the entry at `offset` (read through the block cache). */
  private entryHeaderAt(pack: PackFile, offset: number): { h: EntryHeader; head: Buffer } {
    const head = pack.readRange(offset, Math.min(32, pack.size - 20 - offset));
    return { h: parseEntryHeader(head, 0, offset), head };
  }

  /** Inflates the zlib stream of an entry whose data starts at `start` without knowing where it ends. */
  private inflateAt(pack: PackFile, start: number, size: number, what: () => string): Buffer {
    // A zlib stream is never longer than its data plus a small overhead; trailing bytes are ignored.
    const bound = Math.min(pack.size - 20 - start, size + (size >> 8) + 64);
    return inflateExact(pack.readRange(start, bound), size, what);
  }

  /**
   * Reads a packed object by offset, resolving its delta chain by offsets
   * (OFS_DELTA) or names (REF_DELTA). For single objects: no cache, no
   * reverse index.
   */
  readAt(pack: PackFile, offset: number, depth = 0): RawObject {
    const chain: { pack: PackFile; start: number; size: number; at: number }[] = [];
    let pk = pack;
    let off = offset;
    let base: RawObject;
    for (;;) {
      if (chain.length > MAX_CHAIN) throw new ObjectCorruptError(`${pk.name}: delta chain too long (a loop?)`);
      const { h, head } = this.entryHeaderAt(pk, off);
      if (h.type === OBJ_OFS_DELTA) {
        chain.push({ pack: pk, start: off + h.headerLength, size: h.size, at: off });
        off = h.baseOffset;
      } else if (h.type === OBJ_REF_DELTA) {
        chain.push({ pack: pk, start: off + h.headerLength, size: h.size, at: off });
        const baseName = Buffer.from(head.subarray(h.baseNameAt, h.baseNameAt + 20));
        const same = pk.idx.find(baseName, 0);
        if (same >= 0) {
          off = pk.idx.offset(same);
          continue;
        }
        const at = this.locateOffset(baseName) ?? (this.rescan(), this.locateOffset(baseName));
        if (at) {
          if (depth > 8) throw new ObjectCorruptError('REF_DELTA bases span too many packs');
          base = this.readAt(at.pack, at.offset, depth + 1);
          break;
        }
        const loose = this.readLoose(baseName.toString('hex'));
        if (!loose) throw new ObjectCorruptError(`REF_DELTA base ${baseName.toString('hex')} is missing`);
        base = { code: typeCode(loose.type), data: loose.data };
        break;
      } else {
        const at = off;
        base = { code: h.type, data: this.inflateAt(pk, off + h.headerLength, h.size, () => `${pk.name} at ${at}`) };
        break;
      }
    }
    for (let i = chain.length - 1; i >= 0; i--) {
      const d = chain[i]!;
      const delta = this.inflateAt(d.pack, d.start, d.size, () => `${d.pack.name} delta at ${d.at}`);
      try {
        base = { code: base.code, data: applyDelta(base.data, delta) };
      } catch (err) {
        throw new ObjectCorruptError(`${d.pack.name} at ${d.at}: ${(err as Error).message}`);
      }
    }
    return base;
  }

  /** Type and size of the object at `offset` without inflating it (only a delta's first bytes). */
  headerAt(pack: PackFile, offset: number): { type: ObjectType; size: number } {
    const { h } = this.entryHeaderAt(pack, offset);
    if (h.type !== OBJ_OFS_DELTA && h.type !== OBJ_REF_DELTA) return { type: typeName(h.type), size: h.size };
    const start = offset + h.headerLength;
    const compressed = pack.readRange(start, Math.min(pack.size - 20 - start, 256));
    let head: Buffer;
    try {
      head = zlib.inflateSync(compressed, { finishFlush: zlib.constants.Z_SYNC_FLUSH });
      if (head.length < 20 && head.length < h.size) throw new Error('short');
    } catch {
      head = this.inflateAt(pack, start, h.size, () => `${pack.name} delta at ${offset}`);
    }
    const [, p] = deltaHeaderSize(head, 0);
    const size = deltaHeaderSize(head, p)[0];
    // The type is the chain's base type.
    let pk = pack;
    let off = offset;
    for (let n = 0; n <= MAX_CHAIN; n++) {
      const { h: e, head: eh } = this.entryHeaderAt(pk, off);
      if (e.type === OBJ_OFS_DELTA) {
        off = e.baseOffset;
      } else if (e.type === OBJ_REF_DELTA) {
        const baseName = Buffer.from(eh.subarray(e.baseNameAt, e.baseNameAt + 20));
        const at = this.locateOffset(baseName);
        if (!at) {
          const loose = this.readLoose(baseName.toString('hex'));
          if (!loose) throw new ObjectCorruptError('REF_DELTA base is missing');
          return { type: loose.type, size };
        }
        pk = at.pack;
        off = at.offset;
      } else {
        return { type: typeName(e.type), size };
      }
    }
    throw new ObjectCorruptError(`${pack.name}: delta chain too long (a loop?)`);
  }

  /** Base object of a REF_DELTA: same pack first, then anywhere (a thin pack fixed up elsewhere). */
  private refBase(pack: PackFile, name: Buffer, off: number): Located | { obj: RawObject } {
    const pos = pack.find(name, off);
    if (pos >= 0) return { pack, pos };
    const at = this.locateFresh(name, off);
    if (at) return at;
    const oid = name.toString('hex', off, off + 20);
    const loose = this.readLoose(oid);
    if (!loose) throw new ObjectCorruptError(`REF_DELTA base ${oid} is missing`);
    return { obj: { code: typeCode(loose.type), data: loose.data } };
  }

  /**
   * Inflates a packed object, resolving its delta chain iteratively: the
   * chain is followed down to a cached object or a whole one, then the deltas
   * are applied upwards, each result going to the base cache.
   */
  readPacked(pack: PackFile, pos: number, depth = 0): RawObject {
    const chain: { pack: PackFile; pos: number; raw: Buffer; at: number; size: number }[] = [];
    let base: RawObject | undefined;
    let pk = pack;
    let p = pos;
    for (;;) {
      base = this.cache.get(pk, p);
      if (base) break;
      if (chain.length > MAX_CHAIN) throw new ObjectCorruptError(`${pk.name}: delta chain too long (a loop?)`);
      const off = pk.offsetOf(p);
      const raw = pk.rawEntry(p);
      const h = parseEntryHeader(raw, 0, off);
      if (h.type === OBJ_OFS_DELTA) {
        chain.push({ pack: pk, pos: p, raw, at: h.headerLength, size: h.size });
        p = pk.positionAt(h.baseOffset);
        if (p < 0) throw new ObjectCorruptError(`${pk.name}: OFS_DELTA at ${off} has no base entry`);
      } else if (h.type === OBJ_REF_DELTA) {
        chain.push({ pack: pk, pos: p, raw, at: h.headerLength, size: h.size });
        const b = this.refBase(pk, raw, h.baseNameAt);
        if ('obj' in b) {
          base = b.obj;
          break;
        }
        if (b.pack !== pk) {
          if (depth > 8) throw new ObjectCorruptError('REF_DELTA bases span too many packs');
          base = this.readPacked(b.pack, b.pos, depth + 1);
          break;
        }
        p = b.pos;
      } else {
        base = { code: h.type, data: inflateExact(raw.subarray(h.headerLength), h.size, () => `${pk.name} at ${off}`) };
        if (chain.length > 0 || h.type === 2) this.cache.put(pk, p, base);
        break;
      }
    }
    for (let i = chain.length - 1; i >= 0; i--) {
      const d = chain[i]!;
      const delta = inflateExact(d.raw.subarray(d.at), d.size, () => `${d.pack.name} delta at ${d.pack.offsetOf(d.pos)}`);
      let data: Buffer;
      try {
        data = applyDelta(base.data, delta);
      } catch (err) {
        throw new ObjectCorruptError(`${d.pack.name} at ${d.pack.offsetOf(d.pos)}: ${(err as Error).message}`);
      }
      base = { code: base.code, data };
      if (i > 0 || base.code === 2) this.cache.put(d.pack, d.pos, base);
    }
    return base;
  }

  /** Type code (after following deltas) of a packed object, without inflating whole objects. */
  typeOfPacked(pack: PackFile, pos: number): number {
    let pk = pack;
    let p = pos;
    for (let n = 0; n <= MAX_CHAIN; n++) {
      const cached = this.cache.get(pk, p);
      if (cached) return cached.code;
      const off = pk.offsetOf(p);
      const head = pk.pread(off, Math.min(32, pk.endOf(p) - off));
      const h = parseEntryHeader(head, 0, off);
      if (h.type === OBJ_OFS_DELTA) {
        p = pk.positionAt(h.baseOffset);
        if (p < 0) throw new ObjectCorruptError(`${pk.name}: OFS_DELTA at ${off} has no base entry`);
      } else if (h.type === OBJ_REF_DELTA) {
        const at = this.locateFresh(head, h.baseNameAt);
        if (!at) {
          const loose = this.readLoose(head.toString('hex', h.baseNameAt, h.baseNameAt + 20));
          if (!loose) throw new ObjectCorruptError('REF_DELTA base is missing');
          return typeCode(loose.type);
        }
        pk = at.pack;
        p = at.pos;
      } else {
        return h.type;
      }
    }
    throw new ObjectCorruptError(`${pack.name}: delta chain too long (a loop?)`);
  }

}

export { PackError };
