/**
 * upload-pack over stdin/stdout, for `git clone --upload-pack='node
 * …/upload_pack.js' REPO` and for tests: the same engine the daemon's
 * confined reader runs, without the daemon. git passes the repository path
 * as the last argument and the protocol version in GIT_PROTOCOL.
 */
import { Repository } from '../git/repository';
import { errPkt } from '../git/pktline';
import { uploadPack } from '../git/upload_pack';

/** "version=2" (among colon-separated keys) selects protocol v2; "version=1" v1; else v0. */
export function protocolFromEnv(value: string | undefined): 0 | 1 | 2 {
  const keys = (value ?? '').split(':');
  if (keys.includes('version=2')) return 2;
  if (keys.includes('version=1')) return 1;
  return 0;
}

async function main(): Promise<number> {
  const args = process.argv.slice(2);
  if (args.length !== 1) {
    process.stderr.write('usage: upload_pack.js REPOSITORY\n');
    return 129;
  }
  let repo: Repository;
  try {
    repo = Repository.open(args[0]!);
  } catch (err) {
    const msg = `'${args[0]}' does not appear to be a git repository`;
    process.stdout.write(errPkt(msg));
    process.stderr.write(`upload_pack: ${(err as Error).message}\n`);
    return 128;
  }
  const log = process.env.GOTD_DEBUG ? (l: string) => process.stderr.write(l + '\n') : undefined;
  const outcome = await uploadPack(repo, { input: process.stdin, output: process.stdout }, {
    protocol: protocolFromEnv(process.env.GIT_PROTOCOL),
    ...(log ? { log } : {}),
  });
  repo.close();
  if (!outcome.ok) process.stderr.write(`upload_pack: ${outcome.error}\n`);
  return outcome.ok ? 0 : 1;
}

if (require.main === module) {
  main().then(
    (code) => process.exit(code),
    (err: unknown) => {
      process.stderr.write(`upload_pack: internal error: ${(err as Error)?.stack ?? String(err)}\n`);
      process.exit(70);
    },
  );
}
