/**
 * The confinement of session workers, exercised directly: the same command
 * line gotd uses (src/sys/confine.ts), with the probe or with hostile code
 * in place of the worker, run as the daemon's user.
 */
import t from 'tap';
import { spawn } from 'node:child_process';
import * as fs from 'node:fs';
import * as net from 'node:net';
import * as path from 'node:path';
import type { Ids } from '../src/gotd/layers';
import { fromWorkerSchema, parseMessage, sessionSchema } from '../src/ipc/messages';
import type { Confinement } from '../src/sys/confine';
import { DAEMON_USER, ensureAccounts, install, IS_ROOT, mustAccount, openTmpdir, repoFor } from './lib/daemon';
import { git } from './lib/util';

// The installed runtime, which the daemon user can read (the build tree may be private).
const lib = path.join(install().prefix, 'lib', 'gotd', 'src');
/* eslint-disable @typescript-eslint/no-require-imports */
const { detectLayers, runProbe } = require(path.join(lib, 'gotd', 'layers.js')) as typeof import('../src/gotd/layers');
const { entryPath, findBwrap, workerCommand } = require(path.join(lib, 'sys', 'confine.js')) as typeof import('../src/sys/confine');
/* eslint-enable @typescript-eslint/no-require-imports */

const why = IS_ROOT ? ensureAccounts() : null;
const as: Ids | undefined = IS_ROOT && !why ? mustAccount(DAEMON_USER) : undefined;
const dir = openTmpdir();
const repoA = repoFor(dir, 'a', as ? mustAccount(DAEMON_USER) : null);
const repoB = repoFor(dir, 'b', as ? mustAccount(DAEMON_USER) : null);

const plain: Confinement = { bwrap: null, disableUserns: false, heapMb: 256, writerPermission: true };
const bw = findBwrap();
const layers: Array<[string, Confinement | null]> = [
  ['permission model', plain],
  ['bubblewrap + permission model', bw ? { bwrap: bw.path, disableUserns: bw.disableUserns, heapMb: 256, writerPermission: true } : null],
];

/** Runs code (as -e) in the worker confinement; it reports with process.send. */
function hostile(c: Confinement, code: string, write: boolean): Promise<{ report: unknown; stderr: string; code: number | null }> {
  const cmd = workerCommand(c, ['-e', code], fs.realpathSync(repoA), write);
  return new Promise((resolve) => {
    const child = spawn(cmd.file, cmd.args, { stdio: ['ignore', 'ignore', 'pipe', 'ipc'], env: {}, ...(as ? { uid: as.uid, gid: as.gid } : {}) });
    let stderr = '';
    let report: unknown = null;
    child.stderr!.on('data', (b: Buffer) => { stderr += b.toString(); });
    child.on('message', (m) => { report = m; });
    child.on('close', (code) => resolve({ report, stderr, code }));
  });
}

const ESCAPES = `
const fs = require('fs');
const out = {};
const tryit = (k, f) => { try { f(); out[k] = 'allowed'; } catch (e) { out[k] = e.code || e.name; } };
const B = ${JSON.stringify(fs.realpathSync(repoB))};
const A = ${JSON.stringify(fs.realpathSync(repoA))};
tryit('readOther', () => fs.readFileSync(B + '/HEAD'));
tryit('statOther', () => fs.statSync(B + '/HEAD'));
tryit('readEtc', () => fs.readFileSync('/etc/passwd'));
tryit('listRoot', () => fs.readdirSync('/'));
tryit('exec', () => require('child_process').execSync('id'));
tryit('fork', () => require('child_process').fork('/dev/null'));
tryit('worker', () => new (require('worker_threads').Worker)('1', { eval: true }));
tryit('binding', () => process.binding('fs'));
tryit('dlopen', () => process.dlopen({ exports: {} }, A + '/x.node'));
tryit('eval', () => eval('1+1'));
tryit('newFunction', () => new Function('return 1')());
tryit('symlinkOut', () => { fs.symlinkSync(B + '/HEAD', A + '/escape'); fs.readFileSync(A + '/escape'); });
tryit('writeOther', () => fs.writeFileSync(B + '/pwned', 'x'));
tryit('writeOwn', () => { fs.writeFileSync(A + '/probe', 'x'); fs.unlinkSync(A + '/probe'); });
process.send(out, () => process.exit(0));
`;

