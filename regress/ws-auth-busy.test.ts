/**
 * When auth cannot decide (its password-check queue is full), a WebSocket
 * client hears 503 "try again", never 401: a 401 makes git-remote-ws run
 * `git credential reject`, which would erase a correct stored password.
 * 9 addresses x 8 logins at once overflow the queue (one check at a time,
 * 64 waiting); the surplus must be 503 with Retry-After.
 */
import t from 'tap';
import { DAEMON_USER, ensureAccounts, install, mustAccount, openTmpdir, repoFor } from './lib/daemon';
import { fsckStrict } from './lib/util';
import { basic, freePort, rawHttp, startWsGotd, upgradeHead, writeSecrets } from './lib/ws';

const why = ensureAccounts();
if (why) t.plan(0, `auth overload test: ${why}`);
else void main();

async function main(): Promise<void> {
  const inst = install();
  const dir = openTmpdir();
  const src = repoFor(dir, 'src', mustAccount(DAEMON_USER));
  const port = await freePort();
  const secrets = await writeSecrets(dir, { bob: { password: 'b-pw' } });
  const g = await startWsGotd(inst, dir, `
[connection]
max_connections = 500
[websocket]
listen = ["127.0.0.1:${port}"]
rate = "100000/min"
[[repository]]
name = "src"
path = "${src}"
access = ["permit ro bob"]
`, port, { secrets });
  t.teardown(() => g.stop());

  const tries = [];
  for (let a = 2; a <= 10; a++) {
    for (let i = 0; i < 8; i++) {
      tries.push(rawHttp(port, upgradeHead('/src?service=git-upload-pack', { Authorization: basic('bob', `guess-${a}-${i}`) }), { from: `127.0.0.${a}`, ms: 60_000 }));
    }
  }
  // The overflow is answered at once; the queued guesses take seconds each and are not waited for.
  await new Promise((r) => setTimeout(r, 6000));
  const settled = await Promise.all(tries.map((p) => Promise.race([p, new Promise<null>((r) => setTimeout(() => r(null), 10))])));
  const answered = settled.filter((a): a is NonNullable<typeof a> => a !== null);
  const byStatus = new Map<number, number>();
  for (const a of answered) byStatus.set(a.status, (byStatus.get(a.status) ?? 0) + 1);
  t.comment(`answers so far: ${JSON.stringify(Object.fromEntries(byStatus))} of ${tries.length}`);
  const busy = answered.filter((a) => a.status === 503);
  t.ok(busy.length >= 1, 'the logins beyond the queue are answered 503');
  t.ok(busy.every((a) => /^\d+$/.test(a.headers['retry-after'] ?? '')), 'each 503 says when to retry');
  t.ok(answered.every((a) => [401, 429, 503].includes(a.status)), 'nothing but 401 (checked, wrong), 429 or 503');
  t.ok(g.log.some((l) => /auth: auth error: too many password checks waiting/.test(l)), 'the log names the cause');
  t.equal(fsckStrict(src), '', 'the repository is intact');
  t.end();
}
