/**
 * One packfile and its index, read with pread on a file descriptor that is
 * opened once and kept: `git gc` may delete the file under a running reader,
 * and on Linux an open descriptor stays readable after the unlink.
 *
 * Entries are addressed by their position in pack order (ascending offset),
 * which is also the bit order of reachability bitmaps and the order in which
 * a pack can be streamed out again with its deltas still valid.
 */
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { OBJ_OFS_DELTA, OBJ_REF_DELTA } from './object';
import { PackIndex } from './pack_index';

export class PackError extends Error {
  override name = 'PackError';
}

/** A pack entry's header as stored: type code, inflated size, where the data starts, its delta base. */
export interface EntryHeader {
  type: number;
  size: number;
  /** Bytes of header (type/size, plus the OFS offset or REF name) before the zlib stream. */
  headerLength: number;
  /** OFS_DELTA: absolute pack offset of the base. */
  baseOffset: number;
  /** REF_DELTA: offset of the base's 20-byte name inside the buffer given to parseEntryHeader. */
  baseNameAt: number;
}

let nextPackId = 1;

const LITTLE_ENDIAN = os.endianness() === 'LE';

/** Block cache for small entries: 4 KiB blocks, 1 MiB per pack at most. */
const BLOCK = 4096;
const MAX_BLOCKS = 256;

export class PackFile {
  /** Process-unique, stable while this object lives (packs come and go). */
  readonly id = nextPackId++;
  readonly size: number;
  readonly count: number;
  readonly version: number;
  private order: Uint32Array | null = null;    // pack position -> index position
  private rank: Uint32Array | null = null;     // index position -> pack position
  private offsets: Float64Array | Uint32Array | null = null; // pack position -> offset; [count] = end of last entry
  private closed = false;
  private blocks = new Map<number, Buffer>();

  private constructor(
    readonly packPath: string,
    readonly idx: PackIndex,
    readonly fd: number,
  ) {
    this.count = idx.count;
    const st = fs.fstatSync(fd);
    this.size = st.size;
    const head = Buffer.alloc(12);
    if (st.size < 32 || fs.readSync(fd, head, 0, 12, 0) !== 12) throw new PackError(`${packPath}: too small to be a pack`);
    if (head.toString('latin1', 0, 4) !== 'PACK') throw new PackError(`${packPath}: bad pack signature`);
    const version = this.version = head.readUInt32BE(4);
    if (version !== 2 && version !== 3) throw new PackError(`${packPath}: unsupported pack version ${version}`);
    if (head.readUInt32BE(8) !== idx.count) throw new PackError(`${packPath}: object count differs from its index`);
    const trailer = Buffer.alloc(20);
    fs.readSync(fd, trailer, 0, 20, st.size - 20);
    if (!trailer.equals(idx.packChecksum)) throw new PackError(`${packPath}: checksum differs from its index`);
  }

  /** Opens pack-X.pack with pack-X.idx; throws PackError or an fs error when either is unusable. */
  static open(packPath: string): PackFile {
    const idx = PackIndex.load(packPath.replace(/\.pack$/, '.idx'));
    let fd: number;
    try {
      fd = fs.openSync(packPath, 'r');
    } catch (err) {
      idx.close();
      throw err;
    }
    try {
      return new PackFile(packPath, idx, fd);
    } catch (err) {
      fs.closeSync(fd);
      idx.close();
      throw err;
    }
  }

  get name(): string {
    return path.basename(this.packPath);
  }

  close(): void {
    if (!this.closed) {
      this.closed = true;
      fs.closeSync(this.fd);
      this.idx.close();
    }
  }

  /** Builds (or loads from a .rev file) the mapping between index and pack order. */
  private buildOrder(): void {
    const n = this.count;
    const sorted = this.loadRev() ?? this.sortByOffset();
    const order = sorted.order;
    const keys = sorted.offsets;
    const offsets = this.size < 2 ** 32 ? new Uint32Array(n + 1) : new Float64Array(n + 1);
    const rank = new Uint32Array(n);
    let prev = -1;
    for (let p = 0; p < n; p++) {
      const off = keys ? keys[p]! : this.idx.offset(order[p]!);
      if (off <= prev || off < 12) throw new PackError(`${this.packPath}: index offsets not strictly increasing in pack order`);
      offsets[p] = prev = off;
      rank[order[p]!] = p;
    }
    offsets[n] = this.size - 20;
    if (prev >= this.size - 20) throw new PackError(`${this.packPath}: index offset beyond end of pack`);
    this.order = order;
    this.rank = rank;
    this.offsets = offsets;
  }

