/**
 * Pack index version 2 (gitformat-pack(5)): fan-out table, sorted object
 * names, CRC32 of every packed entry, 31-bit offsets with a 64-bit overflow
 * table, then the pack's and the index's checksums.
 *
 * Lookups by binary object name are the hot path of every object walk, so
 * the first four bytes of each name are kept in a typed array and compared
 * as integers before the name itself is looked at.
 */
import * as fs from 'node:fs';

const IDX_MAGIC = 0xff744f63; // "\377tOc"
const HEADER = 8;
const FANOUT = 256 * 4;

export class PackIndexError extends Error {
  override name = 'PackIndexError';
}

export class PackIndex {
  readonly count: number;
  /** Checksum of the pack this index describes (its trailer). */
  readonly packChecksum: Buffer;
  private readonly fanout: Uint32Array;
  /** First four bytes of every name, built with the hash table. */
  private prefix: Uint32Array = new Uint32Array(0);
  private lookups = 0;
  private readonly shaOff = HEADER + FANOUT;
  private readonly crcOff: number;
  private readonly offOff: number;
  private readonly bigOff: number;
  private readonly bigCount: number;

  constructor(readonly buf: Buffer, readonly path = '(memory)') {
    if (buf.length < HEADER + FANOUT + 40) throw new PackIndexError(`${path}: index file too small`);
    if (buf.readUInt32BE(0) !== IDX_MAGIC) throw new PackIndexError(`${path}: not a version 2 pack index`);
    const version = buf.readUInt32BE(4);
    if (version !== 2) throw new PackIndexError(`${path}: unsupported pack index version ${version}`);
    this.fanout = new Uint32Array(256);
    let prev = 0;
    for (let i = 0; i < 256; i++) {
      const v = buf.readUInt32BE(HEADER + i * 4);
      if (v < prev) throw new PackIndexError(`${path}: fan-out table not monotonic`);
      this.fanout[i] = prev = v;
    }
    const n = this.count = prev;
    this.crcOff = this.shaOff + 20 * n;
    this.offOff = this.crcOff + 4 * n;
    this.bigOff = this.offOff + 4 * n;
    const rest = buf.length - 40 - this.bigOff;
    if (rest < 0 || rest % 8 !== 0) throw new PackIndexError(`${path}: index size does not match its object count`);
    this.bigCount = rest / 8;
    this.packChecksum = buf.subarray(buf.length - 40, buf.length - 20);
  }

  static load(path: string): PackIndex {
    return new PackIndex(fs.readFileSync(path), path);
  }

  /**
   * Open-addressing table from the first four bytes of a name (uniform, it
   * is a hash) to index position + 1. Built on first lookup; a walk looks up
   * every tree entry it meets, millions for a big history.
   */
  private table: Int32Array | null = null;
  private tableShift = 0;

  private buildTable(): Int32Array {
    const prefix = this.prefix = new Uint32Array(this.count);
    for (let i = 0; i < this.count; i++) prefix[i] = this.buf.readUInt32BE(this.shaOff + 20 * i);
    let bits = 1;
    while ((1 << bits) < this.count * 2) bits++;
    const table = new Int32Array(1 << bits);
    const mask = table.length - 1;
    const shift = 32 - bits;
    for (let i = 0; i < this.count; i++) {
      let h = this.prefix[i]! >>> shift;
      while (table[h] !== 0) h = (h + 1) & mask;
      table[h] = i + 1;
    }
    this.tableShift = shift;
    this.table = table;
    return table;
  }

  /** Binary search within the fan-out bucket: no set-up cost, for the first few lookups. */
  private search(name: Buffer, off: number): number {
    const b0 = name[off]!;
    let lo = b0 === 0 ? 0 : this.fanout[b0 - 1]!;
    let hi = this.fanout[b0]!;
    while (lo < hi) {
      const mid = (lo + hi) >>> 1;
      const s = this.shaOff + 20 * mid;
      const c = this.buf.compare(name, off, off + 20, s, s + 20);
      if (c === 0) return mid;
      if (c < 0) lo = mid + 1;
      else hi = mid;
    }
    return -1;
  }

  /** Position of the object whose 20-byte name starts at name[off], or -1. */
  find(name: Buffer, off = 0): number {
    if (!this.table && ++this.lookups <= 512) return this.search(name, off);
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
    const s = this.shaOff + 20 * i;
    return this.buf.toString('hex', s, s + 20);
  }

  /** The 20-byte name of entry i (a view, not a copy). */
  oidBytes(i: number): Buffer {
    const s = this.shaOff + 20 * i;
    return this.buf.subarray(s, s + 20);
  }

  crc32(i: number): number {
    return this.buf.readUInt32BE(this.crcOff + 4 * i);
  }

  offset(i: number): number {
    const v = this.buf.readUInt32BE(this.offOff + 4 * i);
    if (v < 0x80000000) return v;
    const k = v & 0x7fffffff;
    if (k >= this.bigCount) throw new PackIndexError(`${this.path}: 64-bit offset ${k} out of range`);
    const big = this.buf.readBigUInt64BE(this.bigOff + 8 * k);
    if (big > BigInt(Number.MAX_SAFE_INTEGER)) throw new PackIndexError(`${this.path}: offset too large`);
    return Number(big);
  }
}
