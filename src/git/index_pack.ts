/**
 * Our own `git index-pack --stdin --fix-thin --strict`: reads a packfile
 * from the client into a file in the quarantine, inflates and hashes every
 * object, resolves every delta, completes a thin pack with bases from the
 * repository, and writes the .idx. Memory stays bounded: the pack is never
 * held whole (whole objects stream through zlib and SHA-1), entries are kept
 * in typed arrays, and delta resolution keeps at most a budget of bases in
 * memory, re-reading from the pack file what it had to drop.
 *
 * Pass 1 (streaming): each entry's raw bytes go to the file as they arrive,
 * with its CRC32; whole objects are hashed, deltas only checked to inflate
 * to their declared size. Pass 2: starting from every whole object that is a
 * base, a depth-first walk applies the deltas that depend on it (OFS_DELTA by
 * offset, REF_DELTA by name), hashing each result. Unresolved REF_DELTAs
 * then get their bases from the repository, appended to the pack as git's
 * --fix-thin does.
 */
import { createHash } from 'node:crypto';
import * as fs from 'node:fs';
import * as path from 'node:path';
import * as zlib from 'node:zlib';
import type { ByteReader } from './byte_reader';
import { applyDelta, deltaHeaderSize } from './delta';
import { writeNewFile } from './durable';
import { buildIdx, OFF32_LIMIT } from './idx_writer';
import { deflate, inflateExactly, inflatePrefix } from './zlib_handle';
import { OBJ_BLOB, OBJ_OFS_DELTA, OBJ_REF_DELTA, typeCode, typeName, type ObjectType } from './object';
import { encodeEntryHeader, parseEntryHeader } from './pack';

/** A bad pack; the message is what the client sees after "unpack ". */
export class PackIndexError extends Error {
  override name = 'PackIndexError';
}

export interface ObjectSource {
  read(oid: string): { type: ObjectType; data: Buffer } | null;
}

export interface IndexPackOptions {
  /** Where the bases a thin pack leaves out come from (the repository). */
  bases: ObjectSource;
  /** Sees every commit, tree and tag with its content; throws to refuse the pack. */
  check?: (oid: string, type: ObjectType, data: Buffer) => void;
  /** Refuse packs larger than this (bytes). */
  maxInputBytes?: number;
  /** Largest object that may have to be held in memory: deltas and their results, commits, trees, tags. */
  maxObjectBytes?: number;
  /** Bytes of delta bases kept in memory while resolving (git's core.deltaBaseCacheLimit). */
  baseCacheBytes?: number;
  /** Test hook: offsets above this get 64-bit idx entries. */
  off32Limit?: number;
  /** Called at named steps (crash tests stop the process there). */
  checkpoint?: (name: string) => void;
}

export interface IndexedPack {
  /** "pack-<checksum>", or null when the pack held no objects (nothing was written). */
  name: string | null;
  packPath: string | null;
  idxPath: string | null;
  count: number;
  /** Objects appended from the repository to complete a thin pack. */
  appended: number;
  /** Type of the object at position i (in pack order, which is also the .idx's position order of readers). */
  typeAt(i: number): ObjectType;
  /** Offset in the pack of the object at position i. */
  offsetAt(i: number): number;
}

const DEFAULT_MAX_OBJECT = 512 << 20;
const DEFAULT_BASE_CACHE = 96 << 20;
/** Objects up to this size are inflated in one synchronous call when their bytes are at hand. */
const SYNC_INFLATE_MAX = 1 << 20;
/** Write to the pack file in batches of this size. */
const WRITE_BATCH = 1 << 20;

const EMPTY = Buffer.alloc(0);

/** Per-entry facts in growable typed arrays (about 60 bytes an object). */
class Entries {
  n = 0;
  offset = new Float64Array(1024);
  /** Offset just past the entry's bytes (its raw length is end - offset). */
  end = new Float64Array(1024);
  /** Type code as stored: 1..4, or 6/7 for deltas. */
  packType = new Uint8Array(1024);
  /** Type code of the object once known (0 until resolved). */
  type = new Uint8Array(1024);
  size = new Float64Array(1024);
  crc = new Uint32Array(1024);
  /** OFS_DELTA: offset of the base. */
  base = new Float64Array(1024);
  oid = new Uint8Array(1024 * 20);

