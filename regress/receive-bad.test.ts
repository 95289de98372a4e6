/**
 * Bad input to receive-pack changes nothing: malformed pkt-lines and
 * command lists get ERR; truncated, bit-flipped and hand-crafted malicious
 * packs (zlib bombs, delta loops, missing bases, size lies, duplicates)
 * get "unpack <error>"; objects git fsck --strict would reject are refused;
 * refs that cannot be updated are reported per ref. After each, the
 * repository's objects and refs are byte-for-byte what they were.
 */
import t from 'tap';
import { randomBytes } from 'node:crypto';
import * as fs from 'node:fs';
import * as path from 'node:path';
import * as zlib from 'node:zlib';
import { spawnSync } from 'node:child_process';
import { encodeEntryHeader, encodeOfsDelta } from '../src/git/pack';
import { hashObject } from '../src/git/object';
import { fsckStrict, git, gitEnv, mkrepo, refsOf } from './lib/util';
import { craftPack, insertDelta, packObjects, pktLine, pktLines, push, pushStatus, rawReceive, refDelta, snapshot, whole, WorkTree, ZERO } from './lib/receive';

const FLUSH = Buffer.from('0000');
const CAPS = 'report-status side-band-64k quiet ofs-delta agent=test';

function commands(cmds: [string, string, string][], caps = CAPS): Buffer {
  const lines = cmds.map(([o, n, r], i) => pktLine(i === 0 ? `${o} ${n} ${r}\0${caps}\n` : `${o} ${n} ${r}\n`));
  return Buffer.concat([...lines, FLUSH]);
}

/** The report-status lines from side-band band 1 of a response. */
function report(stdout: Buffer): string[] {
  const pkts = pktLines(stdout);
  const flush = pkts.indexOf('FLUSH');
  const band1 = Buffer.concat(pkts.slice(flush + 1).filter((p) => p.charCodeAt(0) === 1).map((p) => Buffer.from(p.slice(1), 'latin1')));
  return pktLines(band1).filter((l) => l !== 'FLUSH').map((l) => l.replace(/\n$/, ''));
}

function errLines(stdout: Buffer): string[] {
  return pktLines(stdout).filter((l) => l.startsWith('ERR '));
}

interface Server { dir: string; snap: string; main: string }

function server(): Server {
  const dir = mkrepo(['--preset', 'small'], { copy: true });
  const main = git(['--git-dir', dir, 'rev-parse', 'refs/heads/main']).trim();
  return { dir, snap: snapshot(dir), main };
}

/** Asserts the repository is exactly as before and still passes fsck. */
function unchanged(t: tap.Test, s: Server, what: string): void {
  t.equal(snapshot(s.dir), s.snap, `${what}: objects and refs byte-identical`);
  t.equal(fsckStrict(s.dir), '', `${what}: fsck --strict`);
}

/** A client-side history the server lacks: two commits on top of its main. */
function newHistory(s: Server): { pack: Buffer; tip: string; wt: WorkTree } {
  const wt = WorkTree.clone(s.dir);
  wt.commit('docs/new.txt', 'x'.repeat(5000) + '\n');
  wt.commit('docs/new.txt');
  const tip = wt.rev('HEAD');
  const pack = packObjects(path.join(wt.dir, '.git'), `${tip}\n^${s.main}\n`, ['--revs']);
  return { pack, tip, wt };
}

