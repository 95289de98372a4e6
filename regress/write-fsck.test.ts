/**
 * Our fsck against git's: a table of objects, good and bad, each judged by
 * our fsckObject/fsckSpecialBlob and, all written into one repository with
 * `git hash-object --literally`, by `git fsck --strict`. Every object git
 * flags we must refuse; every object we accept git must accept.
 */
import t from 'tap';
import * as path from 'node:path';
import { spawnSync } from 'node:child_process';
import { FsckError, fsckObject, fsckSpecialBlob, newSpecialBlobs, parseConfig, submoduleUrlOk } from '../src/git/fsck';
import { hashObject, type ObjectType } from '../src/git/object';
import { git, gitEnv, tmpdir } from './lib/util';

const repo = path.join(tmpdir('gotd-fsck-'), 'r.git');
git(['init', '-q', '--bare', repo]);

function write(type: ObjectType, data: Buffer): string {
  const r = spawnSync('git', ['--git-dir', repo, 'hash-object', '-w', '--literally', '-t', type, '--stdin'], { input: data, env: gitEnv() });
  if (r.status !== 0) throw new Error(r.stderr.toString());
  return r.stdout.toString().trim();
}

const blob = write('blob', Buffer.from('hello\n'));
const blob2 = write('blob', Buffer.from('other\n'));

function tree(entries: [string, string, string][]): Buffer {
  return Buffer.concat(entries.map(([mode, name, oid]) => Buffer.concat([Buffer.from(`${mode} ${name}\0`, 'utf8'), Buffer.from(oid, 'hex')])));
}

const goodTree = write('tree', tree([['100644', 'a', blob]]));
const ident = 'A U Thor <author@example.org> 1700000000 +0100';

function commit(headers: string, message = 'msg\n'): Buffer {
  return Buffer.from(`${headers}\n${message}`);
}

interface Case { name: string; type: ObjectType; data: Buffer; id: string | null }