  add(offset: number, packType: number, size: number, base: number): number {
    if (this.n === this.offset.length) this.grow();
    const i = this.n++;
    this.offset[i] = offset;
    this.packType[i] = packType;
    this.size[i] = size;
    this.base[i] = base;
    return i;
  }

  private grow(): void {
    const cap = this.offset.length * 2;
    const g = <T extends Float64Array | Uint8Array | Uint32Array>(a: T, k = 1): T => {
      const b = new (a.constructor as new (n: number) => T)(cap * k);
      b.set(a);
      return b;
    };
    this.offset = g(this.offset);
    this.end = g(this.end);
    this.packType = g(this.packType);
    this.type = g(this.type);
    this.size = g(this.size);
    this.crc = g(this.crc);
    this.base = g(this.base);
    this.oid = g(this.oid, 20);
  }

  setOid(i: number, oid: Buffer): void {
    this.oid.set(oid, i * 20);
  }

  oidHex(i: number): string {
    return Buffer.from(this.oid.buffer, this.oid.byteOffset + i * 20, 20).toString('hex');
  }

  /** Entry starting exactly at `offset`, or -1 (entries are in offset order). */
  at(offset: number): number {
    let lo = 0;
    let hi = this.n - 1;
    while (lo <= hi) {
      const mid = (lo + hi) >> 1;
      const o = this.offset[mid]!;
      if (o === offset) return mid;
      if (o < offset) lo = mid + 1;
      else hi = mid - 1;
    }
    return -1;
  }
}

/** True when buf starts with a whole entry header (type and size, plus the delta base). */
function headerComplete(buf: Buffer): boolean {
  let p = 0;
  if (buf.length === 0) return false;
  const type = (buf[0]! >> 4) & 7;
  while (buf[p]! & 0x80) if (++p >= buf.length) return false;
  p++;
  if (type === OBJ_OFS_DELTA) {
    if (p >= buf.length) return false;
    while (buf[p]! & 0x80) if (++p >= buf.length) return false;
    p++;
  } else if (type === OBJ_REF_DELTA) {
    p += 20;
  }
  return p <= buf.length;
}

function hashOf(type: number, data: Buffer): Buffer {
  return createHash('sha1').update(`${typeName(type)} ${data.length}\0`, 'latin1').update(data).digest();
}

/**
 * The client's bytes as the pack parser consumes them: everything consumed
 * is appended to the pack file, hashed into the pack checksum and into the
 * current entry's CRC32.
 */
class PackInput {
  private buf: Buffer = EMPTY;
  private pos = 0;
  /** Bytes consumed since the start of the pack. */
  consumed = 0;
  crc = 0;
  hashing = true;
  readonly sha = createHash('sha1');
  private pending: Buffer[] = [];
  private pendingBytes = 0;

  constructor(private readonly reader: ByteReader, readonly fd: number, private readonly maxBytes: number) {}

  get length(): number {
    return this.buf.length - this.pos;
  }

  /** The unconsumed bytes at hand (not copied). */
  peek(): Buffer {
    return this.buf.subarray(this.pos);
  }

  /** Waits until at least n bytes are at hand; false when the client's stream ends first. */
  async ensure(n: number): Promise<boolean> {
    while (this.length < n) {
      const chunk = await this.reader.readSome(4 << 20);
      if (chunk === null) return false;
      if (this.consumed + this.length + chunk.length > this.maxBytes) {
        throw new PackIndexError(`pack exceeds the maximum allowed size (${this.maxBytes} bytes)`);
      }
      this.buf = this.length === 0 ? chunk : Buffer.concat([this.peek(), chunk]);
      this.pos = 0;
    }
    return true;
  }

