/**
 * The reader: one upload-pack session (clone, fetch, ls-remote) on one
 * repository, in a fresh confined process that can read only that
 * repository and gotd's own code, and write nothing.
 */
import { Repository } from '../git/repository';
import { uploadPack } from '../git/upload_pack';
import { runWorker } from './worker';

runWorker<Repository>({
  graceMs: 1000,
  open: (msg) => Repository.open(msg.repoPath),
  // request_timeout also bounds each request line: a client trickling bytes is never idle.
  serve: (repo, conn, msg, log) => uploadPack(repo, conn, { protocol: msg.protocol, log, lineTimeoutMs: msg.requestTimeoutMs }),
});
