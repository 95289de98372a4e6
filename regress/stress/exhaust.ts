/**
 * make stress, part "exhaust": resource exhaustion against the real
 * daemon, with real clients and raw sockets.  Every case is refused or cut
 * within its limit, leaves the repository as it was (git fsck --strict,
 * refs equal), keeps the daemon's resident size (parent + listen + auth,
 * from /proc) bounded, and is followed by a normal git ls-remote that
 * must still work.  regress/stress-exhaust.test.ts runs the same cases
 * with small numbers.
 */
import { spawn, spawnSync } from 'node:child_process';
import * as fs from 'node:fs';
import * as path from 'node:path';
import WebSocket from 'ws';
import { encodeEntryHeader, encodeOfsDelta } from '../../src/git/pack';
import {
  asUser, DAEMON_USER, ensureAccounts, install, mustAccount, openTmpdir, repoFor, type Gotd, type Install,
} from '../lib/daemon';
import * as zlib from 'node:zlib';
import { craftPack, insertDelta, refDelta, snapshot, varint, whole, ZERO } from '../lib/receive';
import { fsckStrict, git, gitEnv, mkrepo, run, type RunResult } from '../lib/util';
import { freePort, startWsGotd, upgradeHead } from '../lib/ws';
import {
  FLUSH, mb, MiB, pkt, rawClient, RssSampler, sleep, trickle, until, wantsV0, wantsV2, zeroStream, type RawClient,
} from './exhaust_lib';
import type { Part } from './parts';
import type { Row, StressOptions } from './table';

export interface ExhaustSize {
  /** Want lines in one upload-pack request (v0 and v2). */
  wants: number;
  /** Ref updates in one push. */
  refUpdates: number;
  /** New branches in one git push. */
  gitPushRefs: number;
  /** Refs in the advertised repository. */
  refs: number;
  /** Idle connections opened on each listener. */
  idle: number;
  /** max_connections of the daemon under test. */
  maxConnections: number;
  authTimeoutS: number;
  requestTimeoutS: number;
  /** What the zlib bomb inflates to (bytes). */
  bombBytes: number;
  /** Daemon RSS may grow by at most this much during a case (bytes). */
  daemonGrowth: number;
  /** A worker's resident size must stay below this (bytes). */
  workerMax: number;
}

export const FULL: ExhaustSize = {
  wants: 1_000_000, refUpdates: 100_000, gitPushRefs: 10_000, refs: 1_000_000, idle: 5000, maxConnections: 1000,
  authTimeoutS: 10, requestTimeoutS: 15, bombBytes: 4 * 1024 * MiB, daemonGrowth: 128 * MiB, workerMax: 700 * MiB,
};

export const SLICE: ExhaustSize = {
  wants: 10_000, refUpdates: 1000, gitPushRefs: 5000, refs: 10_000, idle: 200, maxConnections: 150,
  authTimeoutS: 2, requestTimeoutS: 2, bombBytes: 600 * MiB, daemonGrowth: 96 * MiB, workerMax: 400 * MiB,
};

interface Env {
  inst: Install;
  g: Gotd;
  port: number;
  size: ExhaustSize;
  /** Repositories by name. */
  repos: Record<string, string>;
  head: string;
  log: (line: string) => void;
}

/** What one case reports back to the common checks. */
interface Outcome {
  runs: string;
  figure: string;
  limit: string;
  ok: boolean;
  detail?: string;
  /** Repository that must be unchanged, when the case must not change anything. */
  unchanged?: string;
}

/** waits: mostly waiting for a timeout, so it may run beside other such cases. */
type Case = { name: string; waits?: boolean; run(e: Env): Promise<Outcome> };

const q = (s: string): string => `'${s}'`;

function gotshRaw(e: Env, service: 'git-upload-pack' | 'git-receive-pack', repo: string, input: Buffer, env: NodeJS.ProcessEnv = {}): Promise<RunResult & { out: Buffer; ms: number }> {
  return new Promise((resolve, reject) => {
    const t0 = Date.now();
    const p = spawn(e.inst.gotsh, ['-c', `${service} ${q(repo)}`], { ...asUser(undefined, { env: { GOTD_UNIX_SOCKET: e.g.sock, ...env } }), stdio: ['pipe', 'pipe', 'pipe'] });
    const out: Buffer[] = [];
    const err: Buffer[] = [];
    p.stdout!.on('data', (b: Buffer) => out.push(b));
    p.stderr!.on('data', (b: Buffer) => err.push(b));
    p.on('error', reject);
    p.stdin!.on('error', () => undefined);
    p.on('close', (code, signal) => {
      const o = Buffer.concat(out);
      resolve({ code, signal, out: o, stdout: o.toString('latin1'), stderr: Buffer.concat(err).toString(), ms: Date.now() - t0 });
    });
    p.stdin!.end(input);
  });
}

