/**
 * What make stress fuzzes: for each parser, valid seed inputs (built from a
 * real repository with real git where they are Git data), a mutator, and
 * one run of the real code on an input. A run returns the clean error it
 * ended with (null: a normal result) or throws: a thrown error the target
 * does not count as clean is a crash, a real bug.
 */
import { spawn, spawnSync } from 'node:child_process';
import { createHash } from 'node:crypto';
import * as fs from 'node:fs';
import * as net from 'node:net';
import * as path from 'node:path';
import { PassThrough } from 'node:stream';
import { ByteReader } from '../../src/git/byte_reader';
import { applyDelta, DeltaError } from '../../src/git/delta';
import { FsckError, fsckObject, newSpecialBlobs } from '../../src/git/fsck';
import { PackIndexer, PackIndexError } from '../../src/git/index_pack';
import { hashObject, ObjectFormatError } from '../../src/git/object';
import { ObjectCorruptError, ObjectStore } from '../../src/git/odb';
import { PackError, PackFile, parseEntryHeader } from '../../src/git/pack';
import { PackIndex, PackIndexError as IdxError } from '../../src/git/pack_index';
import { pktLine, PktReader, ProtocolError, FLUSH, DELIM } from '../../src/git/pktline';
import { receivePack } from '../../src/git/receive_pack';
import { Repository } from '../../src/git/repository';
import { uploadPack } from '../../src/git/upload_pack';
import { inflatePrefix } from '../../src/git/zlib_handle';
import { ConfigError, crossCheck, loadConfig, loadSecrets } from '../../src/config/load';
import type { Config } from '../../src/config/schema';
import type { Secrets } from '../../src/config/secrets';
import { notifyWarnings } from '../../src/notify/request';
import { HeadError, MAX_HEAD, parseHead, readHead } from '../../src/gotd/http_head';
import { basicCredentials, clientAddress, webRequest } from '../../src/gotd/web_request';
import { gitEnv, MKREPO, ROOT } from '../lib/util';
import {
  mutate, mutateLines, mutatePack, mutatePkts, Rng, type PackLayout,
} from './fuzz_mutate';

export interface Target {
  name: string;
  /** What the row calls it. */
  title: string;
  /** Builds the seeds (and whatever the runs need) under `work`. */
  setup(work: string): Promise<void>;
  seeds(): Buffer[];
  mutate(rng: Rng, seed: Buffer, all: Buffer[]): Buffer;
  /** One run: the clean error it ended with, or null for a normal result. Throws on anything else. */
  run(input: Buffer): Promise<string | null>;
  /** Which thrown errors are clean (the engine's own refusals). */
  clean(err: unknown): boolean;
  /** After the last input: a problem found (a damaged repository), or null; and a note for the log. */
  finish?(): Promise<{ problem: string | null; note: string }>;
}

/** An error the harness found in the engine's behaviour rather than one the engine threw. */
export class Finding extends Error {
  override name = 'Finding';
}

// ------------------------------------------------------------- helpers

const FIXED_DATES = { GIT_AUTHOR_DATE: '1700000000 +0000', GIT_COMMITTER_DATE: '1700000000 +0000' };

function git(args: string[], opts: { cwd?: string; input?: string | Buffer } = {}): Buffer {
  const r = spawnSync('git', args, { env: gitEnv(FIXED_DATES), cwd: opts.cwd, input: opts.input, maxBuffer: 1 << 28 });
  if (r.status !== 0) throw new Error(`git ${args.join(' ')} failed: ${r.stderr}`);
  return r.stdout;
}

function gitText(args: string[], opts: { cwd?: string; input?: string } = {}): string {
  return git(args, opts).toString('utf8').trim();
}

/** The small mkrepo repository, built once per worker into `work`. */
function smallRepo(work: string): string {
  const dir = path.join(work, 'small.git');
  if (!fs.existsSync(dir)) {
    const r = spawnSync('env', ['-u', 'NODE_OPTIONS', MKREPO, dir, '-q', '--preset', 'small'], { env: gitEnv(), encoding: 'utf8' });
    if (r.status !== 0) throw new Error(`mkrepo failed: ${r.stderr}`);
  }
  return dir;
}

/** A deterministic stream of chunk sizes for an input (so a replay splits it the same way). */
function chunker(input: Buffer): Rng {
  return new Rng(createHash('sha1').update(input).digest().readUInt32BE(0));
}

/** Writes input into a PassThrough in random pieces (sometimes all at once), then ends it. */
function feed(input: Buffer, rng: Rng): PassThrough {
  const s = new PassThrough();
  if (rng.chance(0.3)) {
    s.end(input);
    return s;
  }
  let p = 0;
  while (p < input.length) {
    // tiny pieces only near the start: a megabyte in 4-byte writes is a test of PassThrough, not of us
    const n = p < 8192 && rng.chance(0.5) ? rng.range(1, 8) : rng.range(1, 65536);
    s.write(input.subarray(p, p + n));
    p += n;
  }
  s.end();
  return s;
}

