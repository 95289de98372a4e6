/**
 * Output side of a session: pkt-lines, and the side-band multiplexing of a
 * packfile (band 1), progress (band 2) and fatal errors (band 3), with
 * backpressure from the connection honoured so memory stays bounded.
 */
import { createHash, type Hash } from 'node:crypto';
import type { Writable } from 'node:stream';
import { MAX_PKT_LEN } from './pktline';

export const BAND_DATA = 1;
export const BAND_PROGRESS = 2;
export const BAND_ERROR = 3;

/** side-band (not 64k) packets are at most 1000 bytes (DEFAULT_PACKET_MAX). */
export const SMALL_PKT_LEN = 1000;

/** Writes to a stream, waiting for 'drain' when it pushes back; counts bytes. */
export class Output {
  bytes = 0;
  private failed: Error | null = null;
  private closed = false;

  constructor(private readonly stream: Writable) {
    stream.on('error', (err: Error) => { this.failed = err; });
    stream.on('close', () => { this.closed = true; });
  }

  /** Throws once the peer has gone away, so long writers stop early. */
  private check(): void {
    if (this.failed) throw this.failed;
    if (this.closed || this.stream.destroyed) throw new Error('connection closed');
  }

  write(chunk: Buffer, written?: () => void): Promise<void> | undefined {
    this.check();
    this.bytes += chunk.length;
    const ok = written ? this.stream.write(chunk, (err) => { if (!err) written(); }) : this.stream.write(chunk);
    if (ok) return undefined;
    return new Promise<void>((resolve, reject) => {
      const done = (err?: Error) => {
        this.stream.off('drain', onDrain);
        this.stream.off('error', onError);
        this.stream.off('close', onClose);
        if (err) reject(err); else resolve();
      };
      const onDrain = () => done();
      const onError = (err: Error) => done(err);
      const onClose = () => done(new Error('connection closed'));
      this.stream.on('drain', onDrain);
      this.stream.on('error', onError);
      this.stream.on('close', onClose);
    });
  }

  /** Ends the stream and resolves once it is flushed (or failed, or closed). */
  end(): Promise<void> {
    return new Promise((resolve) => {
      const s = this.stream;
      if (this.failed || this.closed || s.writableEnded || s.destroyed) return resolve();
      s.once('error', () => resolve());
      s.once('close', () => resolve());
      s.end(() => resolve());
    });
  }
}

/** Frames bytes for one band: one pkt-line per piece, each at most `max` bytes long. */
export function bandPackets(band: number, data: Buffer, max: number): Buffer[] {
  const room = max - 5;
  const out: Buffer[] = [];
  for (let off = 0; off < data.length; off += room) {
    const n = Math.min(room, data.length - off);
    const pkt = Buffer.allocUnsafe(n + 5);
    pkt.write((n + 5).toString(16).padStart(4, '0'), 0, 'latin1');
    pkt[4] = band;
    data.copy(pkt, 5, off, off + n);
    out.push(pkt);
  }
  return out;
}

/**
 * The packfile stream to the client: raw, or multiplexed on band 1. Bytes
 * are gathered into full packets (copying is cheaper than a write per
 * object), progress goes out between packets on band 2.
 */
export class PackStream {
  private frame: Buffer;
  private used = 0;
  private readonly room: number;
  private readonly head: number;
  /** SHA-1 of the pack bytes so far (the trailer is the digest of everything before it). */
  private hash: Hash | null = createHash('sha1');
  /** Pack bytes written (trailer included once finished). */
  packBytes = 0;

  constructor(
    private readonly out: Output,
    /** 0 for no side-band, else the largest packet (1000 or 65520). */
    readonly sideband: number,
  ) {
    this.head = sideband ? 5 : 0;
    this.room = sideband ? sideband - 5 : MAX_PKT_LEN - 4;
    this.frame = Buffer.allocUnsafeSlow(this.head + this.room);
  }

  /** Appends pack bytes; returns a promise only when a packet had to wait for the connection. */
  write(data: Buffer): Promise<void> | undefined {
    let off = 0;
    let wait: Promise<void> | undefined;
    while (off < data.length) {
      const n = Math.min(this.room - this.used, data.length - off);
      data.copy(this.frame, this.head + this.used, off, off + n);
      this.used += n;
      off += n;
      if (this.used === this.room) {
        const p = this.flushFrame();
        if (p) {
          if (off < data.length) return p.then(() => this.write(data.subarray(off)));
          wait = p;
        }
      }
    }
    return wait;
  }

  private flushFrame(): Promise<void> | undefined {
    if (this.used === 0) return undefined;
    const frame = this.frame;
    const len = this.head + this.used;
    const pkt = frame.subarray(0, len);
    if (this.hash) this.hash.update(pkt.subarray(this.head));
    this.packBytes += this.used;
    if (this.sideband) {
      pkt.write(len.toString(16).padStart(4, '0'), 0, 'latin1');
      pkt[4] = BAND_DATA;
    }
    this.used = 0;
    // Frames come back once written: a long pack costs a few frames, not a trail of garbage.
    this.frame = this.spare.pop() ?? Buffer.allocUnsafeSlow(this.head + this.room);
    return this.out.write(pkt, () => { if (this.spare.length < 16) this.spare.push(frame); });
  }

  private spare: Buffer[] = [];

  /** Pushes out what is buffered. */
  async flush(): Promise<void> {
    await this.flushFrame();
  }

  /** Appends the SHA-1 trailer and flushes; returns the pack's checksum. */
  async finishPack(): Promise<Buffer> {
    await this.flushFrame();
    if (!this.hash) throw new Error('finishPack: the checksum was not computed');
    const sum = this.hash.digest();
    this.hash = null;
    await this.write(sum);
    await this.flushFrame();
    return sum;
  }

  /**
   * For a stored pack sent byte for byte (same header): its own trailer is
   * the right checksum, so the SHA-1 pass is skipped. Should the stored
   * bytes be damaged, the client's check of this trailer rejects the pack.
   */
  skipChecksum(): void {
    this.hash = null;
  }

  async finishPackWith(trailer: Buffer): Promise<void> {
    await this.flushFrame();
    this.hash = null;
    await this.write(trailer);
    await this.flushFrame();
  }

  /** Progress text on band 2 (dropped without side-band, as git does). */
  async progress(text: string): Promise<void> {
    if (!this.sideband || text.length === 0) return;
    for (const p of bandPackets(BAND_PROGRESS, Buffer.from(text, 'utf8'), this.sideband)) await this.out.write(p);
  }

  /** A fatal error on band 3; the client prints it and gives up on the pack. */
  async error(text: string): Promise<void> {
    if (!this.sideband) return;
    for (const p of bandPackets(BAND_ERROR, Buffer.from(text + '\n', 'utf8'), this.sideband)) await this.out.write(p);
  }
}
