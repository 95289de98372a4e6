/**
 * Seeded mutation of valid inputs for the fuzzer: a small PRNG, generic byte
 * mutations (bit flips, inserts, deletes, truncation, splicing, repeated
 * chunks, numbers pushed to extremes) and structure-aware ones for
 * pkt-line streams and packfiles, so that mutations also reach the code
 * behind the framing and the checksums.
 */
import { createHash } from 'node:crypto';

/** mulberry32: small, fast and good enough to pick mutations. */
export class Rng {
  private s: number;
  constructor(seed: number) {
    this.s = seed >>> 0;
  }

  /** Input k of a run seeded with `seed` gets its own stream, so it can be regenerated alone. */
  static forInput(seed: number, k: number): Rng {
    const h = createHash('sha1').update(`${seed}/${k}`).digest();
    return new Rng(h.readUInt32BE(0));
  }

  next(): number {
    let t = (this.s = (this.s + 0x6d2b79f5) >>> 0);
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  }

  /** Integer in [0, n). */
  int(n: number): number {
    return Math.floor(this.next() * n);
  }

  /** Integer in [a, b]. */
  range(a: number, b: number): number {
    return a + this.int(b - a + 1);
  }

  chance(p: number): boolean {
    return this.next() < p;
  }

  pick<T>(xs: readonly T[]): T {
    return xs[this.int(xs.length)]!;
  }

  bytes(n: number): Buffer {
    const b = Buffer.allocUnsafe(n);
    for (let i = 0; i < n; i++) b[i] = this.int(256);
    return b;
  }

  /** Small lengths most of the time, sometimes large ones. */
  len(max: number): number {
    const r = this.next();
    if (r < 0.6) return this.range(1, Math.min(8, max));
    if (r < 0.9) return this.range(1, Math.min(128, max));
    return this.range(1, Math.max(1, max));
  }
}

/** Inputs never grow beyond this (repeat and insert stop there). */
export const MAX_INPUT = 1 << 20;

const INTERESTING_BYTES = [0x00, 0x01, 0x7f, 0x80, 0xff, 0x0a, 0x0d, 0x20, 0x30, 0x39, 0x66, 0x3d, 0x3a, 0x2c];

/** Decimal numbers that break arithmetic: zero, signs, 2^31, 2^32, 2^53 and beyond, floats. */
export const EXTREME_NUMBERS = [
  '0', '-1', '1', '-0', '2147483647', '2147483648', '4294967295', '4294967296', '-2147483649',
  '9007199254740991', '9007199254740993', '18446744073709551616', '99999999999999999999999',
  '1e308', '1e309', '-1e309', '0.5', 'NaN', 'Infinity', '0x7fffffff', '00000000000000000001',
];

const EXTREME_U32 = [0, 1, 0x7f, 0x80, 0xff, 0x7fff, 0x8000, 0xffff, 0x7fffffff, 0x80000000, 0xfffffffe, 0xffffffff];

/** Concatenation that stops at MAX_INPUT (without first allocating the whole). */
function cat(...parts: Buffer[]): Buffer {
  let total = 0;
  let k = 0;
  while (k < parts.length && total < MAX_INPUT) total += parts[k++]!.length;
  const out = Buffer.concat(parts.slice(0, k));
  return out.length > MAX_INPUT ? Buffer.from(out.subarray(0, MAX_INPUT)) : out;
}

