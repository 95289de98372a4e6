/**
 * The write path's parts on their own, each checked against git: our .idx
 * is byte-identical to `git index-pack`'s (also with 64-bit offsets), thin
 * packs are completed into packs git verifies, a large blob is indexed
 * without holding it in memory, ref names follow check-ref-format, and
 * lock files and ref transactions behave under contention and crashes.
 */
import t from 'tap';
import { randomBytes } from 'node:crypto';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { spawnSync } from 'node:child_process';
import { ByteReader } from '../src/git/byte_reader';
import { PackIndexer } from '../src/git/index_pack';
import { LockError, LockFile } from '../src/git/lockfile';
import { ObjectStore } from '../src/git/odb';
import { readPackedRefs, RefTransaction, ZERO_OID } from '../src/git/ref_update';
import { refnameProblem } from '../src/git/refname';
import { cleanStale } from '../src/git/quarantine';
import { git, gitEnv, mkrepo, tmpdir } from './lib/util';
import { craftPack, packObjects, refDelta, varint, whole, WorkTree } from './lib/receive';
import { encodeEntryHeader, encodeOfsDelta } from '../src/git/pack';
import { hashObject } from '../src/git/object';
import * as zlib from 'node:zlib';

const noBases = { read: () => null };

async function indexFile(file: string, dir: string, opts: Partial<Parameters<typeof PackIndexer.run>[2]> = {}) {
  fs.mkdirSync(dir, { recursive: true });
  return PackIndexer.run(new ByteReader(fs.createReadStream(file, { highWaterMark: 64 << 10 })), dir, { bases: noBases, ...opts });
}

t.test('idx v2 byte-identical to git index-pack, with and without 64-bit offsets', async (t) => {
  const repo = mkrepo(['--preset', 'small']);
  const pack = fs.readdirSync(path.join(repo, 'objects', 'pack')).find((f) => f.endsWith('.pack'))!;
  const packPath = path.join(repo, 'objects', 'pack', pack);
  const work = tmpdir('gotd-idx-');
  for (const limit of [undefined, 100000, 0]) {
    const out = path.join(work, `out-${limit}`);
    const r = await indexFile(packPath, out, limit === undefined ? {} : { off32Limit: limit });
    t.equal(r.name + '.pack', pack, 'named after its checksum');
    const ours = fs.readFileSync(r.idxPath!);
    const theirs = path.join(work, `git-${limit}.idx`);
    git(['index-pack', ...(limit === undefined ? [] : [`--index-version=2,${limit}`]), '-o', theirs, packPath]);
    t.ok(ours.equals(fs.readFileSync(theirs)), `identical idx (limit ${limit ?? 'default'})`);
    t.ok(fs.readFileSync(r.packPath!).equals(fs.readFileSync(packPath)), 'pack copied verbatim');
  }
});

t.test('a thin pack is completed with bases from the repository', async (t) => {
  const srv = mkrepo(['--preset', 'small']);
  const wt = WorkTree.clone(srv);
  const base = wt.rev('HEAD');
  wt.commit('big.txt', Array.from({ length: 3000 }, (_, i) => `row ${i}`).join('\n') + '\n');
  const mid = wt.rev('HEAD');
  const wt2dir = path.join(wt.dir, '.git');
  // The server gets `mid` first; then a thin pack of one more change, deltified against it.
  const seedPack = packObjects(wt2dir, `${mid}\n^${base}\n`, ['--revs']);
  const server = path.join(tmpdir('gotd-thin-'), 's.git');
  fs.cpSync(srv, server, { recursive: true });
  spawnSync('git', ['--git-dir', server, 'index-pack', '--stdin', '--keep'], { input: seedPack, env: gitEnv() });
  fs.appendFileSync(path.join(wt.dir, 'big.txt'), 'changed\n');
  wt.git(['commit', '-q', '-am', 'change']);
  const thin = packObjects(wt2dir, `${wt.rev('HEAD')}\n^${mid}\n`, ['--revs', '--thin']);
  const thinFile = path.join(tmpdir('gotd-thin-'), 'thin.pack');
  fs.writeFileSync(thinFile, thin);
  await t.rejects(indexFile(thinFile, path.join(tmpdir('gotd-thin-'), 'x')), /unresolved delta/, 'without the repository the bases are missing');
  const store = new ObjectStore(path.join(server, 'objects'));
  const r = await indexFile(thinFile, path.join(tmpdir('gotd-thin-'), 'y'), { bases: store });
  store.close();
  t.ok(r.appended > 0, `${r.appended} base(s) appended`);
  const v = spawnSync('git', ['verify-pack', '-v', r.idxPath!], { env: gitEnv(), encoding: 'utf8' });
  t.equal(v.status, 0, `git verify-pack accepts the completed pack ${v.stderr}`);
  t.match(v.stdout, new RegExp(wt.rev('HEAD')), 'the new commit is in it');
});