const cases: Case[] = [
  { name: 'good tree', type: 'tree', data: tree([['100644', 'a', blob], ['40000', 'd', goodTree], ['120000', 'l', blob], ['160000', 'sub', blob2], ['100755', 'x', blob]]), id: null },
  { name: 'tree with 100664 (only informational in git)', type: 'tree', data: tree([['100664', 'a', blob]]), id: null },
  { name: '.git entry', type: 'tree', data: tree([['40000', '.git', goodTree]]), id: 'hasDotgit' },
  { name: '.GIT entry', type: 'tree', data: tree([['100644', '.GIT', blob]]), id: 'hasDotgit' },
  { name: 'NTFS .git. entry', type: 'tree', data: tree([['100644', '.git. ', blob]]), id: 'hasDotgit' },
  { name: 'NTFS short name git~1', type: 'tree', data: tree([['40000', 'GIT~1', goodTree]]), id: 'hasDotgit' },
  { name: 'HFS ignorable code point', type: 'tree', data: tree([['40000', '.g\u200cit', goodTree]]), id: 'hasDotgit' },
  { name: 'backslash path to .git', type: 'tree', data: tree([['100644', 'a\\.git\\config', blob]]), id: 'hasDotgit' },
  { name: '.gitx is fine', type: 'tree', data: tree([['100644', '.gitx', blob]]), id: null },
  { name: '. entry', type: 'tree', data: tree([['40000', '.', goodTree]]), id: 'hasDot' },
  { name: '.. entry', type: 'tree', data: tree([['40000', '..', goodTree]]), id: 'hasDotdot' },
  { name: 'slash in name', type: 'tree', data: tree([['100644', 'a/b', blob]]), id: 'fullPathname' },
  { name: 'null sha1', type: 'tree', data: tree([['100644', 'a', '0'.repeat(40)]]), id: 'nullSha1' },
  { name: 'zero-padded mode', type: 'tree', data: tree([['040000', 'd', goodTree]]), id: 'zeroPaddedFilemode' },
  { name: 'duplicate entries', type: 'tree', data: tree([['100644', 'a', blob], ['100644', 'a', blob2]]), id: 'duplicateEntries' },
  { name: 'file and directory of one name', type: 'tree', data: tree([['100644', 'a', blob], ['100644', 'a.c', blob], ['40000', 'a', goodTree]]), id: 'duplicateEntries' },
  { name: 'unsorted', type: 'tree', data: tree([['100644', 'b', blob], ['100644', 'a', blob]]), id: 'treeNotSorted' },
  { name: 'directory sorts as name/', type: 'tree', data: tree([['100644', 'a.c', blob], ['40000', 'a', goodTree]]), id: null },
  { name: 'truncated tree', type: 'tree', data: tree([['100644', 'a', blob]]).subarray(0, 20), id: 'badTree' },
  { name: 'empty name', type: 'tree', data: tree([['100644', '', blob]]), id: 'badTree' },
  { name: '.gitmodules symlink', type: 'tree', data: tree([['120000', '.gitmodules', blob]]), id: 'gitmodulesSymlink' },
  { name: 'good commit', type: 'commit', data: commit(`tree ${goodTree}\nauthor ${ident}\ncommitter ${ident}\n`), id: null },
  { name: 'commit with extra headers', type: 'commit', data: commit(`tree ${goodTree}\nparent ${'1'.repeat(40)}\nauthor ${ident}\ncommitter ${ident}\nencoding ISO-8859-1\n`), id: null },
  { name: 'no tree', type: 'commit', data: commit(`author ${ident}\ncommitter ${ident}\n`), id: 'missingTree' },
  { name: 'bad tree id', type: 'commit', data: commit(`tree ${goodTree.slice(1)}\nauthor ${ident}\ncommitter ${ident}\n`), id: 'badTreeSha1' },
  { name: 'bad parent id', type: 'commit', data: commit(`tree ${goodTree}\nparent xyz\nauthor ${ident}\ncommitter ${ident}\n`), id: 'badParentSha1' },
  { name: 'no author', type: 'commit', data: commit(`tree ${goodTree}\ncommitter ${ident}\n`), id: 'missingAuthor' },
  { name: 'two authors', type: 'commit', data: commit(`tree ${goodTree}\nauthor ${ident}\nauthor ${ident}\ncommitter ${ident}\n`), id: 'multipleAuthors' },
  { name: 'no committer', type: 'commit', data: commit(`tree ${goodTree}\nauthor ${ident}\n`), id: 'missingCommitter' },
  { name: 'bad email', type: 'commit', data: commit(`tree ${goodTree}\nauthor A <a@b 1700000000 +0000\ncommitter ${ident}\n`), id: 'badEmail' },
  { name: 'no space before email', type: 'commit', data: commit(`tree ${goodTree}\nauthor A<a@b> 1700000000 +0000\ncommitter ${ident}\n`), id: 'missingSpaceBeforeEmail' },
  { name: 'no name before email', type: 'commit', data: commit(`tree ${goodTree}\nauthor <a@b> 1700000000 +0000\ncommitter ${ident}\n`), id: 'missingNameBeforeEmail' },
  { name: 'bad name', type: 'commit', data: commit(`tree ${goodTree}\nauthor A> <a@b> 1700000000 +0000\ncommitter ${ident}\n`), id: 'badName' },
  { name: 'no email', type: 'commit', data: commit(`tree ${goodTree}\nauthor A 1700000000 +0000\ncommitter ${ident}\n`), id: 'missingEmail' },
  { name: 'no space before date', type: 'commit', data: commit(`tree ${goodTree}\nauthor A <a@b>1700000000 +0000\ncommitter ${ident}\n`), id: 'missingSpaceBeforeDate' },
  { name: 'zero-padded date', type: 'commit', data: commit(`tree ${goodTree}\nauthor A <a@b> 01700000000 +0000\ncommitter ${ident}\n`), id: 'zeroPaddedDate' },
  { name: 'date zero is fine', type: 'commit', data: commit(`tree ${goodTree}\nauthor A <a@b> 0 +0000\ncommitter ${ident}\n`), id: null },
  { name: 'date overflow', type: 'commit', data: commit(`tree ${goodTree}\nauthor A <a@b> 99999999999999999999 +0000\ncommitter ${ident}\n`), id: 'badDateOverflow' },
  { name: 'bad date', type: 'commit', data: commit(`tree ${goodTree}\nauthor A <a@b> 17x +0000\ncommitter ${ident}\n`), id: 'badDate' },
  { name: 'bad time zone', type: 'commit', data: commit(`tree ${goodTree}\nauthor A <a@b> 1700000000 +000\ncommitter ${ident}\n`), id: 'badTimezone' },
  { name: 'NUL in header', type: 'commit', data: commit(`tree ${goodTree}\nauthor A <a@b> 1700000000 +0000\0\ncommitter ${ident}\n`), id: 'nulInHeader' },
  { name: 'NUL in message', type: 'commit', data: commit(`tree ${goodTree}\nauthor ${ident}\ncommitter ${ident}\n`, 'a\0b\n'), id: 'nulInCommit' },
  { name: 'unterminated header', type: 'commit', data: Buffer.from(`tree ${goodTree}\nauthor ${ident}\ncommitter ${ident}`), id: 'unterminatedHeader' },
  { name: 'good tag', type: 'tag', data: commit(`object ${goodTree}\ntype tree\ntag v1\ntagger ${ident}\n`), id: null },
  { name: 'tag without tagger (informational)', type: 'tag', data: commit(`object ${goodTree}\ntype tree\ntag v1\n`), id: null },
  { name: 'tag with bad type', type: 'tag', data: commit(`object ${goodTree}\ntype trees\ntag v1\ntagger ${ident}\n`), id: 'badType' },
  { name: 'tag without tag line', type: 'tag', data: commit(`object ${goodTree}\ntype tree\ntagger ${ident}\n`), id: 'missingTagEntry' },
  { name: 'tag without object', type: 'tag', data: commit(`type tree\ntag v1\ntagger ${ident}\n`), id: 'missingObject' },
  { name: 'tag with bad tagger', type: 'tag', data: commit(`object ${goodTree}\ntype tree\ntag v1\ntagger A <a@b> +0000\n`), id: 'badDate' },
];

