/**
 * A push through the stdio receive-pack under Node's permission model, with
 * the flags a confined writer gets (read: the runtime and the repository,
 * write: the repository only), is durable: strace shows fsync(2) on the
 * pack, the idx, the .keep, each ref lock and packed-refs.lock, and on the
 * directories after the renames, in the order the engine promises.
 */
import t from 'tap';
import { spawnSync } from 'node:child_process';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { nodeFlags } from '../src/sys/confine';
import { gitEnv, mkrepo, refsOf, run, tmpdir } from './lib/util';
import { pushStatus, RECEIVE_PACK, serverMatches, WorkTree } from './lib/receive';

const q = (s: string): string => `'${s.replace(/'/g, `'\\''`)}'`;
const hasStrace = spawnSync('strace', ['-V']).status === 0;

interface Event { line: number; call: 'fsync' | 'rename'; paths: string[] }

/** fsync and rename calls that succeeded, in order, with the paths strace -y decoded. */
function events(log: string): Event[] {
  const out: Event[] = [];
  // Calls that overlap in several threads come in two halves: "call(... <unfinished ...>" and "<... call resumed>...".
  const pending = new Map<string, string>();
  log.split('\n').forEach((whole, line) => {
    const pid = /^(\d+)\s/.exec(whole)?.[1] ?? '';
    const cut = / <unfinished \.\.\.>$/.exec(whole);
    if (cut) { pending.set(pid, whole.slice(0, cut.index)); return; }
    const resumed = /^\d+\s+<\.\.\. \w+ resumed>(.*)$/.exec(whole);
    const l = resumed ? `${pending.get(pid) ?? ''}${resumed[1]!}` : whole;
    if (!/\)\s+= 0$/.test(l)) return;
    const f = /\b(?:fsync|fdatasync)\(\d+<([^>]*)>\)/.exec(l);
    if (f) { out.push({ line, call: 'fsync', paths: [f[1]!] }); return; }
    if (/\brename(?:at2?)?\(/.test(l)) out.push({ line, call: 'rename', paths: [...l.matchAll(/"([^"]*)"/g)].map((m) => m[1]!) });
  });
  return out;
}

t.test('a push under the permission model fsyncs pack, idx, locks and directories', async (t) => {
  const srv = fs.realpathSync(mkrepo(['--preset', 'small'], { copy: true }));
  const wt = WorkTree.clone(srv);
  const other = wt.git(['for-each-ref', '--format=%(refname:lstrip=3)', 'refs/remotes/origin/']).split('\n')
    .find((n) => n && n !== 'main' && n !== 'HEAD')!;
  const before = Object.fromEntries(refsOf(srv).split('\n').map((l) => l.split(' ').reverse()));
  wt.commit('durable.txt');
  const log = path.join(tmpdir('gotd-strace-'), 'strace.log');
  // Without tap's process tracker (NODE_OPTIONS), whose loader the permission model keeps out.
  const node = ['env', '-u', 'NODE_OPTIONS', process.execPath, ...nodeFlags(srv, true, 512), RECEIVE_PACK];
  const rp = (hasStrace ? ['strace', '-f', '-qq', '-y', '-e', 'trace=fsync,fdatasync,rename,renameat,renameat2', '-o', log] : []).concat(node);
  const r = await run('git', ['push', '--porcelain', `--receive-pack=${rp.map(q).join(' ')}`, srv,
    'main', 'HEAD:refs/heads/durable/new', `:${other}`], { cwd: wt.dir, env: gitEnv() });
  t.equal(r.code, 0, `push under --experimental-permission: ${r.stderr}`);
  const status = pushStatus(r);
  for (const ref of ['refs/heads/main', 'refs/heads/durable/new', `refs/heads/${other}`]) {
    const s = status.get(ref);
    t.ok(s && s.flag !== '!', `${ref}: ${s ? `${s.flag} ${s.summary}` : 'no status'}`);
  }
  const head = wt.rev('main');
  const expected: Record<string, string> = { ...before, 'refs/heads/main': head, 'refs/heads/durable/new': head };
  delete expected[`refs/heads/${other}`];
  t.equal(serverMatches(srv, expected), '', 'fsck --strict; the server and a clone of it have exactly the refs pushed');

  await t.test('fsync(2) calls, in order', { skip: hasStrace ? false : 'strace is not installed (apt-get install strace)' }, async (t) => {
    const ev = events(fs.readFileSync(log, 'utf8'));
    const fsyncs = ev.filter((e) => e.call === 'fsync');
    t.comment(`strace: ${fsyncs.length} fsync calls, ${ev.length - fsyncs.length} renames`);
    const packDir = path.join(srv, 'objects', 'pack');
    /** Index of the first event after `from` matching. */
    const find = (from: number, call: Event['call'], test: (p: string[]) => boolean): number => {
      for (let i = from + 1; i < ev.length; i++) if (ev[i]!.call === call && test(ev[i]!.paths)) return i;
      return -1;
    };
    const syncOf = (from: number, p: string | RegExp): number => find(from, 'fsync', (ps) => typeof p === 'string' ? ps[0] === p : p.test(ps[0]!));
    const renameTo = (from: number, p: string | RegExp): number => find(from, 'rename', (ps) => typeof p === 'string' ? ps[1] === p : p.test(ps[1] ?? ''));

    /** Both found after `from`, in either order: the later of the two. */
    const both = (a: (from: number) => number, b: (from: number) => number) => (from: number): number => {
      const x = a(from);
      const y = b(from);
      return x > from && y > from ? Math.max(x, y) : -1;
    };
    const steps: Array<[string, (from: number) => number]> = [
      ['pack data', (i) => syncOf(i, /\/objects\/incoming-[0-9a-f]+\/pack\/tmp_pack_/)],
      ['idx data', (i) => syncOf(i, /\/objects\/incoming-[0-9a-f]+\/pack\/tmp_idx_/)],
      ['.keep', (i) => syncOf(i, new RegExp(`^${packDir}/pack-[0-9a-f]{40}\\.keep$`))],
      ['pack renamed into objects/pack', (i) => renameTo(i, new RegExp(`^${packDir}/pack-[0-9a-f]{40}\\.pack$`))],
      ['objects/pack synced', (i) => syncOf(i, packDir)],
      ['idx renamed into objects/pack', (i) => renameTo(i, new RegExp(`^${packDir}/pack-[0-9a-f]{40}\\.idx$`))],
      ['objects/pack synced again', (i) => syncOf(i, packDir)],
      // The ref locks are written in parallel (their fsyncs share journal commits), in any order.
      ['main.lock and durable/new.lock', both((i) => syncOf(i, path.join(srv, 'refs/heads/main.lock')), (i) => syncOf(i, path.join(srv, 'refs/heads/durable/new.lock')))],
      ['packed-refs.lock', (i) => syncOf(i, path.join(srv, 'packed-refs.lock'))],
      ['packed-refs renamed', (i) => renameTo(i, path.join(srv, 'packed-refs'))],
      ['repository directory synced', (i) => syncOf(i, srv)],
      ['main and durable/new renamed', both((i) => renameTo(i, path.join(srv, 'refs/heads/main')), (i) => renameTo(i, path.join(srv, 'refs/heads/durable/new')))],
      // Each directory once, after the renames in it.
      ['refs/heads and refs/heads/durable synced', both((i) => syncOf(i, path.join(srv, 'refs/heads')), (i) => syncOf(i, path.join(srv, 'refs/heads/durable')))],
    ];
    let at = -1;
    for (const [what, next] of steps) {
      const i = next(at);
      t.ok(i > at, `${what}${i > at ? `: ${ev[i]!.call} ${ev[i]!.paths.join(' -> ')}` : ' missing or out of order'}`);
      if (i > at) at = i;
    }
    // A new directory (refs/heads/durable) is itself made durable in its parent.
    const dirSynced = syncOf(-1, path.join(srv, 'refs/heads'));
    t.ok(dirSynced >= 0 && dirSynced < syncOf(-1, path.join(srv, 'refs/heads/durable/new.lock')), 'refs/heads synced after mkdir refs/heads/durable, before its lock is written');
  });
});