t.test('protocol errors get ERR and change nothing', async (t) => {
  const s = server();
  const cases: [string, Buffer, RegExp][] = [
    ['length ffff', Buffer.from('ffff'), /bad line length/],
    ['non-hex length', Buffer.from('zz12junk'), /bad line length character/],
    ['length 0003', Buffer.from('0003'), /bad line length 3/],
    ['not a command', Buffer.concat([pktLine('hello there\n'), FLUSH]), /expected old\/new\/ref/],
    ['short ids', Buffer.concat([pktLine(`${ZERO.slice(2)} ${ZERO} refs/heads/x\n`), FLUSH]), /expected old\/new\/ref/],
    ['delim in command list', Buffer.concat([pktLine(`${ZERO} ${s.main} refs/heads/x\0report-status\n`), Buffer.from('0001'), FLUSH]), /unexpected delim/],
    ['command list cut short', pktLine(`${ZERO} ${s.main} refs/heads/x\0report-status\n`), /cut short/],
    ['push certificate', Buffer.concat([pktLine('push-cert\0report-status\n'), FLUSH]), /not supported/],
  ];
  for (const [name, input, want] of cases) {
    const r = await rawReceive(s.dir, input);
    t.match(errLines(r.stdout).join('\n'), want, `${name}: ERR packet`);
    unchanged(t, s, name);
  }
  const empty = await rawReceive(s.dir, Buffer.from('00040000'));
  t.ok(empty.code === 0 || /^ERR /.test(errLines(empty.stdout)[0] ?? ''), 'an empty packet: a clean close or ERR');
  unchanged(t, s, 'empty packet');
  for (const [name, input] of [['nothing at all', Buffer.alloc(0)], ['a flush', FLUSH]] as const) {
    const r = await rawReceive(s.dir, input);
    t.equal(r.code, 0, `${name}: a clean close`);
    t.same(errLines(r.stdout), [], `${name}: no error`);
    unchanged(t, s, name);
  }
});

t.test('truncated and bit-flipped packs are refused', async (t) => {
  const s = server();
  const { pack, tip } = newHistory(s);
  const cmd = commands([[s.main, tip, 'refs/heads/main']]);
  const cuts = [0, 5, 12, 13, 40, Math.floor(pack.length / 2), pack.length - 21, pack.length - 20, pack.length - 1];
  for (const cut of cuts) {
    const r = await rawReceive(s.dir, Buffer.concat([cmd, pack.subarray(0, cut)]));
    const rep = report(r.stdout);
    t.match(rep[0], /^unpack (?!ok)/, `cut at ${cut}: unpack fails (${rep[0]})`);
    t.same(rep.slice(1), ['ng refs/heads/main unpacker error'], `cut at ${cut}: ref refused`);
    unchanged(t, s, `cut at ${cut}`);
  }
  const flips = [0, 4, 8, 11, 12, 14, 30, Math.floor(pack.length / 3), Math.floor(pack.length / 2), pack.length - 25, pack.length - 10];
  for (const at of flips) {
    const bad = Buffer.from(pack);
    bad[at]! ^= 0x10;
    const r = await rawReceive(s.dir, Buffer.concat([cmd, bad]));
    const rep = report(r.stdout);
    t.match(rep[0], /^unpack (?!ok)/, `flip at ${at}: unpack fails (${rep[0]})`);
    unchanged(t, s, `flip at ${at}`);
  }
  const good = await rawReceive(s.dir, Buffer.concat([cmd, pack]));
  t.same(report(good.stdout), ['unpack ok', 'ok refs/heads/main'], 'the intact pack goes through');
  t.equal(fsckStrict(s.dir), '');
});

