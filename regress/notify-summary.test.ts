/**
 * The read side of notifications, checked against git itself: commit
 * ranges against `git rev-list`, diffstats against `git diff-tree --numstat`,
 * and push summaries (new branch, update, deletion, tags, filters, caps)
 * built from real pushes.
 */
import t from 'tap';
import { spawnSync } from 'node:child_process';
import * as fs from 'node:fs';
import { diffTrees, lineChanges } from '../src/git/diffstat';
import { Repository } from '../src/git/repository';
import { commitRange } from '../src/git/revrange';
import { refMatches } from '../src/notify/filter';
import { notificationBody, notifications } from '../src/notify/json';
import { DEFAULT_LIMITS, summarizePush, type Change } from '../src/notify/summary';
import { ZERO, workspace } from './lib/notify';
import { fsckStrict, git, mkrepo, tmpdir } from './lib/util';

const BIG = { blobBytes: 1 << 30, files: 1 << 20 };

/**
 * git's numstat of a commit against its first parent (or the empty tree), as
 * "added\tremoved\tpath" lines.  --minimal: git's default diff gives up on
 * minimality for speed, our counts are those of a shortest edit script.
 */
function gitNumstat(gitDir: string, commit: string): string[] {
  const parents = git(['--git-dir', gitDir, 'rev-list', '--parents', '-n1', commit]).trim().split(' ').slice(1);
  const range = parents[0] ? [parents[0], commit] : ['--root', commit];
  const out = git(['--git-dir', gitDir, '-c', 'core.quotePath=false', 'diff-tree', '-r', '--numstat', '--no-renames', '--minimal', '--format=', ...range]);
  return byPath(out.split('\n').filter(Boolean).map((l) => l.normalize()));
}

/** numstat lines sorted by their path. */
function byPath(lines: string[]): string[] {
  const path = (l: string) => l.split('\t')[2]!;
  return lines.sort((a, b) => (path(a) < path(b) ? -1 : path(a) > path(b) ? 1 : 0));
}

function ourNumstat(repo: Repository, commit: string): string[] {
  const c = git(['--git-dir', repo.gitDir, 'rev-parse', `${commit}^{tree}`]).trim();
  const parents = git(['--git-dir', repo.gitDir, 'rev-list', '--parents', '-n1', commit]).trim().split(' ').slice(1);
  const pt = parents[0] ? git(['--git-dir', repo.gitDir, 'rev-parse', `${parents[0]}^{tree}`]).trim() : null;
  const stat = diffTrees(repo.objects, pt, c, { ...BIG }, { maxBlobBytes: 1 << 30 });
  // git reports a mode-only change with 0 0; binary files as "-".
  return byPath(stat.files.map((f) => (f.binary ? `-\t-\t${f.path}` : `${f.added}\t${f.removed}\t${f.path}`)));
}

t.test('line counts are those of a shortest edit script', async (t) => {
  const b = (s: string) => Buffer.from(s);
  t.same(lineChanges(b(''), b('a\nb\n')), { added: 2, removed: 0 });
  t.same(lineChanges(b('a\nb\nc\n'), b('a\nc\n')), { added: 0, removed: 1 });
  t.same(lineChanges(b('a\nb\nc\n'), b('a\nB\nc\nd\n')), { added: 2, removed: 1 });
  t.same(lineChanges(b('a'), b('a\n')), { added: 1, removed: 1 }, 'a missing final newline is a change, as in git');
  t.same(lineChanges(b('x\ny\n'), b('y\nx\n')), { added: 1, removed: 1 });
});

