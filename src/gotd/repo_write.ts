/**
 * The writer: one receive-pack session (push) on one repository, in a
 * fresh confined process that can write only to that repository.  After
 * the client vanishes it gets a few seconds to finish or roll back, so a
 * ref update is never cut in half.
 */
import { Repository } from '../git/repository';
import { receivePack } from '../git/receive_pack';
import { runWorker } from './worker';

runWorker<Repository>({
  graceMs: 10_000,
  open: (msg) => {
    if (msg.access !== 'rw') throw new Error('writer started without write access');
    return Repository.open(msg.repoPath);
  },
  serve: (repo, conn, msg, log) => receivePack(repo, conn, {
    protocol: msg.protocol, protect: msg.protect, log,
    maxInputBytes: msg.maxInputBytes,
    lineTimeoutMs: msg.requestTimeoutMs,
    // A long push with nothing to say must not look idle to request_timeout.
    keepAliveMs: Math.min(5000, msg.requestTimeoutMs / 2),
    // Locks and quarantines from before gotd started belong to no living writer.
    staleBefore: msg.staleBefore,
  }),
});
