/**
 * The remote a git-remote-ws(s) helper was given, taken apart: where to
 * connect, which repository, and credentials from the URL's userinfo.
 */

export interface Target {
  scheme: 'ws' | 'wss';
  /** host[:port] as in the URL (the credential helpers' "host"). */
  host: string;
  /** The path as in the URL (percent-encoded), with its leading "/". */
  path: string;
  user: string | null;
  password: string | null;
  /** The URL without a password, for messages. */
  shown: string;
}

export class UsageError extends Error {
  override name = 'UsageError';
}

export function parseTarget(raw: string): Target {
  let u: URL;
  try {
    u = new URL(raw);
  } catch {
    throw new UsageError(`not a URL: ${raw}`);
  }
  if (u.protocol !== 'ws:' && u.protocol !== 'wss:') throw new UsageError(`not a ws:// or wss:// URL: ${raw}`);
  if (!u.hostname) throw new UsageError(`no host in ${raw}`);
  if (u.pathname === '/' || u.pathname === '') throw new UsageError(`no repository in ${raw}`);
  if (u.search || u.hash) throw new UsageError(`a query or fragment is not part of a repository URL: ${raw}`);
  const decode = (s: string): string => {
    try { return decodeURIComponent(s); } catch { throw new UsageError(`bad percent-encoding in the user or password of ${raw}`); }
  };
  const scheme = u.protocol === 'ws:' ? 'ws' : 'wss';
  const user = u.username ? decode(u.username) : null;
  return {
    scheme,
    host: u.host,
    path: u.pathname,
    user,
    password: u.password ? decode(u.password) : null,
    shown: `${scheme}://${u.username ? `${u.username}@` : ''}${u.host}${u.pathname}`,
  };
}

/** The URL the WebSocket connects to: no userinfo (credentials go in Authorization). */
export function endpoint(t: Target, service: string): string {
  return `${t.scheme}://${t.host}${t.path}?service=${encodeURIComponent(service)}`;
}