/** An output that swallows everything; resolves `ended` when the session ends it. */
function sink(): { out: PassThrough; bytes: () => number } {
  const out = new PassThrough();
  let bytes = 0;
  out.on('data', (b: Buffer) => { bytes += b.length; });
  return { out, bytes: () => bytes };
}

/** The input with a one-byte variant selector in front; mutations touch only the body. */
function variantOf(input: Buffer): { v: number; body: Buffer } {
  return { v: input.length > 0 ? input[0]! : 0, body: input.subarray(1) };
}

function withVariant(v: number, body: Buffer): Buffer {
  return Buffer.concat([Buffer.from([v]), body]);
}

// ------------------------------------------------------------- 1. pkt-line reader

function pktlineTarget(): Target {
  const seeds: Buffer[] = [];
  const dict = ['want ' + 'a'.repeat(40), 'done', 'command=fetch', 'have ' + '0'.repeat(40), 'shallow ' + 'b'.repeat(40), 'deepen 1', ''];
  return {
    name: 'pktline', title: 'pkt-line reader',
    async setup() {
      const oid = '1b74e282849f1b74e282849f1b74e282849f1b74';
      seeds.push(Buffer.concat([pktLine(`want ${oid} multi_ack_detailed side-band-64k thin-pack ofs-delta`), pktLine(`want ${oid}`), FLUSH, pktLine(`have ${oid}`), pktLine('done')]));
      seeds.push(Buffer.concat([pktLine('command=fetch'), pktLine('agent=git/2.39.5'), DELIM, pktLine('thin-pack'), pktLine(`want ${oid}`), pktLine('done'), FLUSH, Buffer.from('0002')]));
      seeds.push(Buffer.concat([pktLine(`${'0'.repeat(40)} ${oid} refs/heads/x\0report-status side-band-64k`), FLUSH, Buffer.from('PACK\0\0\0\x02\0\0\0\0', 'latin1'), Buffer.alloc(20, 7)]));
      seeds.push(Buffer.concat([Buffer.from('0004'), Buffer.from('0000'), Buffer.from('0001'), Buffer.from('fff0'), Buffer.alloc(0xfff0 - 4, 0x61)]));
    },
    seeds: () => seeds,
    mutate: (rng, seed, all) => (rng.chance(0.6) ? mutatePkts(rng, seed, all, dict) : mutate(rng, seed, all)),
    async run(input) {
      const rng = chunker(input);
      const bytes = new ByteReader(feed(input, rng), rng.chance(0.5) ? 1 << 20 : rng.range(1, 64));
      const pkts = new PktReader(bytes);
      let n = 0;
      for (;;) {
        const p = await pkts.read();
        if (p.kind === 'eof') break;
        if (++n > 1e6) throw new Finding('more packets than the input can hold');
        if (p.kind === 'data' && p.data.length > 65516) throw new Finding(`data packet of ${p.data.length} bytes`);
        if (p.kind === 'flush' && rng.chance(0.3)) {
          // what follows the lines is raw (a packfile): take it as it comes
          while ((await bytes.readSome(rng.range(1, 100))) !== null);
          if (!(await bytes.atEnd())) throw new Finding('bytes left after readSome returned null');
          break;
        }
      }
      return null;
    },
    clean: (err) => err instanceof ProtocolError,
  };
}

// ------------------------------------------------------------- 2. upload-pack