/** One generic mutation of buf (never in place). `others` are the other seeds, for splicing. */
export function mutateOnce(rng: Rng, buf: Buffer, others: readonly Buffer[]): Buffer {
  const n = buf.length;
  const at = () => rng.int(n + 1);
  switch (rng.int(12)) {
    case 0: { // flip a few bits
      if (n === 0) return rng.bytes(rng.len(16));
      const out = Buffer.from(buf);
      for (let k = rng.range(1, 4); k > 0; k--) out[rng.int(n)]! ^= 1 << rng.int(8);
      return out;
    }
    case 1: { // an interesting byte
      if (n === 0) return Buffer.from([rng.pick(INTERESTING_BYTES)]);
      const out = Buffer.from(buf);
      out[rng.int(n)] = rng.pick(INTERESTING_BYTES);
      return out;
    }
    case 2: { // insert random bytes
      const p = at();
      return cat(buf.subarray(0, p), rng.bytes(rng.len(64)), buf.subarray(p));
    }
    case 3: { // insert a copy of a chunk of the input
      if (n === 0) return buf;
      const s = rng.int(n);
      const l = rng.len(n - s);
      const p = at();
      return cat(buf.subarray(0, p), buf.subarray(s, s + l), buf.subarray(p));
    }
    case 4: { // delete a range
      if (n === 0) return buf;
      const s = rng.int(n);
      const l = rng.len(n - s);
      return Buffer.concat([buf.subarray(0, s), buf.subarray(s + l)]);
    }
    case 5: // truncate
      return buf.subarray(0, rng.int(n + 1));
    case 6: { // splice with another seed
      const o = others.length ? rng.pick(others) : buf;
      return cat(buf.subarray(0, at()), o.subarray(rng.int(o.length + 1)));
    }
    case 7: { // repeat a chunk
      if (n === 0) return buf;
      const s = rng.int(n);
      const l = rng.len(Math.min(n - s, 4096));
      const times = rng.chance(0.8) ? rng.range(2, 16) : rng.range(100, 5000);
      const chunk = buf.subarray(s, s + l);
      const reps: Buffer[] = [];
      for (let k = 0; k < times && k * l < MAX_INPUT; k++) reps.push(chunk);
      return cat(buf.subarray(0, s), ...reps, buf.subarray(s + l));
    }
    case 8: // a decimal number pushed to an extreme
      return extremeDecimal(rng, buf);
    case 9: { // a binary 32-bit field pushed to an extreme
      if (n < 4) return mutateOnce(rng, buf, others);
      const out = Buffer.from(buf);
      const p = rng.int(n - 3);
      const v = rng.chance(0.7) ? rng.pick(EXTREME_U32) : (out.readUInt32BE(p) + rng.range(-2, 2)) >>> 0;
      out.writeUInt32BE(v, p);
      return out;
    }
    case 10: { // swap two chunks
      if (n < 4) return buf;
      const a = rng.int(n - 1);
      const b = rng.range(a + 1, n - 1);
      const la = rng.len(b - a);
      const lb = rng.len(n - b);
      return Buffer.concat([buf.subarray(0, a), buf.subarray(b, b + lb), buf.subarray(a + la, b), buf.subarray(a, a + la), buf.subarray(b + lb)]);
    }
    default: { // overwrite a range with random bytes
      if (n === 0) return buf;
      const out = Buffer.from(buf);
      const s = rng.int(n);
      rng.bytes(rng.len(n - s)).copy(out, s);
      return out;
    }
  }
}

/** Replaces one run of decimal digits (if any) with an extreme number. */
export function extremeDecimal(rng: Rng, buf: Buffer): Buffer {
  // Scans bytes, not a string: a megabyte of latin1 text would be an external string the GC frees late.
  const runs: [number, number][] = [];
  for (let i = 0; i < buf.length && runs.length < 4096; i++) {
    if (buf[i]! < 0x30 || buf[i]! > 0x39) continue;
    let j = i;
    while (j < buf.length && buf[j]! >= 0x30 && buf[j]! <= 0x39) j++;
    runs.push([i, j]);
    i = j;
  }
  const value = Buffer.from(rng.pick(EXTREME_NUMBERS), 'latin1');
  if (runs.length === 0) {
    const p = rng.int(buf.length + 1);
    return Buffer.concat([buf.subarray(0, p), value, buf.subarray(p)]);
  }
  const [s, e] = rng.pick(runs);
  return Buffer.concat([buf.subarray(0, s), value, buf.subarray(e)]);
}

/** 1..4 stacked generic mutations. */
export function mutate(rng: Rng, buf: Buffer, others: readonly Buffer[]): Buffer {
  let out = buf;
  for (let k = rng.chance(0.5) ? 1 : rng.range(2, 4); k > 0; k--) out = mutateOnce(rng, out, others);
  return out;
}

// ------------------------------------------------------------- text lines

