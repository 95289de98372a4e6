/**
 * Pushes with stock git through our receive-pack (stdio entry point) into
 * bare repositories: every kind of ref update, protect rules, --atomic,
 * push options, thin packs and a large blob. After each push the server
 * passes git fsck --strict and a clone of it has exactly the expected refs.
 */
import t from 'tap';
import { randomBytes } from 'node:crypto';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { BUILD, ROOT, git, mkrepo, run, tmpdir } from './lib/util';
import { push, pushStatus, receivePackCmd, serverMatches, WorkTree } from './lib/receive';

function bare(): string {
  const dir = path.join(tmpdir('gotd-srv-'), 'srv.git');
  git(['init', '-q', '--bare', '-b', 'main', dir]);
  return dir;
}

t.test('every kind of update, starting from an empty repository', async (t) => {
  const srv = bare();
  const wt = WorkTree.clone(mkrepo(['--preset', 'small']));
  const refs: Record<string, string> = {};

  let r = await push(wt.dir, srv, ['main']);
  t.equal(r.code, 0, `first push: ${r.stderr}`);
  refs['refs/heads/main'] = wt.rev('main');
  t.equal(serverMatches(srv, refs), '', 'full history pushed into an empty repository');

  wt.commit('README.md');
  wt.commit('src/new/file.c', 'int main(void) { return 0; }\n');
  r = await push(wt.dir, srv, ['main']);
  t.equal(r.code, 0, `fast-forward: ${r.stderr}`);
  refs['refs/heads/main'] = wt.rev('main');
  t.equal(serverMatches(srv, refs), '', 'fast-forward');

  wt.git(['checkout', '-q', '-b', 'topic']);
  wt.commit('topic.txt');
  r = await push(wt.dir, srv, ['topic']);
  t.equal(r.code, 0, `new branch: ${r.stderr}`);
  refs['refs/heads/topic'] = wt.rev('topic');
  t.equal(serverMatches(srv, refs), '', 'new branch');

  wt.git(['tag', '-a', 'v9.0', '-m', 'release 9.0']);
  wt.git(['tag', 'light']);
  r = await push(wt.dir, srv, ['v9.0', 'light']);
  t.equal(r.code, 0, `tags: ${r.stderr}`);
  refs['refs/tags/v9.0'] = wt.rev('v9.0');
  refs['refs/tags/light'] = wt.rev('light');
  t.not(refs['refs/tags/v9.0'], refs['refs/tags/light'], 'the annotated tag is a tag object');
  t.equal(serverMatches(srv, refs), '', 'annotated and lightweight tag');

  r = await push(wt.dir, srv, [':topic', ':light']);
  t.equal(r.code, 0, `delete: ${r.stderr}`);
  delete refs['refs/heads/topic'];
  delete refs['refs/tags/light'];
  t.equal(serverMatches(srv, refs), '', 'branch and tag deleted');
  t.notOk(fs.existsSync(path.join(srv, 'refs', 'heads', 'topic')), 'loose ref gone');

  wt.git(['checkout', '-q', 'main']);
  wt.git(['reset', '-q', '--hard', 'HEAD~3']);
  wt.commit('rewritten.txt');
  r = await push(wt.dir, srv, ['main']);
  t.not(r.code, 0, 'a non-fast-forward needs --force (the client refuses)');
  r = await push(wt.dir, srv, ['--force', 'main']);
  t.equal(r.code, 0, `force push: ${r.stderr}`);
  t.equal(pushStatus(r).get('refs/heads/main')?.flag, '+', 'reported as forced update');
  refs['refs/heads/main'] = wt.rev('main');
  t.equal(serverMatches(srv, refs), '', 'force push');

  r = await push(wt.dir, srv, [':main']);
  t.not(r.code, 0, 'deleting the current branch is refused');
  t.match(pushStatus(r).get('refs/heads/main')?.summary, /deletion of the current branch prohibited/);
  t.equal(serverMatches(srv, refs), '', 'current branch kept');
});

