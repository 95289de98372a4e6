/**
 * Concurrency: several clients pushing to one ref at once never lose an
 * update (exactly one wins each compare-and-swap round, the others are told
 * and retry); readers polling during the pushes see an old or a new value,
 * always with its objects present; `git repack -a -d` and `git prune`
 * running in a loop beside the pushes corrupt nothing.
 */
import t from 'tap';
import * as path from 'node:path';
import { fsckStrict, git, run, tmpdir } from './lib/util';
import { packObjects, pktLine, pktLines, push, pushStatus, rawReceive, WorkTree } from './lib/receive';

function bare(): string {
  const dir = path.join(tmpdir('gotd-srv-'), 'srv.git');
  git(['init', '-q', '--bare', '-b', 'main', dir]);
  return dir;
}

const CLIENTS = 4;

t.test('concurrent pushes to one ref: one winner per round, no lost update', async (t) => {
  const srv = bare();
  const seed = WorkTree.init();
  seed.commit('base.txt', 'base\n');
  t.equal((await push(seed.dir, srv, ['main'])).code, 0);
  const clients = Array.from({ length: CLIENTS }, () => WorkTree.clone(srv));
  const mine = clients.map((c, i) => c.commit(`client-${i}.txt`, `work of client ${i}\n`));
  const seen = new Set<string>([seed.rev('main')]);
  let pending = clients.map((_, i) => i);
  let polling = true;
  const observed = new Set<string>();
  const badReads: string[] = [];
  const reader = (async () => {
    while (polling) {
      const r = await run('git', ['--git-dir', srv, 'rev-parse', '--verify', '-q', 'refs/heads/main^{commit}']);
      if (r.code !== 0) badReads.push(`rev-parse failed: ${r.stderr}`);
      else observed.add(r.stdout.trim());
    }
  })();
  for (let round = 0; pending.length > 0 && round < CLIENTS + 2; round++) {
    const results = await Promise.all(pending.map((i) => push(clients[i]!.dir, srv, ['main'])));
    const winners = pending.filter((_, k) => results[k]!.code === 0);
    t.equal(winners.length, 1, `round ${round}: exactly one of ${pending.length} pushes wins`);
    for (const [k, i] of pending.entries()) {
      if (results[k]!.code === 0) continue;
      const st = pushStatus(results[k]!).get('refs/heads/main');
      t.match(st?.summary ?? results[k]!.stderr, /stale info|cannot lock ref|fetch first|non-fast-forward|rejected/, `round ${round}: client ${i} is told it lost`);
    }
    const head = git(['--git-dir', srv, 'rev-parse', 'refs/heads/main']).trim();
    seen.add(head);
    pending = pending.filter((i) => !winners.includes(i));
    for (const i of pending) {
      clients[i]!.git(['pull', '-q', '--rebase', 'origin', 'main']);
    }
  }
  polling = false;
  await reader;
  t.same(pending, [], 'every client got its commit in');
  const log = git(['--git-dir', srv, 'log', '--format=%s', 'refs/heads/main']);
  for (let i = 0; i < CLIENTS; i++) t.match(log, `change 1 to client-${i}.txt`, `client ${i}'s commit is in main (${mine[i]!.slice(0, 8)} or its rebase)`);
  t.equal(fsckStrict(srv), '');
  t.same(badReads, [], 'readers always found a valid ref');
  for (const o of observed) t.ok(seen.has(o), `readers saw only values main really had (${o.slice(0, 8)})`);
});

t.test('compare-and-swap: the same old value from several clients at once', async (t) => {
  const srv = bare();
  const wt = WorkTree.init();
  wt.commit('base.txt', 'base\n');
  t.equal((await push(wt.dir, srv, ['main'])).code, 0);
  for (let round = 0; round < 3; round++) {
    const old = git(['--git-dir', srv, 'rev-parse', 'refs/heads/main']).trim();
    const tips: string[] = [];
    const inputs: Buffer[] = [];
    for (let i = 0; i < CLIENTS; i++) {
      wt.git(['checkout', '-q', '-B', `c${i}`, old]);
      const tip = wt.commit(`cas-${round}-${i}.txt`, `${round} ${i}\n`);
      tips.push(tip);
      const pack = packObjects(path.join(wt.dir, '.git'), `${tip}\n^${old}\n`, ['--revs']);
      const cmd = pktLine(`${old} ${tip} refs/heads/main\0report-status\n`);
      inputs.push(Buffer.concat([cmd, Buffer.from('0000'), pack]));
    }
    const results = await Promise.all(inputs.map((input) => rawReceive(srv, input)));
    const reports = results.map((r) => pktLines(r.stdout).filter((l) => /^(ok|ng) /.test(l)).join(''));
    const winners = reports.flatMap((r, i) => (r.startsWith('ok refs/heads/main') ? [i] : []));
    t.equal(winners.length, 1, `round ${round}: exactly one of ${CLIENTS} wins (${reports.map((r) => r.trim()).join('; ')})`);
    for (const [i, r] of reports.entries()) {
      if (i !== winners[0]) t.match(r, /^ng refs\/heads\/main (stale info|cannot lock ref)/, `round ${round}: client ${i} is refused`);
    }
    t.equal(git(['--git-dir', srv, 'rev-parse', 'refs/heads/main']).trim(), tips[winners[0]!], 'main is the winner\'s commit');
    t.equal(fsckStrict(srv), '');
  }
});

t.test('git repack -a -d and git prune running beside pushes', async (t) => {
  const srv = bare();
  const wt = WorkTree.init();
  wt.commit('base.txt', 'base\n'.repeat(1000));
  t.equal((await push(wt.dir, srv, ['main'])).code, 0);
  let busy = true;
  let gcRuns = 0;
  const gc = (async () => {
    while (busy) {
      await run('git', ['--git-dir', srv, 'repack', '-a', '-d', '-q']);
      await run('git', ['--git-dir', srv, 'prune', '--expire=now']);
      gcRuns++;
    }
  })();
  const refs: Record<string, string> = {};
  for (let i = 0; i < 12; i++) {
    wt.commit(`f${i % 3}.txt`, `version ${i}\n`.repeat(200 + i));
    const branch = `b${i % 4}`;
    wt.git(['branch', '-f', branch, 'HEAD']);
    const r = await push(wt.dir, srv, ['--force', 'main', branch]);
    t.equal(r.code, 0, `push ${i}: ${r.stderr}`);
    refs['refs/heads/main'] = wt.rev('main');
    refs[`refs/heads/${branch}`] = wt.rev('main');
  }
  busy = false;
  await gc;
  t.ok(gcRuns > 0, `${gcRuns} repack+prune runs overlapped the pushes`);
  t.equal(fsckStrict(srv), '', 'fsck --strict');
  for (const [name, oid] of Object.entries(refs)) {
    t.equal(git(['--git-dir', srv, 'rev-parse', name]).trim(), oid, `${name} intact`);
  }
  git(['--git-dir', srv, 'repack', '-a', '-d', '-q']);
  git(['--git-dir', srv, 'prune', '--expire=now']);
  t.equal(fsckStrict(srv), '', 'fsck --strict after a final repack and prune');
});
