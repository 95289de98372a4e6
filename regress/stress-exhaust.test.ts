/**
 * The short slice of make stress part "exhaust" (regress/stress/exhaust.ts):
 * the same cases against the real daemon with small numbers (10^4 wants,
 * 10^3 ref updates, 10^4 refs, 200 idle connections, 2 s timeouts, a
 * 600 MiB bomb).  Every row must hold its limit.
 */
import t from 'tap';
import { runExhaust, SLICE } from './stress/exhaust';

t.test('resource exhaustion, short slice', async (t) => {
  const only = process.env.EXHAUST_ONLY ? new RegExp(process.env.EXHAUST_ONLY) : undefined;
  const rows = await runExhaust({ fuzzSeconds: 0, loadSeconds: 0, clients: 0, kills: 0, seed: 1, log: (l) => t.comment(l) }, SLICE, only);
  t.ok(rows.length >= (only ? 1 : 23), `${rows.length} cases ran`);
  for (const r of rows) t.ok(r.ok, `${r.case}: ${r.figure} (limit ${r.limit})${r.detail ? ` -- ${r.detail}` : ''}`);
});