/** git ls-remote through gotsh; resolves with its refs count and time. */
async function lsRemote(e: Env, repo: string, version: 0 | 2 = 2): Promise<{ ok: boolean; refs: number; ms: number; err: string }> {
  const t0 = Date.now();
  const r = await run('git', ['-c', `protocol.version=${version}`, 'ls-remote', '--upload-pack', path.join(e.inst.bin, 'git-upload-pack'), `file:///${repo}`],
    asUser(undefined, { env: { GOTD_UNIX_SOCKET: e.g.sock } }));
  const refs = r.stdout.split('\n').filter(Boolean).length;
  return { ok: r.code === 0 && refs > 0, refs, ms: Date.now() - t0, err: r.stderr.trim().split('\n').slice(-2).join(' ') };
}

/** The ERR or unpack line of a session's output, for the figure. */
function errLine(out: string): string {
  const m = /ERR ([^\n\0]*)/.exec(out) ?? /(unpack [^\n]*)/.exec(out) ?? /(ng [^\n]*)/.exec(out);
  return m ? m[1]!.replace(/\s+$/, '').slice(0, 90) : '';
}

const secs = (ms: number): string => `${(ms / 1000).toFixed(1)} s`;

/* ------------------------------------------------------------------------ */
/* Pushes with hand-made packs                                               */

function commandList(updates: [string, string, string][], caps = 'report-status'): Buffer {
  const lines = updates.map(([o, n, r], i) => pkt(`${o} ${n} ${r}${i === 0 ? `\0${caps}` : ''}\n`));
  return Buffer.concat([...lines, FLUSH]);
}

const BLOB = Buffer.from('a small blob\n');

function blobId(data: Buffer): string {
  // eslint-disable-next-line @typescript-eslint/no-require-imports
  const { createHash } = require('node:crypto') as typeof import('node:crypto');
  return createHash('sha1').update(`blob ${data.length}\0`).update(data).digest('hex');
}

/** Pushes a hand-made pack through gotsh (the tag points at an object it does not hold, so nothing can land). */
async function pushPack(e: Env, pack: Buffer, limit: string, what: string, expect: RegExp): Promise<Outcome> {
  const input = Buffer.concat([commandList([[ZERO, blobId(BLOB), 'refs/tags/bomb']]), pack]);
  const s = new RssSampler(e.g.pid).start();
  const r = await gotshRaw(e, 'git-receive-pack', 'src', input);
  s.stop();
  const line = errLine(r.stdout);
  const ok = expect.test(r.stdout) && s.workerPeak < e.size.workerMax;
  return {
    runs: `1 push, ${kb(input.length)} sent`, figure: `${what}: "${line}" after ${secs(r.ms)}, worker peak ${mb(s.workerPeak)}`,
    limit: `${limit}; worker < ${mb(e.size.workerMax)}`, ok,
    ...(ok ? {} : { detail: `got ${JSON.stringify(line)} (gotsh exit ${r.code}; ${r.stderr.trim().slice(0, 200)})` }),
    unchanged: e.repos.src!,
  };
}

const kb = (n: number): string => `${Math.ceil(n / 1024)} KB`;

const zlibBombSmall: Case = {
  name: 'zlib bomb: object declared 10 B',
  async run(e) {
    const stream = zeroStream(e.size.bombBytes);
    const pack = craftPack([Buffer.concat([encodeEntryHeader(3, 10), stream])]);
    return pushPack(e, pack, 'inflating stops at the declared size', `${mb(e.size.bombBytes)} of zeros`, /unpack [^\n]*inflate[sd]? to more than/);
  },
};

const zlibBombHuge: Case = {
  name: 'zlib bomb: blob that inflates to GBs',
  async run(e) {
    const stream = zeroStream(e.size.bombBytes);
    const pack = craftPack([Buffer.concat([encodeEntryHeader(3, e.size.bombBytes), stream])]);
    // A blob is streamed through inflate and SHA-1, never held: bounded memory, time linear in its size.
    return pushPack(e, pack, 'streamed', `blob of ${mb(e.size.bombBytes)}`, /unpack ok[^]*ng refs\/tags\/bomb/);
  },
};