  consume(n: number): Buffer {
    const out = this.buf.subarray(this.pos, this.pos + n);
    this.pos += n;
    this.consumed += n;
    this.crc = zlib.crc32(out, this.crc);
    if (this.hashing) this.sha.update(out);
    this.pending.push(out);
    this.pendingBytes += n;
    if (this.pendingBytes >= WRITE_BATCH) this.flush();
    return out;
  }

  flush(): void {
    if (this.pending.length === 0) return;
    writeAll(this.fd, this.pending.length === 1 ? this.pending[0]! : Buffer.concat(this.pending));
    this.pending = [];
    this.pendingBytes = 0;
  }
}

function writeAll(fd: number, buf: Buffer, position?: number): void {
  let off = 0;
  while (off < buf.length) {
    off += fs.writeSync(fd, buf, off, buf.length - off, position === undefined ? null : position + off);
  }
}

/**
 * Reads of the pack file during delta resolution go through a few 256 KiB
 * windows (as git's pack windows do): deltas sit near their bases, so most
 * entries come without a system call of their own.
 */
class PackWindows {
  private static readonly SIZE = 256 << 10;
  private wins: { start: number; buf: Buffer }[] = [];

  constructor(private readonly fd: number) {}

  read(offset: number, length: number): Buffer {
    if (length > PackWindows.SIZE / 2) return preadAll(this.fd, offset, length);
    for (let k = 0; k < this.wins.length; k++) {
      const w = this.wins[k]!;
      if (offset >= w.start && offset + length <= w.start + w.buf.length) {
        if (k > 0) {
          this.wins.splice(k, 1);
          this.wins.unshift(w);
        }
        return w.buf.subarray(offset - w.start, offset - w.start + length);
      }
    }
    const buf = Buffer.allocUnsafe(PackWindows.SIZE);
    const n = fs.readSync(this.fd, buf, 0, buf.length, offset);
    if (n < length) throw new PackIndexError('pack file shorter than its entries');
    this.wins.unshift({ start: offset, buf: buf.subarray(0, n) });
    if (this.wins.length > 8) this.wins.pop();
    return this.wins[0]!.buf.subarray(0, length);
  }

  /** Forget what was read: the file changed (appended bases). */
  reset(): void {
    this.wins = [];
  }
}

function preadAll(fd: number, offset: number, length: number): Buffer {
  const buf = Buffer.allocUnsafe(length);
  let got = 0;
  while (got < length) {
    const n = fs.readSync(fd, buf, got, length - got, offset + got);
    if (n === 0) throw new PackIndexError('pack file shorter than its entries');
    got += n;
  }
  return buf;
}

function zlibMessage(err: unknown): string {
  const e = err as NodeJS.ErrnoException;
  if (e.code === 'ERR_BUFFER_TOO_LARGE') return 'inflates to more than its declared size';
  return e.message;
}

export class PackIndexer {
  private readonly e = new Entries();
  private readonly maxObject: number;
  private readonly budget: number;
  /** REF_DELTA entries waiting for their base, by base name. */
  private refKids = new Map<string, number[]>();
  /** OFS_DELTA entries sorted by base offset (built after pass 1). */
  private ofsKids: Uint32Array = new Uint32Array(0);
  private resolved = 0;
  private appended = 0;
  private packEnd = 0;
  private readonly windows: PackWindows;

  /** The pack file's descriptor, for the synchronous reads and writes; `file` syncs it. */
  private readonly fd: number;

  private constructor(readonly dir: string, private readonly file: fs.promises.FileHandle, readonly tmpPath: string, readonly opts: IndexPackOptions) {
    this.fd = file.fd;
    this.maxObject = opts.maxObjectBytes ?? DEFAULT_MAX_OBJECT;
    this.budget = opts.baseCacheBytes ?? DEFAULT_BASE_CACHE;
    this.windows = new PackWindows(this.fd);
  }

