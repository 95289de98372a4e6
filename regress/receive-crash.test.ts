/**
 * Crash consistency: the receive-pack process is SIGKILLed at every named
 * checkpoint of a push (receiving the pack, indexing, checks, locking,
 * moving the pack, each ref rename) and after a seeded-random number of
 * bytes of the pack. After each kill the repository passes git fsck
 * --strict, every ref is either its old value or its new one (all old when
 * the kill came before the first ref moved), and a normal push then
 * succeeds and leaves no quarantine or .keep behind.
 */
import t from 'tap';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { fsckStrict, git, mkrepo, refsOf, tmpdir } from './lib/util';
import { packObjects, push, WorkTree } from './lib/receive';

/** mulberry32: a small seeded PRNG, so a failing kill point can be replayed. */
function rng(seed: number): () => number {
  return () => {
    seed = (seed + 0x6d2b79f5) | 0;
    let x = Math.imul(seed ^ (seed >>> 15), 1 | seed);
    x = (x + Math.imul(x ^ (x >>> 7), 61 | x)) ^ x;
    return ((x ^ (x >>> 14)) >>> 0) / 4294967296;
  };
}

const SEED = Number(process.env.GOTD_CRASH_SEED ?? 20240611);

function refMap(gitDir: string): Map<string, string> {
  return new Map(refsOf(gitDir).split('\n').filter(Boolean).map((l) => [l.split(' ')[1]!, l.split(' ')[0]!]));
}

t.test('SIGKILL anywhere in a push leaves a consistent repository', async (t) => {
  const pristine = mkrepo(['--preset', 'small']);
  const before = refMap(pristine);
  const doomed = [...before.keys()].find((r) => r.startsWith('refs/heads/') && r !== 'refs/heads/main')!;
  const wt = WorkTree.clone(pristine);
  wt.commit('docs/crash.txt', 'a new file\n'.repeat(2000));
  wt.commit('src/crash.c', '/* more */\n'.repeat(500));
  wt.commit('docs/crash.txt');
  wt.git(['tag', '-a', 'v-crash', '-m', 'tag pushed in the crash test']);
  const refspecs = ['main', 'main:refs/heads/crash-branch', 'v-crash', `:${doomed}`];
  const after = new Map(before);
  after.set('refs/heads/main', wt.rev('main'));
  after.set('refs/heads/crash-branch', wt.rev('main'));
  after.set('refs/tags/v-crash', wt.rev('v-crash'));
  after.delete(doomed);

  const fresh = (): string => {
    const dir = path.join(tmpdir('gotd-crash-'), 'srv.git');
    fs.cpSync(pristine, dir, { recursive: true });
    return dir;
  };

  // A clean run tells which checkpoints a push passes, in order.
  const log = path.join(tmpdir('gotd-cp-'), 'checkpoints');
  const first = fresh();
  const ok = await push(wt.dir, first, refspecs, { env: { GOTD_TEST_CHECKPOINTS: log } });
  t.equal(ok.code, 0, `uninterrupted push: ${ok.stderr}`);
  const steps = fs.readFileSync(log, 'utf8').trim().split('\n');
  const counts = new Map<string, number>();
  const points: { env: Record<string, string>; label: string; refsMoved: 'none' | 'some' | 'all' }[] = [];
  const firstRefMove = steps.indexOf('packed-refs-written') >= 0 ? steps.indexOf('packed-refs-written') : steps.indexOf('ref-renamed');
  steps.forEach((s, i) => {
    const n = (counts.get(s) ?? 0) + 1;
    counts.set(s, n);
    const moved = i < firstRefMove ? 'none' : s === 'refs-updated' ? 'all' : 'some';
    points.push({ env: { GOTD_TEST_CRASH_AT: `${s}:${n}` }, label: `at ${s} #${n}`, refsMoved: moved });
  });
  t.ok(steps.includes('pack-received') && steps.includes('idx-moved') && steps.includes('ref-renamed'), `checkpoints: ${steps.join(' ')}`);

  const packSize = packObjects(path.join(wt.dir, '.git'), `${wt.rev('main')}\n${wt.rev('v-crash')}\n^${before.get('refs/heads/main')}\n`, ['--revs', '--thin']).length;
  const random = rng(SEED);
  for (let i = 0; i < 8; i++) {
    const n = 100 + Math.floor(random() * (packSize - 100));
    points.push({ env: { GOTD_TEST_CRASH_AFTER_BYTES: String(n) }, label: `after ${n} bytes (seed ${SEED})`, refsMoved: 'none' });
  }
  t.ok(points.length >= 20, `${points.length} kill points`);

  for (const p of points) {
    const srv = fresh();
    const r = await push(wt.dir, srv, refspecs, { env: p.env });
    t.not(r.code, 0, `${p.label}: the push was cut off`);
    t.equal(fsckStrict(srv), '', `${p.label}: fsck --strict after the kill`);
    const now = refMap(srv);
    const names = new Set([...before.keys(), ...after.keys()]);
    let moved = 0;
    let bad = '';
    for (const name of names) {
      const v = now.get(name);
      if (v === after.get(name) && v !== before.get(name)) moved++;
      else if (v !== before.get(name)) bad += ` ${name}=${v}`;
    }
    t.equal(bad, '', `${p.label}: every ref is its old or its new value`);
    if (p.refsMoved === 'none') t.equal(moved, 0, `${p.label}: no ref moved`);
    if (p.refsMoved === 'all') t.equal(moved, 4, `${p.label}: every ref moved`);
    for (const [name, oid] of now) t.equal(git(['--git-dir', srv, 'cat-file', '-t', oid]).trim().length > 0, true, `${p.label}: ${name} resolves`);

    // The next push (allowed to clear what the dead one left) completes the job.
    const again = [...(now.has(doomed) ? refspecs : refspecs.filter((s) => s !== `:${doomed}`)), 'main:refs/heads/recovered'];
    const r2 = await push(wt.dir, srv, again, { rpArgs: ['--stale-before', String(Date.now())] });
    t.equal(r2.code, 0, `${p.label}: a normal push afterwards: ${r2.stderr}`);
    t.same(refMap(srv), new Map([...after, ['refs/heads/recovered', wt.rev('main')]]), `${p.label}: all refs updated`);
    t.equal(fsckStrict(srv), '', `${p.label}: fsck --strict after the next push`);
    const objects = fs.readdirSync(path.join(srv, 'objects'));
    t.same(objects.filter((f) => f.startsWith('incoming-')), [], `${p.label}: no quarantine left`);
    t.same(fs.readdirSync(path.join(srv, 'objects', 'pack')).filter((f) => f.endsWith('.keep')), [], `${p.label}: no .keep left`);
    const locks: string[] = [];
    const walk = (d: string): void => {
      for (const e of fs.readdirSync(d, { withFileTypes: true })) {
        if (e.isDirectory()) walk(path.join(d, e.name));
        else if (e.name.endsWith('.lock')) locks.push(e.name);
      }
    };
    walk(path.join(srv, 'refs'));
    t.same(locks, [], `${p.label}: no lock files left`);
  }
});

