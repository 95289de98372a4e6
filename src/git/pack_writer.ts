/**
 * Streams a packfile for a selection of objects, pack by pack in on-disk
 * order, so that stored entries can be copied as they are:
 *  - a pack sent whole goes out verbatim (only header and trailer are new);
 *  - otherwise each entry is copied, its OFS_DELTA distance rewritten when
 *    entries in between were left out; a delta whose base is not sent
 *    becomes a REF_DELTA when the client has the base (thin pack) or the
 *    base is sent from elsewhere, and is inflated and sent whole otherwise.
 * Every copied entry is checked against the CRC32 in the .idx first, so a
 * corrupt repository is never passed on. Memory: one read window (about a
 * megabyte) plus the delta base cache, whatever the size of the pack.
 */
import * as zlib from 'node:zlib';
import { OBJ_OFS_DELTA, OBJ_REF_DELTA, typeCode } from './object';
import { deflate } from './zlib_handle';
import { ObjectCorruptError, type ObjectStore } from './odb';
import { encodeEntryHeader, encodeOfsDelta, parseEntryHeader, type PackFile } from './pack';
import { F_HAVE, F_SEND, type ObjectSelection } from './object_walk';
import type { PackStream } from './sideband';
import type { Progress } from './progress';

const WINDOW = 1 << 20;
/** Unsent bytes worth reading through rather than issuing another read. */
const GAP = 16 << 10;

export interface PackWriteOptions {
  ofsDelta: boolean;
  thin: boolean;
  progress?: Progress | null;
}

export interface PackStats {
  total: number;
  deltas: number;
  reused: number;
  reusedDeltas: number;
  packReused: number;
  bytes: number;
}

export class PackWriter {
  private outPos = 0;
  readonly stats: PackStats = { total: 0, deltas: 0, reused: 0, reusedDeltas: 0, packReused: 0, bytes: 0 };
  // Shift (input offset minus output offset) at the entries where it changed, per pack.
  private shiftPos: number[] = [];
  private shiftVal: number[] = [];

  constructor(
    private readonly store: ObjectStore,
    private readonly sel: ObjectSelection,
    private readonly out: PackStream,
    private readonly opts: PackWriteOptions,
  ) {}

  private async emit(buf: Buffer): Promise<void> {
    this.outPos += buf.length;
    const w = this.out.write(buf);
    if (w) await w;
    if (this.outPos - this.lastYield >= WINDOW) {
      // Let write callbacks run (they recycle frames) even when the peer never pushes back.
      this.lastYield = this.outPos;
      await new Promise<void>((resolve) => setImmediate(resolve));
    }
  }

  private lastYield = 0;

  private counted(n: number): void {
    this.stats.total += n;
    this.opts.progress?.tick(n);
  }

  async write(): Promise<PackStats> {
    const head = Buffer.alloc(12);
    head.write('PACK', 0, 'latin1');
    head.writeUInt32BE(2, 4);
    head.writeUInt32BE(this.sel.count, 8);
    await this.emit(head);
    const order = [...this.store.packs, ...[...this.sel.packFlags.keys()].filter((p) => !this.store.packs.includes(p))];
    const wanted = new Map<PackFile, number>();
    for (const pack of order) {
      const flags = this.sel.packFlags.get(pack);
      if (!flags) continue;
      let n = 0;
      for (let i = 0; i < flags.length; i++) if (flags[i]! & F_SEND) n++;
      if (n > 0) wanted.set(pack, n);
    }
    const only = wanted.size === 1 ? [...wanted][0]! : null;
    if (only && only[1] === only[0].count && only[1] === this.sel.count && this.opts.ofsDelta && only[0].version === 2) {
      // The whole repository is one pack and all of it is wanted (a clone):
      // the answer is that pack, byte for byte.
      this.out.skipChecksum();
      await this.copyPackBody(only[0]);
      await this.out.finishPackWith(only[0].idx.packChecksum);
      this.stats.bytes = this.outPos + 20;
      return this.stats;
    }
    for (const [pack, n] of wanted) {
      if (n === pack.count && this.opts.ofsDelta) await this.copyWholePack(pack);
      else await this.copyEntries(pack, this.sel.packFlags.get(pack)!);
    }
    for (const [hex, f] of this.sel.looseFlags) {
      if (!(f & F_SEND)) continue;
      const obj = this.store.readLoose(hex) ?? this.store.read(hex);
      if (!obj) throw new ObjectCorruptError(`object ${hex} vanished`);
      await this.emit(Buffer.concat([encodeEntryHeader(typeCode(obj.type), obj.data.length), deflate(obj.data)]));
      this.counted(1);
    }
    if (this.stats.total !== this.sel.count) {
      throw new Error(`internal error: wrote ${this.stats.total} objects, announced ${this.sel.count}`);
    }
    await this.out.finishPack();
    this.stats.bytes = this.outPos + 20;
    return this.stats;
  }

