/**
 * Clones and ls-remote through our upload-pack with the real git client,
 * over protocol v0, v1 and v2, from every repository layout the engine
 * reads. Every clone is compared ref for ref with its source and checked
 * with git fsck --strict.
 */
import t, { type Test } from 'tap';
import { spawnSync } from 'node:child_process';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { BUILD, fsckStrict, git, gitEnv, mkrepo, refsOf, tmpdir } from './lib/util';
import { clone, lsRemote, UPLOAD_PACK, UPLOAD_PACK_JS } from './lib/upload';

const PROTOCOLS = [0, 1, 2] as const;

function cloneAndCheck(t: Test, src: string, protocol: 0 | 1 | 2, extra: string[] = []): string {
  const dest = path.join(tmpdir(), 'clone.git');
  clone(src, dest, ['--mirror', ...extra], { protocol });
  t.equal(refsOf(dest), refsOf(src), `v${protocol}: refs identical`);
  t.equal(fsckStrict(dest), '', `v${protocol}: fsck --strict clean`);
  return dest;
}

t.test('clone a mkrepo repository (bitmap) over v0, v1, v2', async (t) => {
  const src = mkrepo(['--preset', 'small']);
  t.ok(fs.readdirSync(path.join(src, 'objects/pack')).some((f) => f.endsWith('.bitmap')), 'source has a bitmap');
  for (const p of PROTOCOLS) cloneAndCheck(t, src, p);
});

t.test('clone without a bitmap (history walk)', async (t) => {
  const src = mkrepo(['--preset', 'small', '--no-bitmap']);
  for (const p of PROTOCOLS) cloneAndCheck(t, src, p);
});

