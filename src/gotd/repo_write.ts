/**
 * The writer: one receive-pack session (push) on one repository, in a
 * fresh confined process that can write only to that repository.  After
 * the client vanishes it gets a few seconds to finish or roll back, so a
 * ref update is never cut in half.
 */
import { repositoryModule, receivePackModule } from './engine';
import { runWorker } from './worker';

runWorker<unknown>({
  graceMs: 10_000,
  open: (msg) => {
    if (msg.access !== 'rw') throw new Error('writer started without write access');
    return repositoryModule().open(msg.repoPath);
  },
  serve: (repo, conn, msg, log) => receivePackModule()(repo, conn, { protocol: msg.protocol, protect: msg.protect, log }),
});