t.test('crafted packs: bombs, lies, loops, missing bases, duplicates', async (t) => {
  const s = server();
  const blobData = Buffer.from('a small blob\n');
  const blobId = hashObject('blob', blobData);
  const zeros = Buffer.alloc(4 << 20);
  const cases: [string, Buffer, RegExp][] = [
    ['zlib bomb: 4 MiB of zeros declared as 10 bytes', craftPack([Buffer.concat([encodeEntryHeader(3, 10), zlib.deflateSync(zeros)])]), /inflates to more than|expected 10/],
    ['object shorter than declared', craftPack([Buffer.concat([encodeEntryHeader(3, blobData.length + 5), zlib.deflateSync(blobData)])]), /inflates to|truncated|expected/],
    ['garbage instead of zlib', craftPack([Buffer.concat([encodeEntryHeader(3, 5), Buffer.from('not zlib at all')])]), /inflate failed|incorrect header/],
    ['bad entry type 5', craftPack([Buffer.concat([encodeEntryHeader(5, 3), zlib.deflateSync(Buffer.from('abc'))])]), /bad pack entry type|type 5/],
    ['more objects announced than sent', craftPack([whole(3, blobData)], 2), /truncated|inflate|mismatch|unresolved|entry/],
    ['REF_DELTA base missing', craftPack([refDelta('1'.repeat(40), insertDelta(3, 3, Buffer.from('abc')))]), /unresolved delta/],
    ['REF_DELTA loop', (() => {
      const a = hashObject('blob', Buffer.from('xyz'));
      const b = hashObject('blob', Buffer.from('xyw'));
      return craftPack([refDelta(b, insertDelta(3, 3, Buffer.from('xyz'))), refDelta(a, insertDelta(3, 3, Buffer.from('xyw')))]);
    })(), /unresolved delta/],
    ['delta against the wrong base size', craftPack([whole(3, blobData), refDelta(blobId, insertDelta(99, 3, Buffer.from('abc')))]), /base size mismatch/],
    ['delta copying beyond its base', craftPack([whole(3, blobData), refDelta(blobId, Buffer.from([blobData.length, 50, 0x91, 0, 50]))]), /out of bounds/],
    ['delta producing less than it declares', craftPack([whole(3, blobData), refDelta(blobId, insertDelta(blobData.length, 9, Buffer.from('abc')))]), /expected 9|produced/],
    ['OFS_DELTA to the middle of an entry', (() => {
      const first = whole(3, blobData);
      const delta = zlib.deflateSync(insertDelta(blobData.length, 3, Buffer.from('abc')));
      const rel = first.length - 2;
      return craftPack([first, Buffer.concat([encodeEntryHeader(6, 6), encodeOfsDelta(rel), delta])]);
    })(), /not an entry|base offset/],
    ['OFS_DELTA before the pack', craftPack([Buffer.concat([encodeEntryHeader(6, 7), encodeOfsDelta(1000), zlib.deflateSync(insertDelta(3, 3, Buffer.from('abc')))])]), /outside the pack/],
    ['the same object twice', craftPack([whole(3, blobData), whole(3, blobData)]), /appears twice/],
    ['a tree fsck refuses', craftPack([whole(2, Buffer.concat([Buffer.from('40000 .git\0'), Buffer.from('4b825dc642cb6eb9a060e54bf8d69288fbee4904', 'hex')]))]), /hasDotgit/],
  ];
  for (const [name, pack, want] of cases) {
    const r = await rawReceive(s.dir, Buffer.concat([commands([[ZERO, blobId, 'refs/tags/crafted']]), pack]));
    const rep = report(r.stdout);
    t.match(rep[0] ?? '', /^unpack /, `${name}: reported`);
    t.match(rep[0] ?? '', want, `${name}: ${rep[0]}`);
    t.notMatch(rep[0] ?? '', /^unpack ok/, `${name}: refused`);
    unchanged(t, s, name);
  }
  const big = await rawReceive(s.dir, Buffer.concat([commands([[ZERO, blobId, 'refs/tags/crafted']]), craftPack([whole(3, randomBytes(100000))])]), ['--max-input-bytes', '5000']);
  t.match(report(big.stdout)[0], /exceeds the maximum allowed size/, 'input size limit');
  unchanged(t, s, 'input size limit');
});