function uploadTarget(): Target {
  const seeds: Buffer[] = [];
  const dict: string[] = ['done', 'deepen 1', 'deepen 2147483648', 'deepen-relative', 'deepen-since 0', 'deepen-not refs/heads/main',
    'thin-pack', 'ofs-delta', 'no-progress', 'include-tag', 'wait-for-done', 'filter blob:none', 'command=ls-refs', 'command=fetch',
    'object-format=sha1', 'object-format=sha256', 'agent=x', 'server-option', 'peel', 'symrefs', 'unborn', 'ref-prefix refs/',
    'ref-prefix ', 'multi_ack', 'multi_ack_detailed', 'side-band', 'side-band-64k', 'no-done', 'shallow', 'deepen-since 99999999999999999'];
  let repo: Repository;
  return {
    name: 'upload', title: 'upload-pack request (v0, v2)',
    async setup(work) {
      const dir = smallRepo(work);
      repo = Repository.open(dir);
      const rev = (r: string) => gitText(['--git-dir', dir, 'rev-parse', r]);
      const main = rev('main');
      const old = rev('main~400');
      const mid = rev('main~390');
      const branches = gitText(['--git-dir', dir, 'for-each-ref', '--format=%(objectname) %(refname)']).split('\n');
      const tag = branches.find((l) => l.includes('refs/tags/'))!.split(' ')[0]!;
      const other = branches.find((l) => l.includes('refs/heads/') && !l.endsWith('/main'))!.split(' ')[0]!;
      dict.push(`want ${main}`, `have ${old}`, `have ${mid}`, `shallow ${old}`, `want ${tag}`, `want ${other}`, main, old, tag, other);
      const caps = 'multi_ack_detailed side-band-64k thin-pack ofs-delta no-progress include-tag agent=git/2.39.5';
      const v0 = (...parts: (string | Buffer)[]) => withVariant(0, Buffer.concat(parts.map((p) => (typeof p === 'string' ? pktLine(p) : p))));
      const v2 = (...parts: (string | Buffer)[]) => withVariant(2, Buffer.concat(parts.map((p) => (typeof p === 'string' ? pktLine(p) : p))));
      seeds.push(
        v0(`want ${mid} ${caps}`, FLUSH, 'done'),
        v0(`want ${mid} multi_ack side-band ofs-delta`, `want ${other}`, FLUSH, `have ${old}`, FLUSH, `have ${rev('main~395')}`, 'done'),
        v0(`want ${mid} ${caps} deepen-relative`, 'deepen 2', FLUSH, 'done'),
        v0(`want ${mid} ${caps} shallow deepen-since`, `shallow ${old}`, 'deepen-since 1600000000', FLUSH, 'done'),
        v0(`want ${main} ${caps} shallow deepen-not no-done`, 'deepen-not refs/heads/main', 'deepen 1', FLUSH, `have ${old}`, 'done'),
        v0(`want ${tag} ${caps}`, `have ${mid}`, FLUSH, 'done'),
        v0(FLUSH),
        v2('command=ls-refs', 'agent=git/2.39.5', 'object-format=sha1', DELIM, 'peel', 'symrefs', 'unborn', 'ref-prefix refs/heads/', 'ref-prefix HEAD', FLUSH),
        v2('command=fetch', 'object-format=sha1', DELIM, 'thin-pack', 'ofs-delta', 'no-progress', `want ${mid}`, `have ${old}`, 'done', FLUSH),
        v2('command=fetch', DELIM, 'ofs-delta', 'include-tag', `want ${mid}`, `have ${old}`, FLUSH, 'command=fetch', DELIM, `want ${mid}`, `have ${old}`, 'done', FLUSH),
        v2('command=fetch', DELIM, `want ${mid}`, `shallow ${old}`, 'deepen 3', 'deepen-relative', 'done', FLUSH),
        v2('command=fetch', DELIM, `want ${main}`, 'deepen-not refs/tags/' + branches.find((l) => l.includes('refs/tags/'))!.split('refs/tags/')[1], 'deepen-since 1600000000', 'wait-for-done', FLUSH, 'command=fetch', DELIM, `want ${main}`, 'deepen 1', 'done', FLUSH),
        v2('command=ls-refs', DELIM, FLUSH, 'command=fetch', DELIM, `want ${main}`, 'deepen 1', 'done', FLUSH, FLUSH),
      );
    },
    seeds: () => seeds,
    mutate(rng, seed, all) {
      const { v, body } = variantOf(seed);
      const others = all.map((s) => s.subarray(1));
      return withVariant(rng.chance(0.02) ? 2 - v : v, rng.chance(0.85) ? mutatePkts(rng, body, others, dict) : mutate(rng, body, others));
    },
    async run(input) {
      const { v, body } = variantOf(input);
      const log: string[] = [];
      const { out } = sink();
      const inStream = feed(body, chunker(input));
      const outcome = await uploadPack(repo, { input: inStream, output: out }, { protocol: v === 2 ? 2 : 0, log: (l) => log.push(l) });
      const internal = log.find((l) => l.includes('internal error'));
      if (internal) throw new Finding(internal);
      if (!out.writableEnded) throw new Finding('upload-pack resolved without ending its output');
      return outcome.ok ? null : (outcome.error ?? 'failed without a reason');
    },
    clean: () => false, // uploadPack must never throw
  };
}

// ------------------------------------------------------------- 3. receive-pack

