/**
 * Crash-safe ref updates in git's files layout. Every ref a push moves is
 * locked (`refs/heads/x.lock`, O_EXCL) and its current value re-read under
 * the lock, loose file first, then packed-refs: it must still be what the
 * client saw (compare-and-swap), or the update is refused as stale. New
 * values are written into the lock files and fsynced; only then are refs
 * renamed into place, one rename each, so a reader sees a ref's old value or
 * its new one and never a torn file. Deletions leave packed-refs first
 * (rewritten under packed-refs.lock) and the loose file last, so that a
 * reader never sees an older packed value come back.
 */
import * as fs from 'node:fs';
import * as path from 'node:path';
import { syncDir } from './durable';
import { LockError, LockFile, type LockOptions } from './lockfile';

export const ZERO_OID = '0'.repeat(40);
const OID_RE = /^[0-9a-f]{40}$/;

export interface RefCommand {
  ref: string;
  old: string;
  new: string;
}

/** How long to wait for packed-refs.lock (git's core.packedRefsTimeout default). */
const PACKED_REFS_TIMEOUT_MS = 1000;

type Current = { kind: 'missing' } | { kind: 'oid'; oid: string } | { kind: 'symref'; target: string } | { kind: 'broken' };

/** packed-refs as name -> id (peeled lines skipped). */
export function readPackedRefs(gitDir: string): Map<string, string> {
  const out = new Map<string, string>();
  let text: string;
  try {
    text = fs.readFileSync(path.join(gitDir, 'packed-refs'), 'utf8');
  } catch {
    return out;
  }
  for (const line of text.split('\n')) {
    if (line.length < 42 || line[0] === '#' || line[0] === '^') continue;
    const oid = line.slice(0, 40);
    if (OID_RE.test(oid) && line[40] === ' ') out.set(line.slice(41), oid);
  }
  return out;
}

function readLoose(file: string): Current | 'dir' {
  let text: string;
  try {
    text = fs.readFileSync(file, 'utf8');
  } catch (err) {
    const code = (err as NodeJS.ErrnoException).code;
    if (code === 'ENOENT' || code === 'ENOTDIR') return { kind: 'missing' };
    if (code === 'EISDIR') return 'dir';
    throw err;
  }
  if (text.startsWith('ref:')) return { kind: 'symref', target: text.slice(4).trim() };
  const oid = text.trim();
  return OID_RE.test(oid) ? { kind: 'oid', oid } : { kind: 'broken' };
}

/** True when `dir` holds any file below it (a loose ref in the way of a file of the same name). */
function holdsFiles(dir: string): boolean {
  for (const e of fs.readdirSync(dir, { withFileTypes: true })) {
    if (!e.isDirectory() || holdsFiles(path.join(dir, e.name))) return true;
  }
  return false;
}

/** Removes empty directories from `dir` up to (not including) the refs/ area's top. */
async function pruneEmptyDirs(gitDir: string, dir: string): Promise<void> {
  const stop = path.join(gitDir, 'refs');
  while (dir.startsWith(stop + path.sep) && path.dirname(dir) !== stop) {
    try {
      fs.rmdirSync(dir);
    } catch {
      return;
    }
    await syncDir(path.dirname(dir));
    dir = path.dirname(dir);
  }
}

function removeEmptyTree(dir: string): void {
  for (const e of fs.readdirSync(dir, { withFileTypes: true })) removeEmptyTree(path.join(dir, e.name));
  fs.rmdirSync(dir);
}

/** What went wrong, for the client: the error code, never a path on the server. */
/** Runs fn on every item, at most PARALLEL at a time. */
const PARALLEL = 64;
async function inParallel<T>(items: T[], fn: (item: T) => Promise<void>): Promise<void> {
  let next = 0;
  const lane = async (): Promise<void> => {
    while (next < items.length) await fn(items[next++]!);
  };
  await Promise.all(Array.from({ length: Math.min(PARALLEL, items.length) }, lane));
}

/** The directories above a ref name: refs/heads/a/b -> refs, refs/heads, refs/heads/a. */
function dirsOf(ref: string): string[] {
  const out: string[] = [];
  for (let i = ref.indexOf('/'); i > 0; i = ref.indexOf('/', i + 1)) out.push(ref.slice(0, i));
  return out;
}

function errCode(err: unknown): string {
  const code = (err as NodeJS.ErrnoException).code;
  if (err instanceof LockError) return `: ${err.message}`;
  return code ? ` (${code})` : '';
}

interface Prepared {
  cmd: RefCommand;
  lock: LockFile;
  /** The target is an empty directory tree to clear before the rename. */
  clearDir: boolean;
  error: string | null;
}

