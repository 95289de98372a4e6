/**
 * make check's slice of make stress "load": 16 concurrent clients (gotsh
 * and ws) for 10 s against a real gotd; every row of the full run must hold.
 */
import t from 'tap';
import { runLoad } from './stress/load';

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