/** Special blobs: a tree naming a blob .gitmodules or .gitattributes, and the blob. */
const specials: { name: string; kind: 'gitmodules' | 'gitattributes'; content: string; id: string | null }[] = [
  { name: 'good .gitmodules', kind: 'gitmodules', content: '[submodule "lib"]\n\tpath = lib\n\turl = https://example.org/lib.git\n', id: null },
  { name: 'submodule url starting with -', kind: 'gitmodules', content: '[submodule "x"]\n\turl = -oProxyCommand=evil\n', id: 'gitmodulesUrl' },
  { name: 'submodule url with encoded newline', kind: 'gitmodules', content: '[submodule "x"]\n\turl = ./a%0ab\n', id: 'gitmodulesUrl' },
  { name: 'submodule url escaping its host', kind: 'gitmodules', content: '[submodule "x"]\n\turl = ../../:evil\n', id: 'gitmodulesUrl' },
  { name: 'http url without host', kind: 'gitmodules', content: '[submodule "x"]\n\turl = http:///path\n', id: 'gitmodulesUrl' },
  { name: 'submodule name with ..', kind: 'gitmodules', content: '[submodule "../../hooks"]\n\tpath = x\n', id: 'gitmodulesName' },
  { name: 'submodule path starting with -', kind: 'gitmodules', content: '[submodule "x"]\n\tpath = -rf\n', id: 'gitmodulesPath' },
  { name: 'submodule update command', kind: 'gitmodules', content: '[submodule "x"]\n\tupdate = !rm -rf /\n', id: 'gitmodulesUpdate' },
  { name: 'quoted and continued values', kind: 'gitmodules', content: '[submodule "x"]\n\turl = "-evil" ; comment\n', id: 'gitmodulesUrl' },
  { name: 'unparsable .gitmodules is only informational', kind: 'gitmodules', content: '[submodule "x"\n\turl = -evil\n', id: null },
  { name: 'good .gitattributes', kind: 'gitattributes', content: '*.c text\n', id: null },
  { name: 'long .gitattributes line', kind: 'gitattributes', content: `${'x'.repeat(3000)} text\n`, id: 'gitattributesLineLength' },
];