/**
 * One push's ref updates. prepare() locks and checks each ref; commit()
 * applies every prepared ref and reports, per ref, null or why it failed.
 */
export class RefTransaction {
  private prepared: Prepared[] = [];
  private packed: { stamp: string; refs: Map<string, string>; dirs: Set<string> } | null = null;
  /** Refs this push creates or moves, and every directory above them: name conflicts without a scan per ref. */
  private readonly creating = new Set<string>();
  private readonly creatingDirs = new Set<string>();

  constructor(readonly gitDir: string, readonly opts: LockOptions = {}) {}

  /** packed-refs, read again only when the file changed (someone may pack refs meanwhile). */
  private packedRefs(): { refs: Map<string, string>; dirs: Set<string> } {
    let stamp = '';
    try {
      const st = fs.statSync(path.join(this.gitDir, 'packed-refs'));
      stamp = `${st.ino}:${st.size}:${st.mtimeMs}:${st.ctimeMs}`;
    } catch { /* absent */ }
    if (this.packed?.stamp !== stamp) {
      const refs = readPackedRefs(this.gitDir);
      const dirs = new Set<string>();
      for (const name of refs.keys()) for (const d of dirsOf(name)) dirs.add(d);
      this.packed = { stamp, refs, dirs };
    }
    return this.packed;
  }

  /** A ref whose name is a directory of `ref`'s, or the other way round, makes `ref` impossible. */
  private nameConflict(ref: string): string | null {
    const packed = this.packedRefs();
    for (const prefix of dirsOf(ref)) {
      if (prefix.split('/').length < 2) continue;
      const loose = readLoose(path.join(this.gitDir, prefix));
      if ((loose !== 'dir' && loose.kind !== 'missing') || packed.refs.has(prefix)) {
        return `'${prefix}' exists; cannot create '${ref}'`;
      }
      if (this.creating.has(prefix)) return `cannot create '${ref}' and '${prefix}' in one push`;
    }
    if (packed.dirs.has(ref)) {
      for (const name of packed.refs.keys()) if (name.startsWith(ref + '/')) return `'${name}' exists; cannot create '${ref}'`;
    }
    if (this.creatingDirs.has(ref)) {
      const other = this.prepared.find((p) => p.cmd.new !== ZERO_OID && p.cmd.ref.startsWith(ref + '/'))!;
      return `cannot create '${ref}' and '${other.cmd.ref}' in one push`;
    }
    return null;
  }

  /** Locks `cmd.ref` and checks it still has the value the client saw; returns why not, or null. */
  async prepare(cmd: RefCommand): Promise<string | null> {
    const file = path.join(this.gitDir, cmd.ref);
    if (cmd.old === ZERO_OID) {
      // Checked before the lock too, whose directories would be in the way.
      const conflict = this.nameConflict(cmd.ref);
      if (conflict) return conflict;
    }
    let lock: LockFile;
    try {
      lock = await LockFile.acquire(file, this.opts);
    } catch (err) {
      const code = (err as NodeJS.ErrnoException).code;
      if (code === 'ENOTDIR' || code === 'EEXIST') return this.nameConflict(cmd.ref) ?? `cannot lock ref '${cmd.ref}'`;
      if (err instanceof LockError) return `cannot lock ref '${cmd.ref}': another update is in progress`;
      if (code) return `cannot lock ref '${cmd.ref}' (${code})`;
      throw err;
    }
    const reason = this.check(cmd, file);
    if (reason === null || typeof reason !== 'string') {
      this.prepared.push({ cmd, lock, clearDir: reason !== null, error: null });
      if (cmd.new !== ZERO_OID) {
        this.creating.add(cmd.ref);
        for (const d of dirsOf(cmd.ref)) this.creatingDirs.add(d);
      }
      return null;
    }
    lock.release();
    await pruneEmptyDirs(this.gitDir, path.dirname(file));
    return reason;
  }

  /** Under the lock: the compare-and-swap. Returns a reason, null, or {clearDir} when an empty directory is in the way. */
  private check(cmd: RefCommand, file: string): string | null | { clearDir: true } {
    let loose = readLoose(file);
    let clearDir = false;
    if (loose === 'dir') {
      if (holdsFiles(file)) return `'${cmd.ref}/...' exists; cannot create '${cmd.ref}'`;
      clearDir = true; // left-over empty directories: cleared at commit
      loose = { kind: 'missing' };
    }
    let cur: Current = loose;
    if (cur.kind === 'missing') {
      const oid = this.packedRefs().refs.get(cmd.ref);
      if (oid) cur = { kind: 'oid', oid };
    }
    if (cur.kind === 'symref') return `cannot update symbolic ref (points to ${cur.target})`;
    if (cur.kind === 'broken') return 'ref is broken on the server';
    if (cur.kind === 'missing') {
      if (cmd.old !== ZERO_OID) return 'stale info';
      const conflict = this.nameConflict(cmd.ref);
      if (conflict) return conflict;
    } else if (cur.oid !== cmd.old) {
      return 'stale info';
    }
    return clearDir ? { clearDir: true } : null;
  }

