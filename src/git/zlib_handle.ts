/**
 * Inflating many small zlib streams quickly. zlib.inflateSync() builds a
 * whole Transform stream for every call (10 µs and more, and garbage); an
 * object walk inflates every commit and tree it meets, so one zlib handle is
 * kept and reset between objects instead (under 2 µs). This uses the same
 * private members of Node's zlib classes that lib/zlib.js's own synchronous
 * path uses (_handle, _writeState); where they are missing, or after any
 * error, it falls back to inflateSync. Node's built-in zlib only, so it
 * works under the permission model.
 */
import * as zlib from 'node:zlib';

interface ZlibHandle {
  reset(): void;
  writeSync(flush: number, input: Buffer, inOff: number, inLen: number, out: Buffer, outOff: number, outLen: number): void;
  onerror: (message: string, errno: number) => void;
}

let handle: ZlibHandle | null = null;
let state: Uint32Array | null = null;
let failure: string | null = null;

function setup(): void {
  handle = null;
  state = null;
  try {
    const inf = new zlib.Inflate() as unknown as { _handle?: ZlibHandle; _writeState?: Uint32Array };
    if (inf._handle && typeof inf._handle.writeSync === 'function' && typeof inf._handle.reset === 'function' && inf._writeState) {
      handle = inf._handle;
      state = inf._writeState;
      handle.onerror = (message: string) => { failure = message; };
    }
  } catch {
    handle = null;
  }
}
setup();

/** Inflates a zlib stream that must produce exactly `size` bytes; trailing input is ignored. */
export function inflateExactly(input: Buffer, size: number): Buffer {
  if (!handle || !state || size > 1 << 26) {
    const out = zlib.inflateSync(input, { chunkSize: Math.min(Math.max(64, size + 1), 1 << 26) });
    if (out.length !== size) throw new Error(`inflated to ${out.length} bytes, expected ${size}`);
    return out;
  }
  const room = size + 1; // one spare byte shows an object longer than it claims
  const out = Buffer.allocUnsafe(room);
  failure = null;
  handle.writeSync(zlib.constants.Z_FINISH, input, 0, input.length, out, 0, room);
  if (failure !== null) {
    const msg: string = failure;
    setup(); // never reuse a handle that failed
    throw new Error(msg);
  }
  const produced = room - state[0]!;
  handle.reset();
  if (produced !== size) throw new Error(`inflated to ${produced === room ? 'more than ' + size : produced} bytes, expected ${size}`);
  return out.subarray(0, size);
}

/**
 * For a zlib stream followed by other data (a pack being received): inflates
 * exactly `size` bytes and says how much input the stream took; null when
 * the input ends before the stream does (the caller waits for more).
 */
export function inflatePrefix(input: Buffer, size: number): { data: Buffer; consumed: number } | null {
  if (!handle || !state || size > 1 << 26) {
    let r: { buffer: Buffer; engine: { bytesWritten: number } };
    try {
      r = zlib.inflateSync(input, { info: true, maxOutputLength: Math.max(size, 1) } as zlib.ZlibOptions) as unknown as typeof r;
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code === 'Z_BUF_ERROR') return null;
      throw err;
    }
    if (r.buffer.length !== size) throw new Error(`inflated to ${r.buffer.length} bytes, expected ${size}`);
    return { data: r.buffer, consumed: r.engine.bytesWritten };
  }
  const room = size + 1;
  const out = Buffer.allocUnsafe(room);
  failure = null;
  handle.writeSync(zlib.constants.Z_FINISH, input, 0, input.length, out, 0, room);
  if (failure !== null) {
    const msg: string = failure;
    setup();
    if (msg === 'unexpected end of file') return null;
    throw new Error(msg);
  }
  const produced = room - state[0]!;
  const consumed = input.length - state[1]!;
  handle.reset();
  if (produced !== size) throw new Error(`inflated to ${produced === room ? 'more than ' + size : produced} bytes, expected ${size}`);
  return { data: out.subarray(0, size), consumed };
}

/**
 * Deflating objects that must be sent whole (their delta base stays
 * behind), with one reused handle for the same reason as above. Level 1:
 * these are mostly source files, where it costs a few percent of size and
 * saves most of the time.
 */
let deflater: { handle: ZlibHandle; state: Uint32Array } | null | undefined;
let deflateFailure: string | null = null;
export const DEFLATE_LEVEL = 1;

function deflateSetup(): void {
  deflater = null;
  try {
    const d = new zlib.Deflate({ level: DEFLATE_LEVEL }) as unknown as { _handle?: ZlibHandle; _writeState?: Uint32Array };
    if (d._handle && typeof d._handle.writeSync === 'function' && typeof d._handle.reset === 'function' && d._writeState) {
      deflater = { handle: d._handle, state: d._writeState };
      d._handle.onerror = (message: string) => { deflateFailure = message; };
    }
  } catch {
    deflater = null;
  }
}

export function deflate(data: Buffer): Buffer {
  if (deflater === undefined) deflateSetup();
  if (!deflater || data.length > 1 << 26) return zlib.deflateSync(data, { level: DEFLATE_LEVEL });
  // deflateBound() for zlib's defaults, plus room for the zlib header and trailer.
  const room = data.length + (data.length >> 12) + (data.length >> 14) + (data.length >> 25) + 64;
  const out = Buffer.allocUnsafe(room);
  deflateFailure = null;
  deflater.handle.writeSync(zlib.constants.Z_FINISH, data, 0, data.length, out, 0, room);
  if (deflateFailure !== null) {
    deflateSetup();
    throw new Error(deflateFailure);
  }
  const produced = room - deflater.state[0]!;
  const leftIn = deflater.state[1]!;
  deflater.handle.reset();
  if (leftIn !== 0 || produced === room) {
    return zlib.deflateSync(data, { level: DEFLATE_LEVEL }); // did not fit: let zlib size it
  }
  return out.subarray(0, produced);
}