t.test('diffstat matches git diff-tree --numstat on a hand-made history', async (t) => {
  const ws = workspace();
  const commits: string[] = [];
  commits.push(ws.commit({ 'a.txt': 'one\ntwo\nthree\n', 'dir/b.c': 'int x;\n', 'keep': 'k\n' }, 'first'));
  commits.push(ws.commit({ 'a.txt': 'one\n2\nthree\nfour\n', 'new.md': '# t\n\nhello\n' }, 'edit and add'));
  commits.push(ws.commit({ 'dir/b.c': null, 'bin.dat': Buffer.from([0, 1, 2, 3, 0, 255]) }, 'delete and binary'));
  commits.push(ws.commit({ 'bin.dat': Buffer.from([0, 9, 9, 9]), 'a.txt': 'one\n2\nthree\nfour' }, 'binary change, final newline lost'));
  ws.git(['update-index', '--chmod=+x', 'keep']);
  ws.git(['commit', '-q', '-m', 'mode only']);
  commits.push(ws.git(['rev-parse', 'HEAD']).trim());
  commits.push(ws.commit({ 'keep': null }, 'remove keep'));
  commits.push(ws.commit({ 'keep/inner.txt': 'now a directory\n', 'a.txt': null, 'a.txt.orig': 'x\n' }, 'file becomes directory'));
  commits.push(ws.commit({ 'ünïcode name.txt': 'é\n' }, 'non-ASCII path'));
  ws.push(['main']);
  const repo = Repository.open(ws.bare);
  for (const c of commits) {
    const oursLines = ourNumstat(repo, c).map((l) => l.normalize());
    const theirs = gitNumstat(ws.bare, c);
    t.same(oursLines, theirs, `commit ${c.slice(0, 8)}`);
  }
  // The mode-only commit says so.
  const modeOnly = commits[4]!;
  const pt = git(['--git-dir', ws.bare, 'rev-parse', `${modeOnly}^^{tree}`]).trim();
  const tt = git(['--git-dir', ws.bare, 'rev-parse', `${modeOnly}^{tree}`]).trim();
  const stat = diffTrees(repo.objects, pt, tt, { ...BIG }, { maxBlobBytes: 1 << 20 });
  t.same(stat.files.map((f) => [f.path, f.status]), [['keep', 'm']]);
  repo.close();
  t.equal(fsckStrict(ws.bare), '');
});

t.test('diffstat matches git on the mkrepo history, and its caps hold', async (t) => {
  const gitDir = mkrepo(['--preset', 'small']);
  const repo = Repository.open(gitDir);
  const list = git(['--git-dir', gitDir, 'rev-list', '--first-parent', '-n', '80', 'main']).split('\n').filter(Boolean);
  let checked = 0;
  let differing = 0;
  const tmp = tmpdir('gotd-numstat-');
  for (const c of list) {
    const ours = ourNumstat(repo, c).map((l) => l.split('\t'));
    const theirs = gitNumstat(gitDir, c).map((l) => l.split('\t'));
    t.same(ours.map((x) => x[2]), theirs.map((x) => x[2]), `commit ${c.slice(0, 8)}: same paths`);
    for (let i = 0; i < ours.length && i < theirs.length; i++) {
      const [oa, or, path] = ours[i]!;
      const [ga, gr] = theirs[i]!;
      if (ga === '-' || oa === '-') { t.equal(oa, ga, `${path}: binary both ways`); continue; }
      // git's diff is not always minimal, even with --minimal (xdiff prunes
      // frequent lines); ours is.  The growth is the same, the edits never more.
      t.equal(Number(oa) - Number(or), Number(ga) - Number(gr), `${c.slice(0, 8)} ${path}: same growth`);
      t.ok(Number(oa) + Number(or) <= Number(ga) + Number(gr), `${c.slice(0, 8)} ${path}: no more edits than git`);
      if (oa === ga || differing >= 20) continue;
      // Where git's count differs, GNU diff --minimal (a true shortest script) agrees with ours.
      differing++;
      const parent = git(['--git-dir', gitDir, 'rev-parse', `${c}^`]).trim();
      const a = `${tmp}/a`;
      const b = `${tmp}/b`;
      fs.writeFileSync(a, git(['--git-dir', gitDir, 'cat-file', 'blob', `${parent}:${path}`]));
      fs.writeFileSync(b, git(['--git-dir', gitDir, 'cat-file', 'blob', `${c}:${path}`]));
      const d = spawnSync('diff', ['--minimal', a, b], { encoding: 'utf8' }).stdout.split('\n');
      t.same([d.filter((l) => l.startsWith('> ')).length, d.filter((l) => l.startsWith('< ')).length], [Number(oa), Number(or)], `${c.slice(0, 8)} ${path}: as diff --minimal counts`);
    }
    checked++;
  }
  t.ok(differing > 0, 'the history has files where git is not minimal');
  t.equal(checked, 80);

  // A file budget cuts the listing; a byte budget and blob cap turn counts off.
  const root = list[list.length - 1]!;
  const tree = git(['--git-dir', gitDir, 'rev-parse', `${root}^{tree}`]).trim();
  const all = diffTrees(repo.objects, null, tree, { ...BIG }, { maxBlobBytes: 1 << 30 });
  t.ok(all.files.length > 10);
  const cut = diffTrees(repo.objects, null, tree, { blobBytes: 1 << 30, files: 5 }, { maxBlobBytes: 1 << 30 });
  t.equal(cut.files.length, 5);
  t.ok(cut.truncated);
  const budget = { blobBytes: 2000, files: 1 << 20 };
  const poor = diffTrees(repo.objects, null, tree, budget, { maxBlobBytes: 1 << 30 });
  t.ok(poor.files.some((f) => f.binary), 'files past the byte budget get no line counts');
  t.ok(budget.blobBytes <= 2000);
  const small = diffTrees(repo.objects, null, tree, { ...BIG }, { maxBlobBytes: 100 });
  t.ok(small.files.filter((f) => f.binary).every((f) => f.newSize > 100), 'only blobs over the cap are skipped');
  repo.close();
});

