/**
 * Which confinement layers work on this machine, found by running the
 * probe (src/gotd/probe.ts) once inside them at start-up.  The permission
 * model must hold or gotd does not start; bubblewrap is used, with the
 * strongest set of options that works, when it works for this user (it
 * needs unprivileged user namespaces).
 */
import { spawn } from 'node:child_process';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { z } from '../ipc/zod';
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

/** Why a confinement does not hold for readers, or null when it does. */
async function readerProblem(c: Confinement, repo: string, as?: Ids): Promise<string | null> {
  const r = await runProbe(c, repo, '/etc', false, as);
  if (typeof r === 'string') return r;
  return deniedAll(r) ?? (c.bwrap && r.network > 0 ? 'network visible' : null);
}

/**
 * The strongest bubblewrap option set that works here.  Under systemd's
 * ProtectKernelTunables= and ProtectKernelLogs= neither --disable-userns
 * nor --proc can work, and the sandbox is still worth having without them.
 */
async function chooseBwrap(bw: { path: string; disableUserns: boolean }, repo: string, as: Ids | undefined, detail: string[]): Promise<Confinement | null> {
  const sets = [
    { disableUserns: true, proc: true },
    { disableUserns: true, proc: false },
    { disableUserns: false, proc: true },
    { disableUserns: false, proc: false },
  ].filter((o) => bw.disableUserns || !o.disableUserns);
  const failed = new Map<string, string>();
  const key = (o: { disableUserns: boolean; proc: boolean }): string => `${o.disableUserns} ${o.proc}`;
  for (const o of sets) {
    const c: Confinement = { bwrap: bw.path, heapMb: WORKER_HEAP_MB, ...o };
    const why = await readerProblem(c, repo, as);
    if (why) { failed.set(key(o), why.slice(0, 300)); continue; }
    detail.push(`bubblewrap: ${bw.path} (mount, pid, net, ipc, uts, user namespaces; ${bwrapNotes(c).join('; ')})`);
    // Each option left out, with what went wrong when it was in.
    if (!o.disableUserns) detail.push(`bubblewrap: --disable-userns: ${failed.get(key({ ...o, disableUserns: true })) ?? 'not in this bwrap (0.8 and later have it)'}`);
    if (!o.proc) detail.push(`bubblewrap: --proc: ${failed.get(key({ ...o, proc: true })) ?? '?'}`);
    return c;
  }
  detail.push(`bubblewrap: not usable (${failed.get(key(sets[0]!)) ?? '?'})`);
  return null;
}

/** What the chosen bubblewrap options mean, for gotd -n -v and gotctl info. */
function bwrapNotes(c: Confinement): string[] {
  return [
    c.disableUserns ? 'no nested user namespaces' : 'nested user namespaces not blocked: --disable-userns unavailable',
    ...(c.proc ? [] : ['no /proc: --proc unavailable']),
  ];
}

/** Probes the layers; throws when the permission model does not hold (fail closed). */
export async function detectLayers(as?: Ids): Promise<Detected> {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'gotd-probe-'));
  try {
    if (as) fs.chownSync(dir, as.uid, as.gid);
    const repo = fs.realpathSync(dir);
    const detail: string[] = [];
    const plain: Confinement = { bwrap: null, disableUserns: false, proc: false, heapMb: WORKER_HEAP_MB };
    const bad = await readerProblem(plain, repo, as);
    if (bad) throw new Error(`Node's permission model does not confine workers: ${bad}`);
    detail.push('permission model: fs read limited to the runtime and the repository, write to the repository (writers only); no child processes, workers or addons');

    const bw = findBwrap();
    if (!bw) detail.push('bubblewrap: not installed');
    const confinement = (bw ? await chooseBwrap(bw, repo, as, detail) : null) ?? plain;

    // Writers as they will run: their repository only, and durable writes.
    const w = await runProbe(confinement, repo, '/etc', true, as);
    if (typeof w !== 'string' && (w.writeOutside === 'allowed' || w.readOutside === 'allowed')) {
      throw new Error("Node's permission model does not confine writers to their repository");
    }
    const wrote = typeof w === 'string' ? w : w.writeRepo !== 'allowed' ? `write: ${w.writeRepo}` : w.fsync !== 'allowed' ? `fsync: ${w.fsync}` : null;
    if (wrote) detail.push(`writers: cannot write their repository durably (${wrote.slice(0, 300)}): pushes will fail`);

    const uid = as?.uid ?? process.getuid?.() ?? 0;
    detail.push(uid === 0 ? 'unprivileged user: NO, workers run as root' : `unprivileged user: uid ${uid}`);
    detail.push(`resource limits: heap ${WORKER_HEAP_MB} MB, request_timeout, input caps`);
    return {
      confinement,
      layers: { permissionModel: true, unprivilegedUser: uid !== 0, bwrap: confinement.bwrap ? `bubblewrap (${bwrapNotes(confinement).join('; ')})` : null, resourceLimits: true, detail },
    };
  } finally {
    fs.rmSync(dir, { recursive: true, force: true });
  }
}