function receiveTarget(copyEvery: number): Target {
  const seeds: Buffer[] = [];
  const dict: string[] = ['report-status', 'report-status-v2', 'side-band-64k', 'atomic', 'push-options', 'delete-refs', 'quiet', 'ofs-delta',
    'push-cert=x', 'shallow ' + 'c'.repeat(40), 'refs/heads/main', 'refs/heads/../x', 'refs/tags/v1', 'HEAD', 'refs/heads/x.lock', 'ci.skip', ''];
  let base = '';
  let work = '';
  let copy: string | null = null;
  let inputsInCopy = 0;
  let changed = false;
  const damaged: string[] = [];
  let checked = 0;
  let accepted = 0;

  async function fsck(dir: string): Promise<void> {
    const r = await new Promise<{ code: number | null; err: string }>((resolve) => {
      const c = spawn('git', ['--git-dir', dir, 'fsck', '--strict', '--no-progress'], { env: gitEnv(), stdio: ['ignore', 'ignore', 'pipe'] });
      let err = '';
      c.stderr.on('data', (b: Buffer) => { err += b.toString(); });
      c.on('close', (code) => resolve({ code, err }));
    });
    checked++;
    if (r.code !== 0) {
      const keep = `${dir}.damaged`;
      fs.renameSync(dir, keep);
      damaged.push(`${keep}: ${r.err.trim().split('\n')[0]}`);
    }
  }

  async function retire(): Promise<void> {
    if (!copy) return;
    if (changed) await fsck(copy);
    fs.rmSync(copy, { recursive: true, force: true });
    copy = null;
  }

  return {
    name: 'receive', title: 'receive-pack request v0 and its pack',
    async setup(w) {
      work = w;
      base = smallRepo(work);
      const scratch = path.join(work, 'scratch');
      git(['clone', '-q', base, scratch]);
      const rev = (r: string) => gitText(['rev-parse', r], { cwd: scratch });
      const main = rev('main');
      const files = gitText(['ls-files'], { cwd: scratch }).split('\n').filter((f) => f.endsWith('.c') || f.endsWith('.md'));
      fs.appendFileSync(path.join(scratch, files[0]!), 'int fuzz_added(void) { return 1; }\n');
      fs.writeFileSync(path.join(scratch, 'NEWFILE.txt'), 'new file for the fuzzer\n'.repeat(20));
      fs.writeFileSync(path.join(scratch, '.gitmodules'), '[submodule "lib"]\n\tpath = lib\n\turl = https://example.org/lib.git\n');
      git(['add', '-A'], { cwd: scratch });
      git(['commit', '-q', '-m', 'fuzz one'], { cwd: scratch });
      const one = rev('HEAD');
      fs.appendFileSync(path.join(scratch, files[1]!), 'more text from the fuzzer\n');
      git(['commit', '-q', '-am', 'fuzz two'], { cwd: scratch });
      const two = rev('HEAD');
      git(['tag', '-a', '-m', 'fuzz tag', 'fuzz-tag', one], { cwd: scratch });
      const tagObj = rev('fuzz-tag');
      const other = gitText(['--git-dir', base, 'for-each-ref', '--format=%(objectname) %(refname)', 'refs/heads/']).split('\n')
        .map((l) => l.split(' ')).find((x) => x[1] !== 'refs/heads/main')!;
      const pack = (revs: string, extra: string[]) => git(['pack-objects', '--stdout', '--revs', '-q', '--threads=1', ...extra], { cwd: scratch, input: revs });
      const Z = '0'.repeat(40);
      dict.push(main, one, two, tagObj, other[0]!, other[1]!);
      const req = (cmds: string[], caps: string, opts: string[], pk: Buffer | null) => {
        const parts: Buffer[] = cmds.map((c, i) => pktLine(i === 0 ? `${c}\0${caps}` : c));
        parts.push(FLUSH);
        if (opts.length) parts.push(...opts.map((o) => pktLine(o)), FLUSH);
        if (pk) parts.push(pk);
        return Buffer.concat(parts);
      };
      const thin = pack(`${two}\n^${main}\n`, ['--thin', '--delta-base-offset']);
      const full = pack(`${two}\n^${main}\n`, []);
      seeds.push(
        req([`${main} ${two} refs/heads/main`], 'report-status side-band-64k ofs-delta agent=git/2.39.5', [], thin),
        req([`${Z} ${one} refs/heads/fuzz-new`, `${main} ${two} refs/heads/main`], 'report-status-v2 atomic push-options', ['ci.skip', 'notify=no'], full),
        req([`${other[0]} ${Z} ${other[1]}`], 'report-status delete-refs quiet', [], null),
        req([`${Z} ${tagObj} refs/tags/fuzz-tag`], 'report-status side-band-64k', [], pack(`${tagObj}\n^${main}\n`, ['--thin'])),
        req([`${main} ${one} refs/heads/main`, `${Z} ${two} refs/heads/two`], 'report-status ofs-delta', [], pack(`${one}\n${two}\n^${main}\n`, ['--delta-base-offset'])),
        req([`${main} ${Z} refs/heads/main`], 'report-status delete-refs', [], null),
      );
      for (const s of seeds.slice()) if (s.length > 0) seeds.push(Buffer.concat([pktLine(`shallow ${main}`), s]));
    },
    seeds: () => seeds,
    mutate(rng, seed, all) {
      const cut = seed.indexOf('PACK');
      if (cut > 0 && rng.chance(0.5)) {
        // the pack after the commands
        const head = seed.subarray(0, cut);
        const pk = seed.subarray(cut);
        return Buffer.concat([head, mutatePack(rng, pk, layoutOf(pk), [])]);
      }
      return rng.chance(0.85) ? mutatePkts(rng, seed, all, dict) : mutate(rng, seed, all);
    },
    async run(input) {
      if (!copy || inputsInCopy >= copyEvery) {
        await retire();
        copy = path.join(work, `recv-${Date.now().toString(36)}-${process.pid}.git`);
        fs.cpSync(base, copy, { recursive: true });
        inputsInCopy = 0;
        changed = false;
      }
      inputsInCopy++;
      const repo = Repository.open(copy);
      const log: string[] = [];
      const { out } = sink();
      try {
        const outcome = await receivePack(repo, { input: feed(input, chunker(input)), output: out }, {
          protocol: 0, protect: { branches: ['refs/heads/protected'], branchNamespaces: [], tagNamespaces: ['refs/tags/'] },
          log: (l) => log.push(l),
        });
        const internal = log.find((l) => l.includes('internal error'));
        if (internal) throw new Finding(internal);
        if (!out.writableEnded) throw new Finding('receive-pack resolved without ending its output');
        if (outcome.updates.some((u) => u.ok)) {
          changed = true;
          accepted++;
        }
        if (outcome.error) return outcome.error;
        const refused = outcome.updates.find((u) => !u.ok);
        return refused ? `ng ${refused.reason ?? ''}` : null;
      } finally {
        repo.objects.close();
      }
    },
    clean: () => false, // receivePack must never throw
    async finish() {
      await retire();
      return {
        problem: damaged.length ? `${damaged.length} of ${checked} repositories fail git fsck --strict: ${damaged[0]}` : null,
        note: `${accepted} pushes accepted; git fsck --strict passed on ${checked - damaged.length} of ${checked} changed repositories`,
      };
    },
  };
}