const deltaOnHuge: Case = {
  name: 'zlib bomb: delta base of GBs',
  async run(e) {
    const stream = zeroStream(e.size.bombBytes);
    const first = Buffer.concat([encodeEntryHeader(3, e.size.bombBytes), stream]);
    const raw = Buffer.from([...varint(e.size.bombBytes), 3, 0x91, 0, 3]);
    const pack = craftPack([first, Buffer.concat([encodeEntryHeader(6, raw.length), encodeOfsDelta(first.length), zlib.deflateSync(raw)])]);
    return pushPack(e, pack, 'object size limit 512 MiB', `delta on a blob of ${mb(e.size.bombBytes)}`, /unpack [^\n]*too large/);
  },
};

const deltaClaim: Case = {
  name: 'delta result claims 4 GB',
  async run(e) {
    const base = blobId(BLOB);
    const delta = insertDelta(BLOB.length, 4 * 1024 * MiB, Buffer.from('x'));
    const pack = craftPack([whole(3, BLOB), refDelta(base, delta)]);
    return pushPack(e, pack, 'object size limit 512 MiB', 'delta of 4 GiB', /unpack [^\n]*too large/);
  },
};

/* ------------------------------------------------------------------------ */
/* Long request lists                                                        */

function wantCase(version: 0 | 2): Case {
  return {
    name: `${version === 2 ? 'v2' : 'v0'} want lines`,
    async run(e) {
      const n = e.size.wants;
      const input = version === 2 ? wantsV2(e.head, n) : wantsV0(e.head, n);
      const s = new RssSampler(e.g.pid).start();
      const r = await gotshRaw(e, 'git-upload-pack', 'src', input, version === 2 ? { GIT_PROTOCOL: 'version=2' } : {});
      s.stop();
      const line = errLine(r.stdout);
      const packed = r.out.includes(Buffer.from('PACK'));
      const refused = /too many/.test(line);
      const ok = (refused || (packed && r.code === 0)) && s.workerPeak < e.size.workerMax;
      return {
        runs: `${n} wants, ${mb(input.length)}`,
        figure: `${refused ? `refused: "${line}"` : packed ? 'pack sent' : `failed: ${line || r.stderr.trim().slice(0, 80)}`} in ${secs(r.ms)}, worker peak ${mb(s.workerPeak)}`,
        limit: `200000 lines; worker < ${mb(e.size.workerMax)}`, ok,
        ...(ok ? {} : { detail: `exit ${r.code}, ${r.stderr.trim().slice(0, 300)}` }),
        unchanged: e.repos.src!,
      };
    },
  };
}

/** How many refs a repository has (refsOf in lib/util reads at most 1 MB of for-each-ref). */
function refCount(repo: string): number {
  const r = spawnSync('git', ['--git-dir', repo, 'for-each-ref', '--format=x'], { env: gitEnv(), maxBuffer: 1 << 30 });
  if (r.status !== 0) throw new Error(`for-each-ref: ${r.stderr.toString()}`);
  return r.stdout.length / 2;
}

const MAX_COMMANDS = 100_000;

function refUpdates(over: boolean): Case {
  return {
  name: over ? 'ref updates over the limit' : 'ref updates in one push',
  async run(e) {
    const n = over ? MAX_COMMANDS + 1 : e.size.refUpdates;
    const repo = e.repos.push!;
    const before = refCount(repo);
    const updates: [string, string, string][] = [];
    for (let i = 0; i < n; i++) updates.push([ZERO, e.head, `refs/heads/u/${String(i).padStart(7, '0')}`]);
    // As git sends it: with side-band, so that keepalives can flow while the refs are written.
    const input = Buffer.concat([commandList(updates, 'report-status side-band-64k'), craftPack([])]);
    const s = new RssSampler(e.g.pid).start();
    const r = await gotshRaw(e, 'git-receive-pack', 'push', input);
    s.stop();
    const line = errLine(r.stdout);
    const after = refCount(repo);
    const created = after - before;
    const MAX = MAX_COMMANDS;
    const fsck = fsckStrict(repo);
    let ok: boolean;
    let figure: string;
    if (n > MAX) {
      ok = /too many ref updates/.test(line) && after === before;  // snapshot() below checks the rest
      figure = `refused in ${secs(r.ms)}: "${line}"`;
    } else {
      const ng = [...r.stdout.matchAll(/ng (refs\/[^\n]*)/g)].map((m) => m[1]!);
      const keepalives = r.stdout.split('0005\x01').length - 1;
      ok = r.stdout.includes('unpack ok') && created === n && ng.length === 0;
      figure = `${created} refs created in ${secs(r.ms)} (${keepalives} keepalives)${ng.length ? `, ${ng.length} failed: ${ng[0]!.slice(0, 100)}` : ''}`;
    }
    ok &&= fsck === '' && s.workerPeak < e.size.workerMax;
    return {
      runs: `${n} updates, ${mb(input.length)}`, figure: `${figure}, worker peak ${mb(s.workerPeak)}`,
      limit: `${MAX} commands; worker < ${mb(e.size.workerMax)}`, ok,
      ...(ok ? {} : { detail: `exit ${r.code}: ${line} ${fsck} ${r.stderr.trim().slice(0, 300)}` }),
      ...(n > MAX ? { unchanged: repo } : {}),
    };
  },
  };
}