  /**
   * Reads a pack from `input` into `dir` and indexes it. On any failure the
   * files it started are removed and a PackIndexError (or the input's
   * error) is thrown.
   */
  static async run(input: ByteReader, dir: string, opts: IndexPackOptions): Promise<IndexedPack> {
    const tmpPath = path.join(dir, `tmp_pack_${process.pid}_${Date.now().toString(36)}`);
    const file = await fs.promises.open(tmpPath, fs.constants.O_RDWR | fs.constants.O_CREAT | fs.constants.O_EXCL, 0o444);
    const ix = new PackIndexer(dir, file, tmpPath, opts);
    let result: IndexedPack | null = null;
    try {
      result = await ix.index(input);
      return result;
    } finally {
      await file.close();
      if (!result || result.name === null) fs.rmSync(tmpPath, { force: true });
    }
  }

  private checkpoint(name: string): void {
    this.opts.checkpoint?.(name);
  }

  private async index(reader: ByteReader): Promise<IndexedPack> {
    const input = new PackInput(reader, this.fd, this.opts.maxInputBytes ?? Infinity);
    if (!(await input.ensure(12))) throw new PackIndexError(input.length === 0 ? 'no pack data received' : 'pack header truncated');
    const head = input.peek();
    if (head.toString('latin1', 0, 4) !== 'PACK') throw new PackIndexError('protocol error (pack signature mismatch detected)');
    const version = head.readUInt32BE(4);
    if (version !== 2 && version !== 3) throw new PackIndexError(`protocol error (pack version ${version} unsupported)`);
    const count = head.readUInt32BE(8);
    input.consume(12);
    this.checkpoint('pack-header');
    for (let i = 0; i < count; i++) await this.readEntry(input);
    input.hashing = false;
    if (!(await input.ensure(20))) throw new PackIndexError('pack truncated: trailer missing');
    const sum = input.sha.digest();
    const trailer = input.consume(20);
    if (!sum.equals(trailer)) throw new PackIndexError('pack is corrupted (SHA1 mismatch)');
    input.flush();
    this.packEnd = input.consumed - 20;
    this.checkpoint('pack-received');
    if (count === 0) {
      const none = (): never => { throw new RangeError('empty pack'); };
      return { name: null, packPath: null, idxPath: null, count: 0, appended: 0, typeAt: none, offsetAt: none };
    }

    this.resolveDeltas();
    await this.fixThin();
    const unresolved = this.e.n - this.resolved;
    if (unresolved > 0) throw new PackIndexError(`pack has ${unresolved} unresolved delta${unresolved === 1 ? '' : 's'}`);
    const checksum = this.appended > 0 ? this.rewriteHeaderAndTrailer() : trailer;
    this.checkpoint('deltas-resolved');
    return this.writeFiles(checksum);
  }

  /** Pass 1 for one entry: header, then its zlib stream. */
  private async readEntry(input: PackInput): Promise<void> {
    const offset = input.consumed;
    while (!headerComplete(input.peek())) {
      if (!(await input.ensure(input.length + 1))) throw new PackIndexError('pack truncated');
    }
    let h;
    try {
      h = parseEntryHeader(input.peek(), 0, offset);
    } catch (err) {
      throw new PackIndexError(`pack entry at ${offset}: ${(err as Error).message}`);
    }
    if (h.type !== OBJ_OFS_DELTA && h.type !== OBJ_REF_DELTA && h.size > this.maxObject && h.type !== OBJ_BLOB) {
      throw new PackIndexError(`object at ${offset} is too large (${h.size} bytes)`);
    }
    if ((h.type === OBJ_OFS_DELTA || h.type === OBJ_REF_DELTA) && h.size > this.maxObject) {
      throw new PackIndexError(`delta at ${offset} is too large (${h.size} bytes)`);
    }
    const i = this.e.add(offset, h.type, h.size, h.baseOffset);
    input.crc = 0;
    const header = input.consume(h.headerLength);
    if (h.type === OBJ_REF_DELTA) {
      const base = header.toString('hex', h.baseNameAt, h.baseNameAt + 20);
      const kids = this.refKids.get(base);
      if (kids) kids.push(i);
      else this.refKids.set(base, [i]);
    }
    const isDelta = h.type === OBJ_OFS_DELTA || h.type === OBJ_REF_DELTA;
    const keep = !isDelta && h.type !== OBJ_BLOB;
    const sha = isDelta ? null : createHash('sha1').update(`${typeName(h.type)} ${h.size}\0`, 'latin1');
    const parts: Buffer[] = [];
    await this.inflateEntry(input, h.size, offset, (chunk) => {
      sha?.update(chunk);
      if (keep) parts.push(chunk);
    });
    this.e.crc[i] = input.crc >>> 0;
    this.e.end[i] = input.consumed;
    if (sha) {
      const oid = sha.digest();
      this.e.setOid(i, oid);
      this.e.type[i] = h.type;
      this.resolved++;
      if (keep) this.check(oid.toString('hex'), h.type, parts.length === 1 ? parts[0]! : Buffer.concat(parts));
    }
  }