t.test('objects git fsck --strict would reject are refused (pushed by git)', async (t) => {
  const s = server();
  const wt = WorkTree.clone(s.dir);
  const gitDir = path.join(wt.dir, '.git');
  const write = (type: string, data: Buffer): string => {
    const r = spawnSync('git', ['--git-dir', gitDir, 'hash-object', '-w', '--literally', '-t', type, '--stdin'], { input: data, env: gitEnv() });
    return r.stdout.toString().trim();
  };
  const blob = write('blob', Buffer.from('payload\n'));
  const treeOf = (name: string, mode = '100644', oid = blob): string => write('tree', Buffer.concat([Buffer.from(`${mode} ${name}\0`), Buffer.from(oid, 'hex')]));
  const modules = write('blob', Buffer.from('[submodule "x"]\n\tpath = x\n\turl = --upload-pack=touch$IFS/tmp/pwned\n'));
  const cases: [string, string, RegExp][] = [
    ['tree with .git', treeOf('.git'), /hasDotgit/],
    ['tree with ..', treeOf('..', '40000', treeOf('a')), /hasDotdot/],
    ['tree with a zero-padded mode', treeOf('dir', '040000', treeOf('a')), /zeroPaddedFilemode/],
    ['.gitmodules with a dangerous url', treeOf('.gitmodules', '100644', modules), /gitmodulesUrl/],
  ];
  let n = 0;
  for (const [name, tree, want] of cases) {
    const commit = wt.git(['commit-tree', tree, '-p', 'HEAD', '-m', name]).trim();
    const ref = `refs/heads/bad${n++}`;
    wt.git(['update-ref', ref, commit]);
    const r = await push(wt.dir, s.dir, [`${ref}:${ref}`]);
    t.not(r.code, 0, `${name}: push fails`);
    t.match(r.stderr, want, `${name}: git shows why`);
    t.match(pushStatus(r).get(ref)?.summary, /unpacker error/, `${name}: ref refused`);
    unchanged(t, s, name);
  }
  const badCommit = write('commit', Buffer.from(`tree ${treeOf('ok')}\nparent ${s.main}\nauthor A <a@b 1700000000 +0000\ncommitter C <c@d> 1700000000 +0000\n\nbad email\n`));
  wt.git(['update-ref', 'refs/heads/badmail', badCommit]);
  const r = await push(wt.dir, s.dir, ['refs/heads/badmail:refs/heads/badmail']);
  t.match(r.stderr, /badEmail/, 'a commit with a bad email');
  unchanged(t, s, 'bad email');
});

t.test('refs that cannot move: names, types, missing objects, stale info', async (t) => {
  const s = server();
  const { pack, tip } = newHistory(s);
  const blob = git(['--git-dir', s.dir, 'rev-parse', `${s.main}:README.md`]).trim();
  const tagObj = git(['--git-dir', s.dir, 'for-each-ref', '--format=%(objectname)', 'refs/tags/']).trim().split('\n')[0]!;
  const missing = '1234567890123456789012345678901234567890';
  const r = await rawReceive(s.dir, Buffer.concat([commands([
    [s.main, tip, 'refs/heads/main'],
    [ZERO, tip, 'refs/heads/a..b'],
    [ZERO, tip, 'HEAD'],
    [ZERO, tip, 'refs/heads/x.lock'],
    [ZERO, tip, 'refs/heads/bad name'],
    [ZERO, blob, 'refs/heads/blob'],
    [ZERO, tagObj, 'refs/heads/tagged'],
    [ZERO, missing, 'refs/heads/missing'],
    [missing, tip, 'refs/heads/stale'],
    [ZERO, tip, 'refs/heads/main/sub'],
    [ZERO, blob, 'refs/tags/blob-tag'],
  ]), pack]));
  const rep = report(r.stdout);
  t.equal(rep[0], 'unpack ok');
  const st = new Map(rep.slice(1).map((l) => [l.split(' ')[1]!, l]));
  t.equal(st.get('refs/heads/main'), 'ok refs/heads/main');
  t.match(st.get('refs/heads/a..b'), /^ng .* ref name contains '\.\.'/);
  t.match(st.get('HEAD'), /^ng HEAD funny refname/);
  t.match(st.get('refs/heads/x.lock'), /^ng .*\.lock/);
  t.match(st.get('refs/heads/bad'), /^ng refs\/heads\/bad name/);
  t.match(st.get('refs/heads/blob'), /^ng .*non-commit object/);
  t.match(st.get('refs/heads/tagged'), /^ng .*non-commit object/);
  t.match(st.get('refs/heads/missing'), /^ng .*missing necessary objects/);
  t.match(st.get('refs/heads/stale'), /^ng .*stale info/);
  t.match(st.get('refs/heads/main/sub'), /^ng .*exists; cannot create/);
  t.equal(st.get('refs/tags/blob-tag'), 'ok refs/tags/blob-tag', 'a tag may name a blob');
  t.equal(fsckStrict(s.dir), '');
  t.equal(git(['--git-dir', s.dir, 'rev-parse', 'refs/heads/main']).trim(), tip);
  t.match(refsOf(s.dir), new RegExp(`${blob} refs/tags/blob-tag`));
  t.notMatch(refsOf(s.dir), /refs\/heads\/(blob|tagged|missing|stale|a\.\.b)/);
  t.same(fs.readdirSync(path.join(s.dir, 'objects')).filter((f) => f.startsWith('incoming-')), [], 'no quarantine left');
});