  /** Index positions in pack order (and, when cheap, their offsets in that order). */
  private sortByOffset(): { order: Uint32Array; offsets: Uint32Array | null } {
    const n = this.count;
    const idx = this.idx;
    if (LITTLE_ENDIAN && idx.hasSmallOffsets()) {
      // (offset << 32 | index position) as 64-bit keys, sorted by the engine's
      // native sort: a few milliseconds for 100k objects in a process that
      // has had no time to optimise a loop of its own.
      const keys = new BigUint64Array(n);
      const halves = new Uint32Array(keys.buffer);
      idx.offsetsInto(halves, 1, 2); // high halves: offsets
      for (let i = 0; i < n; i++) halves[2 * i] = i; // low halves: index positions
      keys.sort();
      const order = new Uint32Array(n);
      const offsets = new Uint32Array(n);
      for (let k = 0; k < n; k++) {
        order[k] = halves[2 * k]!;
        offsets[k] = halves[2 * k + 1]!;
      }
      return { order, offsets };
    }
    const offs = new Float64Array(n);
    for (let i = 0; i < n; i++) offs[i] = idx.offset(i);
    const order = new Uint32Array(n);
    for (let i = 0; i < n; i++) order[i] = i;
    return { order: order.sort((a, b) => offs[a]! - offs[b]!), offsets: null };
  }

  /** A pack-X.rev reverse index (gitformat-pack(5)), if present and sane. */
  private loadRev(): { order: Uint32Array; offsets: null } | null {
    const file = this.packPath.replace(/\.pack$/, '.rev');
    if (!fs.existsSync(file)) return null;
    let buf: Buffer;
    try {
      buf = fs.readFileSync(file);
    } catch {
      return null;
    }
    const n = this.count;
    if (buf.length !== 12 + 4 * n + 40 || buf.toString('latin1', 0, 4) !== 'RIDX' || buf.readUInt32BE(4) !== 1) return null;
    if (!buf.subarray(12 + 4 * n, 12 + 4 * n + 20).equals(this.idx.packChecksum)) return null;
    const order = new Uint32Array(n);
    for (let p = 0; p < n; p++) {
      const v = buf.readUInt32BE(12 + 4 * p);
      if (v >= n) return null;
      order[p] = v;
    }
    return { order, offsets: null };
  }

  /** Pack position of index position i. */
  rankOf(i: number): number {
    if (!this.rank) this.buildOrder();
    return this.rank![i]!;
  }

  /** Index position of pack position p. */
  indexOf(p: number): number {
    if (!this.order) this.buildOrder();
    return this.order![p]!;
  }

  offsetOf(p: number): number {
    if (!this.offsets) this.buildOrder();
    return this.offsets![p]!;
  }

  /** Offset just past entry p (where the next entry, or the trailer, starts). */
  endOf(p: number): number {
    if (!this.offsets) this.buildOrder();
    return this.offsets![p + 1]!;
  }

  /** Pack position of the entry at `offset`, or -1 when no entry starts there. */
  positionAt(offset: number): number {
    if (!this.offsets) this.buildOrder();
    const offs = this.offsets!;
    let lo = 0;
    let hi = this.count - 1;
    while (lo <= hi) {
      const mid = (lo + hi) >>> 1;
      const v = offs[mid]!;
      if (v === offset) return mid;
      if (v < offset) lo = mid + 1;
      else hi = mid - 1;
    }
    return -1;
  }

  /** Pack position of the object named by name[off..off+20], or -1. */
  find(name: Buffer, off = 0): number {
    const i = this.idx.find(name, off);
    return i < 0 ? -1 : this.rankOf(i);
  }

  oidAt(p: number): string {
    return this.idx.oid(this.indexOf(p));
  }

  oidBytesAt(p: number): Buffer {
    return this.idx.oidBytes(this.indexOf(p));
  }

  crc32At(p: number): number {
    return this.idx.crc32(this.indexOf(p));
  }

  /** Reads length bytes at offset into a new buffer (short read = corrupt or truncated pack). */
  pread(offset: number, length: number): Buffer {
    const buf = Buffer.allocUnsafe(length);
    this.preadInto(buf, 0, length, offset);
    return buf;
  }

