/**
 * Reachability bitmaps (gitformat-bitmap(5)) for a single pack: for selected
 * commits, the set of every object reachable from them, one bit per object
 * in pack order, EWAH-compressed and often XORed against a nearby entry.
 * With them a clone's object set is a few ORs instead of a history walk.
 */
import * as fs from 'node:fs';
import type { PackFile } from './pack';

const FLAG_FULL_DAG = 0x1;
const MAX_XOR_CHAIN = 10000;

export class BitmapError extends Error {
  override name = 'BitmapError';
}

/** A plain bitset over pack positions. */
export type Bits = Uint32Array;

export function newBits(n: number): Bits {
  return new Uint32Array((n + 31) >>> 5);
}

export function testBit(b: Bits, i: number): boolean {
  return (b[i >>> 5]! & (1 << (i & 31))) !== 0;
}

export function setBit(b: Bits, i: number): void {
  b[i >>> 5]! |= 1 << (i & 31);
}

export function popcount(b: Bits): number {
  let n = 0;
  for (let i = 0; i < b.length; i++) {
    let v = b[i]!;
    v -= (v >>> 1) & 0x55555555;
    v = (v & 0x33333333) + ((v >>> 2) & 0x33333333);
    n += (((v + (v >>> 4)) & 0x0f0f0f0f) * 0x01010101) >>> 24;
  }
  return n;
}

export function orInto(dst: Bits, src: Bits): void {
  for (let i = 0; i < src.length; i++) dst[i]! |= src[i]!;
}

/**
 * Decodes one EWAH bitmap at buf[at], XORing it into `into` (which starts
 * zeroed for a plain decode): the form bitmaps are stored in, each against a
 * nearby one, resolves in one pass per link of the chain.
 */
export function xorEwahInto(buf: Buffer, at: number, maxBits: number, into: Bits): void {
  if (at + 8 > buf.length) throw new BitmapError('EWAH header truncated');
  const nbits = buf.readUInt32BE(at);
  const nwords = buf.readUInt32BE(at + 4);
  const wordsAt = at + 8;
  if (wordsAt + nwords * 8 + 4 > buf.length) throw new BitmapError('EWAH bitmap truncated');
  // Bitmaps are written in whole 64-bit words; bits past the object count must be clear.
  if (nbits > Math.ceil(maxBits / 64) * 64) throw new BitmapError(`EWAH bitmap of ${nbits} bits for ${maxBits} objects`);
  const limit = into.length; // in 32-bit words
  let w = 0; // output position in 32-bit words
  let p = wordsAt;
  const endWords = wordsAt + nwords * 8;
  while (p < endWords) {
    const hi = buf.readUInt32BE(p);
    const lo = buf.readUInt32BE(p + 4);
    p += 8;
    // running bit: bit 0; running length: bits 1..32; literal words: bits 33..63.
    const runLen = (lo >>> 1) + (hi & 1) * 0x80000000;
    const literals = hi >>> 1;
    if (runLen > 0) {
      if (w + runLen * 2 > limit + 1) throw new BitmapError('EWAH run beyond the bitmap');
      if (lo & 1) {
        const stop = Math.min(limit, w + runLen * 2);
        for (let k = w; k < stop; k++) into[k] = ~into[k]!;
      }
      w += runLen * 2;
    }
    if (p + literals * 8 > endWords) throw new BitmapError('EWAH literals beyond the bitmap');
    for (let k = 0; k < literals; k++, p += 8, w += 2) {
      const h = buf.readUInt32BE(p);
      const l = buf.readUInt32BE(p + 4);
      if (w < limit) into[w]! ^= l;
      else if (l !== 0) throw new BitmapError('EWAH literal beyond the bitmap');
      if (w + 1 < limit) into[w + 1]! ^= h;
      else if (h !== 0) throw new BitmapError('EWAH literal beyond the bitmap');
    }
  }
  // Bits past the object count would name objects that do not exist.
  const tail = maxBits & 31;
  if (tail && limit > 0) into[limit - 1]! &= 2 ** tail - 1;
}

/** Decodes one EWAH bitmap at buf[at]. */
export function decodeEwah(buf: Buffer, at: number, maxBits: number): Bits {
  const bits = newBits(maxBits);
  xorEwahInto(buf, at, maxBits, bits);
  return bits;
}

