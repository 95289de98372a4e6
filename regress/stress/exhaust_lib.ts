/**
 * Tools of the exhaustion part of make stress: resident sizes of the
 * daemon's processes from /proc, raw clients on gotd.sock and the
 * WebSocket port, and hand-made request bodies (want lists, command
 * lists, zlib streams that inflate enormously).
 */
import * as fs from 'node:fs';
import * as net from 'node:net';
import * as zlib from 'node:zlib';
import { descendants } from '../lib/daemon';

/** VmRSS of a process in bytes (0 when it is gone). */
export function rssOf(pid: number): number {
  try {
    const m = /^VmRSS:\s*([0-9]+) kB$/m.exec(fs.readFileSync(`/proc/${pid}/status`, 'utf8'));
    return m ? Number(m[1]) * 1024 : 0;
  } catch {
    return 0;
  }
}

function cmdline(pid: number): string {
  try { return fs.readFileSync(`/proc/${pid}/cmdline`, 'utf8').replace(/\0/g, ' '); } catch { return ''; }
}

export interface Roles { daemon: number[]; workers: number[] }

/** gotd's parent, listen and auth (the long-lived processes clients reach), and the session workers. */
export function roles(gotdPid: number): Roles {
  const daemon = [gotdPid];
  const workers: number[] = [];
  for (const p of descendants(gotdPid)) {
    const c = cmdline(p);
    if (/\/gotd\/(listen|auth)\.js/.test(c)) daemon.push(p);
    // Under bwrap the sandbox's own processes carry the same command line; they are small, the max picks node.
    else if (/\/gotd\/repo_(read|write)\.js/.test(c)) workers.push(p);
  }
  return { daemon, workers };
}

export const MiB = 1024 * 1024;
export const mb = (n: number): string => `${(n / MiB).toFixed(0)} MB`;

/** Samples the daemon's resident size (sum of parent, listen, auth) and the largest worker. */
export class RssSampler {
  daemonPeak = 0;
  workerPeak = 0;
  private timer: NodeJS.Timeout | null = null;

  constructor(private readonly gotdPid: number, private readonly everyMs = 100) {}

  daemonNow(): number {
    return roles(this.gotdPid).daemon.reduce((s, p) => s + rssOf(p), 0);
  }

  sample(): void {
    const r = roles(this.gotdPid);
    this.daemonPeak = Math.max(this.daemonPeak, r.daemon.reduce((s, p) => s + rssOf(p), 0));
    for (const w of r.workers) this.workerPeak = Math.max(this.workerPeak, rssOf(w));
  }

  start(): this {
    this.sample();
    this.timer = setInterval(() => this.sample(), this.everyMs);
    return this;
  }

  stop(): this {
    if (this.timer) clearInterval(this.timer);
    this.timer = null;
    this.sample();
    return this;
  }
}

export function sleep(ms: number): Promise<void> {
  return new Promise((r) => setTimeout(r, ms));
}

export function pkt(s: string | Buffer): Buffer {
  const b = typeof s === 'string' ? Buffer.from(s) : s;
  return Buffer.concat([Buffer.from((b.length + 4).toString(16).padStart(4, '0')), b]);
}
export const FLUSH = Buffer.from('0000');
export const DELIM = Buffer.from('0001');

/** A v0 upload-pack request: n want lines of oid, then done. */
export function wantsV0(oid: string, n: number): Buffer {
  const first = pkt(`want ${oid} multi_ack_detailed side-band-64k ofs-delta no-progress\n`);
  const line = pkt(`want ${oid}\n`);
  return Buffer.concat([first, Buffer.alloc(line.length * (n - 1), line), FLUSH, pkt('done\n')]);
}

/** A v2 fetch command with n want arguments. */
export function wantsV2(oid: string, n: number): Buffer {
  const line = pkt(`want ${oid}\n`);
  return Buffer.concat([
    pkt('command=fetch\n'), pkt('agent=git/2.39.5\n'), pkt('object-format=sha1\n'), DELIM,
    pkt('no-progress\n'), pkt('ofs-delta\n'), Buffer.alloc(line.length * n, line), pkt('done\n'), FLUSH,
  ]);
}

/**
 * A zlib stream of `bytes` zero bytes, made without holding them: about a
 * thousandth of the size it inflates to.
 */
export function zeroStream(bytes: number): Buffer {
  const chunk = Buffer.alloc(Math.min(bytes, 16 * MiB));
  const def = zlib.deflateSync(chunk, { level: 9 });
  if (bytes <= chunk.length) return def;
  // Raw deflate blocks of one chunk of zeros, repeated, framed once: header, blocks, final block, adler32.
  const raw = zlib.deflateRawSync(chunk, { level: 9, finishFlush: zlib.constants.Z_SYNC_FLUSH });
  const n = Math.floor(bytes / chunk.length);
  const restLen = bytes - n * chunk.length;
  const tail = zlib.deflateRawSync(Buffer.alloc(restLen), { level: 9 });
  const adler = adler32Zeros(bytes);
  const trailer = Buffer.alloc(4);
  trailer.writeUInt32BE(adler >>> 0, 0);
  return Buffer.concat([def.subarray(0, 2), Buffer.alloc(raw.length * n, raw), tail, trailer]);
}

/** Adler-32 of n zero bytes: a stays 1, b grows by 1 per byte. */
function adler32Zeros(n: number): number {
  const MOD = 65521;
  const b = n % MOD;
  return ((b << 16) | 1) >>> 0;
}

export interface RawClient {
  sock: net.Socket;
  /** Date.now() at connect. */
  startedAt: number;
  /** Set to make a trickle stop. */
  stopped: boolean;
  data(): Buffer;
  /** ms since connect when the server ended or closed, or null while open. */
  closedAt(): number | null;
  firstDataAt(): number | null;
  closed: Promise<void>;
}

/** A raw connection that records what the server says and when it ends. */
export function rawClient(opts: net.NetConnectOpts): Promise<RawClient> {
  return new Promise((resolve, reject) => {
    const sock = net.connect({ ...opts, allowHalfOpen: true } as net.NetConnectOpts);
    const t0 = Date.now();
    const chunks: Buffer[] = [];
    let closedAt: number | null = null;
    let firstAt: number | null = null;
    let settle!: () => void;
    const closed = new Promise<void>((r) => { settle = r; });
    const end = (): void => { closedAt ??= Date.now() - t0; settle(); };
    sock.on('data', (b: Buffer) => { firstAt ??= Date.now() - t0; chunks.push(b); });
    sock.on('end', end);
    sock.on('close', end);
    sock.on('error', end);
    sock.once('connect', () => resolve({ sock, startedAt: t0, stopped: false, data: () => Buffer.concat(chunks), closedAt: () => closedAt, firstDataAt: () => firstAt, closed }));
    sock.once('error', reject);
  });
}

/** Writes buf one byte every ms until it is written or the socket is gone; resolves when stopped. */
export async function trickle(sock: net.Socket, buf: Buffer, ms: number, gone: () => boolean): Promise<number> {
  let i = 0;
  for (; i < buf.length && !gone() && !sock.destroyed; i++) {
    sock.write(buf.subarray(i, i + 1));
    await sleep(ms);
  }
  return i;
}

/** Waits until pred() holds or ms pass; true when it held. */
export async function until(pred: () => boolean, ms: number, step = 50): Promise<boolean> {
  const t0 = Date.now();
  while (!pred()) {
    if (Date.now() - t0 > ms) return false;
    await sleep(step);
  }
  return true;
}