/** A real git push of many new branches: git must take the keepalives while the refs are written. */
const gitPushRefs: Case = {
  name: 'ref updates by git push',
  async run(e) {
    const n = e.size.gitPushRefs;
    const work = mkrepo(['--preset', 'small'], { copy: true });
    git(['--git-dir', work, 'update-ref', '--stdin'], { input: Array.from({ length: n }, (_, i) => `create refs/heads/g/${String(i).padStart(6, '0')} ${e.head}\n`).join('') });
    const before = refCount(e.repos.push!);
    const s = new RssSampler(e.g.pid).start();
    const t0 = Date.now();
    const r = await run('git', ['--git-dir', work, 'push', '--porcelain', '--receive-pack', path.join(e.inst.bin, 'git-receive-pack'), 'file:///push', 'refs/heads/g/*:refs/heads/g/*'],
      asUser(undefined, { env: { GOTD_UNIX_SOCKET: e.g.sock } }));
    s.stop();
    const created = refCount(e.repos.push!) - before;
    const fsck = fsckStrict(e.repos.push!);
    const ok = r.code === 0 && created === n && fsck === '' && s.workerPeak < e.size.workerMax;
    return {
      runs: `${n} new branches`, figure: `${created} created in ${secs(Date.now() - t0)}, git exit ${r.code}, worker peak ${mb(s.workerPeak)}`,
      limit: `complete (request_timeout ${e.size.requestTimeoutS} s, keepalives)`, ok,
      ...(ok ? {} : { detail: `${r.stderr.trim().slice(-300)} ${fsck}` }),
    };
  },
};

function manyRefs(version: 0 | 2): Case {
  return {
    name: `advertise many refs (v${version})`,
    async run(e) {
      const s = new RssSampler(e.g.pid).start();
      const r = await lsRemote(e, 'many', version);
      s.stop();
      const ok = r.ok && r.refs >= e.size.refs && s.workerPeak < e.size.workerMax;
      return {
        runs: `${e.size.refs} refs`, figure: `${r.refs} listed in ${secs(r.ms)}, worker peak ${mb(s.workerPeak)}`,
        limit: `complete; worker < ${mb(e.size.workerMax)}`, ok,
        ...(ok ? {} : { detail: r.err }),
        unchanged: e.repos.many!,
      };
    },
  };
}

/* ------------------------------------------------------------------------ */
/* Slow, silent and half-open clients                                        */

const REQUEST = (service: string, repo: string): Buffer => Buffer.from(JSON.stringify({ type: 'git', service, repo, protocol: '' }) + '\n');

/** How long past a timeout a cut may come (timers, a busy machine). */
const SLACK_MS = 1500;

function cutCase(name: string, limitS: number, limitName: string, body: (e: Env) => Promise<{ c: RawClient; sent: string; expect: RegExp; t0?: number }>): Case {
  return {
    name,
    waits: true,
    async run(e) {
      const { c, sent, expect, t0 = 0 } = await body(e);
      const at = c.closedAt();
      const said = c.data().toString('latin1');
      c.sock.destroy();
      const cut = at === null ? null : at - t0;
      const ok = cut !== null && cut <= limitS * 1000 + SLACK_MS && cut >= Math.min(limitS * 1000 - 200, limitS * 1000 * 0.9) && expect.test(said);
      const lines = said.split(/\r?\n/);
      const answer = (lines.find((l) => /ERR /.test(l))?.replace(/^.*ERR /, 'ERR ') ?? lines.find((l) => /ok|error|HTTP/.test(l)))?.slice(0, 70) ?? '(nothing)';
      return {
        runs: `1 client, ${sent}`, figure: cut === null ? 'not cut' : `cut after ${secs(cut)}: ${answer}`,
        limit: `${limitName} ${limitS} s`, ok,
        ...(ok ? {} : { detail: `closed at ${at} ms; said ${JSON.stringify(said.slice(-300))}` }),
      };
    },
  };
}

