/**
 * Writes a pack index, version 2 (gitformat-pack(5)): fan-out table, sorted
 * object names, CRC32 of each packed entry, 31-bit offsets with a table of
 * 64-bit offsets for entries beyond them, then the pack's and the index's
 * own checksum.
 */
import { createHash } from 'node:crypto';

/** The packed objects, one per position: names (20 bytes each), CRC32s of the stored entries, offsets. */
export interface IdxInput {
  count: number;
  oids: Uint8Array;
  crcs: Uint32Array;
  offsets: Float64Array;
}

export class DuplicateObjectError extends Error {
  override name = 'DuplicateObjectError';
  constructor(oid: string) {
    super(`the same object ${oid} appears twice in the pack`);
  }
}

/** Offsets above this go to the 64-bit table (git's default; tests lower it like `index-pack --index-version=2,N`). */
export const OFF32_LIMIT = 0x7fffffff;

function compareOids(oids: Uint8Array, a: number, b: number): number {
  for (let k = 0; k < 20; k++) {
    const d = oids[a * 20 + k]! - oids[b * 20 + k]!;
    if (d !== 0) return d;
  }
  return 0;
}

/**
 * Positions ordered by object name. A numeric sort of (first four bytes,
 * position) keys does nearly all the work without a comparator; runs that
 * share four bytes are then ordered by the whole name.
 */
export function sortByName(input: IdxInput): Uint32Array {
  const n = input.count;
  const oids = input.oids;
  if (n >= 2 ** 21) {
    return Uint32Array.from({ length: n }, (_, i) => i).sort((a, b) => compareOids(oids, a, b));
  }
  const keys = new Float64Array(n);
  for (let i = 0; i < n; i++) {
    const p = i * 20;
    const prefix = ((oids[p]! << 24) | (oids[p + 1]! << 16) | (oids[p + 2]! << 8) | oids[p + 3]!) >>> 0;
    keys[i] = prefix * 2097152 + i;
  }
  keys.sort();
  const order = new Uint32Array(n);
  for (let i = 0; i < n; i++) order[i] = keys[i]! % 2097152;
  for (let i = 0; i < n;) {
    let j = i + 1;
    while (j < n && Math.floor(keys[j]! / 2097152) === Math.floor(keys[i]! / 2097152)) j++;
    if (j - i > 1) order.subarray(i, j).sort((a, b) => compareOids(oids, a, b));
    i = j;
  }
  return order;
}

/** The index bytes for a pack whose trailer is `packChecksum`. */
export function buildIdx(input: IdxInput, packChecksum: Buffer, off32Limit = OFF32_LIMIT): Buffer {
  const n = input.count;
  const order = sortByName(input);
  let large = 0;
  for (let i = 0; i < n; i++) if (input.offsets[i]! > off32Limit) large++;
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
  for (let k = 0; k < n; k++) {
    const i = order[k]!;
    if (k > 0 && compareOids(input.oids, order[k - 1]!, i) === 0) {
      throw new DuplicateObjectError(Buffer.from(input.oids.subarray(i * 20, i * 20 + 20)).toString('hex'));
    }
    counts[input.oids[i * 20]!]!++;
    out.set(input.oids.subarray(i * 20, i * 20 + 20), names + k * 20);
    out.writeUInt32BE(input.crcs[i]! >>> 0, crcs + k * 4);
    const offset = input.offsets[i]!;
    if (offset > off32Limit) {
      out.writeUInt32BE((0x80000000 | li) >>> 0, offs + k * 4);
      out.writeBigUInt64BE(BigInt(offset), bigs + li * 8);
      li++;
    } else {
      out.writeUInt32BE(offset, offs + k * 4);
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
