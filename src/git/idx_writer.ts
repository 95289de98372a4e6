/**
 * Writes a pack index, version 2 (gitformat-pack(5)): fan-out table, sorted
 * object names, CRC32 of each packed entry, 31-bit offsets with a table of
 * 64-bit offsets for entries beyond them, then the pack's and the index's
 * own checksum.
 */
import { createHash } from 'node:crypto';

export interface IdxEntry {
  /** 20-byte object name. */
  oid: Buffer;
  /** CRC32 of the entry's bytes as stored in the pack (header and data). */
  crc: number;
  offset: number;
}

export class DuplicateObjectError extends Error {
  override name = 'DuplicateObjectError';
  constructor(oid: string) {
    super(`the same object ${oid} appears twice in the pack`);
  }
}

/** Offsets above this go to the 64-bit table (git's default; tests lower it like `index-pack --index-version=2,N`). */
export const OFF32_LIMIT = 0x7fffffff;

/** The index bytes for `entries` (sorted here by name) of a pack whose trailer is `packChecksum`. */
export function buildIdx(entries: IdxEntry[], packChecksum: Buffer, off32Limit = OFF32_LIMIT): Buffer {
  const sorted = entries.slice().sort((a, b) => a.oid.compare(b.oid));
  const n = sorted.length;
  let large = 0;
  for (const e of sorted) if (e.offset > off32Limit) large++;
  const size = 8 + 256 * 4 + n * (20 + 4 + 4) + large * 8 + 40;
  const out = Buffer.alloc(size);
  out.writeUInt32BE(0xff744f63, 0);
  out.writeUInt32BE(2, 4);
  const fanout = 8;
  const names = fanout + 256 * 4;
  const crcs = names + n * 20;
  const offs = crcs + n * 4;
  const bigs = offs + n * 4;
  const counts = new Uint32Array(256);
  let li = 0;
  for (let i = 0; i < n; i++) {
    const e = sorted[i]!;
    if (i > 0 && e.oid.equals(sorted[i - 1]!.oid)) throw new DuplicateObjectError(e.oid.toString('hex'));
    counts[e.oid[0]!]!++;
    e.oid.copy(out, names + i * 20);
    out.writeUInt32BE(e.crc >>> 0, crcs + i * 4);
    if (e.offset > off32Limit) {
      out.writeUInt32BE((0x80000000 | li) >>> 0, offs + i * 4);
      out.writeBigUInt64BE(BigInt(e.offset), bigs + li * 8);
      li++;
    } else {
      out.writeUInt32BE(e.offset, offs + i * 4);
    }
  }
  let total = 0;
  for (let b = 0; b < 256; b++) {
    total += counts[b]!;
    out.writeUInt32BE(total, fanout + b * 4);
  }
  const tail = bigs + large * 8;
  packChecksum.copy(out, tail);
  createHash('sha1').update(out.subarray(0, tail + 20)).digest().copy(out, tail + 20);
  return out;
}
