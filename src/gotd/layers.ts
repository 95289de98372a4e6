/**
 * Which confinement layers work on this machine, found by running the
 * probe (src/gotd/probe.ts) once inside them at start-up.  The permission
 * model must hold or gotd does not start; bubblewrap is used when it works
 * for this user (it needs unprivileged user namespaces).
 */
import { spawn } from 'node:child_process';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { z } from 'zod';
import type { Layers } from '../ipc/messages';
import { entryPath, findBwrap, workerCommand, WORKER_HEAP_MB, type Confinement } from '../sys/confine';

const probeReport = z.object({
  uid: z.number(),
  readRepo: z.string(),
  readOutside: z.string(),
  writeRepo: z.string(),
  writeOutside: z.string(),
  spawn: z.string(),
  worker: z.string(),
  addon: z.string(),
  network: z.number(),
  pidNamespace: z.boolean(),
  fsync: z.string(),
});
export type ProbeReport = z.infer<typeof probeReport>;

export interface Ids { uid: number; gid: number }

/** Runs the probe in the given confinement; resolves with its report or an error text. */
export function runProbe(c: Confinement, repo: string, outside: string, write: boolean, as?: Ids): Promise<ProbeReport | string> {
  const cmd = workerCommand(c, [entryPath('probe'), repo, outside], repo, write);
  return new Promise((resolve) => {
    const child = spawn(cmd.file, cmd.args, {
      stdio: ['ignore', 'ignore', 'pipe', 'ipc'], env: {}, ...(as ? { uid: as.uid, gid: as.gid } : {}),
    });
    let stderr = '';
    let report: ProbeReport | string = 'probe exited without a report';
    child.stderr!.on('data', (b: Buffer) => { if (stderr.length < 4000) stderr += b.toString(); });
    child.on('message', (m) => {
      const r = probeReport.safeParse(m);
      report = r.success ? r.data : 'malformed probe report';
    });
    child.on('error', (e) => { report = e.message; });
    const timer = setTimeout(() => child.kill('SIGKILL'), 15_000);
    child.on('close', () => {
      clearTimeout(timer);
      resolve(typeof report === 'string' && stderr ? `${report}: ${stderr.trim().split('\n').slice(-3).join(' / ')}` : report);
    });
  });
}

/** What a reader must not be able to do. */
function deniedAll(r: ProbeReport): string | null {
  if (r.readRepo !== 'allowed') return `cannot read its repository (${r.readRepo})`;
  for (const [what, v] of [['read outside', r.readOutside], ['write', r.writeRepo], ['write outside', r.writeOutside], ['spawn', r.spawn], ['start workers', r.worker], ['load addons', r.addon]] as const) {
    if (v === 'allowed') return `could ${what}`;
  }
  return null;
}

export interface Detected { confinement: Confinement; layers: Layers }

/** Probes the layers; throws when the permission model does not hold (fail closed). */
export async function detectLayers(as?: Ids): Promise<Detected> {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'gotd-probe-'));
  try {
    if (as) fs.chownSync(dir, as.uid, as.gid);
    const repo = fs.realpathSync(dir);
    const detail: string[] = [];
    const plain: Confinement = { bwrap: null, disableUserns: false, heapMb: WORKER_HEAP_MB, writerPermission: true };
    const r1 = await runProbe(plain, repo, '/etc', false, as);
    const bad = typeof r1 === 'string' ? r1 : deniedAll(r1);
    if (bad) throw new Error(`Node's permission model does not confine workers: ${bad}`);
    detail.push('permission model: fs read limited to the runtime and the repository, write to the repository (writers only); no child processes, workers or addons');

    let confinement = plain;
    const bw = findBwrap();
    if (!bw) {
      detail.push('bubblewrap: not installed');
    } else {
      const c: Confinement = { bwrap: bw.path, disableUserns: bw.disableUserns, heapMb: WORKER_HEAP_MB, writerPermission: true };
      const r2 = await runProbe(c, repo, '/etc', false, as);
      const why = typeof r2 === 'string' ? r2 : deniedAll(r2) ?? (r2.network > 0 ? 'network visible' : null);
      if (why) detail.push(`bubblewrap: not usable (${why.slice(0, 300)})`);
      else { confinement = c; detail.push(`bubblewrap: ${bw.path} (mount, pid, net, ipc, uts, user namespaces${bw.disableUserns ? ', no nested user namespaces' : ''})`); }
    }
    // A writer must be able to fsync; where the permission model forbids the engine's
    // fsync, writers keep the other layers (bubblewrap above all) and go without it.
    const w = await runProbe(plain, repo, '/etc', true, as);
    const fsync = typeof w === 'string' ? w : w.fsync;
    if (fsync !== 'allowed') {
      if (confinement.bwrap) {
        confinement = { ...confinement, writerPermission: false };
        detail.push(`writers: without the permission model, which refuses the engine's fsync on Node ${process.versions.node} (${fsync}); bubblewrap confines them`);
      } else {
        detail.push(`writers: the permission model refuses the engine's fsync on Node ${process.versions.node} (${fsync}) and there is no bubblewrap: pushes will fail`);
      }
    }
    const uid = as?.uid ?? process.getuid?.() ?? 0;
    detail.push(uid === 0 ? 'unprivileged user: NO, workers run as root' : `unprivileged user: uid ${uid}`);
    detail.push(`resource limits: heap ${WORKER_HEAP_MB} MB, request_timeout, input caps`);
    return {
      confinement,
      layers: { permissionModel: true, permissionModelWriters: confinement.writerPermission || !confinement.bwrap, unprivilegedUser: uid !== 0, bwrap: confinement.bwrap !== null, resourceLimits: true, detail },
    };
  } finally {
    fs.rmSync(dir, { recursive: true, force: true });
  }
}
