/**
 * Helpers for the upload-pack tests: run real git against our stdio
 * upload-pack (or stock git-upload-pack, to compare), and speak raw pkt-lines
 * to the entry point for malformed-input tests.
 */
import { spawn } from 'node:child_process';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { BUILD, git, gitEnv } from './util';

export const UPLOAD_PACK_JS = path.join(BUILD, 'src', 'stdio', 'upload_pack.js');
/** tap injects NODE_OPTIONS into children; our server must not carry its hooks. */
export const UPLOAD_PACK = `env -u NODE_OPTIONS node ${UPLOAD_PACK_JS}`;

export type Server = 'ours' | 'stock';

export interface GitVia {
  protocol?: 0 | 1 | 2;
  server?: Server;
  cwd?: string;
}

function pre(opts: GitVia): string[] {
  return ['-c', `protocol.version=${opts.protocol ?? 2}`];
}

function up(opts: GitVia): string[] {
  return opts.server === 'stock' ? [] : [`--upload-pack=${UPLOAD_PACK}`];
}

export function url(gitDir: string): string {
  return `file://${gitDir}`;
}

/** git clone through our upload-pack (or stock); extra args go before the URL. */
export function clone(src: string, dest: string, extra: string[] = [], opts: GitVia = {}): string {
  return git([...pre(opts), 'clone', '-q', ...up(opts), ...extra, url(src), dest], { cwd: opts.cwd });
}

/** git fetch in `repo` from `src` through our upload-pack (or stock); options first, then refspecs, in `extra`. */
export function fetch(repo: string, src: string, extra: string[] = [], opts: GitVia = {}): string {
  const options = extra.filter((a) => a.startsWith('-'));
  const refspecs = extra.filter((a) => !a.startsWith('-'));
  return git(['--git-dir', repo, ...pre(opts), 'fetch', '-q', ...up(opts), ...options, url(src), ...refspecs], { cwd: opts.cwd });
}

export function lsRemote(src: string, extra: string[] = [], opts: GitVia = {}, patterns: string[] = []): string {
  return git([...pre(opts), 'ls-remote', ...up(opts), ...extra, url(src), ...patterns], { cwd: opts.cwd });
}

export interface RawResult {
  code: number | null;
  stdout: Buffer;
  stderr: string;
}

/**
 * Runs the stdio entry point with raw client bytes. The bytes are written
 * after the server's first flush (the advertisement), as a client would.
 */
export function rawSession(repo: string, input: Buffer, protocol: 0 | 1 | 2, timeoutMs = 20000): Promise<RawResult> {
  return new Promise((resolve, reject) => {
    const env = gitEnv(protocol ? { GIT_PROTOCOL: `version=${protocol}` } : {});
    const child = spawn('env', ['-u', 'NODE_OPTIONS', 'node', UPLOAD_PACK_JS, repo], { env, stdio: ['pipe', 'pipe', 'pipe'] });
    const out: Buffer[] = [];
    let err = '';
    let sent = false;
    const timer = setTimeout(() => { child.kill('SIGKILL'); reject(new Error('upload-pack hung')); }, timeoutMs);
    child.stdout.on('data', (b: Buffer) => {
      out.push(b);
      if (!sent && Buffer.concat(out).includes('0000')) {
        sent = true;
        child.stdin.end(input);
      }
    });
    child.stdin.on('error', () => { /* the server may close first */ });
    child.stderr.on('data', (b: Buffer) => { err += b.toString(); });
    child.on('error', reject);
    child.on('close', (code) => {
      clearTimeout(timer);
      resolve({ code, stdout: Buffer.concat(out), stderr: err });
    });
  });
}

/** Splits a server's output into pkt-lines (data as strings; "0000" etc. as markers). */
export function parsePkts(buf: Buffer): string[] {
  const out: string[] = [];
  let p = 0;
  while (p + 4 <= buf.length) {
    const len = parseInt(buf.toString('latin1', p, p + 4), 16);
    if (Number.isNaN(len)) break;
    if (len < 4) {
      out.push(buf.toString('latin1', p, p + 4));
      p += 4;
      continue;
    }
    out.push(buf.toString('latin1', p + 4, p + len));
    p += len;
  }
  return out;
}

/** The shallow boundary a repository records (sorted), '' when complete. */
export function shallowOf(gitDir: string): string {
  const file = path.join(gitDir, 'shallow');
  if (!fs.existsSync(file)) return '';
  return fs.readFileSync(file, 'utf8').split('\n').filter(Boolean).sort().join('\n');
}
