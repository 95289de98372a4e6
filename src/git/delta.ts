/**
 * Git's delta format (gitformat-pack(5), "Deltified representation"):
 * source size, target size, then copy and insert instructions.
 */

export class DeltaError extends Error {
  override name = 'DeltaError';
}

/** Reads the little-endian base-128 size at `pos`; returns [value, nextPos]. */
export function deltaHeaderSize(delta: Buffer, pos: number): [number, number] {
  let size = 0;
  let shift = 0;
  let c: number;
  do {
    if (pos >= delta.length) throw new DeltaError('delta header truncated');
    c = delta[pos++]!;
    size += (c & 0x7f) * 2 ** shift;
    shift += 7;
    if (shift > 49) throw new DeltaError('delta header size too large');
  } while (c & 0x80);
  return [size, pos];
}

/**
 * Applies a delta to its base. The instructions are checked in a first
 * pass, before anything is allocated: the target size in the header is
 * the client's word, and a delta of a few bytes may claim gigabytes.
 */
export function applyDelta(base: Buffer, delta: Buffer): Buffer {
  let [srcSize, p] = deltaHeaderSize(delta, 0);
  if (srcSize !== base.length) throw new DeltaError(`delta base size mismatch (${srcSize} != ${base.length})`);
  let dstSize: number;
  [dstSize, p] = deltaHeaderSize(delta, p);
  const start = p;
  const o = walk(base, delta, start, dstSize, null);
  if (o !== dstSize) throw new DeltaError(`delta produced ${o} bytes, expected ${dstSize}`);
  const out = Buffer.allocUnsafe(dstSize);
  walk(base, delta, start, dstSize, out);
  return out;
}

/** Runs the instructions from `p`: checks them (and copies into out, when given); returns the bytes produced. */
function walk(base: Buffer, delta: Buffer, p: number, dstSize: number, out: Buffer | null): number {
  let o = 0;
  const n = delta.length;
  while (p < n) {
    const op = delta[p++]!;
    if (op & 0x80) {
      let off = 0;
      let size = 0;
      if (op & 0x01) off = delta[p++]!;
      if (op & 0x02) off |= delta[p++]! << 8;
      if (op & 0x04) off |= delta[p++]! << 16;
      if (op & 0x08) off += delta[p++]! * 0x1000000;
      if (op & 0x10) size = delta[p++]!;
      if (op & 0x20) size |= delta[p++]! << 8;
      if (op & 0x40) size |= delta[p++]! << 16;
      if (size === 0) size = 0x10000;
      if (p > n || off + size > base.length || o + size > dstSize) throw new DeltaError('delta copy out of bounds');
      if (out) base.copy(out, o, off, off + size);
      o += size;
    } else if (op !== 0) {
      if (p + op > n || o + op > dstSize) throw new DeltaError('delta insert out of bounds');
      if (out) delta.copy(out, o, p, p + op);
      o += op;
      p += op;
    } else {
      throw new DeltaError('delta opcode 0 is reserved');
    }
  }
  return o;
}