/** Entry boundaries of a well-formed pack (null when it is not one). */
const layouts = new Map<string, PackLayout | null>();
export function layoutOf(pack: Buffer): PackLayout | null {
  const key = createHash('sha1').update(pack).digest('hex');
  if (layouts.has(key)) return layouts.get(key)!;
  let layout: PackLayout | null = null;
  try {
    const count = pack.readUInt32BE(8);
    const entries: PackLayout['entries'] = [];
    let p = 12;
    for (let i = 0; i < count; i++) {
      const h = parseEntryHeader(pack, p, p);
      const r = inflatePrefix(pack.subarray(p + h.headerLength, pack.length - 20), h.size);
      if (!r) throw new Error('short');
      entries.push({ offset: p, dataAt: p + h.headerLength, end: p + h.headerLength + r.consumed });
      p += h.headerLength + r.consumed;
    }
    layout = { entries };
  } catch {
    layout = null;
  }
  if (layouts.size < 64) layouts.set(key, layout);
  return layout;
}

// ------------------------------------------------------------- 4a. index-pack

function indexPackTarget(): Target {
  const seeds: Buffer[] = [];
  let repo: Repository;
  let dir = '';
  return {
    name: 'index-pack', title: 'pack parsing and indexing (index-pack)',
    async setup(work) {
      const small = smallRepo(work);
      repo = Repository.open(small);
      dir = path.join(work, 'ipack');
      fs.mkdirSync(path.join(dir, 'pack'), { recursive: true });
      const pack = (revs: string, extra: string[]) => git(['--git-dir', small, 'pack-objects', '--stdout', '--revs', '-q', '--threads=1', ...extra], { input: revs });
      const tag = gitText(['--git-dir', small, 'for-each-ref', '--format=%(objectname)', 'refs/tags/']).split('\n')[0]!;
      seeds.push(
        pack('main~380\n^main~390\n', ['--delta-base-offset']),       // OFS_DELTA
        pack('main~350\n^main~356\n', []),                            // REF_DELTA inside the pack
        pack('main~300\n^main~305\n', ['--thin', '--delta-base-offset']), // thin: REF_DELTA to repository objects
        pack(`${tag}\n^${tag}~3\n`, ['--thin']),
        pack('main~419\n', ['--delta-base-offset']),                  // the first commit's tree, whole
      );
    },
    seeds: () => seeds,
    mutate: (rng, seed, all) => mutatePack(rng, seed, layoutOf(seed), all),
    async run(input) {
      const packDir = path.join(dir, 'pack');
      const special = newSpecialBlobs();
      try {
        const r = await PackIndexer.run(new ByteReader(feed(input, chunker(input))), packDir, {
          bases: repo.objects,
          check: (oid, type, data) => fsckObject(oid, type, data, special),
          maxInputBytes: 8 << 20,
          maxObjectBytes: 16 << 20,
        });
        if (!r.name) return null;
        // What was written must read back, every object hashing to its name.
        const store = new ObjectStore(dir);
        try {
          const file = store.packs[0];
          if (!file || store.packs.length !== 1) throw new Finding('indexed pack does not open');
          for (let p = 0; p < file.count; p++) {
            const oid = file.oidAt(p);
            const obj = store.read(oid);
            if (!obj) throw new Finding(`indexed object ${oid} cannot be read`);
            if (hashObject(obj.type, obj.data) !== oid) throw new Finding(`indexed object ${oid} reads back with another hash`);
          }
        } finally {
          store.close();
        }
        return null;
      } finally {
        for (const f of fs.readdirSync(packDir)) fs.rmSync(path.join(packDir, f), { force: true });
      }
    },
    clean: (err) => err instanceof PackIndexError || err instanceof FsckError,
  };
}

// ------------------------------------------------------------- 4b. idx files

