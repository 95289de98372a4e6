/**
 * Making writes durable: fsync the file, rename, fsync the directory.
 *
 * Everything goes through FileHandle.sync() (fs.promises): Node 20 refuses
 * fs.fsyncSync() and fs.fsync() under its permission model, where the
 * confined writer runs, but lets a FileHandle sync — files and directories
 * alike, each a real fsync(2).
 */
import * as fs from 'node:fs';
import * as path from 'node:path';

/** Flags for creating a new file exclusively. */
export const CREATE_EXCL = fs.constants.O_WRONLY | fs.constants.O_CREAT | fs.constants.O_EXCL;

/** A rename, link or unlink in `dir` reaches the disk. */
export async function syncDir(dir: string): Promise<void> {
  const fh = await fs.promises.open(dir, 'r');
  try {
    await fh.sync();
  } finally {
    await fh.close();
  }
}

/** Creates `file` (which must not exist) holding `data`, on disk when this resolves. */
export async function writeNewFile(file: string, data: Buffer | string, mode: number): Promise<void> {
  const fh = await fs.promises.open(file, CREATE_EXCL, mode);
  try {
    await fh.writeFile(data);
    await fh.sync();
  } catch (err) {
    // Ours (created exclusively) and incomplete, say on a full disk: not left behind.
    await fh.close().catch(() => undefined);
    fs.rmSync(file, { force: true });
    throw err;
  }
  await fh.close();
}

/** mkdir -p that syncs the parent of every directory it creates. */
export async function mkdirDurable(dir: string): Promise<void> {
  if (fs.existsSync(dir)) return;
  const parent = path.dirname(dir);
  if (parent !== dir) await mkdirDurable(parent);
  try {
    fs.mkdirSync(dir);
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code !== 'EEXIST') throw err;
    return;
  }
  await syncDir(parent);
}