t.test('git gc --prune=now leaves a quarantine alone and finds nothing wrong', async (t) => {
  const srv = path.join(tmpdir('gotd-gc-'), 'srv.git');
  fs.cpSync(mkrepo(['--preset', 'small']), srv, { recursive: true });
  const wt = WorkTree.clone(srv);
  wt.commit('docs/gc.txt', 'x\n'.repeat(3000));
  const r = await push(wt.dir, srv, ['main'], { env: { GOTD_TEST_CRASH_AT: 'idx-written' } });
  t.not(r.code, 0, 'the writer died with its pack and idx in the quarantine');
  const quarantine = fs.readdirSync(path.join(srv, 'objects')).filter((f) => f.startsWith('incoming-'));
  t.equal(quarantine.length, 1);
  const before = fs.readdirSync(path.join(srv, 'objects', quarantine[0]!, 'pack')).sort();
  t.ok(before.some((f) => f.endsWith('.idx')), `quarantine holds ${before.join(' ')}`);
  git(['--git-dir', srv, 'gc', '-q', '--prune=now']);
  t.same(fs.readdirSync(path.join(srv, 'objects', quarantine[0]!, 'pack')).sort(), before, 'gc did not touch it');
  t.equal(fsckStrict(srv), '', 'fsck --strict');
  t.notMatch(git(['--git-dir', srv, 'count-objects', '-v']), /garbage: [1-9]/, 'count-objects sees no garbage');
  const r2 = await push(wt.dir, srv, ['main'], { rpArgs: ['--stale-before', String(Date.now())] });
  t.equal(r2.code, 0, r2.stderr);
  t.same(fs.readdirSync(path.join(srv, 'objects')).filter((f) => f.startsWith('incoming-')), [], 'the next push cleared it');
  t.equal(fsckStrict(srv), '');
});