function ours(type: ObjectType, data: Buffer): string | null {
  try {
    fsckObject(hashObject(type, data), type, data, newSpecialBlobs());
    return null;
  } catch (err) {
    if (err instanceof FsckError) return err.id;
    throw err;
  }
}

t.test('objects: our verdict, and git fsck --strict agrees', async (t) => {
  const oids = new Map<string, Case>();
  for (const c of cases) {
    t.equal(ours(c.type, c.data), c.id, c.name);
    oids.set(write(c.type, c.data), c);
  }
  const specialOids = new Map<string, (typeof specials)[number]>();
  for (const s of specials) {
    const b = write('blob', Buffer.from(s.content));
    const treeData = tree([['100644', `.${s.kind}`, b]]);
    const found = newSpecialBlobs();
    fsckObject(hashObject('tree', treeData), 'tree', treeData, found);
    t.ok(found[s.kind].has(b), `${s.name}: the tree marks the blob`);
    let id: string | null = null;
    try {
      fsckSpecialBlob(b, s.kind, { type: 'blob', data: Buffer.from(s.content) });
    } catch (err) {
      id = (err as FsckError).id;
    }
    t.equal(id, s.id, s.name);
    write('tree', treeData);
    specialOids.set(b, s);
  }
  const r = spawnSync('git', ['--git-dir', repo, 'fsck', '--strict', '--no-dangling'], { env: gitEnv(), encoding: 'utf8' });
  const report = r.stdout + r.stderr;
  for (const [oid, c] of oids) {
    const flagged = new RegExp(`(error|fatal).*${oid}`).test(report);
    if (c.id) t.ok(flagged, `git flags ${c.name} too`);
    else t.notOk(flagged, `git accepts ${c.name}`);
  }
  for (const [oid, s] of specialOids) {
    const flagged = new RegExp(`(error|fatal).*${oid}`).test(report);
    if (s.id) t.ok(flagged, `git flags ${s.name} too`);
    else t.notOk(flagged, `git accepts ${s.name}`);
  }
});

t.test('a .gitmodules that is not a blob, or missing', async (t) => {
  const idOf = (f: () => void): string | null => {
    try {
      f();
      return null;
    } catch (err) {
      return (err as FsckError).id;
    }
  };
  t.equal(idOf(() => fsckSpecialBlob(goodTree, 'gitmodules', { type: 'tree', data: Buffer.alloc(0) })), 'gitmodulesBlob');
  t.equal(idOf(() => fsckSpecialBlob(blob, 'gitattributes', null)), 'gitattributesMissing');
});

t.test('config parser and url rules', async (t) => {
  t.same(parseConfig(Buffer.from('top = 1\n[Submodule "A b"]\n\tURL = "x y" # c\n\tflag\n[core.sub]\n k=v\\\n w\n')), [
    { section: 'submodule', subsection: 'A b', key: 'url', value: 'x y' },
    { section: 'submodule', subsection: 'A b', key: 'flag', value: null },
    { section: 'core', subsection: 'sub', key: 'k', value: 'v w' },
  ]);
  t.ok(submoduleUrlOk('git@example.org:lib.git'));
  t.ok(submoduleUrlOk('../lib.git'));
  t.ok(submoduleUrlOk('https://user@example.org/lib.git'));
  t.notOk(submoduleUrlOk('https::example.org'));
});