function idxTarget(): Target {
  const seeds: Buffer[] = [];
  let dir = '';
  let packName = '';
  return {
    name: 'idx', title: 'idx parsing and reads through it',
    async setup(work) {
      const small = smallRepo(work);
      dir = path.join(work, 'idx');
      fs.mkdirSync(path.join(dir, 'pack'), { recursive: true });
      const pk = git(['--git-dir', small, 'pack-objects', '--stdout', '--revs', '-q', '--threads=1', '--delta-base-offset'], { input: 'main~370\n^main~390\n' });
      const src = path.join(work, 'idx-src.pack');
      fs.writeFileSync(src, pk);
      git(['index-pack', '-o', path.join(work, 'a.idx'), src]);
      git(['index-pack', '--index-version=2,0x400', '-o', path.join(work, 'b.idx'), src]); // 64-bit offsets
      const sum = pk.subarray(pk.length - 20).toString('hex');
      packName = `pack-${sum}`;
      fs.copyFileSync(src, path.join(dir, 'pack', `${packName}.pack`));
      seeds.push(fs.readFileSync(path.join(work, 'a.idx')), fs.readFileSync(path.join(work, 'b.idx')));
    },
    seeds: () => seeds,
    mutate(rng, seed, all) {
      if (rng.chance(0.5) && seed.length > 1100) {
        // a table entry: fan-out, offsets, or the 64-bit table
        const out = Buffer.from(seed);
        const n = seed.readUInt32BE(8 + 255 * 4);
        const regions = [[8, 1024], [8 + 1024 + 24 * n, 4 * n], [8 + 1024 + 28 * n, Math.max(4, seed.length - 40 - (8 + 1024 + 28 * n))]] as const;
        const [at, len] = rng.pick(regions);
        const p = at + 4 * rng.int(Math.max(1, Math.floor(len / 4)));
        if (p + 4 <= out.length) {
          const v = out.readUInt32BE(p);
          out.writeUInt32BE(rng.pick([0, 1, v + 1, v - 1, v ^ 0x80000000, 0x80000000, 0x80000001, 0x7fffffff, 0xffffffff, n, n + 1].map((x) => x >>> 0)), p);
        }
        return out;
      }
      return mutate(rng, seed, all);
    },
    async run(input) {
      // The index alone, in memory.
      const idx = PackIndex.fromBuffer(input);
      for (let i = 0; i < Math.min(idx.count, 5000); i++) {
        idx.oid(i);
        idx.crc32(i);
        idx.offset(i);
        if (i % 7 === 0 && idx.find(idx.oidBytes(i)) < 0) {
          // a name the index lists but cannot find: unsorted names, a broken fan-out; not a crash
        }
      }
      // The index next to its pack, read through the object store as a session would.
      const idxPath = path.join(dir, 'pack', `${packName}.idx`);
      fs.writeFileSync(idxPath, input);
      try {
        PackFile.open(path.join(dir, 'pack', `${packName}.pack`)).close();
      } catch (err) {
        fs.rmSync(idxPath, { force: true });
        throw err;
      }
      const store = new ObjectStore(dir);
      try {
        const file = store.packs[0];
        if (!file) return 'pack not opened';
        for (let p = 0; p < Math.min(file.count, 5000); p++) {
          const oid = file.oidAt(p);
          store.header(oid);
          store.read(oid);
        }
        return null;
      } finally {
        store.close();
        fs.rmSync(idxPath, { force: true });
      }
    },
    clean: (err) => err instanceof IdxError || err instanceof PackError || err instanceof ObjectCorruptError || err instanceof ObjectFormatError,
  };
}

// ------------------------------------------------------------- 5. delta application

