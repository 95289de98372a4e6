/**
 * Runs inside the same confinement as a session worker and reports what it
 * can and cannot do.  gotd runs it once at start-up (no permission model,
 * no start; no working bubblewrap, run without it) and the tests run it to
 * show the layers hold.  argv: REPO OUTSIDE — a path it should be able to
 * read and one it must not.
 */
import * as fs from 'node:fs';
import * as os from 'node:os';

function attempt(fn: () => unknown): string {
  try { fn(); return 'allowed'; } catch (e) { return (e as NodeJS.ErrnoException).code ?? (e as Error).name; }
}

async function attemptAsync(fn: () => unknown): Promise<string> {
  try { await fn(); return 'allowed'; } catch (e) { return (e as NodeJS.ErrnoException).code ?? (e as Error).name; }
}

async function main(): Promise<void> {
  const [repo, outside] = process.argv.slice(2);
  const report = {
    uid: process.getuid?.() ?? -1,
    readRepo: attempt(() => fs.readdirSync(repo!)),
    readOutside: attempt(() => fs.readdirSync(outside!)),
    writeRepo: attempt(() => { const f = `${repo}/.gotd-probe-${process.pid}`; fs.writeFileSync(f, 'x'); fs.unlinkSync(f); }),
    writeOutside: attempt(() => { const f = `${outside}/.gotd-probe-${process.pid}`; fs.writeFileSync(f, 'x'); fs.unlinkSync(f); }),
    spawn: attempt(() => require('node:child_process').spawnSync('/bin/true')),
    worker: attempt(() => new (require('node:worker_threads').Worker)('0', { eval: true })),
    addon: attempt(() => process.dlopen({ exports: {} } as NodeModule, '/nonexistent.node')),
    network: Object.keys(os.networkInterfaces()).filter((n) => n !== 'lo').length,
    pidNamespace: process.pid < 10,
    // The write engine's own fsync (Node 20.20 refuses fs.fsyncSync under the permission model).
    fsync: await attemptAsync(() => (require('../git/durable') as { syncDir(d: string): unknown }).syncDir(repo!)),
  };
  process.send?.(report, () => process.exit(0));
}

void main();