t.test('deep delta chains with branches, REF_DELTA before its base, a tiny base budget', async (t) => {
  // Base blob, then a chain of OFS_DELTAs each adding one byte to the one
  // before; every chain link also has a leaf delta placed after the next
  // link, so resolving the leaves needs bases the budget forced out.
  const copyAll = (len: number, add: Buffer): Buffer =>
    Buffer.concat([Buffer.from([...varint(len), ...varint(len + add.length), 0x80 | 0x10 | 0x20, len & 0xff, (len >> 8) & 0xff, add.length]), add]);
  const entries: Buffer[] = [];
  const offsets: number[] = [];
  let at = 12;
  const put = (e: Buffer): number => {
    entries.push(e);
    offsets.push(at);
    at += e.length;
    return offsets.length - 1;
  };
  let content = Buffer.from('base '.repeat(20));
  const first = put(whole(3, content));
  // A REF_DELTA whose base (the blob right after the chain's start) comes later in the pack.
  const later = Buffer.concat([content, Buffer.from('!')]);
  put(refDelta(hashObject('blob', later), copyAll(later.length, Buffer.from('?'))));
  let prev = first;
  const depth = 300;
  for (let i = 0; i < depth; i++) {
    const add = Buffer.from(i === 0 ? '!' : String.fromCharCode(97 + (i % 26)));
    const raw = copyAll(content.length, add);
    const link = put(Buffer.concat([encodeEntryHeader(6, raw.length), encodeOfsDelta(at - offsets[prev]!), zlib.deflateSync(raw)]));
    const leafRaw = copyAll(content.length, Buffer.from('#'));
    put(Buffer.concat([encodeEntryHeader(6, leafRaw.length), encodeOfsDelta(at - offsets[prev]!), zlib.deflateSync(leafRaw)]));
    content = Buffer.concat([content, add]);
    prev = link;
  }
  const file = path.join(tmpdir('gotd-chain-'), 'chain.pack');
  fs.writeFileSync(file, craftPack(entries));
  const r = await indexFile(file, path.join(tmpdir('gotd-chain-'), 'out'), { baseCacheBytes: 4096 });
  t.equal(r.count, 2 + 2 * depth);
  const theirs = path.join(tmpdir('gotd-chain-'), 'git.idx');
  git(['index-pack', '-o', theirs, file]);
  t.ok(fs.readFileSync(r.idxPath!).equals(fs.readFileSync(theirs)), 'idx identical to git index-pack\'s');
});

