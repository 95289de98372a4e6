/**
 * One fuzz target in its own process, so that a crash or a hang cannot hide:
 *
 *   node fuzz_worker.js TARGET SECONDS SEED [--work DIR] [--out DIR]
 *   node fuzz_worker.js TARGET --replay FILE [--work DIR]
 *   node fuzz_worker.js TARGET --input SEED:K [--work DIR]
 *
 * Input k of a run is a seeded mutation of a valid input, regenerated from
 * (SEED, k) alone. Before each run the input is written to DIR/current.bin,
 * so the parent can save it when this process hangs or dies; a thrown
 * error the target does not count as clean is saved to OUT and ends the
 * run (exit 3). Progress goes to stdout as JSON lines: ready, hb (every
 * 500 ms, with the input counter), finishing, done or crash.
 */
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { makeTarget, type Target } from './fuzz_targets';
import { Rng } from './fuzz_mutate';

function say(msg: Record<string, unknown>): void {
  // Synchronous: the parent must see a crash report even if we die right after.
  fs.writeSync(1, JSON.stringify(msg) + '\n');
}

/** An error message with its numbers and names taken out, to count kinds of errors rather than instances. */
export function normalise(message: string, work: string): string {
  return message.split(work).join('…').split('\n')[0]!
    .replace(/[0-9a-f]{7,}/g, 'H').replace(/\d+/g, 'N')
    // the client's text quoted in a message (often cut at 200 characters) is not part of the kind
    .replace(/['"`][\s\S]*$/, 'S').replace(/(object format|invalid [\w-]+(?: line)?|ambiguous [\w-]+): [\s\S]*$/, '$1: S').replace(/unknown keys .*$/, 'unknown keys S')
    // the names a mutated input chose (header fields, config keys) do not make another kind of error
    .replace(/header field \S+/g, 'header field F').replace(/^(…\/\S+: )(line N, column N: )?[^\s:]+: /, '$1$2K: ')
    .slice(0, 160);
}

export function inputFor(target: Target, seed: number, k: number): Buffer {
  const seeds = target.seeds();
  const rng = Rng.forInput(seed, k);
  const base = rng.pick(seeds);
  if (rng.chance(0.03)) return base; // the valid input itself: the normal path must stay normal
  let out = target.mutate(rng, base, seeds);
  if (rng.chance(0.25)) out = target.mutate(rng, out, seeds);
  return out;
}

function describe(err: unknown): { message: string; stack: string } {
  const e = err instanceof Error ? err : new Error(String(err));
  return { message: `${e.name}: ${e.message}`, stack: e.stack ?? e.message };
}

async function replay(target: Target, input: Buffer): Promise<number> {
  const t0 = Date.now();
  try {
    const r = await target.run(input);
    console.log(`${target.name}: ${r === null ? 'normal result' : `clean error: ${r}`} (${Date.now() - t0} ms)`);
    return 0;
  } catch (err) {
    if (target.clean(err)) {
      console.log(`${target.name}: clean error: ${(err as Error).message} (${Date.now() - t0} ms)`);
      return 0;
    }
    console.log(`${target.name}: CRASH: ${describe(err).stack}`);
    return 3;
  }
}

async function main(): Promise<number> {
  const argv = process.argv.slice(2);
  const opt = (name: string): string | undefined => {
    const i = argv.indexOf(name);
    return i >= 0 ? argv[i + 1] : undefined;
  };
  const name = argv[0];
  if (!name) throw new Error('usage: fuzz_worker.js TARGET SECONDS SEED | TARGET --replay FILE');
  const ownWork = !opt('--work');
  const work = opt('--work') ?? fs.mkdtempSync(path.join(os.tmpdir(), 'gotd-fuzz-'));
  if (ownWork && !process.env.GOTD_KEEP_TMP) process.on('exit', () => fs.rmSync(work, { recursive: true, force: true }));
  const target = makeTarget(name);
  await target.setup(work);

  const replayFile = opt('--replay');
  if (replayFile) return replay(target, fs.readFileSync(replayFile));
  const again = opt('--input');
  if (again) {
    // --input SEED:K makes input K of a run with SEED again (also when making it was what failed)
    const [s, k] = again.split(':').map(Number);
    return replay(target, inputFor(target, s!, k!));
  }

  const seconds = Number(argv[1]);
  const seed = Number(argv[2]);
  const out = opt('--out') ?? path.resolve(__dirname, '..', '..', 'stress-fuzz');
  if (!Number.isFinite(seconds) || !Number.isFinite(seed)) throw new Error('SECONDS and SEED must be numbers');
  fs.mkdirSync(out, { recursive: true });

  const current = fs.openSync(path.join(work, 'current.bin'), 'w');
  const currentN = fs.openSync(path.join(work, 'current.n'), 'w');
  let k = 0;
  let current_k = -1;
  const errors = new Map<string, number>();
  let normal = 0;
  say({ t: 'ready', seeds: target.seeds().length });
  const hb = setInterval(() => say({ t: 'hb', n: k, kinds: errors.size }), 500);
  // An error thrown outside the awaited run (a stream event handler, a timer) would kill us: report it as a crash.
  const fatal = (err: unknown): void => {
    const file = path.join(out, `crash-${name}-${seed}-${current_k}.bin`);
    try { fs.copyFileSync(path.join(work, 'current.bin'), file); } catch { /* nothing to save */ }
    say({ t: 'crash', n: current_k, ...describe(err), file, uncaught: true });
    process.exit(4);
  };
  process.on('uncaughtException', fatal);
  process.on('unhandledRejection', fatal);

  const deadline = Date.now() + seconds * 1000;
  while (Date.now() < deadline) {
    // The number first: if making the input itself fails, the parent still knows which one.
    fs.writeSync(currentN, String(k).padEnd(16), 0);
    current_k = k;
    const input = inputFor(target, seed, k);
    fs.writeSync(current, input, 0, input.length, 0);
    fs.ftruncateSync(current, input.length);
    let result: string | null;
    try {
      result = await target.run(input);
    } catch (err) {
      if (!target.clean(err)) {
        const file = path.join(out, `crash-${name}-${seed}-${k}.bin`);
        fs.writeFileSync(file, input);
        clearInterval(hb);
        say({ t: 'crash', n: k, ...describe(err), file });
        return 3;
      }
      result = (err as Error).message;
    }
    if (result === null) normal++;
    else {
      const key = normalise(result, work);
      errors.set(key, (errors.get(key) ?? 0) + 1);
    }
    k++;
    // Let the heartbeat out between synchronous runs.
    if (k % 8 === 0) await new Promise<void>((resolve) => setImmediate(resolve));
  }
  current_k = -1;
  say({ t: 'finishing', n: k });
  const { problem, note } = target.finish ? await target.finish() : { problem: null, note: '' };
  clearInterval(hb);
  const top = [...errors].sort((a, b) => b[1] - a[1]);
  say({
    t: 'done', n: k, normal, kinds: errors.size, problem, note,
    maxRssKb: process.resourceUsage().maxRSS, errors: Object.fromEntries(top.slice(0, 40)), rare: top.slice(-15).map((e) => e[0]),
  });
  return 0;
}

if (require.main === module) {
  main().then((code) => process.exit(code), (err: unknown) => {
    say({ t: 'crash', n: -1, ...describe(err), file: null, setup: true });
    process.exit(5);
  });
}