/** Line-level mutations of a text file (config files): drop, duplicate, swap, extremes, bytes. */
export function mutateLines(rng: Rng, buf: Buffer, others: readonly Buffer[], dictionary: readonly string[]): Buffer {
  const lines = buf.toString('latin1').split('\n');
  const i = rng.int(lines.length);
  switch (rng.int(7)) {
    case 0: lines.splice(i, 1); break;
    case 1: lines.splice(i, 0, ...Array<string>(rng.chance(0.9) ? rng.range(1, 3) : rng.range(50, 500)).fill(lines[i]!)); break;
    case 2: { const j = rng.int(lines.length); [lines[i], lines[j]] = [lines[j]!, lines[i]!]; break; }
    case 3: lines[i] = extremeDecimal(rng, Buffer.from(lines[i]!, 'latin1')).toString('latin1'); break;
    case 4: lines.splice(i, 0, rng.pick(dictionary)); break;
    case 5: { // swap the value of one key for another line's value
      const m = /=(.*)$/.exec(lines[i]!);
      const o = rng.pick(lines);
      const v = /=(.*)$/.exec(o);
      if (m && v) lines[i] = lines[i]!.slice(0, m.index + 1) + v[1];
      break;
    }
    default: lines[i] = mutateOnce(rng, Buffer.from(lines[i]!, 'latin1'), others).toString('latin1');
  }
  return Buffer.from(lines.join('\n'), 'latin1');
}

// ------------------------------------------------------------- pkt-lines

export type Packet = { kind: 'data'; data: Buffer } | { kind: 'special'; head: string } | { kind: 'raw'; data: Buffer };

/** Splits a well-formed pkt-line stream; whatever cannot be framed (a packfile after the lines) becomes one raw tail. */
export function splitPkts(buf: Buffer): Packet[] {
  const out: Packet[] = [];
  let p = 0;
  while (p < buf.length) {
    const head = buf.toString('latin1', p, p + 4);
    if (!/^[0-9a-f]{4}$/.test(head)) break;
    const len = parseInt(head, 16);
    if (len < 4) {
      out.push({ kind: 'special', head });
      p += 4;
      continue;
    }
    if (p + len > buf.length) break;
    out.push({ kind: 'data', data: buf.subarray(p + 4, p + len) });
    p += len;
  }
  if (p < buf.length) out.push({ kind: 'raw', data: buf.subarray(p) });
  return out;
}

export function joinPkts(pkts: readonly Packet[]): Buffer {
  const parts: Buffer[] = [];
  for (const k of pkts) {
    if (k.kind === 'special') parts.push(Buffer.from(k.head, 'latin1'));
    else if (k.kind === 'raw') parts.push(k.data);
    else parts.push(Buffer.from((k.data.length + 4).toString(16).padStart(4, '0'), 'latin1'), k.data);
  }
  return cat(...parts);
}

const BAD_LENGTHS = ['0003', '0004', '0005', 'fff0', 'fff1', 'ffff', 'zzzz', '00 4', '-001', 'FFF0', '0x10', '    '];

/** Text-level mutation of one line: a token swapped for a dictionary entry, an extreme number, a byte op. */
function mutateLine(rng: Rng, data: Buffer, others: readonly Buffer[], dictionary: readonly string[]): Buffer {
  const text = data.toString('latin1');
  switch (rng.int(5)) {
    case 0: { // replace an object id
      const m = [...text.matchAll(/[0-9a-f]{40}/g)];
      const oid = rng.pick(dictionary.filter((d) => /^[0-9a-f]{40}$/.test(d)).concat(['0'.repeat(40), 'f'.repeat(40), rng.bytes(20).toString('hex')]));
      if (m.length === 0) return Buffer.from(text + ' ' + oid, 'latin1');
      const x = rng.pick(m);
      return Buffer.from(text.slice(0, x.index) + (rng.chance(0.2) ? oid.slice(0, rng.int(40)) : oid) + text.slice(x.index! + 40), 'latin1');
    }
    case 1: return extremeDecimal(rng, data);
    case 2: { // drop, duplicate or add a word (capabilities, arguments)
      const words = text.split(/( |\0)/);
      const i = rng.int(words.length);
      if (rng.chance(0.4)) words.splice(i, 1);
      else if (rng.chance(0.5)) words.splice(i, 0, words[i] ?? '');
      else words.splice(i, 0, ' ', rng.pick(dictionary));
      return Buffer.from(words.join(''), 'latin1');
    }
    case 3: return Buffer.from(rng.pick(dictionary) + (rng.chance(0.7) ? '\n' : ''), 'latin1');
    default: return mutateOnce(rng, data, others);
  }
}