  private check(oid: string, type: number, data: Buffer): void {
    this.opts.check?.(oid, typeName(type), data);
  }

  /** Inflates one zlib stream from the input, exactly `size` bytes of output. */
  private async inflateEntry(input: PackInput, size: number, offset: number, sink: (chunk: Buffer) => void): Promise<void> {
    // Fast path: the whole stream is usually at hand already. Never wait for
    // more bytes than the client must still send: after the last entry comes
    // only the trailer, and the client waits for our answer.
    if (size <= SYNC_INFLATE_MAX && input.length > 0) {
      let res: { data: Buffer; consumed: number } | null;
      try {
        res = inflatePrefix(input.peek(), size);
      } catch (err) {
        throw new PackIndexError(`inflate failed for the object at ${offset}: ${zlibMessage(err)}`);
      }
      if (res) {
        input.consume(res.consumed);
        if (size > 0) sink(res.data);
        return;
      }
    }
    await this.inflateStreaming(input, size, offset, sink);
  }

  /** Objects not at hand whole: through an async zlib stream, chunk by chunk, never held whole. */
  private async inflateStreaming(input: PackInput, size: number, offset: number, sink: (chunk: Buffer) => void): Promise<void> {
    const inf = zlib.createInflate({ chunkSize: 256 << 10 });
    let produced = 0;
    let failure: Error | null = null;
    let ended = false;
    const waiters: (() => void)[] = [];
    const notify = (): void => {
      for (const w of waiters.splice(0)) w();
    };
    const until = async (pred: () => boolean): Promise<void> => {
      while (!pred() && failure === null) await new Promise<void>((resolve) => waiters.push(resolve));
      if (failure) throw failure;
    };
    inf.on('data', (chunk: Buffer) => {
      if (failure) return;
      produced += chunk.length;
      if (produced > size) {
        // A zlib bomb, or a lie about the size: stop inflating now.
        failure = new PackIndexError(`object at ${offset} inflates to more than its declared ${size} bytes`);
        inf.pause();
        notify();
        return;
      }
      sink(chunk);
    });
    inf.on('end', () => { ended = true; notify(); });
    inf.on('error', (err) => {
      failure ??= new PackIndexError(`inflate failed for the object at ${offset}: ${zlibMessage(err)}`);
      notify();
    });
    try {
      let fed = 0;
      for (;;) {
        if (input.length === 0 && !(await input.ensure(1))) throw new PackIndexError('pack truncated');
        const chunk = input.peek();
        let written = false;
        inf.write(chunk, () => { written = true; notify(); });
        await until(() => written);
        const used = inf.bytesWritten - fed;
        fed = inf.bytesWritten;
        input.consume(used);
        if (used < chunk.length) break; // the stream ended inside this chunk
      }
      await until(() => ended);
    } finally {
      inf.destroy();
    }
    if (produced !== size) throw new PackIndexError(`object at ${offset} inflates to ${produced} bytes, expected ${size}`);
  }

  // --- pass 2 -----------------------------------------------------------------

