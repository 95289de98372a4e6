/**
 * The multi-pack-index (gitformat-pack(5), "multi-pack-index (MIDX) files"):
 * one sorted list of object names over several packs, each name mapped to
 * (pack, offset). It lets a lookup search one table instead of every .idx.
 */
import * as fs from 'node:fs';

export class MidxError extends Error {
  override name = 'MidxError';
}

const CHUNK_PNAM = 0x504e414d;
const CHUNK_OIDF = 0x4f494446;
const CHUNK_OIDL = 0x4f49444c;
const CHUNK_OOFF = 0x4f4f4646;
const CHUNK_LOFF = 0x4c4f4646;

export class MultiPackIndex {
  /** Pack file names as listed (e.g. "pack-1234.idx"), by pack-int-id. */
  readonly packNames: string[];
  readonly count: number;
  private readonly fanout: Uint32Array;
  private readonly prefix: Uint32Array;
  private readonly oidl: number;
  private readonly ooff: number;
  private readonly loff: number;
  private readonly loffCount: number;

  constructor(readonly buf: Buffer, readonly path = '(memory)') {
    if (buf.length < 12 + 20 || buf.toString('latin1', 0, 4) !== 'MIDX') throw new MidxError(`${path}: not a multi-pack-index`);
    if (buf[4] !== 1) throw new MidxError(`${path}: unsupported multi-pack-index version ${buf[4]}`);
    if (buf[5] !== 1) throw new MidxError(`${path}: unsupported object id version ${buf[5]}`);
    const chunks = buf[6]!;
    if (buf[7] !== 0) throw new MidxError(`${path}: incremental multi-pack-index chains are not supported`);
    const packs = buf.readUInt32BE(8);
    const table = new Map<number, [number, number]>();
    const tableEnd = 12 + 12 * (chunks + 1);
    if (tableEnd > buf.length) throw new MidxError(`${path}: chunk table truncated`);
    for (let i = 0; i < chunks; i++) {
      const at = 12 + 12 * i;
      const id = buf.readUInt32BE(at);
      const start = Number(buf.readBigUInt64BE(at + 4));
      const end = Number(buf.readBigUInt64BE(at + 16));
      if (start < tableEnd || end < start || end > buf.length - 20) throw new MidxError(`${path}: chunk out of bounds`);
      table.set(id, [start, end]);
    }
    const need = (id: number, name: string): [number, number] => {
      const c = table.get(id);
      if (!c) throw new MidxError(`${path}: missing ${name} chunk`);
      return c;
    };
    const [pnS, pnE] = need(CHUNK_PNAM, 'PNAM');
    this.packNames = buf.toString('latin1', pnS, pnE).split('\0').filter((s) => s.length > 0);
    if (this.packNames.length !== packs) throw new MidxError(`${path}: pack name count mismatch`);
    const [fS, fE] = need(CHUNK_OIDF, 'OIDF');
    if (fE - fS !== 1024) throw new MidxError(`${path}: bad fan-out chunk`);
    this.fanout = new Uint32Array(256);
    let prev = 0;
    for (let i = 0; i < 256; i++) {
      const v = buf.readUInt32BE(fS + 4 * i);
      if (v < prev) throw new MidxError(`${path}: fan-out not monotonic`);
      this.fanout[i] = prev = v;
    }
    const n = this.count = prev;
    const [lS, lE] = need(CHUNK_OIDL, 'OIDL');
    if (lE - lS !== 20 * n) throw new MidxError(`${path}: bad OIDL chunk size`);
    const [oS, oE] = need(CHUNK_OOFF, 'OOFF');
    if (oE - oS !== 8 * n) throw new MidxError(`${path}: bad OOFF chunk size`);
    const lo = table.get(CHUNK_LOFF);
    this.oidl = lS;
    this.ooff = oS;
    this.loff = lo ? lo[0] : 0;
    this.loffCount = lo ? (lo[1] - lo[0]) / 8 : 0;
    this.prefix = new Uint32Array(n);
    for (let i = 0; i < n; i++) this.prefix[i] = buf.readUInt32BE(lS + 20 * i);
  }

  static load(path: string): MultiPackIndex {
    return new MultiPackIndex(fs.readFileSync(path), path);
  }

  find(name: Buffer, off = 0): number {
    const b0 = name[off]!;
    let lo = b0 === 0 ? 0 : this.fanout[b0 - 1]!;
    let hi = this.fanout[b0]!;
    const p = name.readUInt32BE(off);
    while (lo < hi) {
      const mid = (lo + hi) >>> 1;
      if (this.prefix[mid]! < p) lo = mid + 1;
      else hi = mid;
    }
    for (let i = lo; i < this.count && this.prefix[i] === p; i++) {
      const s = this.oidl + 20 * i + 4;
      if (this.buf.compare(name, off + 4, off + 20, s, s + 16) === 0) return i;
    }
    return -1;
  }

  oid(i: number): string {
    return this.buf.toString('hex', this.oidl + 20 * i, this.oidl + 20 * i + 20);
  }

  packOf(i: number): number {
    const id = this.buf.readUInt32BE(this.ooff + 8 * i);
    if (id >= this.packNames.length) throw new MidxError(`${this.path}: pack-int-id out of range`);
    return id;
  }

  offsetOf(i: number): number {
    const v = this.buf.readUInt32BE(this.ooff + 8 * i + 4);
    if (v < 0x80000000) return v;
    const k = v & 0x7fffffff;
    if (k >= this.loffCount) throw new MidxError(`${this.path}: large offset out of range`);
    return Number(this.buf.readBigUInt64BE(this.loff + 8 * k));
  }
}