/**
 * A structure-aware mutation of a pkt-line stream: one packet's payload
 * changed and re-framed, packets dropped, repeated, swapped or replaced by
 * flush/delim, a dictionary line inserted, a length field broken. The raw
 * tail (a packfile) is left to the caller, or mutated bytewise here.
 */
export function mutatePkts(rng: Rng, buf: Buffer, others: readonly Buffer[], dictionary: readonly string[]): Buffer {
  const pkts = splitPkts(buf);
  if (pkts.length === 0) return mutate(rng, buf, others);
  const i = rng.int(pkts.length);
  const target = pkts[i]!;
  switch (rng.int(9)) {
    case 0: case 1: case 2:
      if (target.kind === 'data') pkts[i] = { kind: 'data', data: mutateLine(rng, target.data, others, dictionary) };
      else if (target.kind === 'raw') pkts[i] = { kind: 'raw', data: mutate(rng, target.data, others) };
      else pkts[i] = { kind: 'special', head: rng.pick(['0000', '0001', '0002']) };
      break;
    case 3: pkts.splice(i, 1); break;
    case 4: {
      const times = rng.chance(0.9) ? rng.range(1, 4) : rng.range(100, 3000);
      pkts.splice(i, 0, ...Array<Packet>(times).fill(target));
      break;
    }
    case 5: { const j = rng.int(pkts.length); [pkts[i], pkts[j]] = [pkts[j]!, target]; break; }
    case 6: pkts.splice(i, rng.chance(0.5) ? 1 : 0, { kind: 'special', head: rng.pick(['0000', '0001', '0002']) }); break;
    case 7: pkts.splice(i, 0, { kind: 'data', data: Buffer.from(rng.pick(dictionary) + (rng.chance(0.8) ? '\n' : ''), 'latin1') }); break;
    default: { // a broken length field
      const joined = joinPkts(pkts.slice(0, i));
      const rest = joinPkts(pkts.slice(i));
      if (rest.length < 4) return mutate(rng, buf, others);
      const head = rng.chance(0.5) ? rng.pick(BAD_LENGTHS)
        : Math.max(0, Math.min(0xffff, parseInt(rest.toString('latin1', 0, 4), 16) + rng.range(-3, 3))).toString(16).padStart(4, '0');
      return Buffer.concat([joined, Buffer.from(head.slice(0, 4), 'latin1'), rest.subarray(4)]);
    }
  }
  return joinPkts(pkts);
}

// ------------------------------------------------------------- packfiles

/** Where each entry of a seed pack starts and its data (the zlib stream) begins. */
export interface PackLayout { entries: { offset: number; dataAt: number; end: number }[] }

/** Encodes a type/size entry header (gitformat-pack(5)). */
export function entryHeader(type: number, size: number): Buffer {
  const bytes: number[] = [];
  let c = (type << 4) | (size % 16);
  let rest = Math.floor(size / 16);
  while (rest > 0) {
    bytes.push(c | 0x80);
    c = rest % 128;
    rest = Math.floor(rest / 128);
  }
  bytes.push(c);
  return Buffer.from(bytes);
}

/** Recomputes the SHA-1 trailer over everything before it. */
export function fixTrailer(pack: Buffer): Buffer {
  if (pack.length < 20) return pack;
  const body = pack.subarray(0, pack.length - 20);
  return Buffer.concat([body, createHash('sha1').update(body).digest()]);
}

const EXTREME_SIZES = [0, 1, 15, 16, 127, 128, 0xffff, 0x10000, 1 << 26, 2 ** 31, 2 ** 32, 2 ** 32 + 1, 2 ** 40, 2 ** 53 - 1, 2 ** 53 + 1, 2 ** 60];

/**
 * A mutation of a packfile aware of its entries: an entry's declared size
 * or type changed, its zlib data swapped for another entry's, an entry
 * dropped or repeated, an OFS_DELTA offset bent, the object count changed;
 * or a byte-level mutation. Most of the time the trailer is then fixed,
 * so the mutation reaches delta resolution and the object checks.
 */
