/**
 * A repository on disk: its object database and its refs. Opening checks
 * that the directory really is a git directory; nothing is written.
 */
import * as fs from 'node:fs';
import * as path from 'node:path';
import { ObjectStore, type ObjectStoreOptions } from './odb';
import { RefStore } from './refs';

export class NotARepositoryError extends Error {
  override name = 'NotARepositoryError';
}

function isDir(p: string): boolean {
  try {
    return fs.statSync(p).isDirectory();
  } catch {
    return false;
  }
}

function isFile(p: string): boolean {
  try {
    return fs.statSync(p).isFile();
  } catch {
    return false;
  }
}

/** The git directory for a bare repository, a work tree's .git, or a "gitdir:" link; null if none. */
function findGitDir(dir: string): string | null {
  const looksLikeGitDir = (d: string) => isFile(path.join(d, 'HEAD')) && isDir(path.join(d, 'objects')) && isDir(path.join(d, 'refs'));
  if (looksLikeGitDir(dir)) return dir;
  const dotgit = path.join(dir, '.git');
  if (isDir(dotgit)) return looksLikeGitDir(dotgit) ? dotgit : null;
  if (isFile(dotgit)) {
    const m = /^gitdir: (.+)$/m.exec(fs.readFileSync(dotgit, 'utf8'));
    if (m) {
      const d = path.resolve(dir, m[1]!.trim());
      return looksLikeGitDir(d) ? d : null;
    }
  }
  return null;
}

export class Repository {
  readonly objects: ObjectStore;
  readonly refs: RefStore;

  private constructor(readonly gitDir: string, opts: ObjectStoreOptions) {
    this.objects = new ObjectStore(path.join(gitDir, 'objects'), opts);
    this.refs = new RefStore(gitDir, this.objects);
  }

  /** Opens a bare repository or a work tree's git directory; throws NotARepositoryError otherwise. */
  static open(gitDir: string, opts: ObjectStoreOptions = {}): Repository {
    const abs = path.resolve(gitDir);
    const found = findGitDir(abs);
    if (!found) throw new NotARepositoryError(`not a git repository: ${gitDir}`);
    return new Repository(found, opts);
  }

  /** Releases the pack descriptors. */
  close(): void {
    this.objects.close();
  }
}
