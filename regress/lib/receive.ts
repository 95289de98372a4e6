/**
 * Helpers for the write-path tests: pushing with stock git through our
 * stdio receive-pack, talking raw pkt-lines to it, and snapshots of a
 * repository's objects and refs to prove a refused push changed nothing.
 */
import { spawn, spawnSync } from 'node:child_process';
import { createHash } from 'node:crypto';
import * as zlib from 'node:zlib';
import { encodeEntryHeader } from '../../src/git/pack';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { BUILD, git, gitEnv, fsckStrict, refsOf, run, tmpdir, type RunResult } from './util';

export const RECEIVE_PACK = path.join(BUILD, 'src', 'stdio', 'receive_pack.js');

/** The --receive-pack command line for git push (git runs it through the shell). */
export function receivePackCmd(args: string[] = []): string {
  const q = (s: string) => `'${s.replace(/'/g, `'\\''`)}'`;
  return [process.execPath, RECEIVE_PACK, ...args].map(q).join(' ');
}

export interface PushOptions {
  rpArgs?: string[];
  env?: NodeJS.ProcessEnv;
}

/** git push from `cwd` to the bare repository `remote` through our receive-pack. */
export function push(cwd: string, remote: string, args: string[], opts: PushOptions = {}): Promise<RunResult> {
  return run('git', ['push', '--porcelain', `--receive-pack=${receivePackCmd(opts.rpArgs)}`, remote, ...args], {
    cwd, env: gitEnv(opts.env),
  });
}

/** Porcelain push status per ref: "*"/" "/"+"/"-" for success, "!" for rejected, with the reason. */
export function pushStatus(r: RunResult): Map<string, { flag: string; summary: string }> {
  const out = new Map<string, { flag: string; summary: string }>();
  for (const line of r.stdout.split('\n')) {
    const m = /^([ *+\-!=])\t([^\t]*):([^\t]*)\t(.*)$/.exec(line);
    if (m) out.set(m[3]!, { flag: m[1]!, summary: m[4]! });
  }
  return out;
}

/** A work tree with one commit per call to commit(). */
export class WorkTree {
  private n = 0;
  constructor(readonly dir: string) {}

  static clone(from: string): WorkTree {
    const dir = path.join(tmpdir('gotd-wt-'), 'wt');
    git(['clone', '-q', from, dir]);
    return new WorkTree(dir);
  }

  static init(): WorkTree {
    const dir = path.join(tmpdir('gotd-wt-'), 'wt');
    git(['init', '-q', '-b', 'main', dir]);
    return new WorkTree(dir);
  }

  git(args: string[], env?: NodeJS.ProcessEnv): string {
    return git(args, { cwd: this.dir, ...(env ? { env } : {}) });
  }

  /** Commits a change to `file` (appending a line) and returns the new commit id. */
  commit(file = 'file.txt', content?: string): string {
    this.n++;
    const p = path.join(this.dir, file);
    fs.mkdirSync(path.dirname(p), { recursive: true });
    if (content !== undefined) fs.writeFileSync(p, content);
    else fs.appendFileSync(p, `line ${this.n} ${Date.now()}\n`);
    this.git(['add', file]);
    this.git(['commit', '-q', '-m', `change ${this.n} to ${file}`]);
    return this.rev('HEAD');
  }

  rev(name: string): string {
    return this.git(['rev-parse', name]).trim();
  }
}

/**
 * After a push: the server passes fsck --strict, and a plain clone of it has
 * exactly the refs `expected` (name -> id) says.
 */
export function serverMatches(gitDir: string, expected: Record<string, string>): string {
  const fsck = fsckStrict(gitDir);
  if (fsck) return `fsck: ${fsck}`;
  const dir = path.join(tmpdir('gotd-clone-'), 'c.git');
  git(['clone', '-q', '--mirror', gitDir, dir]);
  const cloneFsck = fsckStrict(dir);
  if (cloneFsck) return `clone fsck: ${cloneFsck}`;
  const want = Object.entries(expected).map(([n, o]) => `${o} ${n}`).sort().join('\n');
  const got = refsOf(dir);
  const server = refsOf(gitDir);
  if (got !== want) return `clone refs:\n${got}\nexpected:\n${want}`;
  if (server !== want) return `server refs:\n${server}\nexpected:\n${want}`;
  return '';
}

/** Every file under objects/ and refs/, packed-refs and HEAD, with a hash of its content. */
export function snapshot(gitDir: string): string {
  const lines: string[] = [];
  const walk = (rel: string): void => {
    const abs = path.join(gitDir, rel);
    let st: fs.Stats;
    try {
      st = fs.statSync(abs);
    } catch {
      return;
    }
    if (st.isDirectory()) {
      for (const e of fs.readdirSync(abs).sort()) walk(path.join(rel, e));
    } else {
      lines.push(`${rel} ${createHash('sha256').update(fs.readFileSync(abs)).digest('hex')}`);
    }
  };
  for (const top of ['objects', 'refs', 'packed-refs', 'HEAD']) walk(top);
  return lines.join('\n');
}

export interface RawResult {
  code: number | null;
  signal: NodeJS.Signals | null;
  stdout: Buffer;
  stderr: string;
}

/** Runs our receive-pack on `gitDir` with `input` as the whole client side. */
export function rawReceive(gitDir: string, input: Buffer, args: string[] = [], env: NodeJS.ProcessEnv = {}): Promise<RawResult> {
  return new Promise((resolve, reject) => {
    const child = spawn(process.execPath, [RECEIVE_PACK, ...args, gitDir], { env: gitEnv(env), stdio: ['pipe', 'pipe', 'pipe'] });
    const out: Buffer[] = [];
    const err: Buffer[] = [];
    child.stdout.on('data', (b: Buffer) => out.push(b));
    child.stderr.on('data', (b: Buffer) => err.push(b));
    child.on('error', reject);
    child.on('close', (code, signal) => resolve({ code, signal, stdout: Buffer.concat(out), stderr: Buffer.concat(err).toString() }));
    child.stdin.on('error', () => { /* it may stop reading early */ });
    child.stdin.end(input);
  });
}

/** Splits pkt-lines (data payloads as text, "0000" as FLUSH); side-band band 1 is unwrapped. */
export function pktLines(buf: Buffer): string[] {
  const out: string[] = [];
  let p = 0;
  while (p + 4 <= buf.length) {
    const len = parseInt(buf.toString('latin1', p, p + 4), 16);
    if (Number.isNaN(len)) break;
    if (len === 0) { out.push('FLUSH'); p += 4; continue; }
    out.push(buf.toString('utf8', p + 4, p + len));
    p += len;
  }
  return out;
}

export function pktLine(s: string): Buffer {
  const b = Buffer.from(s);
  return Buffer.concat([Buffer.from((b.length + 4).toString(16).padStart(4, '0')), b]);
}

/** A pack of the given objects made by git pack-objects (revisions or object ids on stdin). */
export function packObjects(gitDir: string, stdin: string, args: string[] = []): Buffer {
  const r = spawnSync('git', ['--git-dir', gitDir, 'pack-objects', '--stdout', '-q', ...args], {
    input: stdin, env: gitEnv(), maxBuffer: 1 << 30,
  });
  if (r.status !== 0) throw new Error(`pack-objects failed: ${r.stderr.toString()}`);
  return r.stdout;
}

export const ZERO = '0'.repeat(40);

// --- hand-made packs -----------------------------------------------------------

/** A pack with the given raw entries (header + compressed data each), checksummed. */
export function craftPack(entries: Buffer[], count = entries.length): Buffer {
  const head = Buffer.alloc(12);
  head.write('PACK', 0, 'latin1');
  head.writeUInt32BE(2, 4);
  head.writeUInt32BE(count, 8);
  const body = Buffer.concat([head, ...entries]);
  return Buffer.concat([body, createHash('sha1').update(body).digest()]);
}

export function whole(type: number, data: Buffer): Buffer {
  return Buffer.concat([encodeEntryHeader(type, data.length), zlib.deflateSync(data)]);
}

export function varint(n: number): number[] {
  const out: number[] = [];
  do {
    let b = n & 0x7f;
    n = Math.floor(n / 128);
    if (n > 0) b |= 0x80;
    out.push(b);
  } while (n > 0);
  return out;
}

/** A delta that inserts `data` into a target of `dst` bytes from a base of `src` bytes. */
export function insertDelta(src: number, dst: number, data: Buffer): Buffer {
  return Buffer.concat([Buffer.from([...varint(src), ...varint(dst)]), Buffer.from([data.length]), data]);
}

export function refDelta(base: string, delta: Buffer, declared = delta.length): Buffer {
  return Buffer.concat([encodeEntryHeader(7, declared), Buffer.from(base, 'hex'), zlib.deflateSync(delta)]);
}
