/**
 * Credentials through git's own machinery: `git credential fill` asks the
 * configured credential helpers (and, unless GIT_TERMINAL_PROMPT=0, the
 * terminal), `approve` lets helpers remember what worked, `reject` makes
 * them forget what did not.  See git-credential(1).
 */
import { spawn, spawnSync } from 'node:child_process';
import type { Target } from './target';

export interface Credential { user: string; password: string }

/**
 * Like git for http(s): the path is part of the question only with
 * credential.useHttpPath, so that one stored password serves a host.
 */
let pathAsked: boolean | null = null;
function usePath(t: Target): boolean {
  if (pathAsked !== null) return pathAsked;
  const r = spawnSync('git', ['config', '--type=bool', '--get-urlmatch', 'credential.useHttpPath', `${t.scheme}://${t.host}${t.path}`], { encoding: 'utf8', timeout: 10_000 });
  pathAsked = r.status === 0 && r.stdout.trim() === 'true';
  return pathAsked;
}

function describe(t: Target, c?: Partial<Credential>): string {
  const lines = [`protocol=${t.scheme}`, `host=${t.host}`];
  if (usePath(t)) lines.push(`path=${t.path.slice(1)}`);
  const user = c?.user ?? t.user;
  if (user !== null && user !== undefined) lines.push(`username=${user}`);
  if (c?.password !== undefined) lines.push(`password=${c.password}`);
  // A newline in a value would smuggle in another attribute; git refuses such values too.
  if (lines.some((l) => /[\n\0]/.test(l))) throw new Error('credential contains a newline or NUL');
  return lines.join('\n') + '\n\n';
}

function git(args: string[], input: string): Promise<{ code: number | null; stdout: string }> {
  return new Promise((resolve) => {
    // stderr is git's own: its prompts go to the terminal, its complaints to the user.
    const child = spawn('git', args, { stdio: ['pipe', 'pipe', 'inherit'] });
    let stdout = '';
    child.stdout.setEncoding('utf8');
    child.stdout.on('data', (s: string) => { if (stdout.length < 65536) stdout += s; });
    child.on('error', () => resolve({ code: null, stdout: '' }));
    child.on('close', (code) => resolve({ code, stdout }));
    child.stdin.on('error', () => undefined);
    child.stdin.end(input);
  });
}

/** Asks git for a user and password for the target; null when it has none (or may not prompt). */
export async function fill(t: Target): Promise<Credential | null> {
  const r = await git(['credential', 'fill'], describe(t));
  if (r.code !== 0) return null;
  const got = new Map<string, string>();
  for (const line of r.stdout.split('\n')) {
    const eq = line.indexOf('=');
    if (eq > 0) got.set(line.slice(0, eq), line.slice(eq + 1));
  }
  const user = got.get('username');
  const password = got.get('password');
  if (!user || password === undefined) return null;
  return { user, password };
}

export async function approve(t: Target, c: Credential): Promise<void> {
  await git(['credential', 'approve'], describe(t, c));
}

export async function reject(t: Target, c: Credential): Promise<void> {
  await git(['credential', 'reject'], describe(t, c));
}
