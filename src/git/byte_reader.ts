import type { Readable } from 'node:stream';

/**
 * Pull-style reader over a Readable: exact-length reads for pkt-lines, then
 * raw chunks for a packfile that follows them, with nothing lost in between.
 * The source is paused while enough is buffered, so a fast client cannot make
 * us hold more than one high-water mark of its bytes.
 */
/** A read did not complete by its deadline. */
export class ReadTimeout extends Error {
  override name = 'ReadTimeout';
}

export class ByteReader {
  private chunks: Buffer[] = [];
  private buffered = 0;
  private ended = false;
  private failure: Error | null = null;
  private waiter: (() => void) | null = null;
  /** Total bytes taken from the source so far. */
  bytesRead = 0;

  constructor(private readonly src: Readable, private readonly highWater = 1 << 20) {
    src.on('data', (chunk: Buffer) => {
      this.chunks.push(chunk);
      this.buffered += chunk.length;
      this.bytesRead += chunk.length;
      if (this.buffered >= this.highWater) src.pause();
      this.wake();
    });
    src.on('end', () => { this.ended = true; this.wake(); });
    src.on('close', () => { this.ended = true; this.wake(); });
    src.on('error', (err: Error) => { this.failure = err; this.wake(); });
  }

  private wake(): void {
    const w = this.waiter;
    this.waiter = null;
    if (w) w();
  }

  /** Waits for more bytes; until: a deadline (ms since the epoch), 0 for none. */
  private async fill(until = 0): Promise<boolean> {
    if (this.failure) throw this.failure;
    if (this.ended) return false;
    if (this.src.isPaused()) this.src.resume();
    await new Promise<void>((resolve, reject) => {
      if (until === 0) { this.waiter = resolve; return; }
      const timer = setTimeout(() => { this.waiter = null; reject(new ReadTimeout('read timed out')); }, Math.max(0, until - Date.now()));
      this.waiter = () => { clearTimeout(timer); resolve(); };
    });
    if (this.failure) throw this.failure;
    return true;
  }

  /** Bytes buffered and not yet consumed. */
  get available(): number { return this.buffered; }

  /** True once the source has ended and every buffered byte was consumed. */
  async atEnd(): Promise<boolean> {
    while (this.buffered === 0) {
      if (!(await this.fill())) return true;
    }
    return false;
  }

  /**
   * Exactly n bytes, or null when the stream ends first (partial bytes are
   * dropped).  until: a deadline (ms since the epoch; 0 for none), past
   * which it throws ReadTimeout.
   */
  async readExact(n: number, until = 0): Promise<Buffer | null> {
    while (this.buffered < n) {
      if (!(await this.fill(until))) return null;
    }
    return this.take(n);
  }

  /** Whatever is buffered (up to max), waiting for at least one byte; null at end. */
  async readSome(max = Infinity): Promise<Buffer | null> {
    while (this.buffered === 0) {
      if (!(await this.fill())) return null;
    }
    return this.take(Math.min(max, this.buffered));
  }

  private take(n: number): Buffer {
    const first = this.chunks[0]!;
    let out: Buffer;
    if (first.length === n) {
      out = first;
      this.chunks.shift();
    } else if (first.length > n) {
      out = first.subarray(0, n);
      this.chunks[0] = first.subarray(n);
    } else {
      out = Buffer.allocUnsafe(n);
      let off = 0;
      while (off < n) {
        const c = this.chunks[0]!;
        const k = Math.min(c.length, n - off);
        c.copy(out, off, 0, k);
        off += k;
        if (k === c.length) this.chunks.shift();
        else this.chunks[0] = c.subarray(k);
      }
    }
    this.buffered -= n;
    if (this.buffered < this.highWater && this.src.isPaused() && !this.ended) this.src.resume();
    return out;
  }
}