export function mutatePack(rng: Rng, pack: Buffer, layout: PackLayout | null, others: readonly Buffer[]): Buffer {
  let out: Buffer;
  const ents = layout?.entries ?? [];
  const op = rng.int(8);
  if (ents.length > 0 && op < 5) {
    const e = rng.pick(ents);
    const head = pack.subarray(e.offset, e.dataAt);
    const type = (head[0]! >> 4) & 7;
    let sizeLen = 1;
    while (head[sizeLen - 1]! & 0x80) sizeLen++;
    const extra = head.subarray(sizeLen); // OFS offset or REF name
    const data = pack.subarray(e.dataAt, e.end);
    const before = pack.subarray(0, e.offset);
    const after = pack.subarray(e.end, pack.length - 20);
    const trailer = pack.subarray(pack.length - 20);
    const sizeOf = (): number => {
      let s = head[0]! & 15;
      for (let k = 1, sh = 4; k < sizeLen; k++, sh += 7) s += (head[k]! & 0x7f) * 2 ** sh;
      return s;
    };
    let entry: Buffer;
    switch (op) {
      case 0: { // declared size
        const size = rng.chance(0.5) ? rng.pick(EXTREME_SIZES) : Math.max(0, sizeOf() + rng.range(-3, 3));
        entry = Buffer.concat([entryHeader(type, size), extra, data]);
        break;
      }
      case 1: // type
        entry = Buffer.concat([entryHeader(rng.int(8), sizeOf()), rng.chance(0.5) ? extra : rng.bytes(rng.pick([0, 1, 2, 20])), data]);
        break;
      case 2: { // another entry's data, or zlib garbage
        const o = rng.pick(ents);
        entry = Buffer.concat([head, rng.chance(0.7) ? pack.subarray(o.dataAt, o.end) : mutate(rng, data, others)]);
        break;
      }
      case 3: { // OFS_DELTA offset / REF_DELTA name
        let x: Buffer;
        if (type === 6) {
          const rel = rng.chance(0.5) ? rng.pick([0, 1, e.offset - 12, e.offset - 11, e.offset, 2 ** 31, 2 ** 45, 2 ** 53])
            : e.offset - rng.pick(ents).offset;
          x = ofsOffset(Math.max(0, rel));
        } else if (type === 7) {
          x = rng.chance(0.5) ? rng.bytes(20) : pack.subarray(rng.pick(ents).offset, rng.pick(ents).offset + 20);
          if (x.length < 20) x = Buffer.concat([x, Buffer.alloc(20 - x.length)]);
        } else {
          x = extra;
        }
        entry = Buffer.concat([head.subarray(0, sizeLen), x, data]);
        break;
      }
      default: { // drop or repeat the entry (count left as is half of the time)
        entry = rng.chance(0.5) ? Buffer.alloc(0) : Buffer.concat(Array<Buffer>(rng.range(2, 5)).fill(pack.subarray(e.offset, e.end)));
      }
    }
    out = Buffer.concat([before, entry, after, trailer]);
    if (rng.chance(0.5) && out.length >= 12) {
      const delta = Math.round((entry.length - (e.end - e.offset)) / Math.max(1, e.end - e.offset));
      out.writeUInt32BE(Math.max(0, out.readUInt32BE(8) + delta) >>> 0, 8);
    }
  } else if (op === 5 && pack.length >= 12) {
    out = Buffer.from(pack);
    out.writeUInt32BE(rng.chance(0.5) ? rng.pick(EXTREME_U32) : (out.readUInt32BE(8) + rng.range(-2, 2)) >>> 0, 8);
  } else {
    out = mutate(rng, pack, others);
  }
  return rng.chance(0.8) ? fixTrailer(out) : out;
}

/** The OFS_DELTA "offset encoding". */
export function ofsOffset(rel: number): Buffer {
  const bytes = [rel % 128];
  let n = Math.floor(rel / 128);
  while (n > 0) {
    n -= 1;
    bytes.unshift(0x80 | (n % 128));
    n = Math.floor(n / 128);
  }
  return Buffer.from(bytes);
}