for (const [name, c] of layers) {
  t.test(name, { skip: c ? false : 'bubblewrap not installed' }, async (t) => {
    const read = await runProbe(c!, fs.realpathSync(repoA), fs.realpathSync(repoB), false, as);
    if (typeof read === 'string') { t.fail(`probe failed: ${read}`); return; }
    t.equal(read.readRepo, 'allowed', 'a reader reads its repository');
    t.equal(read.readOutside, 'ERR_ACCESS_DENIED', 'not another repository');
    t.equal(read.writeRepo, 'ERR_ACCESS_DENIED', 'a reader writes nothing');
    t.equal(read.spawn, 'ERR_ACCESS_DENIED', 'no child processes');
    t.equal(read.worker, 'ERR_ACCESS_DENIED', 'no worker threads');
    t.equal(read.addon, 'ERR_DLOPEN_DISABLED', 'no addons');
    if (as) t.equal(read.uid, as.uid, 'runs as the daemon user');
    t.not(read.uid, 0, 'never root');
    if (c!.bwrap) {
      t.equal(read.network, 0, 'no network interface but lo');
      t.ok(read.pidNamespace, 'own pid namespace');
    }
    const write = await runProbe(c!, fs.realpathSync(repoA), fs.realpathSync(repoB), true, as);
    if (typeof write === 'string') { t.fail(`probe failed: ${write}`); return; }
    t.equal(write.writeRepo, 'allowed', 'a writer writes its repository');
    t.equal(write.writeOutside, 'ERR_ACCESS_DENIED', 'and no other');
    t.equal(write.readOutside, 'ERR_ACCESS_DENIED');

    const h = await hostile(c!, ESCAPES, true);
    const r = h.report as Record<string, string> | null;
    t.ok(r, `hostile code reported (${h.stderr.trim()})`);
    if (!r) return;
    for (const k of ['readOther', 'statOther', 'readEtc', 'listRoot', 'exec', 'fork', 'worker', 'binding', 'writeOther']) {
      t.not(r[k], 'allowed', `${k}: ${r[k]}`);
    }
    t.not(r.dlopen, 'allowed', 'dlopen');
    t.not(r.eval, 'allowed', 'eval of strings is off');
    t.not(r.newFunction, 'allowed', 'new Function is off');
    t.not(r.symlinkOut, 'allowed', `a writer cannot link its way out: ${r.symlinkOut}`);
    t.equal(r.writeOwn, 'allowed', 'but does write its own repository');
    t.equal(git(['--git-dir', repoB, 'rev-parse', 'HEAD']).length, 41, 'the other repository is untouched');
    t.notOk(fs.existsSync(path.join(repoB, 'pwned')));
    fs.rmSync(path.join(repoA, 'escape'), { force: true });
  });
}

t.test('writers as gotd starts them on this machine', async (t) => {
  const d = await detectLayers(as);
  t.comment(d.layers.detail.join('\n'));
  const c = d.confinement;
  const w = await runProbe(c, fs.realpathSync(repoA), fs.realpathSync(repoB), true, as);
  if (typeof w === 'string') { t.fail(w); return; }
  t.equal(w.fsync, 'allowed', 'a writer can make its writes durable');
  t.equal(w.writeRepo, 'allowed');
  t.not(w.writeOutside, 'allowed', `no other repository to write: ${w.writeOutside}`);
  t.not(w.readOutside, 'allowed', `no other repository to read: ${w.readOutside}`);
  t.not(w.uid, 0);
  if (c.writerPermission || !c.bwrap) {
    t.equal(w.spawn, 'ERR_ACCESS_DENIED', 'permission model: no child processes');
  } else {
    t.equal(w.network, 0, 'bubblewrap: no network');
    t.ok(w.pidNamespace, 'bubblewrap: own pid namespace');
  }
  const h = await hostile(c, ESCAPES, true);
  const r = h.report as Record<string, string> | null;
  t.ok(r, h.stderr);
  if (r) for (const k of ['readOther', 'statOther', 'writeOther', 'readEtc']) t.not(r[k], 'allowed', `${k}: ${r[k]}`);
  t.notOk(fs.existsSync(path.join(repoB, 'pwned')));
});

