/**
 * How a session worker is started: inside bubblewrap when the kernel lets
 * this user make namespaces, and always under Node's permission model with
 * file-system reads limited to gotd's runtime and the one repository,
 * writes (writers only) to that repository, and no child processes, worker
 * threads or addons.  Never by ptrace or any user-space interception.
 */
import { spawnSync } from 'node:child_process';
import * as fs from 'node:fs';
import * as path from 'node:path';

/** build/src (or lib/gotd/src when installed): all of gotd's JavaScript. */
export const RUNTIME_SRC = path.resolve(__dirname, '..');

/** The one runtime dependency workers load (message schemas). */
function zodDir(): string {
  return fs.realpathSync(path.dirname(require.resolve('zod/package.json')));
}

/** ws, for the WebSocket framing a reader or writer does for WebSocket clients. */
function wsDir(): string {
  return fs.realpathSync(path.dirname(require.resolve('ws/package.json')));
}

export const WORKER_HEAP_MB = 512;

export interface Confinement {
  /** Path of a working bwrap, or null to run without the kernel sandbox. */
  bwrap: string | null;
  /**
   * bwrap --disable-userns: no nested user namespaces inside.  Needs bwrap
   * 0.8+ and a writable /proc/sys (systemd's ProtectKernelTunables= forbids).
   */
  disableUserns: boolean;
  /**
   * bwrap --proc /proc: a procfs of the sandbox's own.  The kernel refuses
   * one where parts of the outer /proc are masked (ProtectKernelTunables=,
   * ProtectKernelLogs=); the engine does not need /proc.
   */
  proc: boolean;
  heapMb: number;
}

export function entryPath(name: 'repo_read' | 'repo_write' | 'probe'): string {
  return path.join(RUNTIME_SRC, 'gotd', `${name}.js`);
}

/** The node flags of the permission model for one repository. */
export function nodeFlags(repoPath: string, write: boolean, heapMb: number): string[] {
  return [
    '--experimental-permission',
    `--allow-fs-read=${RUNTIME_SRC}`,
    `--allow-fs-read=${zodDir()}`,
    `--allow-fs-read=${wsDir()}`,
    `--allow-fs-read=${repoPath}`,
    ...(write ? [`--allow-fs-write=${repoPath}`] : []),
    '--no-addons',
    '--disallow-code-generation-from-strings',
    '--disable-warning=ExperimentalWarning',
    `--max-old-space-size=${heapMb}`,
    // A small young generation keeps the resident size down at no cost in time (make bench:
    // a push of medium 208 -> 153 MB, 4.3 -> 4.1 s; a clone 69 MB).
    '--max-semi-space-size=1',
  ];
}

/** The directories a sandboxed node needs to start: /usr, the merged-/usr links, and node's own prefix. */
function systemBinds(node: string): string[] {
  const args = ['--ro-bind', '/usr', '/usr'];
  for (const dir of ['/bin', '/sbin', '/lib', '/lib32', '/lib64', '/libx32']) {
    let st: fs.Stats;
    try { st = fs.lstatSync(dir); } catch { continue; }
    if (st.isSymbolicLink()) args.push('--symlink', fs.readlinkSync(dir), dir);
    else if (st.isDirectory()) args.push('--ro-bind', dir, dir);
  }
  args.push('--ro-bind-try', '/etc/ld.so.cache', '/etc/ld.so.cache');
  if (!node.startsWith('/usr/')) args.push('--ro-bind', path.dirname(path.dirname(node)), path.dirname(path.dirname(node)));
  return args;
}

/**
 * Program and arguments for one confined worker.  entry is the script (or,
 * in tests, "-e CODE"); repoPath must already be a real path.
 */
export function workerCommand(c: Confinement, entry: string[], repoPath: string, write: boolean): { file: string; args: string[] } {
  const node = fs.realpathSync(process.execPath);
  const flags = [...nodeFlags(repoPath, write, c.heapMb), ...entry];
  if (!c.bwrap) return { file: node, args: flags };
  const zod = zodDir();
  const ws = wsDir();
  return {
    file: c.bwrap,
    args: [
      '--unshare-user', '--unshare-ipc', '--unshare-pid', '--unshare-net', '--unshare-uts', '--unshare-cgroup-try',
      ...(c.disableUserns ? ['--disable-userns'] : []),
      '--die-with-parent', '--new-session',
      ...systemBinds(node),
      '--ro-bind', RUNTIME_SRC, RUNTIME_SRC,
      '--ro-bind', zod, zod,
      '--ro-bind', ws, ws,
      write ? '--bind' : '--ro-bind', repoPath, repoPath,
      ...(c.proc ? ['--proc', '/proc'] : []),
      '--dev', '/dev',
      '--chdir', '/',
      '--', node, ...flags,
    ],
  };
}

/** A bwrap program in the usual places, and whether it knows --disable-userns. */
export function findBwrap(): { path: string; disableUserns: boolean } | null {
  for (const p of ['/usr/bin/bwrap', '/usr/local/bin/bwrap', '/bin/bwrap']) {
    if (!fs.existsSync(p)) continue;
    const help = spawnSync(p, ['--help'], { encoding: 'utf8', timeout: 5000 });
    if (help.error) continue;
    return { path: p, disableUserns: `${help.stdout}${help.stderr}`.includes('--disable-userns') };
  }
  return null;
}

/**
 * Flags for the long-lived children.  listen may load only the peercred
 * addon from the runtime and read nothing else; auth may run programs
 * (getent), so for it the file-system limit is a guard against mistakes
 * rather than a wall.
 */
export function childFlags(role: 'listen' | 'auth'): string[] {
  return [
    '--experimental-permission',
    `--allow-fs-read=${RUNTIME_SRC}`,
    `--allow-fs-read=${zodDir()}`,
    ...(role === 'listen' ? ['--allow-addons'] : ['--allow-child-process']),
    '--disallow-code-generation-from-strings',
    '--disable-warning=ExperimentalWarning',
    '--disable-warning=SecurityWarning',
  ];
}