t.test('an old commit that merely exists is not trusted: its history may be incomplete', async (t) => {
  const s = server();
  const tree = git(['--git-dir', s.dir, 'rev-parse', `${s.main}^{tree}`]).trim();
  const commitText = (parent: string, msg: string) =>
    Buffer.from(`tree ${tree}\nparent ${parent}\nauthor A <a@example.org> 1700000000 +0000\ncommitter A <a@example.org> 1700000000 +0000\n\n${msg}\n`);
  const writeLoose = (data: Buffer): string => {
    const r = spawnSync('git', ['--git-dir', s.dir, 'hash-object', '-w', '-t', 'commit', '--stdin', '--literally'], { input: data, env: gitEnv() });
    return r.stdout.toString().trim();
  };
  // Dangling commits left in the repository: one whose parent is gone, one whose history is whole.
  const broken = writeLoose(commitText('1'.repeat(40), 'parent pruned long ago'));
  const whole_ = writeLoose(commitText(s.main, 'dangling but complete'));
  t.equal(fsckStrict(s.dir), '', 'dangling objects do not fail fsck');
  const snap = snapshot(s.dir);
  const onBroken = commitText(broken, 'new work on a broken base');
  const r = await rawReceive(s.dir, Buffer.concat([commands([[ZERO, hashObject('commit', onBroken), 'refs/heads/x']]), craftPack([whole(1, onBroken)])]));
  t.same(report(r.stdout), ['unpack ok', 'ng refs/heads/x missing necessary objects'], 'refused');
  t.equal(refsOf(s.dir).includes('refs/heads/x'), false);
  t.equal(snapshot(s.dir), snap, 'nothing changed');
  const onWhole = commitText(whole_, 'new work on a complete base');
  const ok = await rawReceive(s.dir, Buffer.concat([commands([[ZERO, hashObject('commit', onWhole), 'refs/heads/y']]), craftPack([whole(1, onWhole)])]));
  t.same(report(ok.stdout), ['unpack ok', 'ok refs/heads/y'], 'a dangling commit with its whole history is fine');
  t.equal(fsckStrict(s.dir), '');
});

t.test('an old tree that merely exists is not trusted either', async (t) => {
  const s = server();
  const tree = git(['--git-dir', s.dir, 'rev-parse', `${s.main}^{tree}`]).trim();
  // A dangling tree naming a blob the repository does not have.
  const holey = git(['--git-dir', s.dir, 'mktree', '--missing'], { input: `100644 blob ${'2'.repeat(40)}\tgone.txt\n` }).trim();
  t.equal(fsckStrict(s.dir), '', 'a dangling tree does not fail fsck');
  const snap = snapshot(s.dir);
  const entries = git(['--git-dir', s.dir, 'ls-tree', tree]);
  const root = git(['--git-dir', s.dir, 'mktree'], { input: `${entries}040000 tree ${holey}\tzz-holey\n` }).trim();
  const rootData = spawnSync('git', ['--git-dir', s.dir, 'cat-file', 'tree', root], { env: gitEnv() }).stdout;
  const c = Buffer.from(`tree ${root}\nparent ${s.main}\nauthor A <a@example.org> 1700000000 +0000\ncommitter A <a@example.org> 1700000000 +0000\n\nuses the holey tree\n`);
  // Send the new root tree and commit, as a client that believed the server had the rest would.
  fs.rmSync(path.join(s.dir, 'objects', root.slice(0, 2), root.slice(2)));
  t.equal(snapshot(s.dir), snap, 'back to the state before');
  const r = await rawReceive(s.dir, Buffer.concat([commands([[s.main, hashObject('commit', c), 'refs/heads/main']]), craftPack([whole(2, rootData), whole(1, c)])]));
  t.same(report(r.stdout), ['unpack ok', 'ng refs/heads/main missing necessary objects'], 'refused');
  t.equal(snapshot(s.dir), snap, 'nothing changed');
});