/** Waits for the close, at most `limit` + 3 s past it; then the client stops sending. */
async function waitCut(c: RawClient, limitS: number, sending?: Promise<unknown>): Promise<void> {
  await Promise.race([c.closed, sleep(limitS * 1000 + 3000 + SLACK_MS)]);
  c.stopped = true;
  await sending;
}

const slowUnixRequest = (e0: ExhaustSize): Case => cutCase('1 byte/s: unix first request', e0.authTimeoutS, 'auth_timeout', async (e) => {
  const c = await rawClient({ path: e.g.sock });
  const s = trickle(c.sock, REQUEST('git-upload-pack', 'src'), 1000, () => c.closedAt() !== null || c.stopped);
  await waitCut(c, e.size.authTimeoutS, s);
  return { c, sent: `${await s} bytes`, expect: /timed out/ };
});

const slowWsHead = (e0: ExhaustSize): Case => cutCase('1 byte/s: ws upgrade head', e0.authTimeoutS, 'auth_timeout', async (e) => {
  const c = await rawClient({ host: '127.0.0.1', port: e.port });
  const s = trickle(c.sock, Buffer.from(upgradeHead('/src?service=git-upload-pack')), 1000, () => c.closedAt() !== null || c.stopped);
  await waitCut(c, e.size.authTimeoutS, s);
  return { c, sent: `${await s} bytes`, expect: /^HTTP\/1\.1 408/ };
});

/** A session that starts (ok, advertisement), then whatever `then` does. */
async function inSession(e: Env, then: (c: RawClient) => Promise<string>, expect = /\{"ok":true\}/): Promise<{ c: RawClient; sent: string; expect: RegExp; t0: number }> {
  const c = await rawClient({ path: e.g.sock });
  c.sock.write(REQUEST('git-upload-pack', 'src'));
  await until(() => c.data().includes(Buffer.from('0000')) || c.closedAt() !== null, 10_000, 10);
  const t0 = Date.now() - c.startedAt;
  const sent = await then(c);
  return { c, sent, expect, t0 };
}

const slowInSession = (e0: ExhaustSize): Case => cutCase('1 byte/s: in session', e0.requestTimeoutS, 'request_timeout', async (e) =>
  inSession(e, async (c) => {
    const want = Buffer.concat(Array.from({ length: 100 }, (_, i) => pkt(`want ${e.head}${i === 0 ? ' ofs-delta' : ''}\n`)));
    const s = trickle(c.sock, want, 1000, () => c.closedAt() !== null || c.stopped);
    await waitCut(c, e.size.requestTimeoutS, s);
    return `${await s} bytes after the advertisement`;
  }, /ERR protocol error: no complete pkt-line/));

/** The same over WebSocket: one binary message of one byte a second after the advertisement. */
const slowWsSession = (e0: ExhaustSize): Case => ({
  name: '1 byte/s: ws session',
  waits: true,
  async run(e) {
    const ws = new WebSocket(`ws://127.0.0.1:${e.port}/src?service=git-upload-pack`, { perMessageDeflate: false });
    const got: Buffer[] = [];
    let closedAt: number | null = null;
    let t0 = 0;
    ws.on('message', (b: Buffer) => { if (t0 === 0) t0 = Date.now(); got.push(Buffer.from(b)); });
    ws.on('close', () => { closedAt ??= Date.now(); });
    ws.on('error', () => { closedAt ??= Date.now(); });
    await until(() => Buffer.concat(got).includes(Buffer.from('0000')) || closedAt !== null, 10_000, 10);
    const want = pkt(`want ${e.head} ofs-delta\n`);
    let sent = 0;
    const limitMs = e0.requestTimeoutS * 1000;
    while (closedAt === null && Date.now() - t0 < limitMs + 3000 + SLACK_MS) {
      if (ws.readyState === WebSocket.OPEN) ws.send(want.subarray(sent % want.length, (sent % want.length) + 1));
      sent++;
      await sleep(1000);
    }
    const cut = closedAt === null ? null : closedAt - t0;
    const said = Buffer.concat(got).toString('latin1');
    ws.terminate();
    const err = /ERR ([^\n]*)/.exec(said)?.[1] ?? '';
    const ok = cut !== null && cut <= limitMs + SLACK_MS && cut >= limitMs * 0.9 && /no complete pkt-line/.test(err);
    return {
      runs: `1 client, ${sent} bytes after the advertisement`, figure: cut === null ? 'not cut' : `cut after ${secs(cut)}: ERR ${err.slice(0, 60)}`,
      limit: `request_timeout ${e0.requestTimeoutS} s`, ok, ...(ok ? {} : { detail: JSON.stringify(said.slice(-200)) }),
    };
  },
});