  private static checkCrc(pack: PackFile, pos: number, data: Buffer, crc = 0): void {
    if ((zlib.crc32(data, crc) >>> 0) !== pack.crc32At(pos)) {
      throw new ObjectCorruptError(`${pack.name}: CRC mismatch in the entry at offset ${pack.offsetOf(pos)}; refusing to send a corrupt object`);
    }
  }

  /**
   * The body of a pack, as stored, in window-sized reads, under its stored
   * trailer (PackFile checked at open that the .idx names the same one).
   * Any damage to the stored bytes fails the client's checksum, so a
   * corrupt pack is never accepted.
   */
  private async copyPackBody(pack: PackFile): Promise<void> {
    const end = pack.size - 20;
    const buf = Buffer.allocUnsafeSlow(WINDOW); // reused: the stream copies what it is given
    for (let off = 12; off < end; off += WINDOW) {
      const n = Math.min(WINDOW, end - off);
      pack.preadInto(buf, 0, n, off);
      await this.emit(n === WINDOW ? buf : buf.subarray(0, n));
    }
    this.stats.packReused = pack.count;
    this.counted(pack.count);
  }

  /** A pack whose every object is wanted: its body goes out as stored. */
  private async copyWholePack(pack: PackFile): Promise<void> {
    const count = pack.count;
    let pos = 0;
    while (pos < count) {
      const start = pack.offsetOf(pos);
      if (pack.endOf(pos) - start > WINDOW) {
        const type = (pack.pread(start, 1)[0]! >> 4) & 7;
        if (type === OBJ_OFS_DELTA || type === OBJ_REF_DELTA) this.stats.deltas++;
        await this.streamEntry(pack, pos);
        this.stats.packReused++;
        pos++;
        continue;
      }
      let last = pos;
      while (last + 1 < count && pack.endOf(last + 1) - start <= WINDOW) last++;
      const buf = pack.pread(start, pack.endOf(last) - start);
      for (let p = pos; p <= last; p++) {
        const at = pack.offsetOf(p) - start;
        PackWriter.checkCrc(pack, p, buf.subarray(at, pack.endOf(p) - start));
        const type = (buf[at]! >> 4) & 7;
        if (type === OBJ_OFS_DELTA || type === OBJ_REF_DELTA) this.stats.deltas++;
      }
      await this.emit(buf);
      const k = last - pos + 1;
      this.stats.reused += k;
      this.stats.packReused += k;
      this.counted(k);
      pos = last + 1;
    }
    this.stats.reusedDeltas = this.stats.deltas;
  }

  /** Copies one large entry in window-sized pieces, checking its CRC as it goes. */
  private async streamEntry(pack: PackFile, pos: number, header?: Buffer, skip = 0): Promise<void> {
    const start = pack.offsetOf(pos);
    const end = pack.endOf(pos);
    let crc = 0;
    let off = start;
    if (header) await this.emit(header);
    while (off < end) {
      const n = Math.min(WINDOW, end - off);
      const piece = pack.pread(off, n);
      crc = zlib.crc32(piece, crc);
      const from = Math.max(0, start + skip - off);
      if (from < n) await this.emit(from === 0 ? piece : piece.subarray(from));
      off += n;
    }
    if ((crc >>> 0) !== pack.crc32At(pos)) {
      throw new ObjectCorruptError(`${pack.name}: CRC mismatch in the entry at offset ${start}; refusing to send a corrupt object`);
    }
    this.stats.reused++;
    this.counted(1);
  }

  private shiftAt(pos: number): number {
    // Last change point at or before pos.
    const ps = this.shiftPos;
    let lo = 0;
    let hi = ps.length - 1;
    let ans = 0;
    while (lo <= hi) {
      const mid = (lo + hi) >>> 1;
      if (ps[mid]! <= pos) {
        ans = this.shiftVal[mid]!;
        lo = mid + 1;
      } else hi = mid - 1;
    }
    return ans;
  }

