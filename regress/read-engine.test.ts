/**
 * The object store and refs against git's own view of the same repositories:
 * every object compared byte for byte with `git cat-file --batch`, every ref
 * with `git for-each-ref`, over packed, loose, multi-pack and 64-bit-offset
 * layouts, and under a concurrent repack.
 */
import t, { type Test } from 'tap';
import { spawnSync } from 'node:child_process';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { Repository } from '../src/git/repository';
import { parseCommit, parseTag, parseTree, hashObject, type ObjectType } from '../src/git/object';
import { applyDelta } from '../src/git/delta';
import { encodeOfsDelta, parseEntryHeader, encodeEntryHeader } from '../src/git/pack';
import { git, gitEnv, mkrepo, tmpdir } from './lib/util';

interface GitObject { oid: string; type: ObjectType; data: Buffer }

/** Every object of a repository as git sees it. */
function allObjects(gitDir: string): GitObject[] {
  const r = spawnSync('git', ['--git-dir', gitDir, 'cat-file', '--batch-all-objects', '--batch', '--unordered'], {
    env: gitEnv(), maxBuffer: 1 << 30,
  });
  if (r.status !== 0) throw new Error(r.stderr.toString());
  const out: GitObject[] = [];
  const buf = r.stdout;
  let p = 0;
  while (p < buf.length) {
    const nl = buf.indexOf(10, p);
    const [oid, type, size] = buf.toString('latin1', p, nl).split(' ');
    const n = Number(size);
    out.push({ oid: oid!, type: type as ObjectType, data: buf.subarray(nl + 1, nl + 1 + n) });
    p = nl + 1 + n + 1;
  }
  return out;
}

function compareAll(t: Test, gitDir: string, expectCount?: number): void {
  const objs = allObjects(gitDir);
  if (expectCount !== undefined) t.equal(objs.length, expectCount, 'object count');
  const repo = Repository.open(gitDir);
  let bad = 0;
  for (const o of objs) {
    const got = repo.objects.read(o.oid);
    const h = repo.objects.header(o.oid);
    if (!got || got.type !== o.type || !got.data.equals(o.data) || !h || h.type !== o.type || h.size !== o.data.length) {
      if (bad++ < 5) t.fail(`object ${o.oid} (${o.type}) differs`);
    }
  }
  t.equal(bad, 0, `all ${objs.length} objects read identically`);
  t.notOk(repo.objects.has('0123456789012345678901234567890123456789'), 'absent object is absent');
  t.equal(repo.objects.read('0123456789012345678901234567890123456789'), null);
  repo.close();
}


t.test('a packed repository (mkrepo small) reads like git', async (t) => {
  const dir = mkrepo(['--preset', 'small']);
  compareAll(t, dir, 3595);
});

t.test('a loose-only repository', async (t) => {
  const src = mkrepo(['--preset', 'small']);
  const dir = path.join(tmpdir(), 'loose.git');
  git(['init', '-q', '--bare', dir]);
  const pack = fs.readdirSync(path.join(src, 'objects/pack')).find((f) => f.endsWith('.pack'))!;
  const r = spawnSync('git', ['--git-dir', dir, 'unpack-objects', '-q'], {
    input: fs.readFileSync(path.join(src, 'objects/pack', pack)), env: gitEnv(),
  });
  t.equal(r.status, 0, 'unpack-objects');
  t.equal(fs.readdirSync(path.join(dir, 'objects/pack')).length, 0, 'no packs');
  compareAll(t, dir, 3595);
});

t.test('64-bit offsets in the index', async (t) => {
  const dir = mkrepo(['--preset', 'small'], { copy: true });
  const packDir = path.join(dir, 'objects/pack');
  const pack = fs.readdirSync(packDir).find((f) => f.endsWith('.pack'))!;
  const idx = path.join(packDir, pack.replace(/\.pack$/, '.idx'));
  fs.rmSync(idx);
  for (const f of fs.readdirSync(packDir)) if (/\.(bitmap|rev)$/.test(f)) fs.rmSync(path.join(packDir, f));
  git(['index-pack', '--index-version=2,0x10000', '-o', idx, path.join(packDir, pack)]);
  const buf = fs.readFileSync(idx);
  const n = buf.readUInt32BE(8 + 255 * 4);
  t.ok(buf.length > 8 + 1024 + n * 28 + 40 + 8 * 100, 'index has a 64-bit offset table');
  compareAll(t, dir, 3595);
});

