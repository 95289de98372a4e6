/**
 * make stress: fuzzing, resource exhaustion, load and faults against the
 * real daemon and engine, for minutes; prints one table (README,
 * "Reliability"). A short seeded slice of each part runs in make check
 * (regress/stress-*.test.ts).
 *
 *   node build/regress/stress/stress.js [part...] [--fuzz-seconds N]
 *     [--load-seconds N] [--clients N] [--kills N] [--seed N]
 */
import * as fs from 'node:fs';
import * as path from 'node:path';
import { renderTable, type Row, type StressOptions } from './table';
import { PARTS } from './parts';

async function main(): Promise<number> {
  const argv = process.argv.slice(2);
  const opts: StressOptions = {
    fuzzSeconds: 600, loadSeconds: 60, clients: 200, kills: 100,
    seed: Number(process.env.STRESS_SEED ?? 1),
    log: (line) => process.stderr.write(`stress: ${line}\n`),
  };
  const pick: string[] = [];
  for (let i = 0; i < argv.length; i++) {
    const a = argv[i]!;
    const num = (): number => {
      const v = Number(argv[++i]);
      if (!Number.isFinite(v) || v < 0) throw new Error(`${a}: needs a number`);
      return v;
    };
    if (a === '--fuzz-seconds') opts.fuzzSeconds = num();
    else if (a === '--load-seconds') opts.loadSeconds = num();
    else if (a === '--clients') opts.clients = num();
    else if (a === '--kills') opts.kills = num();
    else if (a === '--seed') opts.seed = num();
    else if (PARTS.some((p) => p.name === a)) pick.push(a);
    else throw new Error(`unknown argument ${a}; parts: ${PARTS.map((p) => p.name).join(' ')}`);
  }
  const rows: Row[] = [];
  for (const part of PARTS) {
    if (pick.length && !pick.includes(part.name)) continue;
    opts.log(`== ${part.name} ==`);
    const got = await part.run(opts);
    rows.push(...got);
    for (const r of got) opts.log(`${r.ok ? 'ok  ' : 'FAIL'} ${r.case}: ${r.figure} (${r.runs})`);
  }
  const table = renderTable(rows);
  console.log(table);
  const report = path.resolve(__dirname, '..', '..', 'stress-report.md');
  fs.writeFileSync(report, `${table}\n`);
  opts.log(`table written to ${report}`);
  return rows.every((r) => r.ok) ? 0 : 1;
}

main().then((code) => process.exit(code), (err: unknown) => {
  console.error(err);
  process.exit(2);
});