t.test('packed refs: update and delete a ref that only packed-refs has', async (t) => {
  const srv = mkrepo(['--preset', 'small'], { copy: true });
  t.ok(fs.existsSync(path.join(srv, 'packed-refs')), 'mkrepo packs its refs');
  const wt = WorkTree.clone(srv);
  const before = git(['--git-dir', srv, 'for-each-ref', '--format=%(objectname) %(refname)']).trim().split('\n');
  const refs: Record<string, string> = Object.fromEntries(before.map((l) => [l.split(' ')[1]!, l.split(' ')[0]!]));
  const tag = Object.keys(refs).find((n) => n.startsWith('refs/tags/'))!;
  const branch = Object.keys(refs).find((n) => n.startsWith('refs/heads/') && n !== 'refs/heads/main')!;
  wt.commit();
  const r = await push(wt.dir, srv, ['main', `:${tag}`, `:${branch}`]);
  t.equal(r.code, 0, r.stderr);
  refs['refs/heads/main'] = wt.rev('main');
  delete refs[tag];
  delete refs[branch];
  t.equal(serverMatches(srv, refs), '');
  t.notMatch(fs.readFileSync(path.join(srv, 'packed-refs'), 'utf8'), tag, 'deleted tag left packed-refs');
});

t.test('protocol versions: v1 announces itself, v2 falls back to v0', async (t) => {
  for (const v of ['1', '2']) {
    const srv = bare();
    const wt = WorkTree.init();
    wt.commit();
    const r = await push(wt.dir, srv, ['main'], { env: { GIT_CONFIG_COUNT: '1', GIT_CONFIG_KEY_0: 'protocol.version', GIT_CONFIG_VALUE_0: v } });
    t.equal(r.code, 0, `protocol.version=${v}: ${r.stderr}`);
    t.equal(serverMatches(srv, { 'refs/heads/main': wt.rev('main') }), '');
  }
});

t.test('protected branches and branch namespaces: create and fast-forward only', async (t) => {
  const srv = bare();
  const rpArgs = ['--protect-branch', 'main', '--protect-branch-namespace', 'refs/heads/release/'];
  const wt = WorkTree.init();
  wt.commit();
  wt.commit();
  wt.git(['branch', 'release/1.0']);
  wt.git(['branch', 'free']);
  let r = await push(wt.dir, srv, ['main', 'release/1.0', 'free'], { rpArgs });
  t.equal(r.code, 0, `protected refs may be created: ${r.stderr}`);
  const refs: Record<string, string> = { 'refs/heads/main': wt.rev('main'), 'refs/heads/release/1.0': wt.rev('main'), 'refs/heads/free': wt.rev('main') };

  wt.commit();
  wt.git(['branch', '-f', 'release/1.0', 'main']);
  r = await push(wt.dir, srv, ['main', 'release/1.0'], { rpArgs });
  t.equal(r.code, 0, `and fast-forwarded: ${r.stderr}`);
  refs['refs/heads/main'] = refs['refs/heads/release/1.0'] = wt.rev('main');
  t.equal(serverMatches(srv, refs), '');

  wt.git(['reset', '-q', '--hard', 'HEAD~2']);
  wt.git(['branch', '-f', 'release/1.0', 'main']);
  wt.git(['branch', '-f', 'free', 'main']);
  r = await push(wt.dir, srv, ['--force', 'main', 'release/1.0', 'free'], { rpArgs });
  t.not(r.code, 0, 'rewinding protected refs fails');
  const st = pushStatus(r);
  t.match(st.get('refs/heads/main'), { flag: '!', summary: /\[remote rejected\].*protected branch: non-fast-forward/ });
  t.match(st.get('refs/heads/release/1.0'), { flag: '!', summary: /\[remote rejected\].*protected branch/ });
  t.equal(st.get('refs/heads/free')?.flag, '+', 'the unprotected branch in the same push is rewound');
  refs['refs/heads/free'] = wt.rev('main');
  t.equal(serverMatches(srv, refs), '');

  r = await push(wt.dir, srv, [':main', ':release/1.0'], { rpArgs });
  t.not(r.code, 0);
  t.match(pushStatus(r).get('refs/heads/release/1.0'), { flag: '!', summary: /protected branch: may not be deleted/ });
  t.equal(serverMatches(srv, refs), '', 'nothing deleted');

  wt.git(['checkout', '-q', '--orphan', 'unrelated']);
  wt.commit('other.txt');
  r = await push(wt.dir, srv, ['--force', 'unrelated:main'], { rpArgs });
  t.match(pushStatus(r).get('refs/heads/main'), { flag: '!', summary: /non-fast-forward/ }, 'unrelated history is no fast-forward');
  t.equal(serverMatches(srv, refs), '');
});