t.test('several packs and a multi-pack-index', async (t) => {
  const dir = path.join(tmpdir(), 'multi.git');
  const work = path.join(tmpdir(), 'work');
  git(['init', '-q', '-b', 'main', work]);
  for (let i = 0; i < 4; i++) {
    for (let j = 0; j < 5; j++) {
      fs.writeFileSync(path.join(work, `f${j}.txt`), `round ${i} file ${j}\n`.repeat(50 + i));
      git(['-C', work, 'add', '.']);
      git(['-C', work, 'commit', '-q', '-m', `c${i}.${j}`]);
    }
    git(['-C', work, 'repack', '-q', '-d']); // one more pack each round
  }
  fs.writeFileSync(path.join(work, 'loose.txt'), 'a loose object\n');
  git(['-C', work, 'add', '.']);
  git(['-C', work, 'commit', '-q', '-m', 'loose']);
  git(['clone', '-q', '--bare', '--no-local', work, dir]);
  // Re-create several packs in the bare copy, then index them together.
  fs.cpSync(path.join(work, '.git/objects'), path.join(dir, 'objects'), { recursive: true });
  const packs = fs.readdirSync(path.join(dir, 'objects/pack')).filter((f) => f.endsWith('.pack'));
  t.ok(packs.length >= 4, `${packs.length} packs`);
  git(['--git-dir', dir, 'multi-pack-index', 'write']);
  t.ok(fs.existsSync(path.join(dir, 'objects/pack/multi-pack-index')), 'midx written');
  compareAll(t, dir);
});

t.test('refs: packed, loose, peeled, symbolic, unborn', async (t) => {
  const dir = mkrepo(['--preset', 'small'], { copy: true });
  const main = git(['--git-dir', dir, 'rev-parse', 'refs/heads/main']).trim();
  const tree = git(['--git-dir', dir, 'rev-parse', 'main^{tree}']).trim();
  const blob = git(['--git-dir', dir, 'rev-parse', 'main:README.md']).trim();
  git(['--git-dir', dir, 'tag', '-a', '-m', 'inner', 'inner', 'main~3']);
  const innerTarget = git(['--git-dir', dir, 'rev-parse', 'main~3']).trim();
  git(['--git-dir', dir, 'tag', '-a', '-m', 'outer', 'outer', 'inner']);
  git(['--git-dir', dir, 'tag', '-a', '-m', 'tree', 'treetag', tree]);
  git(['--git-dir', dir, 'tag', '-a', '-m', 'blob', 'blobtag', blob]);
  git(['--git-dir', dir, 'tag', 'light', 'main~1']);
  const light = git(['--git-dir', dir, 'rev-parse', 'main~1']).trim();
  git(['--git-dir', dir, 'update-ref', 'refs/heads/main', 'main~2']); // loose overrides packed
  git(['--git-dir', dir, 'symbolic-ref', 'refs/remotes/origin/HEAD', 'refs/heads/main']);
  const repo = Repository.open(dir);
  const want = git(['--git-dir', dir, 'for-each-ref', '--format=%(refname) %(objectname) %(objecttype)'])
    .trim().split('\n').map((l) => {
      const [name, oid, type] = l.split(' ');
      return type === 'tag' ? `${name} ${oid} ${git(['--git-dir', dir, 'rev-parse', `${oid}^{}`]).trim()}` : `${name} ${oid}`;
    });
  const got = repo.refs.list().map((r) => `${r.name} ${r.oid}${r.peeled ? ' ' + r.peeled : ''}`);
  t.same(got, want, 'for-each-ref matches (peeled included)');
  const outer = repo.refs.list('refs/tags/outer')[0]!;
  t.equal(outer.peeled, innerTarget, 'tag of tag peels to the commit');
  t.equal(repo.refs.list('refs/tags/treetag')[0]!.peeled, tree, 'tag of a tree');
  t.equal(repo.refs.list('refs/tags/blobtag')[0]!.peeled, blob, 'tag of a blob');
  t.equal(repo.refs.list('refs/remotes/')[0]!.symref, 'refs/heads/main', 'symbolic ref reported');
  t.same(repo.refs.head(), { target: 'refs/heads/main', oid: git(['--git-dir', dir, 'rev-parse', 'main']).trim() });
  t.not(repo.refs.resolve('main'), main, 'short name resolves to the loose value');
  t.equal(repo.refs.resolve('light'), light, 'short tag name');
  t.equal(repo.refs.resolve('nope'), null);
  t.ok(repo.refs.list('refs/heads/').every((r) => r.name.startsWith('refs/heads/')), 'prefix filter');
  git(['--git-dir', dir, 'symbolic-ref', 'HEAD', 'refs/heads/unborn']);
  t.same(repo.refs.head(), { target: 'refs/heads/unborn', oid: null }, 'unborn HEAD');
  git(['--git-dir', dir, 'update-ref', '--no-deref', 'HEAD', main]);
  t.same(repo.refs.head(), { target: null, oid: main }, 'detached HEAD');
  fs.writeFileSync(path.join(dir, 'refs/heads/broken'), 'garbage\n');
  t.notOk(repo.refs.list().some((r) => r.name === 'refs/heads/broken'), 'broken ref skipped');
  repo.close();
});

