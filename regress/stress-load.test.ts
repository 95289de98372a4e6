/**
 * make check's slice of make stress "load": 16 concurrent clients (gotsh
 * and ws) for 10 s against a real gotd; every row of the full run must hold.
 */
import t from 'tap';
import * as fs from 'node:fs';
import { Env, unavailable, type Client } from './stress/gotd_env';
import { runLoad } from './stress/load';

/*
 * auth answered nobody while the machine was busy with sessions: it ran at
 * nice 10, and so did the getent it runs, so that under load (64 clients
 * of make stress load on 2 cores: 30 of 122 sessions refused with
 * "authorization unavailable", 57 more with "too many logins at once")
 * sessions at nice 0 took all the CPU.  auth runs at the daemon's priority.
 */
t.test('auth runs at the priority of gotd', async (t) => {
  const why = unavailable();
  if (why) { t.pass(`skipped: ${why}`); return; }
  const env = new Env(1);
  t.teardown(() => env.stop());
  const g = await env.start();
  const nice = (pid: number): number => {
    const st = fs.readFileSync(`/proc/${pid}/stat`, 'utf8');
    return Number(st.slice(st.lastIndexOf(')') + 2).split(' ')[16]);
  };
  const auth = env.roles().auth[0]!;
  t.ok(auth, 'auth is running');
  t.equal(nice(auth), nice(g.pid), 'auth\'s nice value is gotd\'s');
  const c: Client = { kind: 'gotsh', acct: env.unixUsers[0]! };
  const r = await env.git(c, ['ls-remote', env.url(c, 'r0')], env.workdir(c, 'w'));
  t.equal(r.code, 0, `served: ${r.stderr}`);
});

t.test('load slice: 16 clients, 10 s', async (t) => {
  const rows = await runLoad({ fuzzSeconds: 0, loadSeconds: 10, clients: 16, kills: 0, seed: Number(process.env.STRESS_SEED ?? 1), log: (l) => t.comment(l) });
  for (const r of rows) {
    t.comment(`${r.case}: ${r.figure} (${r.runs})`);
    t.ok(r.ok, `${r.case}: ${r.figure}${r.detail ? ` — ${r.detail}` : ''}`);
  }
  if (!rows[0]!.figure.startsWith('skipped')) {
    t.equal(rows.length, 5, 'one row per metric group');
    t.match(rows[0]!.figure, /^[1-9][0-9]* sessions/, 'sessions were served');
  }
});
