/**
 * The quarantine: an object directory of its own inside the repository's
 * (objects/incoming-XXXXXXXX/pack/), where a push's pack is written and
 * checked. Readers never look there (they read objects/pack and the
 * two-hex-digit loose directories), `git gc`/`git prune` leave unknown
 * directories alone, and a rename within one file system moves the verified
 * pack into objects/pack. A .keep file guards the pack from a concurrent
 * `git repack -a -d` until the refs that make its objects reachable exist.
 */
import * as fs from 'node:fs';
import * as path from 'node:path';
import { randomBytes } from 'node:crypto';
import { CREATE_EXCL, syncDir, syncFile } from './durable';

const PREFIX = 'incoming-';
const KEEP_MARK = 'gotd receive-pack\n';
/** A quarantine or .keep untouched for this long belongs to a writer that died. */
const ABANDONED_MS = 24 * 3600 * 1000;

export class Quarantine {
  readonly packDir: string;
  private kept: string | null = null;

  private constructor(readonly objectsDir: string, readonly dir: string) {
    this.packDir = path.join(dir, 'pack');
  }

  static create(objectsDir: string): Quarantine {
    const dir = path.join(objectsDir, PREFIX + randomBytes(8).toString('hex'));
    fs.mkdirSync(dir, { mode: 0o755 });
    fs.mkdirSync(path.join(dir, 'pack'), { mode: 0o755 });
    return new Quarantine(objectsDir, dir);
  }

  /**
   * Moves pack `name` (pack-<checksum>) into objects/pack: .keep first, then
   * the pack, then its index — a reader only uses a pack whose .idx exists —
   * with the directory fsynced in between so the order holds after a crash.
   */
  migrate(name: string, checkpoint: (step: string) => void = () => {}): void {
    const dest = path.join(this.objectsDir, 'pack');
    fs.mkdirSync(dest, { recursive: true });
    const keep = path.join(dest, name + '.keep');
    const finalPack = path.join(dest, name + '.pack');
    const finalIdx = path.join(dest, name + '.idx');
    if (fs.existsSync(finalPack) && fs.existsSync(finalIdx)) return; // the same pack arrived before
    try {
      const fd = fs.openSync(keep, CREATE_EXCL, 0o644);
      try {
        fs.writeSync(fd, KEEP_MARK);
        syncFile(fd);
      } finally {
        fs.closeSync(fd);
      }
      this.kept = keep;
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code !== 'EEXIST') throw err;
      // Someone else's .keep: it guards the pack just as well, and stays theirs.
    }
    checkpoint('keep-written');
    fs.renameSync(path.join(this.packDir, name + '.pack'), finalPack);
    syncDir(dest);
    checkpoint('pack-moved');
    fs.renameSync(path.join(this.packDir, name + '.idx'), finalIdx);
    syncDir(dest);
    checkpoint('idx-moved');
  }

  /** Drops the .keep once refs point into the pack (or nothing will). */
  unkeep(): void {
    if (this.kept) {
      fs.rmSync(this.kept, { force: true });
      this.kept = null;
    }
  }

  /** Removes the quarantine and whatever is still in it. */
  destroy(): void {
    fs.rmSync(this.dir, { recursive: true, force: true });
  }
}

function newestMtime(p: string): number {
  let st: fs.Stats;
  try {
    st = fs.lstatSync(p);
  } catch {
    return 0;
  }
  let t = st.mtimeMs;
  if (st.isDirectory()) {
    for (const name of fs.readdirSync(p)) t = Math.max(t, newestMtime(path.join(p, name)));
  }
  return t;
}

/**
 * Removes quarantines and our .keep files left by writers that crashed:
 * untouched since before `staleBefore` (no living writer is that old) or
 * for a day; with `staleBefore`, also ref lock files older than it.
 */
export function cleanStale(objectsDir: string, staleBefore?: number, now = Date.now()): string[] {
  const limit = Math.max(staleBefore ?? 0, now - ABANDONED_MS);
  const removed: string[] = [];
  let names: string[] = [];
  try {
    names = fs.readdirSync(objectsDir);
  } catch {
    // no objects directory: nothing quarantined
  }
  for (const name of names) {
    if (!name.startsWith(PREFIX)) continue;
    const dir = path.join(objectsDir, name);
    if (newestMtime(dir) < limit) {
      fs.rmSync(dir, { recursive: true, force: true });
      removed.push(dir);
    }
  }
  const packDir = path.join(objectsDir, 'pack');
  let packs: string[] = [];
  try {
    packs = fs.readdirSync(packDir);
  } catch {
    // no pack directory yet
  }
  for (const name of packs) {
    if (!name.endsWith('.keep')) continue;
    const keep = path.join(packDir, name);
    try {
      if (fs.statSync(keep).mtimeMs < limit && fs.readFileSync(keep, 'utf8') === KEEP_MARK) {
        fs.rmSync(keep, { force: true });
        removed.push(keep);
      }
    } catch {
      // vanished meanwhile
    }
  }
  if (staleBefore !== undefined) removeStaleLocks(path.dirname(objectsDir), staleBefore, removed);
  return removed;
}

/** Ref lock files older than `staleBefore`, whose writers are dead. */
function removeStaleLocks(gitDir: string, staleBefore: number, removed: string[]): void {
  const visit = (dir: string): void => {
    let entries: fs.Dirent[];
    try {
      entries = fs.readdirSync(dir, { withFileTypes: true });
    } catch {
      return;
    }
    for (const e of entries) {
      const p = path.join(dir, e.name);
      if (e.isDirectory()) visit(p);
      else if (e.name.endsWith('.lock')) removeIfOlder(p, staleBefore, removed);
    }
  };
  visit(path.join(gitDir, 'refs'));
  removeIfOlder(path.join(gitDir, 'packed-refs.lock'), staleBefore, removed);
}

function removeIfOlder(file: string, staleBefore: number, removed: string[]): void {
  try {
    if (fs.statSync(file).mtimeMs < staleBefore) {
      fs.unlinkSync(file);
      removed.push(file);
    }
  } catch {
    // gone, or never there
  }
}