  /** Reads and inflates entry i's own data (a whole object, or a delta). */
  private inflated(i: number): Buffer {
    const off = this.e.offset[i]!;
    const raw = this.windows.read(off, this.e.end[i]! - off);
    const h = parseEntryHeader(raw, 0, off);
    try {
      return inflateExactly(raw.subarray(h.headerLength), h.size);
    } catch (err) {
      throw new PackIndexError(`inflate failed for the object at ${off}: ${zlibMessage(err)}`);
    }
  }

  private buildOfsKids(): void {
    const kids: number[] = [];
    for (let i = 0; i < this.e.n; i++) if (this.e.packType[i] === OBJ_OFS_DELTA) kids.push(i);
    kids.sort((a, b) => this.e.base[a]! - this.e.base[b]! || a - b);
    this.ofsKids = Uint32Array.from(kids);
    for (const k of kids) {
      if (this.e.at(this.e.base[k]!) < 0) {
        throw new PackIndexError(`delta at ${this.e.offset[k]} has a base offset that is not an entry in the pack`);
      }
    }
  }

  /** Entries that are deltas against entry i. */
  private childrenOf(i: number): number[] {
    const out: number[] = [];
    const off = this.e.offset[i]!;
    const ks = this.ofsKids;
    let lo = 0;
    let hi = ks.length;
    while (lo < hi) {
      const mid = (lo + hi) >> 1;
      if (this.e.base[ks[mid]!]! < off) lo = mid + 1;
      else hi = mid;
    }
    for (let k = lo; k < ks.length && this.e.base[ks[k]!] === off; k++) out.push(ks[k]!);
    if (this.refKids.size === 0) return out;
    const hex = this.e.oidHex(i);
    const refs = this.refKids.get(hex);
    if (refs) {
      this.refKids.delete(hex);
      out.push(...refs);
    }
    return out;
  }

  private resolveDeltas(): void {
    this.buildOfsKids();
    const n = this.e.n;
    for (let i = 0; i < n; i++) {
      const t = this.e.packType[i]!;
      if (t === OBJ_OFS_DELTA || t === OBJ_REF_DELTA) continue;
      const kids = this.childrenOf(i);
      if (kids.length > 0) this.resolveFrom(i, kids, null);
    }
  }

  /**
   * Depth-first over the deltas based (directly or not) on the whole object
   * `root`. Each frame holds its object's data while its children are
   * resolved; beyond the budget the oldest frames drop theirs and rebuild it
   * from the nearest ancestor still holding data.
   */
  private resolveFrom(root: number, rootKids: number[], rootData: Buffer | null): void {
    interface Frame { idx: number; data: Buffer | null; kids: number[]; k: number }
    // A blob is streamed whatever its size, but a delta base must be held whole.
    if (rootData === null && this.e.size[root]! > this.maxObject) {
      throw new PackIndexError(`delta base at ${this.e.offset[root]} is too large (${this.e.size[root]} bytes)`);
    }
    const stack: Frame[] = [{ idx: root, data: rootData ?? this.inflated(root), kids: rootKids, k: 0 }];
    let held = stack[0]!.data!.length;
    const type = this.e.type[root]!;
    const rebuild = (j: number): Buffer => {
      let m = j - 1;
      while (m >= 0 && stack[m]!.data === null) m--;
      let data = m >= 0 ? stack[m]!.data! : this.inflated(stack[0]!.idx);
      for (let q = m >= 0 ? m + 1 : 1; q <= j; q++) data = this.patch(data, stack[q]!.idx);
      return data;
    };
    while (stack.length > 0) {
      const top = stack[stack.length - 1]!;
      if (top.k >= top.kids.length) {
        if (top.data) held -= top.data.length;
        stack.pop();
        continue;
      }
      const child = top.kids[top.k++]!;
      if (top.data === null) {
        top.data = stack.length === 1 ? this.inflated(top.idx) : rebuild(stack.length - 1);
        held += top.data.length;
      }
      const data = this.patch(top.data, child);
      const oid = hashOf(type, data);
      this.e.setOid(child, oid);
      this.e.type[child] = type;
      this.resolved++;
      if (type !== OBJ_BLOB) this.check(oid.toString('hex'), type, data);
      const kids = this.childrenOf(child);
      if (kids.length === 0) continue;
      stack.push({ idx: child, data, kids, k: 0 });
      held += data.length;
      for (let f = 0; held > this.budget && f < stack.length - 1; f++) {
        const fr = stack[f]!;
        if (fr.data) {
          held -= fr.data.length;
          fr.data = null;
        }
      }
    }
  }