const silentInSession = (e0: ExhaustSize): Case => cutCase('silent after the advertisement', e0.requestTimeoutS, 'request_timeout', async (e) =>
  inSession(e, async (c) => {
    await waitCut(c, e.size.requestTimeoutS);
    return 'nothing after the advertisement';
  }));

const silentUnix = (e0: ExhaustSize): Case => cutCase('silent: unix, no request', e0.authTimeoutS, 'auth_timeout', async (e) => {
  const c = await rawClient({ path: e.g.sock });
  await waitCut(c, e.size.authTimeoutS);
  return { c, sent: 'nothing', expect: /timed out/ };
});

const silentWs = (e0: ExhaustSize): Case => cutCase('silent: ws, no head', e0.authTimeoutS, 'auth_timeout', async (e) => {
  const c = await rawClient({ host: '127.0.0.1', port: e.port });
  await waitCut(c, e.size.authTimeoutS);
  return { c, sent: 'nothing', expect: /^HTTP\/1\.1 408/ };
});

/** A client that half-closes: the server must notice at once, not wait for a timeout. */
function halfClose(name: string, connect: (e: Env) => Promise<RawClient>, prefix: (e: Env) => Buffer, expect: RegExp): Case {
  return {
    name,
    waits: true,
    async run(e) {
      const c = await connect(e);
      const t0 = Date.now();
      c.sock.end(prefix(e));
      await Promise.race([c.closed, sleep(5000)]);
      const cut = c.closedAt() === null ? null : Date.now() - t0;
      const said = c.data().toString('latin1');
      c.sock.destroy();
      const ok = cut !== null && cut < 1000 && expect.test(said);
      return {
        runs: '1 client', figure: cut === null ? 'not closed' : `closed after ${secs(cut)}: ${said.split(/\r?\n/)[0]!.slice(0, 60) || '(nothing)'}`,
        limit: 'closed at once (< 1 s)', ok, ...(ok ? {} : { detail: JSON.stringify(said.slice(0, 300)) }),
      };
    },
  };
}

// The listener does not keep a half-closed socket open for writing: a refusal, or just the close.
const halfCloseUnix = halfClose('half-close: unix, partial request', (e) => rawClient({ path: e.g.sock }), () => Buffer.from('{"type":"git"'), /^$|closed before|error/);
const halfCloseWs = halfClose('half-close: ws, partial head', (e) => rawClient({ host: '127.0.0.1', port: e.port }), () => Buffer.from('GET /src HTTP/1.1\r\n'), /^$|HTTP\/1\.1 4/);
const halfCloseSession: Case = {
  name: 'half-close: in session',
  waits: true,
  async run(e) {
    const c = await rawClient({ path: e.g.sock });
    c.sock.write(REQUEST('git-upload-pack', 'src'));
    await until(() => c.data().includes(Buffer.from('0000')), 10_000, 10);
    const t0 = Date.now();
    c.sock.end(pkt(`want ${e.head}\n`));
    await Promise.race([c.closed, sleep(5000)]);
    const cut = c.closedAt() === null ? null : Date.now() - t0;
    c.sock.destroy();
    const ok = cut !== null && cut < 1000;
    return { runs: '1 client', figure: cut === null ? 'not closed' : `closed after ${secs(cut)}`, limit: 'closed at once (< 1 s)', ok };
  },
};

/* ------------------------------------------------------------------------ */
/* Thousands of idle connections                                             */

