/**
 * Git's lock files: `X.lock` created with O_EXCL is the right to replace X;
 * the new content goes into the lock file, is fsynced, and the lock is
 * renamed over X (then the directory is fsynced). Whoever finds the lock
 * taken backs off. A lock left behind by a crash is only broken when it is
 * older than `staleBefore` (for a daemon: its own start time, so no living
 * writer can own it).
 */
import * as fs from 'node:fs';
import * as path from 'node:path';
import { randomBytes } from 'node:crypto';
import { CREATE_EXCL, mkdirDurable, syncDir } from './durable';

export class LockError extends Error {
  override name = 'LockError';
}

export interface LockOptions {
  /** Lock files last modified before this time (ms since the epoch) are left-overs of a crash. */
  staleBefore?: number;
  /** Keep trying this long while someone else holds the lock (default: fail at once). */
  timeoutMs?: number;
}

function sleep(ms: number): Promise<void> {
  return new Promise((resolve) => setTimeout(resolve, ms));
}

/**
 * Moves a stale lock out of the way. The lock is renamed to a unique name
 * first and only then judged, so that two processes breaking the same stale
 * lock cannot remove a fresh one taken in between: a fresh one is put back.
 */
function breakStaleLock(lockPath: string, staleBefore: number): boolean {
  let st: fs.Stats;
  try {
    st = fs.statSync(lockPath);
  } catch {
    return true; // gone already: try again
  }
  if (st.mtimeMs >= staleBefore) return false;
  const aside = `${lockPath}.stale-${randomBytes(6).toString('hex')}`;
  try {
    fs.renameSync(lockPath, aside);
  } catch {
    return true;
  }
  const moved = fs.statSync(aside);
  if (moved.mtimeMs < staleBefore) {
    fs.unlinkSync(aside);
    return true;
  }
  try {
    fs.linkSync(aside, lockPath);
  } finally {
    fs.unlinkSync(aside);
  }
  return false;
}

/**
 * A held lock. No descriptor stays open between calls, so a push may hold
 * thousands of ref locks at once; the lock file's inode number tells
 * whether it is still ours.
 */
export class LockFile {
  private done = false;
  readonly lockPath: string;

  private constructor(readonly target: string, private readonly ino: number) {
    this.lockPath = target + '.lock';
  }

  /** Takes the lock on `target`, creating its directory if needed; throws LockError when it is held. */
  static async acquire(target: string, opts: LockOptions = {}): Promise<LockFile> {
    const lockPath = target + '.lock';
    await mkdirDurable(path.dirname(target));
    const deadline = Date.now() + (opts.timeoutMs ?? 0);
    let delay = 1;
    for (;;) {
      try {
        const fd = fs.openSync(lockPath, CREATE_EXCL, 0o644);
        try {
          return new LockFile(target, fs.fstatSync(fd).ino);
        } finally {
          fs.closeSync(fd);
        }
      } catch (err) {
        const code = (err as NodeJS.ErrnoException).code;
        if (code === 'ENOENT' && Date.now() < deadline + 1000) {
          // A writer pruning empty directories removed ours meanwhile.
          await mkdirDurable(path.dirname(target));
          continue;
        }
        if (code !== 'EEXIST') throw err;
      }
      if (opts.staleBefore !== undefined && breakStaleLock(lockPath, opts.staleBefore)) continue;
      if (Date.now() >= deadline) {
        throw new LockError(`unable to create '${path.basename(lockPath)}': File exists (another update in progress?)`);
      }
      await sleep(delay);
      delay = Math.min(delay * 2, 100);
    }
  }

  /** Writes the whole new content into the lock file, durably. */
  async write(content: Buffer | string): Promise<void> {
    if (this.done) throw new LockError(`lock ${path.basename(this.lockPath)} already released`);
    const fh = await fs.promises.open(this.lockPath, fs.constants.O_WRONLY);
    try {
      if ((await fh.stat()).ino !== this.ino) throw new LockError(`lock ${path.basename(this.lockPath)} was taken away`);
      await fh.truncate(0);
      await fh.writeFile(content);
      await fh.sync();
    } finally {
      await fh.close();
    }
  }

  /** True while the lock file on disk is still the one we created (nobody broke it). */
  private stillOurs(): boolean {
    try {
      return fs.lstatSync(this.lockPath).ino === this.ino;
    } catch {
      return false;
    }
  }

  /** Renames the lock over the target and fsyncs the directory. */
  async commit(): Promise<void> {
    this.rename();
    await syncDir(path.dirname(this.target));
  }

  /** Renames the lock over the target; durable once the caller has synced the directory. */
  rename(): void {
    if (this.done) throw new LockError(`lock ${path.basename(this.lockPath)} already released`);
    if (!this.stillOurs()) {
      this.done = true;
      throw new LockError(`lock ${path.basename(this.lockPath)} was taken away`);
    }
    fs.renameSync(this.lockPath, this.target);
    this.done = true;
  }

  /** Gives the lock up without touching the target. Safe to call more than once. */
  release(): void {
    if (this.done) return;
    this.done = true;
    if (this.stillOurs()) {
      try {
        fs.unlinkSync(this.lockPath);
      } catch {
        // already gone
      }
    }
  }
}