  /** Applies delta entry i to `base`. */
  private patch(base: Buffer, i: number): Buffer {
    const delta = this.inflated(i);
    try {
      const [, p] = deltaHeaderSize(delta, 0);
      const [target] = deltaHeaderSize(delta, p);
      if (target > this.maxObject) throw new Error(`delta result too large (${target} bytes)`);
      return applyDelta(base, delta);
    } catch (err) {
      throw new PackIndexError(`delta at ${this.e.offset[i]}: ${(err as Error).message}`);
    }
  }

  /** Appends the bases a thin pack left out, from the repository, and resolves what depends on them. */
  private async fixThin(): Promise<void> {
    if (this.refKids.size === 0) return;
    let at = this.packEnd;
    for (const [base, kids] of [...this.refKids]) {
      if (!this.refKids.has(base)) continue; // resolved meanwhile through another appended base
      const obj = this.opts.bases.read(base);
      if (!obj) continue;
      const code = typeCode(obj.type);
      const entry = Buffer.concat([encodeEntryHeader(code, obj.data.length), deflate(obj.data)]);
      writeAll(this.fd, entry, at);
      this.windows.reset();
      const i = this.e.add(at, code, obj.data.length, -1);
      this.e.end[i] = at + entry.length;
      this.e.crc[i] = zlib.crc32(entry);
      this.e.setOid(i, Buffer.from(base, 'hex'));
      this.e.type[i] = code;
      this.resolved++;
      this.appended++;
      at += entry.length;
      this.refKids.delete(base);
      this.resolveFrom(i, kids, obj.data);
    }
    this.packEnd = at;
  }

  /** After appending: new object count in the header, new checksum at the end. */
  private rewriteHeaderAndTrailer(): Buffer {
    const count = Buffer.alloc(4);
    count.writeUInt32BE(this.e.n);
    writeAll(this.fd, count, 8);
    const sha = createHash('sha1');
    const chunk = Buffer.allocUnsafe(1 << 20);
    for (let off = 0; off < this.packEnd;) {
      const n = fs.readSync(this.fd, chunk, 0, Math.min(chunk.length, this.packEnd - off), off);
      if (n === 0) throw new PackIndexError('pack file shorter than expected');
      sha.update(chunk.subarray(0, n));
      off += n;
    }
    const sum = sha.digest();
    writeAll(this.fd, sum, this.packEnd);
    fs.ftruncateSync(this.fd, this.packEnd + 20);
    return sum;
  }

  private async writeFiles(checksum: Buffer): Promise<IndexedPack> {
    const n = this.e.n;
    let idx: Buffer;
    try {
      idx = buildIdx({ count: n, oids: this.e.oid, crcs: this.e.crc, offsets: this.e.offset }, checksum, this.opts.off32Limit ?? OFF32_LIMIT);
    } catch (err) {
      throw new PackIndexError((err as Error).message);
    }
    await this.file.sync();
    this.checkpoint('pack-written');
    const name = `pack-${checksum.toString('hex')}`;
    const packPath = path.join(this.dir, name + '.pack');
    const idxPath = path.join(this.dir, name + '.idx');
    fs.renameSync(this.tmpPath, packPath);
    const tmpIdx = path.join(this.dir, `tmp_idx_${process.pid}`);
    await writeNewFile(tmpIdx, idx, 0o444);
    fs.renameSync(tmpIdx, idxPath);
    this.checkpoint('idx-written');
    const types = this.e.type.subarray(0, n);
    const offsets = this.e.offset.subarray(0, n);
    return {
      name, packPath, idxPath, count: n, appended: this.appended,
      typeAt: (i: number) => typeName(types[i]!),
      offsetAt: (i: number) => offsets[i]!,
    };
  }
}
