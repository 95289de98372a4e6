/**
 * receive-pack on stdin/stdout, for running the engine without the daemon:
 *
 *   node build/src/stdio/receive_pack.js [options] REPO
 *   git push --receive-pack='node /abs/path/build/src/stdio/receive_pack.js' REPO ...
 *
 * GIT_PROTOCOL (version=1, version=2) is honoured as git sets it.
 *
 * Options (the protect rules the daemon takes from its configuration):
 *   --protect-branch NAME            refs/heads/NAME: create and fast-forward only
 *   --protect-branch-namespace PFX   e.g. refs/heads/release/: the same for every branch there
 *   --protect-tag-namespace PFX      e.g. refs/tags/: tags there may be created, never moved or deleted
 *   --stale-before MS                lock files and quarantines older than MS (ms since the
 *                                    epoch) are crash left-overs and may be removed
 *   --max-input-bytes N              refuse larger packs
 *   -v                               log each ref update and refusal to stderr
 *
 * Test hooks (environment), for crash-consistency tests only:
 *   GOTD_TEST_CRASH_AT=STEP[:N]      SIGKILL this process at the Nth (default 1st) time the
 *                                    push reaches checkpoint STEP (see receive_pack.ts)
 *   GOTD_TEST_CRASH_AFTER_BYTES=N    SIGKILL once N bytes have been read from stdin
 *   GOTD_TEST_CHECKPOINTS=FILE       append each checkpoint's name to FILE
 */
import * as fs from 'node:fs';
import { Transform, type Readable } from 'node:stream';
import { z } from 'zod';
import { receivePack, type ProtectRules } from '../git/receive_pack';
import { Repository } from '../git/repository';

const Args = z.object({
  repo: z.string().min(1),
  protect: z.object({ branches: z.array(z.string()), branchNamespaces: z.array(z.string()), tagNamespaces: z.array(z.string()) }),
  staleBefore: z.number().finite().optional(),
  maxInputBytes: z.number().int().positive().optional(),
  verbose: z.boolean(),
});
type Args = z.infer<typeof Args>;

const Env = z.object({
  GIT_PROTOCOL: z.string().optional(),
  GOTD_TEST_CRASH_AT: z.string().regex(/^[a-z-]+(:\d+)?$/).optional(),
  GOTD_TEST_CRASH_AFTER_BYTES: z.string().regex(/^\d+$/).optional(),
  GOTD_TEST_CHECKPOINTS: z.string().optional(),
});

function usage(message: string): never {
  process.stderr.write(`receive_pack: ${message}\nusage: receive_pack [--protect-branch NAME] [--protect-branch-namespace PFX] [--protect-tag-namespace PFX] [--stale-before MS] [--max-input-bytes N] [-v] REPO\n`);
  process.exit(2);
}

function parseArgs(argv: string[]): Args {
  const protect: ProtectRules = { branches: [], branchNamespaces: [], tagNamespaces: [] };
  let repo: string | undefined;
  let staleBefore: number | undefined;
  let maxInputBytes: number | undefined;
  let verbose = false;
  for (let i = 0; i < argv.length; i++) {
    const a = argv[i]!;
    const value = (): string => {
      const v = argv[++i];
      if (v === undefined) usage(`${a} needs a value`);
      return v;
    };
    switch (a) {
      case '--protect-branch': protect.branches.push(value()); break;
      case '--protect-branch-namespace': protect.branchNamespaces.push(value()); break;
      case '--protect-tag-namespace': protect.tagNamespaces.push(value()); break;
      case '--stale-before': staleBefore = Number(value()); break;
      case '--max-input-bytes': maxInputBytes = Number(value()); break;
      case '-v': verbose = true; break;
      default:
        if (a.startsWith('-') || repo !== undefined) usage(`unexpected argument '${a}'`);
        repo = a;
    }
  }
  const parsed = Args.safeParse({ repo, protect, staleBefore, maxInputBytes, verbose });
  if (!parsed.success) usage(parsed.error.issues.map((i) => `${i.path.join('.')}: ${i.message}`).join('; '));
  return parsed.data;
}

function crashHooks(env: z.infer<typeof Env>): { checkpoint: (name: string) => void; input: Readable } {
  const log = env.GOTD_TEST_CHECKPOINTS;
  let crashStep: string | null = null;
  let crashCount = 1;
  if (env.GOTD_TEST_CRASH_AT) {
    const [step, n] = env.GOTD_TEST_CRASH_AT.split(':');
    crashStep = step!;
    crashCount = n ? Number(n) : 1;
  }
  let seen = 0;
  const checkpoint = (name: string): void => {
    if (log) fs.appendFileSync(log, name + '\n');
    if (name === crashStep && ++seen === crashCount) process.kill(process.pid, 'SIGKILL');
  };
  let input: Readable = process.stdin;
  if (env.GOTD_TEST_CRASH_AFTER_BYTES) {
    const limit = Number(env.GOTD_TEST_CRASH_AFTER_BYTES);
    let total = 0;
    input = process.stdin.pipe(new Transform({
      transform(chunk: Buffer, _enc, done) {
        total += chunk.length;
        if (total >= limit) {
          // Let the bytes before the limit reach the engine, then die mid-push.
          this.push(chunk.subarray(0, chunk.length - (total - limit)));
          setImmediate(() => process.kill(process.pid, 'SIGKILL'));
          return;
        }
        done(null, chunk);
      },
    }));
  }
  return { checkpoint, input };
}

async function main(): Promise<void> {
  const args = parseArgs(process.argv.slice(2));
  const env = Env.parse(process.env);
  let repo: Repository;
  try {
    repo = Repository.open(args.repo);
  } catch (err) {
    process.stderr.write(`receive_pack: ${(err as Error).message}\n`);
    process.exit(1);
  }
  const proto = env.GIT_PROTOCOL ?? '';
  const protocol = /(^|:)version=2(:|$)/.test(proto) ? 2 : /(^|:)version=1(:|$)/.test(proto) ? 1 : 0;
  const hooks = crashHooks(env);
  const outcome = await receivePack(repo, { input: hooks.input, output: process.stdout }, {
    protocol,
    protect: args.protect,
    ...(args.verbose ? { log: (line: string) => { process.stderr.write(line + '\n'); } } : {}),
    checkpoint: hooks.checkpoint,
    ...(args.staleBefore !== undefined ? { staleBefore: args.staleBefore } : {}),
    ...(args.maxInputBytes !== undefined ? { maxInputBytes: args.maxInputBytes } : {}),
  });
  repo.close();
  process.exitCode = outcome.error ? 1 : 0;
}

main().catch((err: unknown) => {
  process.stderr.write(`receive_pack: ${(err as Error).stack ?? String(err)}\n`);
  process.exit(1);
});