  /** Refs prepared so far. */
  get refs(): string[] {
    return this.prepared.map((p) => p.cmd.ref);
  }

  /**
   * Applies every prepared update. With `atomic`, a failure before the first
   * ref moves (writing a lock, rewriting packed-refs) applies none of them.
   * Returns ref -> failure reason for the refs that did not move.
   */
  async commit(atomic: boolean, checkpoint: (name: string) => void = () => {}): Promise<Map<string, string>> {
    const failed = new Map<string, string>();
    const abortAll = (reason: string): Map<string, string> => {
      for (const p of this.prepared) failed.set(p.cmd.ref, reason);
      this.release();
      return failed;
    };
    // Many fsyncs at once share the file system's journal commits: a push of 10^5 refs takes seconds, not an hour.
    let writeFailure: string | null = null;
    await inParallel(this.prepared.filter((p) => p.cmd.new !== ZERO_OID), async (p) => {
      try {
        await p.lock.write(p.cmd.new + '\n');
      } catch (err) {
        p.error = writeFailure = `failed to write ref${errCode(err)}`;
      }
    });
    if (atomic && writeFailure !== null) return abortAll(writeFailure);
    checkpoint('refs-written');
    const deletions = this.prepared.filter((p) => p.cmd.new === ZERO_OID && !p.error);
    if (deletions.length > 0) {
      try {
        await this.removeFromPackedRefs(deletions.map((p) => p.cmd.ref));
      } catch (err) {
        const reason = `failed to delete ref${errCode(err)}`;
        if (atomic) return abortAll(reason);
        for (const p of deletions) p.error = reason;
      }
      checkpoint('packed-refs-written');
    }
    const renamed = new Map<string, Prepared[]>();
    for (const p of this.prepared) {
      if (p.error) continue;
      try {
        const file = path.join(this.gitDir, p.cmd.ref);
        if (p.cmd.new === ZERO_OID) {
          try {
            fs.unlinkSync(file);
            await syncDir(path.dirname(file));
          } catch (err) {
            if ((err as NodeJS.ErrnoException).code !== 'ENOENT') throw err;
          }
          p.lock.release();
          await pruneEmptyDirs(this.gitDir, path.dirname(file));
        } else {
          if (p.clearDir) removeEmptyTree(file);
          p.lock.rename();
          const dir = path.dirname(file);
          const same = renamed.get(dir);
          if (same) same.push(p);
          else renamed.set(dir, [p]);
        }
        checkpoint('ref-renamed');
      } catch (err) {
        p.error = `failed to update ref${errCode(err)}`;
      }
    }
    // Each directory once, after all its renames.
    await inParallel([...renamed], async ([dir, ps]) => {
      try {
        await syncDir(dir);
      } catch (err) {
        for (const p of ps) p.error = `failed to update ref${errCode(err)}`;
      }
    });
    for (const p of this.prepared) {
      if (p.error) failed.set(p.cmd.ref, p.error);
    }
    this.release();
    return failed;
  }

  private async removeFromPackedRefs(refs: string[]): Promise<void> {
    const file = path.join(this.gitDir, 'packed-refs');
    const gone = new Set(refs);
    const lock = await LockFile.acquire(file, { ...this.opts, timeoutMs: PACKED_REFS_TIMEOUT_MS });
    try {
      let text: string;
      try {
        text = fs.readFileSync(file, 'utf8');
      } catch (err) {
        if ((err as NodeJS.ErrnoException).code === 'ENOENT') return;
        throw err;
      }
      const out: string[] = [];
      let dropping = false;
      let changed = false;
      for (const line of text.split('\n')) {
        if (line.startsWith('^')) {
          if (!dropping) out.push(line);
          continue;
        }
        dropping = line.length > 41 && line[0] !== '#' && gone.has(line.slice(41));
        if (dropping) changed = true;
        else out.push(line);
      }
      if (!changed) return;
      await lock.write(out.join('\n'));
      await lock.commit();
    } finally {
      lock.release();
    }
  }

  /** Gives up every lock still held. */
  release(): void {
    for (const p of this.prepared) p.lock.release();
    this.prepared = [];
  }
}