t.test('protected tag namespaces: tags may be created, never moved or deleted', async (t) => {
  const srv = bare();
  const rpArgs = ['--protect-tag-namespace', 'refs/tags/'];
  const wt = WorkTree.init();
  wt.commit();
  wt.git(['tag', 'light']);
  wt.git(['tag', '-a', 'annotated', '-m', 'an annotated tag']);
  let r = await push(wt.dir, srv, ['main', 'light', 'annotated'], { rpArgs });
  t.equal(r.code, 0, r.stderr);
  const refs: Record<string, string> = { 'refs/heads/main': wt.rev('main'), 'refs/tags/light': wt.rev('light'), 'refs/tags/annotated': wt.rev('annotated') };
  wt.commit();
  wt.git(['tag', '-f', 'light']);
  wt.git(['tag', '-f', '-a', 'annotated', '-m', 'moved']);
  r = await push(wt.dir, srv, ['--force', 'main', 'light', 'annotated'], { rpArgs });
  const st = pushStatus(r);
  t.match(st.get('refs/tags/light'), { flag: '!', summary: /\[remote rejected\].*protected tag: may not be moved/ }, 'lightweight tag');
  t.match(st.get('refs/tags/annotated'), { flag: '!', summary: /\[remote rejected\].*protected tag/ }, 'annotated tag');
  t.equal(st.get('refs/heads/main')?.flag, ' ', 'the branch in the same push moves');
  refs['refs/heads/main'] = wt.rev('main');
  r = await push(wt.dir, srv, [':light', ':annotated'], { rpArgs });
  t.match(pushStatus(r).get('refs/tags/light'), { flag: '!', summary: /protected tag: may not be deleted/ });
  t.equal(serverMatches(srv, refs), '');
});

t.test('--atomic: one refused ref refuses them all', async (t) => {
  const srv = bare();
  const rpArgs = ['--protect-branch', 'main'];
  const wt = WorkTree.init();
  wt.commit();
  wt.commit();
  let r = await push(wt.dir, srv, ['main'], { rpArgs });
  t.equal(r.code, 0, r.stderr);
  const refs = { 'refs/heads/main': wt.rev('main') };
  wt.git(['reset', '-q', '--hard', 'HEAD~1']);
  wt.commit('other.txt');
  wt.git(['branch', 'side']);
  r = await push(wt.dir, srv, ['--atomic', '--force', 'main', 'side'], { rpArgs });
  t.not(r.code, 0);
  const st = pushStatus(r);
  t.match(st.get('refs/heads/main'), { flag: '!', summary: /protected branch/ });
  t.match(st.get('refs/heads/side'), { flag: '!', summary: /atomic push failure/ });
  t.equal(serverMatches(srv, refs), '', 'neither ref moved');
  t.same(fs.readdirSync(path.join(srv, 'objects', 'pack')).filter((f) => f.endsWith('.pack')).length, 1, 'the refused push left no pack behind');

  r = await push(wt.dir, srv, ['--force', 'main', 'side'], { rpArgs });
  t.equal(pushStatus(r).get('refs/heads/side')?.flag, '*', 'without --atomic the other ref goes through');
  t.equal(serverMatches(srv, { ...refs, 'refs/heads/side': wt.rev('side') }), '');
});

t.test('push options reach the server', async (t) => {
  const srv = bare();
  const wt = WorkTree.init();
  wt.commit();
  const r = await push(wt.dir, srv, ['-o', 'ci.skip', '-o', 'reviewer=alice bob', 'main'], { rpArgs: ['-v'] });
  t.equal(r.code, 0, r.stderr);
  t.match(r.stderr, /push option: ci\.skip/);
  t.match(r.stderr, /push option: reviewer=alice bob/);
  t.equal(serverMatches(srv, { 'refs/heads/main': wt.rev('main') }), '');
});

