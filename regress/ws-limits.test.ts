/**
 * Limits over WebSocket: per-user connection limits counted together with
 * ssh (gotsh) sessions of the same name, the anonymous limit, the global
 * max_connections, and the per-address rate, which refuses one address
 * (127.0.0.2) with 429 and Retry-After while another (127.0.0.1) is still
 * served, and keeps a flood of wrong passwords from costing more than a
 * few password checks.
 */
import t from 'tap';
import { spawn, type ChildProcess } from 'node:child_process';
import * as fs from 'node:fs';
import WebSocket from 'ws';
import { asUser, DAEMON_USER, ensureAccounts, install, mustAccount, openTmpdir, repoFor, sleep, USERS } from './lib/daemon';
import { fsckStrict } from './lib/util';
import { basic, freePort, rawHttp, startWsGotd, upgradeHead, writeSecrets, wsGit } from './lib/ws';

const why = ensureAccounts();
if (why) {
  t.plan(0, `WebSocket limit tests: ${why}`);
} else {
  void main();
}

async function main(): Promise<void> {
  const inst = install();
  const dir = openTmpdir();
  const daemon = mustAccount(DAEMON_USER);
  const alice = mustAccount(USERS.alice);
  const src = repoFor(dir, 'src', daemon);
  const port = await freePort();
  // The WebSocket user has the name of the unix account: one person, one limit.
  const secrets = await writeSecrets(dir, { [USERS.alice]: { password: 'a-pw' }, bob: { password: 'b-pw' } });
  const body = (rate: string): string => `
[connection]
max_connections = 5
limits = { ${USERS.alice} = 1, anonymous = 1 }
[websocket]
listen = ["127.0.0.1:${port}"]
rate = "${rate}"
[[repository]]
name = "src"
path = "${src}"
access = ["permit ro anonymous", "permit rw ${USERS.alice}", "permit ro bob"]
`;
  const g = await startWsGotd(inst, dir, body('1000/min'), port, { secrets });
  t.teardown(() => g.stop());
  const url = `ws://127.0.0.1:${port}/src`;

  /** An upload-pack session over WebSocket that sits idle after the advertisement. */
  async function holdWs(auth?: [string, string]): Promise<WebSocket> {
    const ws = new WebSocket(`${url}?service=git-upload-pack`, { headers: auth ? { Authorization: basic(...auth) } : {}, perMessageDeflate: false });
    await new Promise<void>((resolve, reject) => {
      ws.once('message', () => resolve());
      ws.once('error', reject);
      ws.once('unexpected-response', (_req, res) => reject(new Error(`HTTP ${res.statusCode}`)));
    });
    return ws;
  }
  /** The same through gotsh, as the unix account. */
  async function holdSsh(): Promise<ChildProcess> {
    const p = spawn(inst.gotsh, ['-c', "git-upload-pack 'src'"], { ...asUser(alice, { env: { GOTD_UNIX_SOCKET: g.sock } }), stdio: ['pipe', 'pipe', 'ignore'] });
    await new Promise<void>((resolve) => p.stdout!.once('data', () => resolve()));
    return p;
  }
  async function sessions(): Promise<number> {
    const r = await g.gotctl(['info']);
    const m = /sessions: ([0-9]+)/.exec(r.stdout);
    return m ? Number(m[1]) : -1;
  }
  async function drained(): Promise<void> {
    for (let i = 0; i < 100 && (await sessions()) !== 0; i++) await sleep(100);
  }

  t.test('the per-user limit counts ssh and WebSocket sessions of one name together', async (t) => {
    const ssh = await holdSsh();
    const r = await wsGit(inst, ['ls-remote', `ws://${USERS.alice}:a-pw@127.0.0.1:${port}/src`]);
    t.not(r.code, 0);
    t.match(r.stderr, new RegExp(`too many connections for user ${USERS.alice} \\(limit 1\\) \\(HTTP 429, retry after [0-9]+ s\\)`));
    ssh.kill('SIGKILL');
    await drained();

    const ws = await holdWs([USERS.alice, 'a-pw']);
    const s = await run(inst.gotsh, ['-c', "git-upload-pack 'src'"]);
    t.equal(s.code, 1);
    t.match(s.stderr, new RegExp(`gotsh: too many connections for user ${USERS.alice} \\(limit 1\\)`));
    const other = await wsGit(inst, ['ls-remote', `ws://bob:b-pw@127.0.0.1:${port}/src`]);
    t.equal(other.code, 0, 'another user is not limited by it');
    ws.terminate();
    await drained();
    const again = await wsGit(inst, ['ls-remote', `ws://${USERS.alice}:a-pw@127.0.0.1:${port}/src`]);
    t.equal(again.code, 0, `served again once the first ended: ${again.stderr}`);
  });

  function run(cmd: string, args: string[]): Promise<{ code: number | null; stderr: string }> {
    return new Promise((resolve) => {
      const p = spawn(cmd, args, { ...asUser(alice, { env: { GOTD_UNIX_SOCKET: g.sock } }), stdio: ['ignore', 'ignore', 'pipe'] });
      let stderr = '';
      p.stderr!.on('data', (b: Buffer) => { stderr += b.toString(); });
      p.on('close', (code) => resolve({ code, stderr }));
    });
  }

  t.test('anonymous has its own limit; max_connections counts everyone', async (t) => {
    const held = [await holdWs()];
    const r = await wsGit(inst, ['ls-remote', url]);
    t.not(r.code, 0);
    t.match(r.stderr, /too many connections for user anonymous \(limit 1\) \(HTTP 429/);
    held.push(await holdWs([USERS.alice, 'a-pw']), await holdWs(['bob', 'b-pw']), await holdWs(['bob', 'b-pw']), await holdWs(['bob', 'b-pw']));
    const full = await rawHttp(port, upgradeHead('/src?service=git-upload-pack', { Authorization: basic('bob', 'b-pw') }));
    t.equal(full.status, 503);
    t.match(full.body, /too many connections: the server limit of 5 is reached/);
    t.ok(Number(full.headers['retry-after']) > 0, 'Retry-After');
    const viaGit = await wsGit(inst, ['ls-remote', `ws://bob:b-pw@127.0.0.1:${port}/src`]);
    t.match(viaGit.stderr, /limit of 5 is reached.*\(HTTP 503, retry after [0-9]+ s\)/);
    for (const h of held) t.equal(h.readyState, WebSocket.OPEN, 'running sessions are unaffected');
    for (const h of held) h.terminate();
    await drained();
  });

  t.test('the rate: one address refused with 429 and Retry-After, another still served', async (t) => {
    fs.writeFileSync(g.conf, fs.readFileSync(g.conf, 'utf8').replace('rate = "1000/min"', 'rate = "5/min"'));
    const reload = await g.gotctl(['reload']);
    t.equal(reload.code, 0, reload.stderr);

    const answers = [];
    for (let i = 0; i < 7; i++) answers.push(await rawHttp(port, upgradeHead('/src?service=git-receive-pack'), { from: '127.0.0.2' }));
    t.same(answers.map((a) => a.status), [401, 401, 401, 401, 401, 429, 429], '5 per minute from 127.0.0.2');
    const refused = answers[6]!;
    t.ok(Number(refused.headers['retry-after']) >= 1 && Number(refused.headers['retry-after']) <= 60, `Retry-After: ${refused.headers['retry-after']}`);
    t.match(refused.body, /too many new connections from 127\.0\.0\.2 \(rate limit 5\/min\); retry after [0-9]+ s/);

    const other = await wsGit(inst, ['ls-remote', url]);
    t.equal(other.code, 0, `127.0.0.1 is still served: ${other.stderr}`);
  });

  t.test('a flood of wrong passwords from one address costs a few password checks, and others are served meanwhile', async (t) => {
    // Password checks in progress hold connections; room for them here.
    fs.writeFileSync(g.conf, fs.readFileSync(g.conf, 'utf8').replace('max_connections = 5', 'max_connections = 50'));
    t.equal((await g.gotctl(['reload'])).code, 0);
    const before = g.log.filter((l) => /outcome=denied: wrong password from=127\.0\.0\.3/.test(l)).length;
    const statuses = new Map<number, number>();
    const flood = (async () => {
      const inFlight: Array<Promise<void>> = [];
      for (let i = 0; i < 300; i++) {
        inFlight.push(rawHttp(port, upgradeHead('/src?service=git-upload-pack', { Authorization: basic('bob', `guess${i}`) }), { from: '127.0.0.3' })
          .then((a) => { statuses.set(a.status, (statuses.get(a.status) ?? 0) + 1); }));
        await sleep(10);
      }
      await Promise.all(inFlight);
    })();
    const during = await wsGit(inst, ['ls-remote', url]);
    t.equal(during.code, 0, `served during the flood: ${during.stderr}`);
    await flood;
    t.equal([...statuses.values()].reduce((a, b) => a + b, 0), 300, `every attempt answered: ${JSON.stringify([...statuses])}`);
    t.ok((statuses.get(429) ?? 0) >= 294, 'nearly all refused by the rate');
    await sleep(1000);
    const checked = g.log.filter((l) => /outcome=denied: wrong password from=127\.0\.0\.3/.test(l)).length - before;
    t.ok(checked >= 1 && checked <= 5, `password checks done: ${checked}`);
  });

  t.test('behind a trusted proxy the client is the X-Forwarded-For address, for the rate and the log', async (t) => {
    fs.writeFileSync(g.conf, fs.readFileSync(g.conf, 'utf8').replace('rate = "5/min"', 'rate = "5/min"\ntrusted_proxies = ["127.0.0.4"]'));
    t.equal((await g.gotctl(['reload'])).code, 0);
    const viaProxy = (client: string): ReturnType<typeof rawHttp> =>
      rawHttp(port, upgradeHead('/src?service=git-receive-pack', { 'X-Forwarded-For': `203.0.113.1, ${client}` }), { from: '127.0.0.4' });
    const answers = [];
    for (let i = 0; i < 6; i++) answers.push((await viaProxy('198.51.100.8')).status);
    t.same(answers, [401, 401, 401, 401, 401, 429], 'the rate counts the client behind the proxy');
    t.equal((await viaProxy('198.51.100.9')).status, 401, 'another client behind the same proxy is not limited by it');
    await g.waitLog(/outcome=denied: read-only access from=198\.51\.100\.9/);
    const forged = await rawHttp(port, upgradeHead('/src?service=git-receive-pack', { 'X-Forwarded-For': '198.51.100.10' }), { from: '127.0.0.5' });
    t.equal(forged.status, 401);
    await g.waitLog(/outcome=denied: read-only access from=127\.0\.0\.5/);
    t.notOk(g.log.some((l) => l.includes('from=198.51.100.10')), 'X-Forwarded-For from anyone else is ignored');
  });

  t.test('the repository is intact', async (t) => {
    t.equal(fsckStrict(src), '');
  });
}
