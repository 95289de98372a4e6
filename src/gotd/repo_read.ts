/**
 * The reader: one upload-pack session (clone, fetch, ls-remote) on one
 * repository, in a fresh confined process that can read only that
 * repository and gotd's own code, and write nothing.
 */
import { repositoryModule, uploadPackModule } from './engine';
import { runWorker } from './worker';

runWorker<unknown>({
  graceMs: 1000,
  open: (msg) => repositoryModule().open(msg.repoPath),
  serve: (repo, conn, msg, log) => uploadPackModule()(repo, conn, { protocol: msg.protocol, log }),
});
