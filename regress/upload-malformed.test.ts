/**
 * Malformed and hostile input to the stdio upload-pack, as raw bytes: every
 * case ends with an ERR packet (or, where the contract allows, a clean
 * close), a normal exit, and never a hang, a crash or an object the client
 * has no right to.
 */
import t from 'tap';
import * as path from 'node:path';
import { FLUSH, pkt, pktLine } from '../src/git/pktline';
import { git, mkrepo, tmpdir } from './lib/util';
import { parsePkts, rawSession } from './lib/upload';

const src = mkrepo(['--preset', 'small'], { copy: true });
const main = git(['--git-dir', src, 'rev-parse', 'refs/heads/main']).trim();
// An object that exists but no ref reaches: a dangling commit and blob.
const tree = git(['--git-dir', src, 'rev-parse', 'main^{tree}']).trim();
const dangling = git(['--git-dir', src, 'commit-tree', '-m', 'secret', tree], {
  env: { GIT_AUTHOR_DATE: '1600000000 +0000', GIT_COMMITTER_DATE: '1600000000 +0000' },
}).trim();
const secretBlob = git(['--git-dir', src, 'hash-object', '-w', '--stdin'], { input: 'top secret\n' }).trim();
const missing = '1234567890abcdef1234567890abcdef12345678';

const v0Want = (oid: string, caps = ' multi_ack_detailed side-band-64k ofs-delta') =>
  Buffer.concat([pktLine(`want ${oid}${caps}`), FLUSH, pktLine('done')]);
const v2Fetch = (...args: string[]) =>
  Buffer.concat([pktLine('command=fetch'), pktLine('object-format=sha1'), Buffer.from('0001'), ...args.map((a) => pktLine(a)), FLUSH]);

interface Case {
  name: string;
  protocol: 0 | 2;
  input: Buffer;
  /** ERR required (true), or ERR or a clean close allowed (false). */
  err: boolean;
  match?: RegExp;
}

const cases: Case[] = [
  { name: 'ffff length with short data (v0)', protocol: 0, input: Buffer.from('ffffwant'), err: true, match: /bad line length/ },
  { name: 'ffff length with short data (v2)', protocol: 2, input: Buffer.from('ffffcommand=ls-refs'), err: true, match: /bad line length/ },
  { name: 'non-hex length (v0)', protocol: 0, input: Buffer.from('00zzwant'), err: true, match: /bad line length character/ },
  { name: 'non-hex length (v2)', protocol: 2, input: Buffer.from('g000'), err: true, match: /bad line length character/ },
  { name: 'length 0003 (v0)', protocol: 0, input: Buffer.from('0003'), err: true, match: /bad line length 3/ },
  { name: 'length 0003 (v2)', protocol: 2, input: Buffer.from('0003'), err: true, match: /bad line length 3/ },
  { name: 'length 0002 (v0)', protocol: 0, input: Buffer.from('0002'), err: false },
  { name: 'length 0002 (v2)', protocol: 2, input: Buffer.from('0002'), err: false },
  { name: 'length 0001 (v0)', protocol: 0, input: Buffer.from('0001'), err: false },
  { name: 'empty packet 0004 (v0)', protocol: 0, input: Buffer.from('0004'), err: false },
  { name: 'empty packet 0004 (v2)', protocol: 2, input: Buffer.from('0004'), err: false },
  { name: 'flush then payload (v0)', protocol: 0, input: Buffer.from('0000garbage after the flush'), err: false },
  { name: 'flush then payload (v2)', protocol: 2, input: Buffer.from('0000garbage after the flush'), err: false },
  { name: 'truncated packet (v0)', protocol: 0, input: Buffer.from('0032want 0123'), err: false },
  { name: 'unknown command (v2)', protocol: 2, input: Buffer.concat([pktLine('command=frobnicate'), FLUSH]), err: true, match: /invalid command 'frobnicate'/ },
  { name: 'unknown command (v0)', protocol: 0, input: Buffer.concat([pktLine('frobnicate the repository'), FLUSH]), err: true, match: /expected to get object ID/ },
  { name: 'unknown capability (v2)', protocol: 2, input: Buffer.concat([pktLine('command=ls-refs'), pktLine('x-bogus=1'), FLUSH]), err: true, match: /unknown capability/ },
  { name: 'unknown fetch argument (v2)', protocol: 2, input: v2Fetch(`want ${main}`, 'make-it-fast'), err: true, match: /unexpected line/ },
  { name: 'want of a missing object (v0)', protocol: 0, input: v0Want(missing), err: true, match: /not our ref 1234567890abcdef/ },
  { name: 'want of a missing object (v2)', protocol: 2, input: v2Fetch(`want ${missing}`, 'done'), err: true, match: /not our ref 1234567890abcdef/ },
  { name: 'want of an unreachable commit (v0)', protocol: 0, input: v0Want(dangling), err: true, match: /not our ref/ },
  { name: 'want of an unreachable commit (v2)', protocol: 2, input: v2Fetch(`want ${dangling}`, 'done'), err: true, match: /not our ref/ },
  { name: 'want of an unreachable blob (v2)', protocol: 2, input: v2Fetch(`want ${secretBlob}`, 'done'), err: true, match: /not our ref/ },
  { name: 'want of a reachable blob not at a tip (v0)', protocol: 0, input: v0Want(git(['--git-dir', src, 'rev-parse', 'main:README.md']).trim()), err: true, match: /not our ref/ },
  { name: 'malformed want (v0)', protocol: 0, input: Buffer.concat([pktLine('want 12345'), FLUSH]), err: true, match: /expected to get object ID/ },
  { name: 'bad have (v0)', protocol: 0, input: Buffer.concat([pktLine(`want ${main} multi_ack_detailed`), FLUSH, pktLine('have nothex'), FLUSH]), err: true, match: /expected SHA1/ },
  { name: 'bad deepen (v2)', protocol: 2, input: v2Fetch(`want ${main}`, 'deepen -3', 'done'), err: true, match: /invalid deepen/ },
  { name: 'deepen with deepen-since (v2)', protocol: 2, input: v2Fetch(`want ${main}`, 'deepen 3', 'deepen-since 1', 'done'), err: true, match: /cannot be used together/ },
  { name: 'deepen-not of an unknown ref (v0)', protocol: 0, input: Buffer.concat([pktLine(`want ${main} side-band-64k`), pktLine('deepen-not nosuchref'), FLUSH]), err: true, match: /deepen-not/ },
  { name: 'wrong object format (v2)', protocol: 2, input: Buffer.concat([pktLine('command=ls-refs'), pktLine('object-format=sha256'), FLUSH]), err: true, match: /object format/ },
  { name: 'shallow line naming a blob (v2)', protocol: 2, input: v2Fetch(`want ${main}`, `shallow ${secretBlob}`, 'deepen 1', 'done'), err: true, match: /invalid shallow object/ },
];