t.test('thin pack: clone, commit, push; the server completes the pack', async (t) => {
  const srv = bare();
  const first = WorkTree.init();
  first.commit('big.txt', Array.from({ length: 4000 }, (_, i) => `line ${i} of a file big enough to be sent as a delta`).join('\n') + '\n');
  let r = await push(first.dir, srv, ['main']);
  t.equal(r.code, 0, r.stderr);
  const wt = WorkTree.clone(srv);
  fs.appendFileSync(path.join(wt.dir, 'big.txt'), 'one more line\n');
  wt.git(['commit', '-q', '-am', 'small change to a big file']);
  r = await push(wt.dir, srv, ['--progress', 'main']);
  t.equal(r.code, 0, r.stderr);
  t.match(r.stderr, /Total 3 \(delta 1\)/, 'git sent the new blob as a delta against one we have');
  t.match(r.stderr, /completed thin pack with 1 local object/, 'the pack was thin and got its base appended');
  t.equal(serverMatches(srv, { 'refs/heads/main': wt.rev('main') }), '');
  for (const f of fs.readdirSync(path.join(srv, 'objects', 'pack')).filter((f) => f.endsWith('.idx'))) {
    git(['--git-dir', srv, 'verify-pack', path.join(srv, 'objects', 'pack', f)]);
  }
  t.pass('git verify-pack accepts every pack');
});

t.test('a 50 MB incompressible blob', async (t) => {
  const srv = bare();
  const wt = WorkTree.init();
  fs.writeFileSync(path.join(wt.dir, 'firmware.bin'), randomBytes(50 << 20));
  wt.git(['add', 'firmware.bin']);
  wt.git(['commit', '-q', '-m', 'firmware']);
  const r = await push(wt.dir, srv, ['main']);
  t.equal(r.code, 0, r.stderr);
  t.equal(serverMatches(srv, { 'refs/heads/main': wt.rev('main') }), '');
});

t.test("under Node's permission model: write access to the repository only", async (t) => {
  const srv = bare();
  const rp = receivePackCmd();
  // The same command, confined: read the runtime and the repository, write the repository.
  const confined = rp.replace(/^'[^']*node[^']*'/, `env -u NODE_OPTIONS '${process.execPath}' --no-warnings --experimental-permission ` +
    `--allow-fs-read=${BUILD}/ --allow-fs-read=${path.join(ROOT, 'node_modules')}/ --allow-fs-read=${srv}/ --allow-fs-write=${srv}/`);
  t.not(confined, rp, 'the command is confined');
  const wt = WorkTree.init();
  wt.commit('big.txt', Array.from({ length: 3000 }, (_, i) => `row ${i}`).join('\n') + '\n');
  const go = (args: string[]) => run('git', ['push', '--porcelain', `--receive-pack=${confined}`, srv, ...args], { cwd: wt.dir });
  let r = await go(['main']);
  t.equal(r.code, 0, `first push: ${r.stderr}`);
  const clone = WorkTree.clone(srv);
  fs.appendFileSync(path.join(clone.dir, 'big.txt'), 'more\n');
  clone.git(['commit', '-q', '-am', 'thin']);
  clone.git(['tag', '-a', 'v1', '-m', 'v1']);
  r = await run('git', ['push', '--porcelain', `--receive-pack=${confined}`, srv, 'main', 'main:side', 'v1'], { cwd: clone.dir });
  t.equal(r.code, 0, `thin push, new branch, tag: ${r.stderr}`);
  r = await run('git', ['push', '--porcelain', `--receive-pack=${confined}`, srv, ':side'], { cwd: clone.dir });
  t.equal(r.code, 0, `delete: ${r.stderr}`);
  t.equal(serverMatches(srv, { 'refs/heads/main': clone.rev('main'), 'refs/tags/v1': clone.rev('v1') }), '');
});