t.test('commit ranges match git rev-list', async (t) => {
  const gitDir = mkrepo(['--preset', 'small']);
  const repo = Repository.open(gitDir);
  const main = git(['--git-dir', gitDir, 'rev-list', '--first-parent', 'main']).split('\n').filter(Boolean);
  const refs = git(['--git-dir', gitDir, 'for-each-ref', '--format=%(refname) %(objectname)']).split('\n').filter(Boolean).map((l) => l.split(' ') as [string, string]);
  const pairs: [string, string][] = [[main[0]!, main[5]!], [main[0]!, main[40]!], [main[10]!, main[200]!], [main[3]!, main[3]!]];
  for (const [name, oid] of refs) if (name.startsWith('refs/heads/') && name !== 'refs/heads/main') pairs.push([oid, main[0]!], [main[0]!, oid]);
  for (const [tip, old] of pairs) {
    const theirs = git(['--git-dir', gitDir, 'rev-list', tip, `^${old}`]).split('\n').filter(Boolean);
    const ours = commitRange(repo.objects, [tip], [old], { maxCommits: 100_000, maxWalk: 1_000_000 });
    t.same(new Set(ours.commits.map((c) => c.oid)), new Set(theirs), `${tip.slice(0, 8)} ^${old.slice(0, 8)}: ${theirs.length} commits`);
    t.notOk(ours.truncated);
  }
  // A branch against every other ref (annotated tags included, peeled).
  for (const [name, oid] of refs.filter(([n]) => n.startsWith('refs/heads/'))) {
    const others = refs.filter(([n]) => n !== name).map(([, o]) => o);
    const theirs = git(['--git-dir', gitDir, 'rev-list', oid, '--not', ...others]).split('\n').filter(Boolean);
    const ours = commitRange(repo.objects, [oid], others, { maxCommits: 100_000, maxWalk: 1_000_000 });
    t.same(new Set(ours.commits.map((c) => c.oid)), new Set(theirs), `${name} --not others`);
  }
  // Caps: the newest commits are kept, and the walk stops at its budget.
  const capped = commitRange(repo.objects, [main[0]!], [main[30]!], { maxCommits: 7, maxWalk: 1_000_000 });
  t.equal(capped.commits.length, 7);
  t.ok(capped.truncated);
  t.same(capped.commits.map((c) => c.oid), git(['--git-dir', gitDir, 'rev-list', '-n', '7', main[0]!, `^${main[30]}`]).split('\n').filter(Boolean));
  const walkCut = commitRange(repo.objects, [main[0]!], [], { maxCommits: 100_000, maxWalk: 50 });
  t.ok(walkCut.truncated);
  t.ok(walkCut.commits.length <= 50);
  repo.close();
});

t.test('filters: branches and namespaces', async (t) => {
  const f = { branches: ['main'], namespaces: ['refs/tags/'] };
  t.ok(refMatches('refs/heads/main', f));
  t.notOk(refMatches('refs/heads/mainline', f));
  t.notOk(refMatches('refs/heads/dev', f));
  t.ok(refMatches('refs/tags/v1.0', f));
  t.notOk(refMatches('refs/tagsx/v1', { branches: [], namespaces: ['refs/tags'] }));
  t.ok(refMatches('refs/anything/at/all', { branches: [], namespaces: [] }), 'no filter: every ref');
  t.ok(refMatches('refs/heads/release/1', { branches: [], namespaces: ['refs/heads/release/'] }));
});