function idleCase(kind: 'unix' | 'ws'): Case {
  return {
    name: `${e0name(kind)} idle connections`,
    async run(e) {
      const { idle: n, maxConnections: max, authTimeoutS } = e.size;
      const connect = (): Promise<RawClient> => kind === 'unix' ? rawClient({ path: e.g.sock }) : rawClient({ host: '127.0.0.1', port: e.port });
      const s = new RssSampler(e.g.pid, 200).start();
      const before = s.daemonNow();
      // Up to just under the limit: the rest of the world is still served.
      const near: RawClient[] = [];
      for (let i = 0; i < max - 4; i++) near.push(await connect());
      const served = await lsRemote(e, 'src');
      for (const c of near) c.sock.destroy();
      await until(() => near.every((c) => c.closedAt() !== null), 5000);
      await sleep(300);
      // Then far over it, faster than auth_timeout cuts anyone.
      const t0 = Date.now();
      const held: RawClient[] = [];
      // A unix socket whose accept queue is full says EAGAIN at once (TCP retries by itself): count, wait, retry.
      let again = 0;
      const failed = new Map<string, number>();
      for (let i = 0; i < n; i++) {
        for (let tries = 0; ; tries++) {
          const c = await connect().catch((err: NodeJS.ErrnoException) => err);
          if (!(c instanceof Error)) { held.push(c); break; }
          if (c.code === 'EAGAIN' && tries < 500) { again++; await sleep(10); continue; }
          failed.set(c.code ?? c.message, (failed.get(c.code ?? c.message) ?? 0) + 1);
          break;
        }
      }
      const openedMs = Date.now() - t0;
      const clients = held.filter(Boolean);
      await sleep(Math.min(1000, authTimeoutS * 500));
      const refused = clients.filter((c) => c.closedAt() !== null && /too many connections/.test(c.data().toString()));
      const during = s.daemonNow();
      const holding = clients.filter((c) => c.closedAt() === null).length;
      // The rest are cut by auth_timeout.
      await until(() => clients.every((c) => c.closedAt() !== null), authTimeoutS * 1000 + 5000, 100);
      const lastCut = Math.max(...clients.map((c) => c.closedAt() ?? Infinity));
      const open = clients.filter((c) => c.closedAt() === null).length;
      for (const c of clients) c.sock.destroy();
      await sleep(500);
      const after = await lsRemote(e, 'src');
      s.stop();
      const afterRss = s.daemonNow();
      const msg = refused[0]?.data().toString().trim().replace(/^.*"error":"([^"]*)".*$/s, '$1').replace(/^(?:.*\r\n\r\n)?/s, '').slice(0, 60) ?? '';
      const expectRefused = n - max;
      const ok = served.ok && after.ok && open === 0 && failed.size === 0 && refused.length >= expectRefused && refused.length <= expectRefused + 8 &&
        s.daemonPeak - before < e.size.daemonGrowth && afterRss - before < e.size.daemonGrowth / 2;
      return {
        runs: `${clients.length} connections in ${secs(openedMs)}${again ? ` (${again} EAGAIN retries)` : ''}`,
        figure: `${refused.length} refused ("${msg}"), ${holding} held, ls-remote ${served.ok ? 'served' : 'FAILED'} beside ${max - 4}; held ones cut by ${secs(lastCut)}; daemon RSS ${mb(before)}/${mb(s.daemonPeak)}/${mb(afterRss)}`,
        limit: `max_connections ${max}; RSS +${mb(e.size.daemonGrowth)}`, ok,
        ...(ok ? {} : { detail: `served ${JSON.stringify(served)} after ${JSON.stringify(after)} open ${open} refused ${refused.length} (expected ${expectRefused}) during ${mb(during)}; connect failures ${JSON.stringify([...failed])}` }),
      };
    },
  };
}

function e0name(kind: 'unix' | 'ws'): string {
  return kind === 'unix' ? 'unix:' : 'ws:';
}

/* ------------------------------------------------------------------------ */

function cases(size: ExhaustSize): Case[] {
  return [
    zlibBombSmall, zlibBombHuge, deltaOnHuge, deltaClaim,
    wantCase(0), wantCase(2), refUpdates(true), refUpdates(false), gitPushRefs, manyRefs(2), manyRefs(0),
    slowUnixRequest(size), slowWsHead(size), slowInSession(size), slowWsSession(size), silentInSession(size),
    silentUnix(size), silentWs(size), halfCloseUnix, halfCloseWs, halfCloseSession,
    idleCase('unix'), idleCase('ws'),
  ];
}

/** A packed-refs file with n branches at oid, written directly (git would take minutes). */
function writeManyRefs(repo: string, oid: string, n: number): void {
  const fd = fs.openSync(path.join(repo, 'packed-refs'), 'w');
  const lines: string[] = ['# pack-refs with: peeled fully-peeled sorted \n'];
  const flush = (): void => { fs.writeSync(fd, lines.join('')); lines.length = 0; };
  for (let i = 0; i < n; i++) {
    lines.push(`${oid} refs/heads/r/${String(i).padStart(7, '0')}\n`);
    if (lines.length >= 10_000) flush();
  }
  flush();
  fs.closeSync(fd);
}

