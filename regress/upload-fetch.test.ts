/**
 * Fetches through our upload-pack: incremental fetches (thin packs, deltas
 * against what the client has), shallow clones and deepening them, and a
 * repack that replaces the packs while a fetch is being served. Shallow
 * results are compared with what stock git-upload-pack gives for the same
 * request: the shallow boundary and every reachable object must agree.
 */
import t, { type Test } from 'tap';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { fsckStrict, git, mkrepo, refsOf, tmpdir } from './lib/util';
import { clone, fetch, shallowOf, UPLOAD_PACK_JS, type Server } from './lib/upload';

/** Adds `n` commits to a repository (editing existing files), through a work tree. */
function addCommits(src: string, n: number, branch = 'main'): void {
  const work = path.join(tmpdir(), 'work');
  git(['clone', '-q', '-b', branch, src, work]);
  const files = git(['-C', work, 'ls-files']).split('\n').filter((f) => /\.(c|md)$/.test(f)).slice(0, 20);
  for (let i = 0; i < n; i++) {
    const f = path.join(work, files[i % files.length]!);
    fs.appendFileSync(f, `\nchange ${i} of ${n}\n`);
    fs.writeFileSync(path.join(work, `added-${i}.txt`), `file ${i}\n`.repeat(20));
    git(['-C', work, 'add', '-A']);
    git(['-C', work, 'commit', '-q', '-m', `commit ${i}`]);
  }
  git(['-C', work, 'push', '-q', 'origin', `HEAD:refs/heads/${branch}`]);
}

/** Objects reachable from all refs (what a repository "has"), sorted. */
function reachable(gitDir: string): string {
  return git(['--git-dir', gitDir, 'rev-list', '--objects', '--all']).split('\n').filter(Boolean).sort().join('\n');
}

function newestPackCount(gitDir: string, before: string[]): number {
  const packDir = path.join(gitDir, 'objects/pack');
  const fresh = fs.readdirSync(packDir).filter((f) => f.endsWith('.idx') && !before.includes(f));
  let n = 0;
  for (const f of fresh) n += fs.readFileSync(path.join(packDir, f)).readUInt32BE(8 + 255 * 4); // last fan-out entry
  return n;
}

function packsOf(gitDir: string): string[] {
  return fs.readdirSync(path.join(gitDir, 'objects/pack')).filter((f) => f.endsWith('.idx'));
}

t.test('incremental fetch after new commits (thin pack against what the client has)', async (t) => {
  for (const protocol of [0, 2] as const) {
    const src = mkrepo(['--preset', 'small'], { copy: true });
    const ours = path.join(tmpdir(), 'ours.git');
    const stock = path.join(tmpdir(), 'stock.git');
    clone(src, ours, ['--mirror'], { protocol });
    clone(src, stock, ['--mirror'], { protocol, server: 'stock' });
    addCommits(src, 12);
    git(['--git-dir', src, 'repack', '-q', '-a', '-d', '-f']); // new objects become deltas against old ones
    for (const d of [ours, stock]) git(['--git-dir', d, 'config', 'fetch.unpackLimit', '1']); // keep the received pack
    const before = packsOf(ours);
    const beforeStock = packsOf(stock);
    fetch(ours, src, ['--prune', '+refs/*:refs/*'], { protocol });
    fetch(stock, src, ['--prune', '+refs/*:refs/*'], { protocol, server: 'stock' });
    t.equal(refsOf(ours), refsOf(src), `v${protocol}: refs identical after fetch`);
    t.equal(fsckStrict(ours), '', `v${protocol}: fsck --strict clean`);
    const got = newestPackCount(ours, before);
    const want = newestPackCount(stock, beforeStock);
    t.ok(got > 0 && got <= want + 5, `v${protocol}: fetched ${got} objects (stock git sends ${want}), not the whole history`);
  }
});

t.test('fetch when the client is already up to date, and a second branch', async (t) => {
  const src = mkrepo(['--preset', 'small'], { copy: true });
  const ours = path.join(tmpdir(), 'ours.git');
  clone(src, ours, ['--mirror']);
  fetch(ours, src, ['+refs/*:refs/*']);
  t.equal(refsOf(ours), refsOf(src), 'no-op fetch');
  addCommits(src, 3, 'maint-1.2');
  fetch(ours, src, ['+refs/*:refs/*'], { protocol: 0 });
  t.equal(refsOf(ours), refsOf(src), 'maintenance branch fetched');
  t.equal(fsckStrict(ours), '');
});

interface Scenario {
  name: string;
  run: (dest: string, server: Server, src: string) => void;
}

const DATE_ARGS = (src: string) => {
  const when = git(['--git-dir', src, 'log', '-1', '--format=%ct', 'main~60']).trim();
  return `--shallow-since=${when}`;
};