t.test('a worker refuses a malformed session and exits', async (t) => {
  const run = async (msg: unknown, withSocket: boolean): Promise<{ code: number | null; stderr: string; reply: string }> => {
    const cmd = workerCommand(plain, [entryPath('repo_read')], fs.realpathSync(repoA), false);
    const [a, b] = await socketPair();
    return new Promise((resolve) => {
      const child = spawn(cmd.file, cmd.args, { stdio: ['ignore', 'ignore', 'pipe', 'ipc'], env: {}, ...(as ? { uid: as.uid, gid: as.gid } : {}) });
      let stderr = '';
      let reply = '';
      child.stderr!.on('data', (b: Buffer) => { stderr += b.toString(); });
      b.on('data', (d: Buffer) => { reply += d.toString(); });
      b.on('error', () => undefined);
      child.send(msg as never, (withSocket ? a : undefined) as never);
      if (!withSocket) a.destroy();
      child.on('close', (code) => { setTimeout(() => { b.destroy(); resolve({ code, stderr, reply }); }, 100); });
    });
  };
  const good = { type: 'session', repoPath: fs.realpathSync(repoA), access: 'ro', protocol: 2, protect: { branches: [], branchNamespaces: [], tagNamespaces: [] }, requestTimeoutMs: 5000, maxInputBytes: 1000, staleBefore: Date.now() };
  t.ok(parseMessage(sessionSchema, good), 'the good message is good');
  for (const [what, msg] of [
    ['missing fields', { type: 'session', repoPath: '/x' }],
    ['wrong type', { ...good, protocol: 7 }],
    ['extra field', { ...good, command: 'rm -rf /' }],
    ['not an object', 'session'],
  ] as const) {
    const r = await run(msg, true);
    t.equal(r.code, 2, `${what}: exit 2`);
    t.match(r.stderr, /malformed session message/);
    t.equal(r.reply, '', 'nothing said to the client');
  }
  const noSock = await run(good, false);
  t.equal(noSock.code, 2, 'a session without its socket');
  const notRepo = await run({ ...good, repoPath: fs.realpathSync(dir) }, true);
  t.match(notRepo.reply, /^\{"ok":false/, 'a path that is not the confined repository is not served');
});

t.test('the parent rejects malformed worker reports', async (t) => {
  const oid = 'a'.repeat(40);
  t.ok(parseMessage(fromWorkerSchema, { type: 'done', ok: true, bytesIn: 1, bytesOut: 2, updates: [{ ref: 'refs/heads/x', old: oid, new: oid, ok: true }], pushOptions: [] }));
  for (const bad of [
    { type: 'done' },
    { type: 'done', ok: 'yes', bytesIn: 1, bytesOut: 2 },
    { type: 'done', ok: true, bytesIn: -1, bytesOut: 2 },
    { type: 'done', ok: true, bytesIn: 1, bytesOut: 2, updates: [{ ref: 'x', old: 'zz', new: oid, ok: true }] },
    { type: 'spawn', cmd: 'sh' },
    null,
  ]) t.equal(parseMessage(fromWorkerSchema, bad), null, JSON.stringify(bad));
});

/** A connected pair of unix sockets (a is the end handed to the worker). */
async function socketPair(): Promise<[net.Socket, net.Socket]> {
  const p = path.join(dir, `pair-${Math.random().toString(36).slice(2)}.sock`);
  const server = net.createServer();
  await new Promise<void>((r) => server.listen(p, r));
  const accepted = new Promise<net.Socket>((r) => server.once('connection', r));
  const b = net.connect(p);
  const a = await accepted;
  server.close();
  return [a, b];
}