function deltaTarget(): Target {
  const seeds: Buffer[] = [];
  const pair = (base: Buffer, delta: Buffer) => {
    const head = Buffer.alloc(4);
    head.writeUInt32BE(base.length);
    return Buffer.concat([head, base, delta]);
  };
  const unpair = (input: Buffer): { base: Buffer; delta: Buffer } => {
    const n = input.length >= 4 ? Math.min(input.readUInt32BE(0), input.length - 4) : 0;
    return { base: input.subarray(4, 4 + n), delta: input.subarray(4 + n) };
  };
  return {
    name: 'delta', title: 'delta application',
    async setup(work) {
      const small = smallRepo(work);
      const store = new ObjectStore(path.join(small, 'objects'));
      const file = store.packs[0]!;
      for (let p = 0; p < file.count && seeds.length < 300; p++) {
        const raw = file.rawEntry(p);
        const h = parseEntryHeader(raw, 0, file.offsetOf(p));
        if (h.type !== 6 && h.type !== 7) continue;
        if (p % 5 !== 0) continue;
        const r = inflatePrefix(Buffer.from(raw.subarray(h.headerLength)), h.size);
        if (!r) continue;
        const baseOid = h.type === 6 ? file.oidAt(file.positionAt(h.baseOffset)) : raw.toString('hex', h.baseNameAt, h.baseNameAt + 20);
        const base = store.read(baseOid);
        if (base && base.data.length < 200000) seeds.push(pair(base.data, Buffer.from(r.data)));
      }
      store.close();
      if (seeds.length < 10) throw new Error('too few deltas in the small repository');
    },
    seeds: () => seeds,
    mutate(rng, seed, all) {
      const { base, delta } = unpair(seed);
      const r = rng.next();
      if (r < 0.1) return pair(mutate(rng, base, []), delta);
      if (r < 0.25) {
        // header sizes pushed to extremes, or an extreme copy instruction
        const sizes = [0, 1, Math.max(0, base.length - 1), base.length + 1, 0xffffff, 2 ** 31, 2 ** 32, 2 ** 32 + 5, 2 ** 48, 2 ** 49 - 1];
        const varint = (v: number) => {
          const b: number[] = [];
          do {
            let c = v % 128;
            v = Math.floor(v / 128);
            if (v) c |= 0x80;
            b.push(c);
          } while (v > 0);
          return Buffer.from(b);
        };
        if (rng.chance(0.5)) {
          const src = rng.chance(0.5) ? base.length : rng.pick(sizes);
          const dst = rng.pick(sizes);
          let p = 0;
          while (delta[p]! & 0x80) p++;
          p++;
          while (delta[p]! & 0x80) p++;
          p++;
          return pair(base, Buffer.concat([varint(src), varint(dst), delta.subarray(p)]));
        }
        const op = Buffer.from([0xff, rng.int(256), rng.int(256), rng.int(256), rng.int(256), rng.int(256), rng.int(256), rng.int(256)]);
        const at = rng.int(delta.length + 1);
        return pair(base, Buffer.concat([delta.subarray(0, at), op.subarray(0, rng.range(1, 8)), delta.subarray(at)]));
      }
      return pair(base, mutate(rng, delta, all.map((s) => unpair(s).delta)));
    },
    async run(input) {
      const { base, delta } = unpair(input);
      const out = applyDelta(base, delta);
      if (!Buffer.isBuffer(out)) throw new Finding('applyDelta returned no buffer');
      return null;
    },
    clean: (err) => err instanceof DeltaError,
  };
}

// ------------------------------------------------------------- 6. config and secrets

function configTarget(): Target {
  const seeds: Buffer[] = [];
  let dir = '';
  let good: { config: Config; secrets: Secrets } | null = null;
  const owner = { uid: process.getuid!(), gid: process.getgid!() };
  const dict = ['[[repository]]', '[websocket]', '[connection]', '[users.x]', '[hmac]', '[auth.x]', 'name = "a/../b"', 'path = "/"', 'user = "root"',
    'listen = ""', 'access = ["permit rw anonymous"]', 'access = ["deny :"]', 'limit = 99999999999999999999', 'timeout = "-1s"', 'rate = "0/s"',
    'password = "$scrypt$ln=1,r=1,p=1$AA$AA"', 'groups = [1, 2]', 'x = { a = { b = [[]] } }', 'protect = { branch = ["main"] }', '[[repository.notify.http]]',
    'url = "http://x:99999/"', 'hmac = "nope"', 'auth = "ci"', '[repository.protect]', 'a = 1979-05-27T07:32:00Z', 'b = inf', 'c = nan', 'd = 0x10',
    'e = """', "f = '''", '"' + 'k'.repeat(300) + '" = 1', '[a.b.c.d.e.f.g]', 'g = [' + '['.repeat(50) + ']'.repeat(50) + ']'];
  return {
    name: 'config', title: 'TOML config and secrets loaders',
    async setup(work) {
      dir = path.join(work, 'cfg');
      fs.mkdirSync(dir, { recursive: true });
      const conf = [path.join(ROOT, 'etc/gotd.conf'), path.join(ROOT, 'regress/fixtures/contract-example.conf')];
      for (const f of conf) seeds.push(withVariant(0, fs.readFileSync(f)));
      const sec = path.join(ROOT, 'etc/gotd-secrets.conf');
      seeds.push(withVariant(1, fs.readFileSync(sec)));
      const s = path.join(dir, 'good-secrets.conf');
      fs.copyFileSync(sec, s);
      fs.chmodSync(s, 0o600);
      good = { config: loadConfig(conf[0]!).config, secrets: loadSecrets(s, owner).secrets };
      for (const l of [...fs.readFileSync(conf[0]!, 'utf8').split('\n'), ...fs.readFileSync(sec, 'utf8').split('\n')]) if (l.trim() && !l.startsWith('#')) dict.push(l);
    },
    seeds: () => seeds,
    mutate(rng, seed, all) {
      const { v, body } = variantOf(seed);
      const others = all.map((s) => s.subarray(1));
      let out = body;
      for (let k = rng.chance(0.6) ? 1 : rng.range(2, 4); k > 0; k--) out = rng.chance(0.6) ? mutateLines(rng, out, others, dict) : mutate(rng, out, others);
      return withVariant(v, out);
    },
    async run(input) {
      const { v, body } = variantOf(input);
      const file = path.join(dir, v === 1 ? 'gotd-secrets.conf' : 'gotd.conf');
      fs.writeFileSync(file, body, { mode: 0o600 });
      if (v === 1) {
        const { secrets } = loadSecrets(file, owner);
        crossCheck(good!.config, secrets, file);
      } else {
        const { config } = loadConfig(file);
        notifyWarnings(config, file);
        crossCheck(config, good!.secrets, file);
      }
      return null;
    },
    clean: (err) => err instanceof ConfigError,
  };
}