const scenarios: Scenario[] = [
  { name: 'clone --depth 1', run: (d, server, src) => clone(src, d, ['--bare', '--depth', '1', '--no-single-branch'], { server, protocol: 2 }) },
  { name: 'clone --depth 1 (v0)', run: (d, server, src) => clone(src, d, ['--bare', '--depth', '1', '--no-single-branch'], { server, protocol: 0 }) },
  { name: 'clone --depth 7 of one branch', run: (d, server, src) => clone(src, d, ['--bare', '--depth', '7', '--branch', 'main'], { server, protocol: 2 }) },
  { name: 'clone --shallow-since', run: (d, server, src) => clone(src, d, ['--bare', DATE_ARGS(src), '--no-single-branch'], { server, protocol: 2 }) },
  { name: 'clone --shallow-exclude (v0)', run: (d, server, src) => clone(src, d, ['--bare', '--shallow-exclude=v1.2.0', '--branch', 'main'], { server, protocol: 0 }) },
  { name: 'clone --shallow-exclude', run: (d, server, src) => clone(src, d, ['--bare', '--shallow-exclude=v1.2.0', '--no-single-branch'], { server, protocol: 2 }) },
  {
    name: 'depth 1, then fetch --deepen=3',
    run: (d, server, src) => {
      clone(src, d, ['--bare', '--depth', '1', '--branch', 'main'], { server, protocol: 2 });
      fetch(d, src, ['--deepen=3', 'main:main'], { server, protocol: 2 });
    },
  },
  {
    name: 'depth 2, then fetch --deepen=5 (v0)',
    run: (d, server, src) => {
      clone(src, d, ['--bare', '--depth', '2', '--branch', 'main'], { server, protocol: 0 });
      fetch(d, src, ['--deepen=5', 'main:main'], { server, protocol: 0 });
    },
  },
  {
    name: 'depth 1, then fetch --depth=20',
    run: (d, server, src) => {
      clone(src, d, ['--bare', '--depth', '1', '--branch', 'main'], { server, protocol: 2 });
      fetch(d, src, ['--depth=20', 'main:main'], { server, protocol: 2 });
    },
  },
  {
    name: 'depth 3, then fetch --unshallow',
    run: (d, server, src) => {
      clone(src, d, ['--bare', '--depth', '3', '--no-single-branch'], { server, protocol: 2 });
      fetch(d, src, ['--unshallow', '--tags', '+refs/heads/*:refs/heads/*'], { server, protocol: 2 });
    },
  },
  {
    name: 'depth 3, then fetch --unshallow (v0)',
    run: (d, server, src) => {
      clone(src, d, ['--bare', '--depth', '3', '--no-single-branch'], { server, protocol: 0 });
      fetch(d, src, ['--unshallow', '--tags', '+refs/heads/*:refs/heads/*'], { server, protocol: 0 });
    },
  },
];

t.test('shallow clones and deepening agree with stock git', async (t) => {
  const src = mkrepo(['--preset', 'small']);
  for (const s of scenarios) {
    await t.test(s.name, async (t: Test) => {
      const ours = path.join(tmpdir(), 'ours.git');
      const stock = path.join(tmpdir(), 'stock.git');
      s.run(ours, 'ours', src);
      s.run(stock, 'stock', src);
      t.equal(shallowOf(ours), shallowOf(stock), 'same shallow boundary');
      t.equal(refsOf(ours), refsOf(stock), 'same refs');
      t.equal(reachable(ours), reachable(stock), 'same reachable objects');
      t.equal(fsckStrict(ours), '', 'fsck --strict clean');
    });
  }
  await t.test('unshallowed clone is complete', async (t: Test) => {
    const d = path.join(tmpdir(), 'full.git');
    clone(src, d, ['--bare', '--depth', '1', '--no-single-branch']);
    t.not(shallowOf(d), '', 'shallow at first');
    fetch(d, src, ['--unshallow', '--tags', '+refs/heads/*:refs/heads/*']);
    t.equal(shallowOf(d), '', 'no shallow file left');
    t.equal(reachable(d), reachable(src), 'every object of the source');
  });
});

t.test('a shallow client fetches new commits', async (t) => {
  const src = mkrepo(['--preset', 'small'], { copy: true });
  const ours = path.join(tmpdir(), 'ours.git');
  const stock = path.join(tmpdir(), 'stock.git');
  clone(src, ours, ['--bare', '--depth', '5', '--branch', 'main']);
  clone(src, stock, ['--bare', '--depth', '5', '--branch', 'main'], { server: 'stock' });
  addCommits(src, 4);
  fetch(ours, src, ['main:main']);
  fetch(stock, src, ['main:main'], { server: 'stock' });
  t.equal(shallowOf(ours), shallowOf(stock), 'same shallow boundary');
  t.equal(reachable(ours), reachable(stock), 'same objects');
  t.equal(fsckStrict(ours), '');
});

t.test('a repack replaces the packs while a fetch is served', async (t) => {
  for (const cmd of [['repack', '-q', '-a', '-d', '-f'], ['gc', '-q', '--prune=now']]) {
    const src = mkrepo(['--preset', 'small'], { copy: true });
    addCommits(src, 3); // some loose objects, which the repack packs and deletes
    const wrapper = path.join(tmpdir(), 'repack-then-serve.sh');
    // The advertisement is out (our packs are open) when the client's first
    // bytes arrive; only then does the repack run, then the request goes on.
    fs.writeFileSync(wrapper, `#!/bin/bash
repo="$1"
{ IFS= read -r -N 4 first; git --git-dir="$repo" ${cmd.join(' ')} >/dev/null 2>&1; printf '%s' "$first"; cat; } |
  env -u NODE_OPTIONS node ${UPLOAD_PACK_JS} "$repo"
`, { mode: 0o755 });
    const before = fs.readdirSync(path.join(src, 'objects/pack'));
    const dest = path.join(tmpdir(), 'c.git');
    git(['-c', 'protocol.version=0', 'clone', '-q', '--mirror', `--upload-pack=${wrapper}`, `file://${src}`, dest]);
    const after = fs.readdirSync(path.join(src, 'objects/pack'));
    t.notOk(before.filter((f) => f.endsWith('.pack')).some((f) => after.includes(f)), `${cmd[0]}: old packs are gone`);
    t.equal(refsOf(dest), refsOf(src), `${cmd[0]}: refs identical`);
    t.equal(fsckStrict(dest), '', `${cmd[0]}: fsck --strict clean`);
  }
});