function kinds(changes: Change[]): string[] {
  return changes.map((c) => `${c.kind} ${c.ref}`);
}

t.test('push summaries from real pushes', async (t) => {
  const ws = workspace();
  const c1 = ws.commit({ 'README': 'hello\n' }, 'Initial import\n\nWith a body.');
  const c2 = ws.commit({ 'README': 'hello\nworld\n', 'src/main.c': 'int main(void) { return 0; }\n' }, 'Add main');
  const first = ws.push(['main']);
  t.same(first, [{ ref: 'refs/heads/main', old: ZERO, new: c2, ok: true }]);
  const all = { branches: [], namespaces: [] };

  let repo = Repository.open(ws.bare);
  let s = summarizePush(repo, 'src', 'alice', first, all);
  repo.close();
  t.same(kinds(s.changes), ['commits refs/heads/main']);
  const ch = s.changes[0]!;
  if (ch.kind !== 'commits') throw new Error('not commits');
  t.ok(ch.created);
  t.same(ch.commits.map((c) => c.id), [c1, c2], 'a new branch in an empty repository lists all its commits, oldest first');
  t.equal(ch.commits[0]!.shortMessage, 'Initial import');
  t.equal(ch.commits[0]!.message, 'Initial import\n\nWith a body.\n');
  t.same(ch.commits[1]!.diffstat?.files.map((f) => [f.status, f.path, f.added, f.removed]), [['M', 'README', 1, 0], ['A', 'src/main.c', 1, 0]]);

  // Three more commits on main, a feature branch off the middle, a tag, all in one push.
  const c3 = ws.commit({ 'a': '1\n' }, 'third');
  const c4 = ws.commit({ 'a': '2\n' }, 'fourth');
  ws.git(['branch', 'feature', c3]);
  ws.git(['checkout', '-q', 'feature']);
  const f1 = ws.commit({ 'f': 'feature\n' }, 'feature work');
  ws.git(['checkout', '-q', 'main']);
  const c5 = ws.commit({ 'a': '3\n' }, 'fifth');
  ws.git(['tag', '-a', '-m', 'Release 1.0\n\nNotes.', 'v1.0', c4], { GIT_COMMITTER_DATE: '1700001000 +0000' });
  ws.git(['tag', 'light', c2]);
  const second = ws.push(['main', 'feature', 'v1.0', 'light']);
  t.equal(second.length, 4);

  repo = Repository.open(ws.bare);
  s = summarizePush(repo, 'src', 'alice', second, all);
  t.same(kinds(s.changes), ['commits refs/heads/feature', 'commits refs/heads/main', 'commits refs/tags/light', 'tag refs/tags/v1.0']);
  const byRef = new Map(s.changes.map((c) => [c.ref, c]));
  const main = byRef.get('refs/heads/main')!;
  const feature = byRef.get('refs/heads/feature')!;
  const light = byRef.get('refs/tags/light')!;
  const tag = byRef.get('refs/tags/v1.0')!;
  if (main.kind !== 'commits' || feature.kind !== 'commits' || light.kind !== 'commits' || tag.kind !== 'tag') throw new Error('wrong kinds');
  t.same(main.commits.map((c) => c.id), [c3, c4, c5], 'update: old..new, oldest first');
  t.same(feature.commits.map((c) => c.id), [c3, f1], 'new branch: commits no ref had before the push');
  t.same(light.commits.map((c) => c.id), [c2], 'a new ref at an old commit announces that commit');
  t.equal(tag.tag.type, 'commit');
  t.equal(tag.tag.object, c4);
  t.equal(tag.tag.message, 'Release 1.0\n\nNotes.\n');
  t.equal(tag.tag.date, 1700001000);

  // The JSON, in gotd's words.
  const json = notifications(s);
  const tagJson = json.find((o) => o.type === 'tag')!;
  t.same(tagJson, {
    type: 'tag', repo: 'src', auth_user: 'alice', tag: 'refs/tags/v1.0',
    tagger: { full: 'Test Committer <committer@example.org>', name: 'Test Committer', mail: 'committer@example.org', user: 'committer' },
    date: 1700001000, object: { type: 'commit', id: c4 }, message: 'Release 1.0\n\nNotes.\n',
  });
  const c5Json = json.find((o) => o.id === c5)!;
  t.same(Object.keys(c5Json), ['type', 'short', 'repo', 'auth_user', 'ref', 'id', 'committer', 'author', 'date', 'short_message', 'message', 'diffstat']);
  t.same(c5Json.diffstat, { files: [{ action: 'modified', file: 'a', added: 1, removed: 1 }], total: { added: 1, removed: 1 } });
  t.equal(c5Json.short, false);
  t.equal(typeof c5Json.date, 'number');
  repo.close();

  // Filters: only main and tags.
  repo = Repository.open(ws.bare);
  s = summarizePush(repo, 'src', 'alice', second, { branches: ['main'], namespaces: ['refs/tags/'] });
  t.same(kinds(s.changes).sort(), ['commits refs/heads/main', 'commits refs/tags/light', 'tag refs/tags/v1.0']);
  s = summarizePush(repo, 'src', 'alice', second, { branches: ['feature'], namespaces: [] });
  t.same(kinds(s.changes), ['commits refs/heads/feature']);
  repo.close();

  // Deleting a branch, and a forced rewind.
  ws.git(['reset', '-q', '--hard', c3]);
  const third = ws.push([':feature', '+main']);
  repo = Repository.open(ws.bare);
  s = summarizePush(repo, 'src', 'bob', third, all);
  t.same(kinds(s.changes), ['deleted refs/heads/feature', 'commits refs/heads/main']);
  const del = notifications(s)[0]!;
  t.same(del, { type: 'branch-deleted', repo: 'src', auth_user: 'bob', ref: 'refs/heads/feature', id: f1 });
  const rewound = s.changes[1]!;
  t.ok(rewound.kind === 'commits' && rewound.commits.length === 0, 'a rewind brings no new commits');
  t.equal(notificationBody({ ...s, changes: [rewound] }), null, 'and makes no JSON notification');
  repo.close();

  // Two new branches sharing new commits in one push: each commit is listed once.
  ws.git(['checkout', '-q', '-b', 'b1']);
  const b1a = ws.commit({ 'b': '1\n' }, 'b1 first');
  const b1b = ws.commit({ 'b': '2\n' }, 'b1 second');
  ws.git(['checkout', '-q', '-b', 'b2']);
  const b2a = ws.commit({ 'b': '3\n' }, 'b2 only');
  const fourth = ws.push(['b1', 'b2']);
  repo = Repository.open(ws.bare);
  s = summarizePush(repo, 'src', 'bob', fourth, all);
  t.same(s.changes.map((c) => (c.kind === 'commits' ? [c.ref, c.commits.map((x) => x.id)] : [])), [
    ['refs/heads/b1', [b1a, b1b]],
    ['refs/heads/b2', [b2a]],
  ]);
  repo.close();
  t.equal(fsckStrict(ws.bare), '');
});