function errOf(out: Buffer): string | null {
  for (const p of parsePkts(out)) {
    const m = /^(?:\x03)?ERR (.*)/.exec(p);
    if (m) return m[1]!;
  }
  return null;
}

for (const c of cases) {
  t.test(c.name, async (t) => {
    const r = await rawSession(src, c.input, c.protocol);
    t.notMatch(r.stderr, /internal error|TypeError|RangeError|at .*\.js:\d+/, 'no crash');
    t.ok(r.code === 0 || r.code === 1, `normal exit (${r.code})`);
    const err = errOf(r.stdout);
    if (c.err) {
      t.ok(err, `ERR packet sent (stderr: ${r.stderr.trim()})`);
      if (c.match) t.match(err ?? '', c.match);
      t.equal(r.code, 1, 'failure exit status');
    } else {
      t.ok(err !== null || r.code === 0, `ERR or clean close (${err ?? 'closed'})`);
    }
    t.notOk(r.stdout.includes('PACK'), 'no pack sent');
  });
}

t.test('a valid request over raw bytes still works (the harness is sound)', async (t) => {
  const r = await rawSession(src, v2Fetch(`want ${main}`, 'ofs-delta', 'no-progress', 'done'), 2);
  t.equal(r.code, 0);
  t.ok(r.stdout.includes('PACK'), 'pack sent');
  const r0 = await rawSession(src, v0Want(main), 0);
  t.equal(r0.code, 0);
  t.ok(r0.stdout.includes('PACK'), 'v0 pack sent');
});

t.test('the client vanishing mid-pack ends the server promptly', async (t) => {
  const { spawn } = await import('node:child_process');
  const { UPLOAD_PACK_JS } = await import('./lib/upload');
  const child = spawn('env', ['-u', 'NODE_OPTIONS', 'node', UPLOAD_PACK_JS, src], {
    env: { ...process.env, GIT_PROTOCOL: 'version=2' }, stdio: ['pipe', 'pipe', 'pipe'],
  });
  let got = 0;
  let sent = false;
  child.stdout.on('data', (b: Buffer) => {
    got += b.length;
    if (!sent && b.includes('0000')) {
      sent = true;
      child.stdin.write(v2Fetch(`want ${main}`, 'ofs-delta', 'done'));
    }
    if (got > 20000) child.stdout.destroy(); // hang up on it
  });
  child.stderr.resume();
  const code = await new Promise<number | null>((resolve) => {
    const timer = setTimeout(() => { child.kill('SIGKILL'); resolve(-1); }, 20000);
    child.on('close', (c) => { clearTimeout(timer); resolve(c); });
  });
  t.not(code, -1, 'exited by itself');
  t.not(code, 70, 'no internal error');
});

t.test('an unknown repository path', async (t) => {
  const r = await rawSession(path.join(tmpdir(), 'nothing-here'), Buffer.alloc(0), 0, 10000);
  t.match(parsePkts(r.stdout).join('\n'), /ERR .*does not appear to be a git repository/);
  t.equal(r.code, 128);
});

t.test('a stream of junk does not make the server buffer without bound', async (t) => {
  // 8 MiB of pkt-lines that are valid in form but not in meaning.
  const junk = Buffer.concat(Array.from({ length: 128 }, () => pkt(Buffer.alloc(65516, 0x61))));
  const r = await rawSession(src, junk, 0);
  t.match(errOf(r.stdout) ?? '', /expected to get object ID/);
});
