/**
 * Pack index version 2 (gitformat-pack(5)): fan-out table, sorted object
 * names, CRC32 of every packed entry, 31-bit offsets with a 64-bit overflow
 * table, then the pack's and the index's checksums.
 *
 * The file is read lazily: a session that looks up a few objects (ls-refs,
 * or a clone answered from a reachability bitmap) reads them with pread and
 * never holds the index, so its memory does not grow with the repository.
 * A walk, which looks up every tree entry it meets, loads the whole file
 * once and builds a hash table on the first four bytes of each name.
 */
import * as fs from 'node:fs';

const IDX_MAGIC = 0xff744f63; // "\377tOc"
const HEADER = 8;
const FANOUT = 256 * 4;
/** Lookups answered by binary search on the file before the index is loaded and hashed. */
const LAZY_LOOKUPS = 512;

export class PackIndexError extends Error {
  override name = 'PackIndexError';
}

export class PackIndex {
  readonly count: number;
  /** Checksum of the pack this index describes (its trailer). */
  readonly packChecksum: Buffer;
  private readonly fanout: Uint32Array;
  private readonly shaOff = HEADER + FANOUT;
  private readonly crcOff: number;
  private readonly offOff: number;
  private readonly bigOff: number;
  private readonly bigCount: number;
  /** The whole file, once something needs it in bulk. */
  private full: Buffer | null = null;
  private fd: number | null;
  private lookups = 0;
  /** First four bytes of every name, built with the hash table. */
  private prefix: Uint32Array = new Uint32Array(0);
  /** Open-addressing table: first four bytes of a name (uniform: it is a hash) -> position + 1. */
  private table: Int32Array | null = null;
  private tableShift = 0;

  private constructor(readonly path: string, fd: number | null, size: number, head: Buffer, full: Buffer | null) {
    this.fd = fd;
    this.full = full;
    if (size < HEADER + FANOUT + 40 || head.length < HEADER + FANOUT) throw new PackIndexError(`${path}: index file too small`);
    if (head.readUInt32BE(0) !== IDX_MAGIC) throw new PackIndexError(`${path}: not a version 2 pack index`);
    const version = head.readUInt32BE(4);
    if (version !== 2) throw new PackIndexError(`${path}: unsupported pack index version ${version}`);
    this.fanout = new Uint32Array(256);
    let prev = 0;
    for (let i = 0; i < 256; i++) {
      const v = head.readUInt32BE(HEADER + i * 4);
      if (v < prev) throw new PackIndexError(`${path}: fan-out table not monotonic`);
      this.fanout[i] = prev = v;
    }
    const n = this.count = prev;
    this.crcOff = this.shaOff + 20 * n;
    this.offOff = this.crcOff + 4 * n;
    this.bigOff = this.offOff + 4 * n;
    const rest = size - 40 - this.bigOff;
    if (rest < 0 || rest % 8 !== 0) throw new PackIndexError(`${path}: index size does not match its object count`);
    this.bigCount = rest / 8;
    this.size = size;
    this.packChecksum = Buffer.from(this.bytes(size - 40, 20));
  }

  private readonly size: number;

  /** Opens an .idx file, reading only its header and trailer for now. */
  static load(path: string): PackIndex {
    const fd = fs.openSync(path, 'r');
    try {
      const size = fs.fstatSync(fd).size;
      const head = Buffer.alloc(Math.min(size, HEADER + FANOUT));
      fs.readSync(fd, head, 0, head.length, 0);
      return new PackIndex(path, fd, size, head, null);
    } catch (err) {
      fs.closeSync(fd);
      throw err;
    }
  }

  /** An index held in memory (tests, and indexes being written). */
  static fromBuffer(buf: Buffer, path = '(memory)'): PackIndex {
    return new PackIndex(path, null, buf.length, buf, buf);
  }

  close(): void {
    if (this.fd !== null) {
      fs.closeSync(this.fd);
      this.fd = null;
    }
  }

  /** The whole file (loaded on first use; the descriptor is closed then). */
  private get buf(): Buffer {
    if (this.full) return this.full;
    const buf = Buffer.allocUnsafeSlow(this.size);
    let done = 0;
    while (done < this.size) {
      const k = fs.readSync(this.fd!, buf, done, this.size - done, done);
      if (k === 0) throw new PackIndexError(`${this.path}: index file shrank`);
      done += k;
    }
    this.full = buf;
    this.close();
    return buf;
  }

  /** len bytes at `at`: from memory once loaded, else by pread. */
  private bytes(at: number, len: number): Buffer {
    if (this.full) return this.full.subarray(at, at + len);
    const b = Buffer.allocUnsafe(len);
    if (fs.readSync(this.fd!, b, 0, len, at) !== len) throw new PackIndexError(`${this.path}: index file truncated`);
    return b;
  }