interface Entry {
  /** Where the entry's EWAH starts in the file. */
  at: number;
  xor: number;
}

export class PackBitmap {
  private readonly entries: Entry[] = [];
  /** Index position (in the .idx) of a commit -> entry number. */
  private readonly byIndexPos = new Map<number, number>();
  private readonly decoded = new Map<number, Bits>();
  /** Where the type bitmaps (commits, trees, blobs, tags) start. */
  private readonly typeAt: number[] = [];

  private constructor(readonly pack: PackFile, private readonly buf: Buffer) {
    if (buf.length < 32 + 20 || buf.toString('latin1', 0, 4) !== 'BITM') throw new BitmapError('not a bitmap index');
    if (buf.readUInt16BE(4) !== 1) throw new BitmapError(`unsupported bitmap version ${buf.readUInt16BE(4)}`);
    const flags = buf.readUInt16BE(6);
    if (!(flags & FLAG_FULL_DAG)) throw new BitmapError('bitmap is not for a full DAG');
    const count = buf.readUInt32BE(8);
    if (!buf.subarray(12, 32).equals(pack.idx.packChecksum)) throw new BitmapError('bitmap belongs to another pack');
    const n = pack.count;
    let at = 32;
    for (let t = 0; t < 4; t++) {
      this.typeAt.push(at);
      at = this.skipEwah(at);
    }
    for (let i = 0; i < count; i++) {
      if (at + 6 > buf.length) throw new BitmapError('bitmap entry truncated');
      const pos = buf.readUInt32BE(at);
      const xor = buf[at + 4]!;
      if (pos >= n) throw new BitmapError('bitmap entry for an object outside the pack');
      if (xor > i) throw new BitmapError('bitmap XOR offset before the first entry');
      this.entries.push({ at: at + 6, xor });
      this.byIndexPos.set(pos, i);
      at = this.skipEwah(at + 6);
    }
  }

  private skipEwah(at: number): number {
    if (at + 8 > this.buf.length) throw new BitmapError('EWAH header truncated');
    const end = at + 8 + this.buf.readUInt32BE(at + 4) * 8 + 4;
    if (end > this.buf.length) throw new BitmapError('EWAH bitmap truncated');
    return end;
  }

  /** The pack's bitmap index, or null when there is none or it cannot be trusted. */
  static open(pack: PackFile): PackBitmap | null {
    const file = pack.packPath.replace(/\.pack$/, '.bitmap');
    if (!fs.existsSync(file)) return null;
    let buf: Buffer;
    try {
      buf = fs.readFileSync(file);
    } catch {
      return null;
    }
    try {
      return new PackBitmap(pack, buf);
    } catch {
      return null;
    }
  }

  get size(): number {
    return this.entries.length;
  }

  /** Every object of one type: 0 commits, 1 trees, 2 blobs, 3 tags. */
  typeBits(t: 0 | 1 | 2 | 3): Bits {
    return decodeEwah(this.buf, this.typeAt[t]!, this.pack.count);
  }

  /** Does the commit at this .idx position have a bitmap? */
  has(indexPos: number): boolean {
    return this.byIndexPos.has(indexPos);
  }

  /** Everything reachable from the commit at this .idx position (pack-order bits), or null. */
  reachable(indexPos: number): Bits | null {
    const e = this.byIndexPos.get(indexPos);
    return e === undefined ? null : this.entryBits(e);
  }

  private entryBits(e: number): Bits {
    const hit = this.decoded.get(e);
    if (hit) return hit;
    // The XOR chain, followed back to a decoded bitmap or a plain one.
    const chain: number[] = [];
    let cur = e;
    let base: Bits | null = null;
    for (;;) {
      const d = this.decoded.get(cur);
      if (d) { base = d; break; }
      chain.push(cur);
      if (chain.length > MAX_XOR_CHAIN) throw new BitmapError('bitmap XOR chain too long');
      const x = this.entries[cur]!.xor;
      if (x === 0) break;
      cur -= x;
    }
    const bits = base ? base.slice() : newBits(this.pack.count);
    for (let k = chain.length - 1; k >= 0; k--) xorEwahInto(this.buf, this.entries[chain[k]!]!.at, this.pack.count, bits);
    if (this.decoded.size < 256) this.decoded.set(e, bits);
    return bits;
  }

}