t.test('a large blob is indexed without holding it in memory', async (t) => {
  const wt = WorkTree.init();
  fs.writeFileSync(path.join(wt.dir, 'big.bin'), randomBytes(96 << 20));
  wt.git(['add', 'big.bin']);
  wt.git(['commit', '-q', '-m', 'big']);
  const packFile = path.join(tmpdir('gotd-big-'), 'big.pack');
  fs.writeFileSync(packFile, packObjects(path.join(wt.dir, '.git'), 'HEAD\n', ['--revs']));
  // In a fresh process, so that nothing of ours inflates the baseline.
  const script = `
    const fs = require('fs');
    const { ByteReader } = require(${JSON.stringify(path.join(__dirname, '..', 'src', 'git', 'byte_reader.js'))});
    const { PackIndexer } = require(${JSON.stringify(path.join(__dirname, '..', 'src', 'git', 'index_pack.js'))});
    const out = process.argv[2];
    fs.mkdirSync(out);
    const base = process.memoryUsage().rss;
    let peak = base;
    // Collect often, so that what is measured is what is held, not garbage not yet collected.
    const timer = setInterval(() => { global.gc(); peak = Math.max(peak, process.memoryUsage().rss); }, 20);
    PackIndexer.run(new ByteReader(fs.createReadStream(process.argv[1], { highWaterMark: 65536 })), out, { bases: { read: () => null } })
      .then((r) => { clearInterval(timer); peak = Math.max(peak, process.memoryUsage().rss); console.log(JSON.stringify({ count: r.count, base, peak })); });
  `;
  const run = spawnSync(process.execPath, ['--expose-gc', '-e', script, packFile, path.join(tmpdir('gotd-big-'), 'out')], { encoding: 'utf8' });
  t.equal(run.status, 0, run.stderr);
  const m = JSON.parse(run.stdout) as { count: number; base: number; peak: number };
  t.equal(m.count, 3);
  const grew = (m.peak - m.base) / (1 << 20);
  t.ok(grew < 48, `memory grew by ${grew.toFixed(1)} MiB while indexing a 96 MiB blob (less than half a copy)`);
});

t.test('ref names: our rules are check-ref-format\'s', async (t) => {
  const names = ['refs/heads/main', 'refs/heads/a/b', 'refs/heads/.hidden', 'refs/heads/a..b', 'refs/heads/a.lock', 'refs/heads/a.lock/b',
    'refs/heads/a b', 'refs/heads/a~1', 'refs/heads/a^', 'refs/heads/a:b', 'refs/heads/a?', 'refs/heads/a*', 'refs/heads/a[', 'refs/heads/a\\b',
    'refs/heads/a//b', 'refs/heads/a/', '/refs/heads/a', 'refs/heads/a.', 'refs/heads/@{x}', '@', 'main', 'refs/heads/@', 'refs/heads/ünïcode',
    'refs/heads/a\tb', 'refs/heads/-dash', 'refs/tags/v1.0', 'refs/heads/x.y.lockz'];
  for (const n of names) {
    const r = spawnSync('git', ['check-ref-format', n], { env: gitEnv() });
    t.equal(refnameProblem(n) === null, r.status === 0, `${JSON.stringify(n)}: ${refnameProblem(n) ?? 'valid'}`);
  }
});

t.test('lock files: exclusive, stale ones broken only when older than staleBefore', async (t) => {
  const dir = tmpdir('gotd-lock-');
  const target = path.join(dir, 'refs', 'heads', 'x');
  const a = LockFile.acquire(target);
  t.throws(() => LockFile.acquire(target), LockError, 'a held lock cannot be taken');
  t.throws(() => LockFile.acquire(target, { staleBefore: Date.now() - 60000 }), LockError, 'nor broken when it is younger than staleBefore');
  a.write('1'.repeat(40) + '\n');
  a.commit();
  t.equal(fs.readFileSync(target, 'utf8'), '1'.repeat(40) + '\n', 'committed by rename');
  t.notOk(fs.existsSync(target + '.lock'));

  fs.writeFileSync(target + '.lock', 'left by a crash');
  const old = new Date(Date.now() - 3600e3);
  fs.utimesSync(target + '.lock', old, old);
  t.throws(() => LockFile.acquire(target), LockError, 'a stale lock is still a lock by default');
  const b = LockFile.acquire(target, { staleBefore: Date.now() - 60000 });
  t.pass('a lock older than staleBefore is broken');
  b.release();
  t.notOk(fs.existsSync(target + '.lock'), 'release removes the lock');
  t.equal(fs.readFileSync(target, 'utf8'), '1'.repeat(40) + '\n', 'release leaves the target alone');

  fs.writeFileSync(target + '.lock', 'stale');
  fs.utimesSync(target + '.lock', old, old);
  t.same(cleanStale(path.join(dir, 'objects'), Date.now() - 60000).map((p) => path.basename(p)), ['x.lock'], 'cleanStale removes stale ref locks');
});