export async function runExhaust(opts: StressOptions, size: ExhaustSize, only?: RegExp): Promise<Row[]> {
  const why = ensureAccounts();
  if (why) return [{ part: 'exhaust', case: 'set-up', runs: '0', figure: why, limit: 'root', ok: false, detail: why }];
  const inst = install();
  const dir = openTmpdir('gotd-exhaust-');
  const daemon = mustAccount(DAEMON_USER);
  const src = repoFor(dir, 'src', daemon);
  const push = repoFor(dir, 'push', daemon);
  const many = repoFor(dir, 'many', daemon);
  const head = git(['--git-dir', src, 'rev-parse', 'refs/heads/main']).trim();
  writeManyRefs(many, head, size.refs);
  const port = await freePort();
  const g = await startWsGotd(inst, dir, `
[connection]
auth_timeout = "${size.authTimeoutS}s"
request_timeout = "${size.requestTimeoutS}s"
max_connections = ${size.maxConnections}
limits = { root = 16, anonymous = 16 }
[websocket]
listen = ["127.0.0.1:${port}"]
rate = "100000/s"
[[repository]]
name = "src"
path = "${src}"
access = ["permit rw root", "permit ro anonymous"]
[[repository]]
name = "push"
path = "${push}"
access = ["permit rw root"]
[[repository]]
name = "many"
path = "${many}"
access = ["permit ro root"]
`, port);
  const env: Env = { inst, g, port, size, repos: { src, push, many }, head, log: opts.log };
  const rows: Row[] = [];
  try {
    // Cases that mostly wait for a timeout run side by side; the rest one at a time.
    const batches: Case[][] = [];
    for (const c of cases(size)) {
      if (only && !only.test(c.name)) continue;
      const last = batches.at(-1);
      if (c.waits && last?.[0]?.waits) last.push(c);
      else batches.push([c]);
    }
    for (const batch of batches) {
      opts.log(`exhaust: ${batch.map((c) => c.name).join(', ')}`);
      const snaps = new Map(Object.values(env.repos).map((r) => [r, snapshot(r)]));
      const rssBefore = new RssSampler(g.pid).daemonNow();
      const outcomes = await Promise.all(batch.map((c) => c.run(env).catch((err: Error): Outcome =>
        ({ runs: '-', figure: `threw: ${err.message.slice(0, 80)}`, limit: '-', ok: false, detail: err.stack ?? String(err) }))));
      const shared: string[] = [];
      const check = await lsRemote(env, 'src');
      if (!check.ok) shared.push(`ls-remote afterwards failed: ${check.err}`);
      if (g.proc.exitCode !== null) shared.push(`gotd exited ${g.proc.exitCode}`);
      const rssAfter = new RssSampler(g.pid).daemonNow();
      if (rssAfter - rssBefore > size.daemonGrowth) shared.push(`daemon RSS ${mb(rssBefore)} -> ${mb(rssAfter)}`);
      batch.forEach((c, i) => {
        const o = outcomes[i]!;
        const problems = [...shared];
        if (o.unchanged) {
          if (snapshot(o.unchanged) !== snaps.get(o.unchanged)) problems.push('objects or refs changed');
          const f = fsckStrict(o.unchanged);
          if (f) problems.push(`fsck: ${f.slice(0, 200)}`);
        }
        const ok = o.ok && problems.length === 0;
        rows.push({
          part: 'exhaust', case: c.name, runs: o.runs, figure: `${o.figure}; daemon ${mb(rssBefore)}->${mb(rssAfter)}`, limit: o.limit, ok,
          ...(ok ? {} : { detail: [o.detail, ...problems].filter(Boolean).join('; ') }),
        });
        opts.log(`  ${ok ? 'ok' : 'FAIL'} ${c.name}: ${o.figure}${ok ? '' : ` -- ${rows.at(-1)!.detail}`}`);
      });
    }
  } finally {
    await g.stop();
  }
  return rows;
}

export const exhaustPart: Part = {
  name: 'exhaust',
  run: (opts) => runExhaust(opts, FULL, process.env.EXHAUST_ONLY ? new RegExp(process.env.EXHAUST_ONLY) : undefined),
};
