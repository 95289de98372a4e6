/**
 * A damaged pack on disk is never passed on as a valid one: a clone that
 * would copy the pack whole fails the client's checksum, and entry-by-entry
 * copies stop at the .idx CRC32 with an error on side-band 3. The client
 * ends with an error and no repository, and our server exits normally.
 */
import t, { type Test } from 'tap';
import { spawnSync } from 'node:child_process';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { git, gitEnv, mkrepo, tmpdir } from './lib/util';
import { UPLOAD_PACK } from './lib/upload';

/** A copy of the small repository with one byte flipped inside a blob's compressed data. */
function damaged(): string {
  const src = mkrepo(['--preset', 'small'], { copy: true });
  const packDir = path.join(src, 'objects/pack');
  const pack = path.join(packDir, fs.readdirSync(packDir).find((f) => f.endsWith('.pack'))!);
  const blob = git(['--git-dir', src, 'rev-parse', 'main:README.md']).trim();
  const line = git(['verify-pack', '-v', pack.replace(/\.pack$/, '.idx')]).split('\n').find((l) => l.startsWith(blob))!;
  const [, , , , offset] = line.split(/\s+/);
  const fd = fs.openSync(pack, 'r+');
  const b = Buffer.alloc(1);
  const at = Number(offset) + 6; // inside the zlib stream, past the entry header
  fs.readSync(fd, b, 0, 1, at);
  b[0] = b[0]! ^ 0x55;
  fs.writeSync(fd, b, 0, 1, at);
  fs.closeSync(fd);
  return src;
}

function cloneFails(t: Test, src: string, extra: string[], protocol: number): void {
  const dest = path.join(tmpdir(), 'c.git');
  const r = spawnSync('git', ['-c', `protocol.version=${protocol}`, 'clone', '--bare', `--upload-pack=${UPLOAD_PACK}`, ...extra, `file://${src}`, dest], {
    encoding: 'utf8', env: gitEnv(),
  });
  t.not(r.status, 0, 'the clone fails');
  t.notOk(fs.existsSync(dest), 'nothing is left behind');
  t.notMatch(r.stderr, /internal error|TypeError/, 'no crash on our side');
  t.comment(r.stderr.trim().split('\n').slice(-2).join(' | '));
}



t.test('whole-pack clone of a damaged pack', async (t) => {
  const src = damaged();
  for (const p of [0, 2]) cloneFails(t, src, [], p);
});

t.test('entry-by-entry copy of a damaged pack (single branch, no bitmap path)', async (t) => {
  const src = damaged();
  for (const f of fs.readdirSync(path.join(src, 'objects/pack'))) if (f.endsWith('.bitmap')) fs.rmSync(path.join(src, 'objects/pack', f));
  for (const p of [0, 2]) cloneFails(t, src, ['--single-branch', '--branch', 'main'], p);
  cloneFails(t, src, ['--depth', '1'], 2);
});