  preadInto(buf: Buffer, at: number, length: number, offset: number): void {
    let done = 0;
    while (done < length) {
      const k = fs.readSync(this.fd, buf, at + done, length - done, offset + done);
      if (k === 0) throw new PackError(`${this.packPath}: unexpected end of pack at ${offset + done}`);
      done += k;
    }
  }

  /**
   * The whole stored entry p: header and compressed data, exactly as on
   * disk. Small entries come through a little block cache: git writes each
   * delta family (the versions of one tree, say) together, and a walk
   * through history reads those families a member at a time.
   * The result may share memory with a cached block: do not keep it.
   */
  rawEntry(p: number): Buffer {
    const off = this.offsetOf(p);
    return this.readRange(off, this.endOf(p) - off);
  }

  /** Bytes [off, off+len) of the pack, from the block cache when they fit in one block. Do not keep the result. */
  readRange(off: number, len: number): Buffer {
    const first = Math.floor(off / BLOCK);
    if (first !== Math.floor((off + len - 1) / BLOCK)) return this.pread(off, len);
    let block = this.blocks.get(first);
    if (block) {
      this.blocks.delete(first);
    } else {
      const start = first * BLOCK;
      block = this.pread(start, Math.min(BLOCK, this.size - start));
      if (this.blocks.size >= MAX_BLOCKS) this.blocks.delete(this.blocks.keys().next().value!);
    }
    this.blocks.set(first, block);
    const at = off - first * BLOCK;
    if (at + len > block.length) throw new PackError(`${this.packPath}: read beyond the end of the pack`);
    return block.subarray(at, at + len);
  }
}

/** Parses a pack entry header found at buf[at]; `offset` is its position in the pack (for OFS_DELTA). */
export function parseEntryHeader(buf: Buffer, at: number, offset: number): EntryHeader {
  let p = at;
  const end = buf.length;
  if (p >= end) throw new PackError('entry header truncated');
  let c = buf[p++]!;
  const type = (c >> 4) & 7;
  let size = c & 15;
  let shift = 4;
  while (c & 0x80) {
    if (p >= end || shift > 53) throw new PackError('entry header truncated or size too large');
    c = buf[p++]!;
    size += (c & 0x7f) * 2 ** shift;
    shift += 7;
  }
  let baseOffset = -1;
  let baseNameAt = -1;
  if (type === OBJ_OFS_DELTA) {
    if (p >= end) throw new PackError('OFS_DELTA offset truncated');
    c = buf[p++]!;
    let rel = c & 0x7f;
    while (c & 0x80) {
      if (p >= end || rel > 2 ** 45) throw new PackError('OFS_DELTA offset truncated or too large');
      c = buf[p++]!;
      rel = (rel + 1) * 128 + (c & 0x7f);
    }
    baseOffset = offset - rel;
    if (rel === 0 || baseOffset < 12) throw new PackError(`OFS_DELTA at ${offset} points outside the pack`);
  } else if (type === OBJ_REF_DELTA) {
    if (p + 20 > end) throw new PackError('REF_DELTA base name truncated');
    baseNameAt = p;
    p += 20;
  } else if (type === 0 || type === 5) {
    throw new PackError(`bad pack entry type ${type} at ${offset}`);
  }
  return { type, size, headerLength: p - at, baseOffset, baseNameAt };
}

/** Encodes a pack entry's type and size header. */
export function encodeEntryHeader(type: number, size: number): Buffer {
  const bytes: number[] = [];
  let c = (type << 4) | (size & 15);
  let rest = Math.floor(size / 16);
  while (rest > 0) {
    bytes.push(c | 0x80);
    c = rest & 0x7f;
    rest = Math.floor(rest / 128);
  }
  bytes.push(c);
  return Buffer.from(bytes);
}

/** Encodes the relative offset of an OFS_DELTA base (the "offset encoding" of gitformat-pack(5)). */
export function encodeOfsDelta(rel: number): Buffer {
  const bytes = [rel & 0x7f];
  let n = Math.floor(rel / 128);
  while (n > 0) {
    n -= 1;
    bytes.unshift(0x80 | (n & 0x7f));
    n = Math.floor(n / 128);
  }
  return Buffer.from(bytes);
}
