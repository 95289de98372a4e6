/**
 * Making writes durable: fsync the file, rename, fsync the directory.
 *
 * Node 20 refuses fsync() under its permission model (a descriptor cannot
 * be checked against the allowed paths), and the confined writer runs
 * there. Files are then opened O_DSYNC instead, so each write is on disk
 * when it returns; directories cannot be synced at all, and renames rely on
 * the file system's journal committing them in order (ext4, xfs), which
 * keeps "pack before idx before ref" across a power failure, though the
 * latest renames may be lost.
 */
import * as fs from 'node:fs';
import * as path from 'node:path';

function probe(): boolean {
  try {
    fs.fsyncSync(-1);
  } catch (err) {
    return (err as NodeJS.ErrnoException).code !== 'ERR_ACCESS_DENIED';
  }
  return true;
}

/** False under a permission model that forbids fsync(). */
export const canFsync = probe();

/** Open flag to add to files that must be durable (O_DSYNC when fsync() is unavailable). */
export const SYNC_OPEN_FLAG = canFsync ? 0 : fs.constants.O_DSYNC;

/** Flags for creating a new file exclusively, for durable writes. */
export const CREATE_EXCL = fs.constants.O_WRONLY | fs.constants.O_CREAT | fs.constants.O_EXCL | SYNC_OPEN_FLAG;

/** Everything written to `fd` reaches the disk (already so for files opened with SYNC_OPEN_FLAG). */
export function syncFile(fd: number): void {
  if (canFsync) fs.fsyncSync(fd);
}

/** A rename or unlink in `dir` reaches the disk (where the runtime allows it). */
export function syncDir(dir: string): void {
  if (!canFsync) return;
  const fd = fs.openSync(dir, 'r');
  try {
    fs.fsyncSync(fd);
  } finally {
    fs.closeSync(fd);
  }
}

/** mkdir -p that syncs the parent of every directory it creates. */
export function mkdirDurable(dir: string): void {
  if (fs.existsSync(dir)) return;
  const parent = path.dirname(dir);
  if (parent !== dir) mkdirDurable(parent);
  try {
    fs.mkdirSync(dir);
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code !== 'EEXIST') throw err;
    return;
  }
  syncDir(parent);
}