// ------------------------------------------------------------- 7. WebSocket upgrade request

function httpTarget(): Target {
  const seeds: Buffer[] = [];
  const trusted = new net.BlockList();
  trusted.addSubnet('127.0.0.0', 8, 'ipv4');
  trusted.addAddress('::1', 'ipv6');
  const dict = ['Authorization: Basic ' + Buffer.from('alice:pw').toString('base64'), 'Authorization: Basic ====', 'Authorization: Bearer x',
    'X-Forwarded-For: 10.0.0.1, 127.0.0.1', 'X-Forwarded-For: [::ffff:1.2.3.4%eth0]', 'X-Forwarded-For: garbage', 'Git-Protocol: version=2',
    'Upgrade: websocket', 'Connection: Upgrade', 'Sec-WebSocket-Version: 13', 'Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==', 'Host: x', ': x', 'X:', '\t'];
  const head = (lines: string[]) => Buffer.from(lines.join('\r\n') + '\r\n\r\n', 'latin1');
  return {
    name: 'http', title: 'WebSocket upgrade request head',
    async setup() {
      const ws = ['Host: git.example.org', 'Upgrade: websocket', 'Connection: keep-alive, Upgrade', 'Sec-WebSocket-Version: 13', 'Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ=='];
      seeds.push(
        head(['GET /project.git?service=git-upload-pack HTTP/1.1', ...ws, 'Git-Protocol: version=2']),
        head(['GET /team/app%20x.git?service=git-receive-pack HTTP/1.1', ...ws, `Authorization: Basic ${Buffer.from('alice:s3cret:with:colons').toString('base64')}`]),
        head(['GET /a.git HTTP/1.1', ...ws, 'X-Forwarded-For: 203.0.113.9, 10.1.2.3, 127.0.0.1', 'X-Forwarded-For: ::ffff:127.0.0.2', `Authorization: basic ${Buffer.from('ci:pw').toString('base64')}`]),
        head(['GET /b.git?service=git-upload-pack&x=1 HTTP/1.0', 'Host: h', 'User-Agent: git/2.39.5']),
        Buffer.concat([head(['GET /c.git HTTP/1.1', ...ws]), Buffer.from('\x81\x05hello', 'latin1')]),
      );
    },
    seeds: () => seeds,
    mutate: (rng, seed, all) => (rng.chance(0.5) ? mutateLines(rng, seed, all, dict.map((d) => d + '\r')) : mutate(rng, seed, all)),
    async run(input) {
      const rng = chunker(input);
      const { head: h, rest } = await readHead(feed(input, rng), MAX_HEAD, 5000);
      const parsed = parseHead(h);
      const address = clientAddress(parsed, rng.chance(0.5) ? '127.0.0.1' : '192.0.2.1', trusted);
      const creds = basicCredentials(parsed);
      if (creds === 'bad') return '401 bad credentials';
      const req = webRequest(parsed, address, creds);
      if (rest.length > 0) return 'data sent before the upgrade was answered';
      return req.accept ? null : 'not a WebSocket handshake';
    },
    clean: (err) => err instanceof HeadError,
  };
}

export const TARGET_NAMES = ['pktline', 'upload', 'receive', 'index-pack', 'idx', 'delta', 'config', 'http'] as const;

/**
 * Targets that misbehave on purpose at input 40, for the harness's own
 * test: a synchronous endless loop, a TypeError, a sudden exit.
 */
function selftestTarget(how: 'hang' | 'crash' | 'exit'): Target {
  let k = 0;
  return {
    name: `selftest-${how}`, title: `selftest ${how}`,
    async setup() { /* nothing */ },
    seeds: () => [Buffer.from('seed')],
    mutate: (rng, seed, all) => mutate(rng, seed, all),
    async run(input) {
      if (++k === 40 || input.toString() === 'misbehave') {
        if (how === 'hang') for (;;) { /* endless */ }
        if (how === 'crash') return (null as unknown as { x: string }).x;
        process.exit(7);
      }
      return k % 2 ? null : 'clean error';
    },
    clean: (err) => err instanceof Finding,
  };
}

export function makeTarget(name: string, opts: { copyEvery?: number } = {}): Target {
  switch (name) {
    case 'selftest-hang': return selftestTarget('hang');
    case 'selftest-crash': return selftestTarget('crash');
    case 'selftest-exit': return selftestTarget('exit');
    case 'pktline': return pktlineTarget();
    case 'upload': return uploadTarget();
    case 'receive': return receiveTarget(opts.copyEvery ?? 40);
    case 'index-pack': return indexPackTarget();
    case 'idx': return idxTarget();
    case 'delta': return deltaTarget();
    case 'config': return configTarget();
    case 'http': return httpTarget();
  }
  throw new Error(`unknown fuzz target ${name}; targets: ${TARGET_NAMES.join(' ')}`);
}