  /** Flags of the object named at name[off], wherever it canonically lives. */
  private flagsByName(name: Buffer, off: number): number {
    const at = this.store.locate(name, off);
    if (at) return this.sel.packFlags.get(at.pack)?.[at.pos] ?? 0;
    return this.sel.looseFlags.get(name.toString('hex', off, off + 20)) ?? 0;
  }

  /** Some of a pack's objects: entry by entry, reading runs of nearby entries at once. */
  private async copyEntries(pack: PackFile, flags: Uint8Array): Promise<void> {
    this.shiftPos = [];
    this.shiftVal = [];
    let lastShift = Number.NaN;
    const count = pack.count;
    let pos = 0;
    while (pos < count) {
      if (!(flags[pos]! & F_SEND)) { pos++; continue; }
      // A window of wanted entries close to each other.
      const start = pack.offsetOf(pos);
      let last = pos;
      for (let q = pos + 1; q < count; q++) {
        if (pack.endOf(q) - start > WINDOW) break;
        if (!(flags[q]! & F_SEND)) continue;
        if (pack.offsetOf(q) - pack.endOf(last) > GAP) break;
        last = q;
      }
      const big = pack.endOf(pos) - start > WINDOW;
      const buf = big ? pack.pread(start, Math.min(64, pack.endOf(pos) - start)) : pack.pread(start, pack.endOf(last) - start);
      for (let p = pos; p <= last; p++) {
        if (!(flags[p]! & F_SEND)) continue;
        const off = pack.offsetOf(p);
        const shift = off - this.outPos;
        if (shift !== lastShift) {
          this.shiftPos.push(p);
          this.shiftVal.push(shift);
          lastShift = shift;
        }
        await this.copyEntry(pack, p, buf, start, big, shift);
      }
      pos = last + 1;
    }
  }

  private async copyEntry(pack: PackFile, p: number, buf: Buffer, bufStart: number, big: boolean, shift: number): Promise<void> {
    const off = pack.offsetOf(p);
    const end = pack.endOf(p);
    const at = off - bufStart;
    const h = parseEntryHeader(buf, at, off);
    const entry = big ? null : buf.subarray(at, end - bufStart);
    let newHeader: Buffer | null = null; // null: copy the entry as stored
    let isDelta = false;
    if (h.type === OBJ_OFS_DELTA) {
      isDelta = true;
      const bpos = pack.positionAt(h.baseOffset);
      if (bpos < 0) throw new ObjectCorruptError(`${pack.name}: OFS_DELTA at ${off} has no base entry`);
      const baseFlags = this.sel.packFlags.get(pack)![bpos]!;
      if (baseFlags & F_SEND && this.opts.ofsDelta) {
        const baseShift = this.shiftAt(bpos);
        if (baseShift !== shift) {
          const rel = off - shift - (h.baseOffset - baseShift);
          newHeader = Buffer.concat([encodeEntryHeader(OBJ_OFS_DELTA, h.size), encodeOfsDelta(rel)]);
        }
      } else {
        const baseName = pack.oidBytesAt(bpos);
        const f = baseFlags & F_SEND ? F_SEND : this.flagsByName(baseName, 0);
        if (f & F_SEND || (this.opts.thin && f & F_HAVE)) {
          newHeader = Buffer.concat([encodeEntryHeader(OBJ_REF_DELTA, h.size), baseName]);
        } else {
          return this.sendWhole(pack, p, entry);
        }
      }
    } else if (h.type === OBJ_REF_DELTA) {
      isDelta = true;
      const f = this.flagsByName(buf, h.baseNameAt);
      if (!(f & F_SEND || (this.opts.thin && f & F_HAVE))) return this.sendWhole(pack, p, entry);
    }
    if (isDelta) {
      this.stats.deltas++;
      this.stats.reusedDeltas++;
    }
    if (big) {
      await this.streamEntry(pack, p, newHeader ?? undefined, newHeader ? h.headerLength : 0);
      return;
    }
    PackWriter.checkCrc(pack, p, entry!);
    if (newHeader) {
      await this.emit(newHeader);
      await this.emit(entry!.subarray(h.headerLength));
    } else {
      await this.emit(entry!);
    }
    this.stats.reused++;
    this.counted(1);
  }

  /** A delta whose base the client will not have: inflate it through the chain and send it whole. */
  private async sendWhole(pack: PackFile, p: number, entry: Buffer | null): Promise<void> {
    if (entry) PackWriter.checkCrc(pack, p, entry);
    const obj = this.store.readPacked(pack, p);
    await this.emit(encodeEntryHeader(obj.code, obj.data.length));
    await this.emit(deflate(obj.data));
    this.counted(1);
  }
}