t.test('an empty repository', async (t) => {
  const dir = path.join(tmpdir(), 'empty.git');
  git(['init', '-q', '--bare', '-b', 'main', dir]);
  const repo = Repository.open(dir);
  t.same(repo.refs.list(), []);
  t.same(repo.refs.head(), { target: 'refs/heads/main', oid: null });
  t.same(repo.objects.packs, []);
  t.throws(() => Repository.open(path.join(dir, 'refs')), /not a git repository/);
  repo.close();
});

t.test('packs replaced under a running reader', async (t) => {
  const dir = mkrepo(['--preset', 'small'], { copy: true });
  const objs = allObjects(dir);
  const repo = Repository.open(dir);
  const first = objs.slice(0, 100);
  for (const o of first) t.ok(repo.objects.read(o.oid)?.data.equals(o.data) ?? false) || t.bailout();
  const before = repo.objects.packs.map((p) => p.name);
  // A new commit arrives loose, then gc packs everything into a new pack and deletes the old.
  const work = path.join(tmpdir(), 'w');
  git(['clone', '-q', dir, work]);
  fs.writeFileSync(path.join(work, 'new.txt'), 'new\n');
  git(['-C', work, 'add', '.']);
  git(['-C', work, 'commit', '-q', '-m', 'new']);
  git(['-C', work, 'push', '-q', 'origin', 'HEAD:refs/heads/new']);
  git(['--git-dir', dir, 'repack', '-q', '-a', '-d', '-f']);
  const newOid = git(['--git-dir', dir, 'rev-parse', 'refs/heads/new']).trim();
  t.ok(repo.objects.read(newOid), 'object that arrived after the scan is found (re-scan on miss)');
  let bad = 0;
  for (const o of objs) if (!repo.objects.read(o.oid)?.data.equals(o.data)) bad++;
  t.equal(bad, 0, 'every object still readable after the old pack was deleted');
  t.notSame(repo.objects.packs.map((p) => p.name), before, 'pack list changed');
  repo.close();
});

t.test('object parsers and delta codec', async (t) => {
  const dir = mkrepo(['--preset', 'small']);
  const repo = Repository.open(dir);
  const head = repo.refs.resolve('HEAD')!;
  const c = parseCommit(repo.objects.read(head)!.data);
  t.match(c.tree, /^[0-9a-f]{40}$/);
  t.ok(c.date > 1300000000, 'committer date parsed');
  t.equal(c.parents.join(' '), git(['--git-dir', dir, 'rev-parse', `${head}^@`]).trim().split('\n').join(' '));
  const entries = parseTree(repo.objects.read(c.tree)!.data);
  const lsTree = git(['--git-dir', dir, 'ls-tree', c.tree]).trim().split('\n');
  t.equal(entries.length, lsTree.length, 'tree entry count');
  t.equal(entries[0]!.oid, lsTree[0]!.split(/\s/)[2]);
  const tagRef = repo.refs.list('refs/tags/')[0]!;
  const tag = parseTag(repo.objects.read(tagRef.oid)!.data);
  t.equal(tag.object, tagRef.peeled);
  t.equal(tag.type, 'commit');
  t.equal(hashObject('commit', repo.objects.read(head)!.data), head, 'hash matches');
  t.throws(() => parseCommit(Buffer.from('tree zzz\n\nmsg')), /tree line/);
  t.throws(() => parseTree(Buffer.from('100644 a\0short')), /truncated/);
  // Delta: copy + insert, and rejection of out-of-bounds copies.
  const base = Buffer.from('hello, world');
  const delta = Buffer.from([12, 8, 0x91, 0, 5, 3, 0x21, 0x21, 0x21]);
  t.equal(applyDelta(base, delta).toString(), 'hello!!!');
  t.throws(() => applyDelta(base, Buffer.from([12, 5, 0x91, 10, 5])), /out of bounds/);
  for (const rel of [1, 127, 128, 16511, 16512, 2 ** 30 + 5]) {
    const enc = Buffer.concat([encodeEntryHeader(6, 1000), encodeOfsDelta(rel)]);
    const h = parseEntryHeader(enc, 0, rel + 100);
    t.equal(h.baseOffset, 100, `OFS round trip ${rel}`);
    t.equal(h.size, 1000);
  }
  repo.close();
});
