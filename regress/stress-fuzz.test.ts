/**
 * make check's slice of make stress, part fuzz: every target for a few
 * seconds with a fixed seed, each in its own worker process as in the full
 * run; and the inputs the fuzzer found, replayed against the fixed code.
 */
import t from 'tap';
import { spawnSync } from 'node:child_process';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { applyDelta, DeltaError } from '../src/git/delta';
import { fuzzTarget, runFuzz, rowOf } from './stress/fuzz';
import { makeTarget, TARGET_NAMES } from './stress/fuzz_targets';
import { inputFor } from './stress/fuzz_worker';
import { tmpdir } from './lib/util';

/** Inputs each target must at least get through in its slice: about a tenth of what it does on an idle machine, as make check runs tests in parallel. */
const MIN_INPUTS: Record<string, number> = {
  pktline: 1000, upload: 30, receive: 20, 'index-pack': 30, idx: 60, delta: 1000, config: 60, http: 1000,
};

t.test('fuzz findings stay fixed', async (t) => {
  // A delta of a few bytes claiming a 4 GiB target: refused before anything is allocated.
  const base = Buffer.from('hello, world');
  const huge = Buffer.from([12, 0x85, 0x80, 0x80, 0x80, 0x10, 0x91, 0, 5]); // target 2^32 + 5
  t.throws(() => applyDelta(base, huge), DeltaError);
  const big = Buffer.from([12, 0x80, 0x80, 0x80, 0x80, 0x0c, 0x91, 0, 5]); // target 3 GiB
  t.throws(() => applyDelta(base, big), /delta produced 5 bytes, expected 3221225472/);
});

t.test('the delta mutator survives an emptied base (its varint looped on -1: input 754644 of seed 1)', async (t) => {
  const delta = makeTarget('delta');
  await delta.setup(tmpdir('gotd-fuzz-delta-'));
  t.ok(inputFor(delta, 1, 754644).length > 0);
});

t.test('fuzz slice: every target, 3 s each, seed 1', async (t) => {
  const results = await runFuzz({
    targets: TARGET_NAMES, seconds: 3, seed: 1, parallel: 2, log: (l) => t.comment(l), outDir: tmpdir('gotd-fuzz-out-'),
  });
  t.equal(results.length, TARGET_NAMES.length);
  for (const r of results) {
    const row = rowOf(r);
    t.ok(row.ok, `${r.target}: ${row.runs}; ${row.figure}`, { detail: row.detail });
    t.ok(r.inputs >= MIN_INPUTS[r.target]!, `${r.target}: ${r.inputs} inputs (at least ${MIN_INPUTS[r.target]})`);
    t.ok(r.kinds > 0, `${r.target}: mutations reached the parser's error paths (${r.kinds} kinds)`);
    t.ok(r.peakRssMb > 0, `${r.target}: peak RSS measured`);
  }
});

t.test('the harness sees a hang, a crash and a dying worker, and saves the input', async (t) => {
  const outDir = tmpdir('gotd-fuzz-self-');
  const o = { seconds: 20, seed: 3, log: (l: string) => t.comment(l), outDir, hangMs: 2000 };
  const [hang, crash, exit] = await Promise.all([fuzzTarget('selftest-hang', o), fuzzTarget('selftest-crash', o), fuzzTarget('selftest-exit', o)]);
  t.notOk(hang.ok);
  t.match(hang.failure, /^hang: no progress for \d+ s at input 39 /);
  t.notOk(crash.ok);
  t.match(crash.failure, /crash at input 39 \(seed 3\): TypeError: Cannot read properties of null/);
  t.notOk(exit.ok);
  t.match(exit.failure, /worker died \(exit 7\)/);
  for (const r of [hang, crash, exit]) t.ok(r.file && fs.existsSync(r.file), `${r.target}: input saved (${r.file})`);
  t.ok(hang.seconds < 15, 'the hang was cut well before the end of the run');
  // A saved crash replays as a crash.
  fs.writeFileSync(path.join(outDir, 'bad.bin'), 'misbehave');
  const worker = path.join(__dirname, 'stress', 'fuzz_worker.js');
  const r = spawnSync(process.execPath, [worker, 'selftest-crash', '--replay', path.join(outDir, 'bad.bin')], { encoding: 'utf8' });
  t.equal(r.status, 3, 'replay exits 3');
  t.match(r.stdout, /CRASH: TypeError/);
  const row = rowOf(crash);
  t.notOk(row.ok);
  t.match(row.detail, /replay: node build\/regress\/stress\/fuzz_worker\.js selftest-crash --replay /);
  t.match(row.detail, /--input 3:39$/);
  t.equal(exit.input, 39, 'a dying worker is pinned to its input');
});