t.test('ref transactions: compare-and-swap, atomic abort, packed-refs', async (t) => {
  const repo = mkrepo(['--preset', 'small'], { copy: true });
  const packed = readPackedRefs(repo);
  const main = packed.get('refs/heads/main')!;
  const other = [...packed.keys()].find((n) => n.startsWith('refs/heads/') && n !== 'refs/heads/main')!;
  const tag = [...packed.keys()].find((n) => n.startsWith('refs/tags/'))!;

  let tx = new RefTransaction(repo);
  t.equal(tx.prepare({ ref: 'refs/heads/main', old: packed.get(other)!, new: main }), 'stale info', 'wrong old value');
  t.equal(tx.prepare({ ref: 'refs/heads/new', old: main, new: main }), 'stale info', 'old value for a ref that does not exist');
  t.equal(tx.prepare({ ref: tag, old: ZERO_OID, new: main }), 'stale info', 'creating a ref that exists');
  t.equal(tx.prepare({ ref: 'refs/heads/main', old: main, new: packed.get(other)! }), null);
  t.match(new RefTransaction(repo).prepare({ ref: 'refs/heads/main', old: main, new: main }), /cannot lock ref/, 'a second writer waits its turn');
  tx.release();

  fs.writeFileSync(path.join(repo, 'packed-refs.lock'), '');
  tx = new RefTransaction(repo);
  t.equal(tx.prepare({ ref: 'refs/heads/main', old: main, new: packed.get(other)! }), null);
  t.equal(tx.prepare({ ref: other, old: packed.get(other)!, new: ZERO_OID }), null);
  const failed = tx.commit(true);
  t.equal(failed.size, 2, 'atomic: packed-refs busy fails both');
  t.same(readPackedRefs(repo), packed, 'packed-refs untouched');
  t.notOk(fs.existsSync(path.join(repo, 'refs', 'heads', 'main')), 'no loose ref written');
  fs.unlinkSync(path.join(repo, 'packed-refs.lock'));

  tx = new RefTransaction(repo);
  t.equal(tx.prepare({ ref: 'refs/heads/main', old: main, new: packed.get(other)! }), null);
  t.equal(tx.prepare({ ref: other, old: packed.get(other)!, new: ZERO_OID }), null);
  t.equal(tx.prepare({ ref: 'refs/heads/deep/new/ref', old: ZERO_OID, new: main }), null);
  t.same([...tx.commit(true)], [], 'all applied');
  t.equal(fs.readFileSync(path.join(repo, 'refs', 'heads', 'main'), 'utf8'), packed.get(other)! + '\n');
  t.notOk(readPackedRefs(repo).has(other), 'deleted from packed-refs');
  t.equal(git(['--git-dir', repo, 'rev-parse', 'refs/heads/deep/new/ref']).trim(), main);
  tx = new RefTransaction(repo);
  t.equal(tx.prepare({ ref: 'refs/heads/deep/new/ref', old: main, new: ZERO_OID }), null);
  t.same([...tx.commit(false)], []);
  t.notOk(fs.existsSync(path.join(repo, 'refs', 'heads', 'deep')), 'empty directories removed');
  t.equal(spawnSync('git', ['--git-dir', repo, 'fsck', '--strict'], { env: gitEnv() }).status, 0);
});