t.test('many commits are listed short, and the lists are capped', async (t) => {
  const ws = workspace();
  ws.commit({ 'f': '0\n' }, 'base');
  ws.push(['main']);
  const before = ws.refs().get('refs/heads/main')!;
  const ids: string[] = [];
  for (let i = 1; i <= 12; i++) ids.push(ws.commit({ 'f': `${i}\n` }, `change ${i}`));
  const updates = ws.push(['main']);
  t.same(updates, [{ ref: 'refs/heads/main', old: before, new: ids[11], ok: true }]);
  const repo = Repository.open(ws.bare);
  const limits = { ...DEFAULT_LIMITS, fullCommits: 5, maxCommitsPerRef: 8 };
  const s = summarizePush(repo, 'r', 'u', updates, { branches: [], namespaces: [] }, { limits });
  const ch = s.changes[0]!;
  if (ch.kind !== 'commits') throw new Error('not commits');
  t.ok(ch.short);
  t.ok(ch.truncated);
  t.same(ch.commits.map((c) => c.id), ids.slice(4), 'the newest 8, oldest first');
  t.ok(ch.commits.every((c) => c.diffstat === null));
  const json = notifications(s);
  t.equal(json.length, 8);
  t.same(Object.keys(json[0]!), ['type', 'short', 'repo', 'auth_user', 'ref', 'id', 'committer', 'date', 'short_message']);
  t.equal(json[0]!.short, true);
  repo.close();
});