  private buildTable(): Int32Array {
    const n = this.count;
    const b = this.buf;
    const prefix = this.prefix = new Uint32Array(n);
    let bits = 1;
    while ((1 << bits) < n * 1.5) bits++; // load factor at most 2/3
    const table = new Int32Array(1 << bits);
    const mask = table.length - 1;
    const shift = 32 - bits;
    for (let i = 0, at = this.shaOff; i < n; i++, at += 20) {
      const p = ((b[at]! << 24) | (b[at + 1]! << 16) | (b[at + 2]! << 8) | b[at + 3]!) >>> 0;
      prefix[i] = p;
      let h = p >>> shift;
      while (table[h] !== 0) h = (h + 1) & mask;
      table[h] = i + 1;
    }
    this.tableShift = shift;
    this.table = table;
    return table;
  }

  /**
   * Binary search within the fan-out bucket: no set-up cost, for the first
   * few lookups. Unloaded, the bucket's names are read with one pread once
   * the range is small (a bucket of a 100k-object pack is about 10 KiB).
   */
  private search(name: Buffer, off: number): number {
    const b0 = name[off]!;
    let lo = b0 === 0 ? 0 : this.fanout[b0 - 1]!;
    let hi = this.fanout[b0]!;
    if (!this.full) {
      while ((hi - lo) * 20 > 65536) {
        const mid = (lo + hi) >>> 1;
        const c = this.bytes(this.shaOff + 20 * mid, 20).compare(name, off, off + 20);
        if (c === 0) return mid;
        if (c < 0) lo = mid + 1;
        else hi = mid;
      }
      const names = this.bytes(this.shaOff + 20 * lo, 20 * (hi - lo));
      let a = 0;
      let b = hi - lo;
      while (a < b) {
        const mid = (a + b) >>> 1;
        const c = names.compare(name, off, off + 20, 20 * mid, 20 * mid + 20);
        if (c === 0) return lo + mid;
        if (c < 0) a = mid + 1;
        else b = mid;
      }
      return -1;
    }
    const buf = this.full;
    while (lo < hi) {
      const mid = (lo + hi) >>> 1;
      const s = this.shaOff + 20 * mid;
      const c = buf.compare(name, off, off + 20, s, s + 20);
      if (c === 0) return mid;
      if (c < 0) lo = mid + 1;
      else hi = mid;
    }
    return -1;
  }

  /** Position of the object whose 20-byte name starts at name[off], or -1. */
  find(name: Buffer, off = 0): number {
    if (!this.table && ++this.lookups <= LAZY_LOOKUPS) return this.search(name, off);
    const table = this.table ?? this.buildTable();
    const mask = table.length - 1;
    const p = ((name[off]! << 24) | (name[off + 1]! << 16) | (name[off + 2]! << 8) | name[off + 3]!) >>> 0;
    const prefix = this.prefix;
    const buf = this.buf;
    let h = p >>> this.tableShift;
    for (;;) {
      const v = table[h]!;
      if (v === 0) return -1;
      const i = v - 1;
      if (prefix[i] === p) {
        const s = this.shaOff + 20 * i + 4;
        let k = 0;
        while (k < 16 && buf[s + k] === name[off + 4 + k]) k++;
        if (k === 16) return i;
      }
      h = (h + 1) & mask;
    }
  }

  findHex(oid: string): number {
    return this.find(Buffer.from(oid, 'hex'));
  }

  oid(i: number): string {
    const at = this.shaOff + 20 * i;
    return this.full ? this.full.toString('hex', at, at + 20) : this.bytes(at, 20).toString('hex');
  }

  /** The 20-byte name of entry i (do not keep it: it may be a view into the index). */
  oidBytes(i: number): Buffer {
    return this.bytes(this.shaOff + 20 * i, 20);
  }

  crc32(i: number): number {
    const at = this.crcOff + 4 * i;
    return this.full ? this.full.readUInt32BE(at) : this.bytes(at, 4).readUInt32BE(0);
  }

  /** True when no offset needs the 64-bit table (packs under 2 GiB). */
  hasSmallOffsets(): boolean {
    return this.bigCount === 0;
  }

  /** Writes every 31-bit offset into out[first + k * stride], one byte swap each (hasSmallOffsets only). */
  offsetsInto(out: Uint32Array, first: number, stride: number): void {
    const n = this.count;
    const b = this.buf;
    let at = this.offOff;
    for (let i = 0, o = first; i < n; i++, at += 4, o += stride) {
      out[o] = ((b[at]! << 24) | (b[at + 1]! << 16) | (b[at + 2]! << 8) | b[at + 3]!) >>> 0;
    }
  }

  offset(i: number): number {
    const at = this.offOff + 4 * i;
    const v = this.full ? this.full.readUInt32BE(at) : this.bytes(at, 4).readUInt32BE(0);
    if (v < 0x80000000) return v;
    const k = v & 0x7fffffff;
    if (k >= this.bigCount) throw new PackIndexError(`${this.path}: 64-bit offset ${k} out of range`);
    const big = this.bytes(this.bigOff + 8 * k, 8).readBigUInt64BE(0);
    if (big > BigInt(Number.MAX_SAFE_INTEGER)) throw new PackIndexError(`${this.path}: offset too large`);
    return Number(big);
  }
}