t.test('capabilities and progress on the wire', async (t) => {
  const src = mkrepo(['--preset', 'small']);
  const dest = path.join(tmpdir(), 'p.git');
  const r = spawnSync('git', ['-c', 'protocol.version=0', 'clone', '--bare', '--progress', `--upload-pack=${UPLOAD_PACK}`, `file://${src}`, dest], {
    encoding: 'utf8', env: gitEnv({ GIT_TRACE_PACKET: '1' }),
  });
  t.equal(r.status, 0, 'clone succeeded');
  t.match(r.stderr, /remote: Enumerating objects: 3595, done\./, 'enumerating progress');
  t.match(r.stderr, /remote: Counting objects: 100% \(3595\/3595\), done\./, 'counting progress');
  t.match(r.stderr, /remote: Total 3595 /, 'total line');
  t.match(r.stderr, /multi_ack thin-pack side-band side-band-64k ofs-delta shallow deepen-since deepen-not deepen-relative no-progress include-tag multi_ack_detailed allow-tip-sha1-in-want allow-reachable-sha1-in-want no-done symref=HEAD:refs\/heads\/main object-format=sha1 agent=gotd\//, 'v0 capabilities');
  const quiet = spawnSync('git', ['-c', 'protocol.version=2', 'clone', '--bare', '-q', `--upload-pack=${UPLOAD_PACK}`, `file://${src}`, path.join(tmpdir(), 'q.git')], {
    encoding: 'utf8', env: gitEnv(),
  });
  t.equal(quiet.status, 0);
  t.equal(quiet.stderr, '', 'no-progress: nothing printed');
});

t.test('empty repository', async (t) => {
  const src = path.join(tmpdir(), 'empty.git');
  git(['init', '-q', '--bare', '-b', 'trunk', src]);
  for (const p of PROTOCOLS) {
    const dest = path.join(tmpdir(), 'e.git');
    clone(src, dest, ['--bare'], { protocol: p });
    t.equal(refsOf(dest), '', `v${p}: no refs`);
    t.equal(fsckStrict(dest), '');
    t.equal(lsRemote(src, [], { protocol: p }), '', `v${p}: ls-remote empty`);
  }
  // v2 tells the client about the unborn branch, so the clone gets the right HEAD.
  const dest = path.join(tmpdir(), 'e2.git');
  clone(src, dest, ['--bare'], { protocol: 2 });
  t.equal(git(['--git-dir', dest, 'symbolic-ref', 'HEAD']).trim(), 'refs/heads/trunk', 'unborn HEAD target');
});

t.test('loose-only repository', async (t) => {
  const src = path.join(tmpdir(), 'loose.git');
  const work = path.join(tmpdir(), 'work');
  git(['init', '-q', '-b', 'main', work]);
  for (let i = 0; i < 8; i++) {
    fs.mkdirSync(path.join(work, `d${i % 3}`), { recursive: true });
    fs.writeFileSync(path.join(work, `d${i % 3}`, `f${i}`), `content ${i}\n`.repeat(i + 1));
    git(['-C', work, 'add', '.']);
    git(['-C', work, 'commit', '-q', '-m', `c${i}`]);
  }
  git(['-C', work, 'tag', '-a', '-m', 'rel', 'v1']);
  git(['clone', '-q', '--bare', '--no-local', work, src]);
  // Explode the pack the clone made into loose objects.
  const packDir = path.join(src, 'objects/pack');
  for (const f of fs.readdirSync(packDir).filter((f) => f.endsWith('.pack'))) {
    const bytes = fs.readFileSync(path.join(packDir, f));
    fs.rmSync(path.join(packDir, f));
    fs.rmSync(path.join(packDir, f.replace(/\.pack$/, '.idx')));
    t.equal(spawnSync('git', ['--git-dir', src, 'unpack-objects', '-q'], { input: bytes, env: gitEnv() }).status, 0, 'unpacked');
  }
  t.equal(fs.readdirSync(packDir).length, 0, 'no packs left');
  for (const p of PROTOCOLS) cloneAndCheck(t, src, p);
});

t.test('several packs, then a multi-pack-index', async (t) => {
  const src = mkrepo(['--preset', 'small'], { copy: true });
  const work = path.join(tmpdir(), 'w');
  git(['clone', '-q', src, work]);
  for (let i = 0; i < 3; i++) {
    fs.writeFileSync(path.join(work, `new${i}.txt`), `round ${i}\n`);
    git(['-C', work, 'add', '.']);
    git(['-C', work, 'commit', '-q', '-m', `round ${i}`]);
    git(['-C', work, 'push', '-q', 'origin', 'HEAD:refs/heads/main']); // each push leaves a pack or loose objects
    git(['--git-dir', src, 'repack', '-q', '-d']); // incremental pack of what is loose
  }
  const packs = fs.readdirSync(path.join(src, 'objects/pack')).filter((f) => f.endsWith('.pack'));
  t.ok(packs.length >= 3, `${packs.length} packs`);
  for (const p of PROTOCOLS) cloneAndCheck(t, src, p);
  git(['--git-dir', src, 'multi-pack-index', 'write']);
  t.ok(fs.existsSync(path.join(src, 'objects/pack/multi-pack-index')), 'midx written');
  for (const p of PROTOCOLS) cloneAndCheck(t, src, p);
});

t.test('64-bit offsets in the pack index', async (t) => {
  const src = mkrepo(['--preset', 'small'], { copy: true });
  const packDir = path.join(src, 'objects/pack');
  const pack = fs.readdirSync(packDir).find((f) => f.endsWith('.pack'))!;
  for (const f of fs.readdirSync(packDir)) if (!f.endsWith('.pack')) fs.rmSync(path.join(packDir, f));
  git(['index-pack', '--index-version=2,0x8000', '-o', path.join(packDir, pack.replace(/\.pack$/, '.idx')), path.join(packDir, pack)]);
  for (const p of PROTOCOLS) cloneAndCheck(t, src, p);
});

t.test('tags of tags, of trees and of blobs', async (t) => {
  const src = mkrepo(['--preset', 'small'], { copy: true });
  const g = (...a: string[]) => git(['--git-dir', src, ...a]).trim();
  g('tag', '-a', '-m', 'inner', 'inner', 'main~4');
  g('tag', '-a', '-m', 'outer', 'outer', 'inner');
  g('tag', '-a', '-m', 'outermost', 'outermost', 'outer');
  g('tag', '-a', '-m', 'a tree', 'treetag', 'main^{tree}');
  g('tag', '-a', '-m', 'a blob', 'blobtag', 'main:README.md');
  g('tag', 'lightblob', 'main:Makefile');
  g('update-ref', 'refs/notes/x', g('rev-parse', 'main~2'));
  for (const p of PROTOCOLS) cloneAndCheck(t, src, p);
});

t.test('ls-remote with and without ref prefixes', async (t) => {
  const src = mkrepo(['--preset', 'small']);
  const stock = lsRemote(src, [], { server: 'stock', protocol: 2 });
  for (const p of PROTOCOLS) {
    t.equal(lsRemote(src, [], { protocol: p }), stock, `v${p}: same listing as stock git (HEAD and peeled tags)`);
    t.equal(lsRemote(src, ['--heads'], { protocol: p }), lsRemote(src, ['--heads'], { server: 'stock', protocol: p }), `v${p}: --heads`);
    t.equal(lsRemote(src, ['--tags'], { protocol: p }, ['v1.*']), lsRemote(src, ['--tags'], { server: 'stock', protocol: p }, ['v1.*']), `v${p}: pattern`);
    t.match(lsRemote(src, ['--tags'], { protocol: p }, ['v1.*']), /refs\/tags\/v1\.0\.0\^\{\}/, `v${p}: peeled tags listed`);
  }
  for (const p of PROTOCOLS) {
    t.equal(lsRemote(src, ['--symref'], { protocol: p }), lsRemote(src, ['--symref'], { server: 'stock', protocol: p }), `v${p}: --symref`);
  }
  t.equal(lsRemote(src, ['-o', 'some-option', '-o', 'another'], { protocol: 2 }), stock, 'v2 server options are accepted');
});

t.test('include-tag: a single-branch clone follows the tags into its history', async (t) => {
  const src = mkrepo(['--preset', 'small']);
  for (const p of PROTOCOLS) {
    const ours = path.join(tmpdir(), 'o.git');
    const stock = path.join(tmpdir(), 's.git');
    clone(src, ours, ['--bare', '--single-branch', '--branch', 'main'], { protocol: p });
    clone(src, stock, ['--bare', '--single-branch', '--branch', 'main'], { protocol: p, server: 'stock' });
    t.equal(refsOf(ours), refsOf(stock), `v${p}: same refs as with stock git`);
    t.match(refsOf(ours), /refs\/tags\/v1\.0\.0/, `v${p}: release tags followed`);
    t.notMatch(refsOf(ours), /maint/, `v${p}: other branches not fetched`);
    t.equal(fsckStrict(ours), '');
  }
});

t.test("under Node's permission model: read access to the build and the repository only", async (t) => {
  const src = mkrepo(['--preset', 'small']);
  const confined = `env -u NODE_OPTIONS node --no-warnings --experimental-permission --allow-fs-read=${BUILD}/ --allow-fs-read=${src}/ ${UPLOAD_PACK_JS}`;
  for (const [p, extra] of [[2, []], [0, ['--depth', '2', '--no-single-branch']]] as const) {
    const dest = path.join(tmpdir(), 'confined.git');
    git(['-c', `protocol.version=${p}`, 'clone', '-q', '--mirror', `--upload-pack=${confined}`, ...extra, `file://${src}`, dest]);
    if (extra.length === 0) t.equal(refsOf(dest), refsOf(src), `v${p}: refs identical`);
    t.equal(fsckStrict(dest), '', `v${p}: fsck --strict clean`);
  }
});
