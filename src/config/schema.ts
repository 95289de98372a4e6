/**
 * gotd.conf as a zod schema: the contract's keys, strict (an unknown key is
 * an error), with values turned into what the daemon uses (milliseconds,
 * parsed access rules).  The same schema validates the configuration the
 * parent hands to its children, so there is one definition of "valid".
 */
import * as net from 'node:net';
import * as path from 'node:path';
import { z } from 'zod';
import { parseRule, NAME, type AccessRule } from './access';
import { parseDuration, parseRate, type Rate } from './units';

/** Defaults for everything the contract leaves optional (documented in gotd.conf(5)). */
export const DEFAULTS = {
  user: '_gotd',
  listen: '/var/run/gotd.sock',
  requestTimeout: '1h',
  authTimeout: '10s',
  maxConnections: 256,
  limitPerUser: 4,
  websocketRate: '60/min',
} as const;

const duration = z.unknown().transform((v, ctx) => {
  const ms = parseDuration(v);
  if (typeof ms === 'string') { ctx.addIssue({ code: 'custom', message: ms }); return z.NEVER; }
  return ms;
});

const rate = z.unknown().transform((v, ctx): Rate => {
  const r = parseRate(v);
  if (typeof r === 'string') { ctx.addIssue({ code: 'custom', message: r }); return z.NEVER; }
  return r;
});

const rule = z.string().transform((v, ctx): AccessRule => {
  const r = parseRule(v);
  if (typeof r === 'string') { ctx.addIssue({ code: 'custom', message: r }); return z.NEVER; }
  return r;
});

const positiveInt = z.number().int('must be a whole number').positive('must be at least 1').max(1_000_000, 'is too large');

const accountName = z.string().refine((s) => NAME.test(s) || /^[0-9]{1,10}$/.test(s), 'must be an account name or a numeric uid');

const absolutePath = z.string().min(1, 'must not be empty').refine((p) => path.isAbsolute(p), 'must be an absolute path')
  .refine((p) => !p.includes('\0'), 'must not contain NUL')
  .refine((p) => path.normalize(p) === p || path.normalize(p) + '/' === p, 'must be a normalized path (no "..", "//" or ".")');

/** A repository name as clients use it: no "..", "//", NUL, control characters or leading "-". */
const repoName = z.string().min(1, 'must not be empty').max(256, 'is too long')
  .refine((n) => !n.includes('..') && !n.includes('//'), 'must not contain ".." or "//"')
  // eslint-disable-next-line no-control-regex
  .refine((n) => !/[\x00-\x20\x7f\\'"`$;&|<>*?!#~()[\]{}]/.test(n), 'must not contain spaces, control or shell characters')
  .refine((n) => !n.startsWith('-') && !n.endsWith('/'), 'must not start with "-" or end with "/"');

/** refs/... prefix for namespaces; always ends in "/" so "refs/tags" cannot match "refs/tagsx". */
const namespace = z.string().regex(/^refs\/[^\s\\]*$/, 'must start with "refs/"')
  .refine((s) => !s.includes('..') && !s.includes('//'), 'must not contain ".." or "//"')
  .transform((s) => (s.endsWith('/') ? s : s + '/'));

/** A branch: "main" or "refs/heads/main"; kept in short form. */
const branch = z.string().regex(/^[^\s\\:?*[~^]+$/, 'must be a branch name such as "main"')
  .refine((s) => !s.includes('..') && !s.includes('//') && !s.startsWith('/') && !s.endsWith('/'), 'is not a valid branch name')
  .transform((s) => (s.startsWith('refs/heads/') ? s.slice('refs/heads/'.length) : s));

const label = z.string().regex(/^[A-Za-z0-9_.-]{1,64}$/, 'must be a label of letters, digits, "_", "." or "-"');

const httpNotify = z.strictObject({
  url: z.string().refine((u) => {
    try { const x = new URL(u); return x.protocol === 'http:' || x.protocol === 'https:'; } catch { return false; }
  }, 'must be an http:// or https:// URL'),
  hmac: label.optional(),
  auth: label.optional(),
  /** Allow Basic auth (auth = ...) over plain http:// (issue 7). */
  insecure: z.boolean().default(false),
});

const emailAddress = z.string().regex(/^[^\s<>@,;"]+@[^\s<>@,;"]+$/, 'must be an e-mail address like "user@example.org"');

const emailNotify = z.strictObject({
  to: emailAddress,
  from: emailAddress.optional(),
  reply_to: emailAddress.optional(),
  relay: z.string().regex(/^[A-Za-z0-9.:[\]-]+$/, 'must be a host name or address').default('127.0.0.1'),
  port: z.number().int().min(1).max(65535, 'must be a port number').default(25),
});

const protect = z.strictObject({
  branches: z.array(branch).default([]),
  branch_namespaces: z.array(namespace).default([]),
  tag_namespaces: z.array(namespace).default([]),
}).transform((p) => ({ branches: p.branches, branchNamespaces: p.branch_namespaces, tagNamespaces: p.tag_namespaces }));

const notify = z.strictObject({
  branches: z.array(branch).default([]),
  namespaces: z.array(namespace).default([]),
  http: z.array(httpNotify).default([]),
  email: z.array(emailNotify).default([]),
});

const repository = z.strictObject({
  name: repoName,
  path: absolutePath,
  access: z.array(rule).default([]),
  protect: protect.optional(),
  notify: notify.optional(),
}).transform((r) => ({
  name: r.name,
  path: r.path.length > 1 ? r.path.replace(/\/+$/, '') : r.path,
  access: r.access,
  protect: r.protect ?? { branches: [], branchNamespaces: [], tagNamespaces: [] },
  notify: r.notify ?? null,
}));

/** "127.0.0.1:8080", "[::1]:8080", "host.example:443" */
const hostPort = z.string().transform((s, ctx) => {
  const m = /^(?:\[([0-9A-Fa-f:.]+)\]|([A-Za-z0-9.-]+)):([0-9]{1,5})$/.exec(s);
  const port = m ? Number(m[3]) : 0;
  if (!m || port < 1 || port > 65535) {
    ctx.addIssue({ code: 'custom', message: `bad address ${JSON.stringify(s)}: expected "host:port" or "[v6]:port"` });
    return z.NEVER;
  }
  return { host: (m[1] ?? m[2])!, port };
});

/** "10.0.0.1", "10.0.0.0/8", "::1", "fd00::/8": a proxy whose X-Forwarded-For is believed. */
const proxy = z.string().transform((s, ctx) => {
  const m = /^([^/]+)(?:\/([0-9]{1,3}))?$/.exec(s);
  const family = m ? net.isIP(m[1]!) : 0;
  const prefix = m?.[2] !== undefined ? Number(m[2]) : null;
  if (!m || family === 0 || (prefix !== null && prefix > (family === 6 ? 128 : 32))) {
    ctx.addIssue({ code: 'custom', message: `bad proxy address ${JSON.stringify(s)}: expected an IP address or a network like "10.0.0.0/8"` });
    return z.NEVER;
  }
  return { address: m[1]!, prefix };
});

const websocket = z.strictObject({
  listen: z.array(hostPort).min(1, 'needs at least one address'),
  tls: z.strictObject({ cert: absolutePath, key: absolutePath }).optional(),
  rate: rate.optional(),
  trusted_proxies: z.array(proxy).optional(),
}).transform((w) => ({
  listen: w.listen, tls: w.tls ?? null, rate: w.rate ?? (parseRate(DEFAULTS.websocketRate) as Rate),
  trustedProxies: w.trusted_proxies ?? [],
}));

const connection = z.strictObject({
  request_timeout: duration.optional(),
  auth_timeout: duration.optional(),
  max_connections: positiveInt.optional(),
  limit_per_user: positiveInt.optional(),
  limits: z.record(z.string().refine((s) => NAME.test(s), 'must be a user name'), positiveInt).optional(),
});

export const configSchema = z.strictObject({
  user: accountName.refine((u) => u !== 'root' && u !== '0', 'must not be root').default(DEFAULTS.user),
  listen: absolutePath.default(DEFAULTS.listen),
  connection: connection.default({}),
  ssh: z.strictObject({ trusted_accounts: z.array(accountName).default([]) }).default({ trusted_accounts: [] }),
  websocket: websocket.optional(),
  repository: z.array(repository).default([]),
}).superRefine((c, ctx) => {
  const names = new Map<string, number>();
  const paths = new Map<string, number>();
  c.repository.forEach((r, i) => {
    const key = canonicalName(r.name);
    const seen = names.get(key);
    if (seen !== undefined) ctx.addIssue({ code: 'custom', path: ['repository', i, 'name'], message: `duplicate repository name ${JSON.stringify(r.name)} (repository[${seen}] has the same name)` });
    else names.set(key, i);
    const p = paths.get(r.path);
    if (p !== undefined) ctx.addIssue({ code: 'custom', path: ['repository', i, 'path'], message: `duplicate repository path ${JSON.stringify(r.path)} (also used by repository[${p}])` });
    else paths.set(r.path, i);
  });
}).transform((c) => ({
  user: c.user,
  listen: c.listen,
  connection: {
    requestTimeout: c.connection.request_timeout ?? (parseDuration(DEFAULTS.requestTimeout) as number),
    authTimeout: c.connection.auth_timeout ?? (parseDuration(DEFAULTS.authTimeout) as number),
    maxConnections: c.connection.max_connections ?? DEFAULTS.maxConnections,
    limitPerUser: c.connection.limit_per_user ?? DEFAULTS.limitPerUser,
    limits: c.connection.limits ?? {},
  },
  ssh: { trustedAccounts: c.ssh.trusted_accounts },
  websocket: c.websocket ?? null,
  repositories: c.repository,
}));

export type Config = z.output<typeof configSchema>;
export type RepositoryConfig = Config['repositories'][number];
export type WebSocketConfig = NonNullable<Config['websocket']>;

/** How clients and the config name the same repository: "/src.git", "src.git" and "src" are one name. */
export function canonicalName(name: string): string {
  let n = name.startsWith('/') ? name.slice(1) : name;
  if (n.endsWith('.git')) n = n.slice(0, -4);
  return n;
}

/** The configured repository a client means, or null; rejects anything odd before looking. */
export function findRepository(config: Config, requested: string): RepositoryConfig | null {
  if (requested.length === 0 || requested.length > 1024) return null;
  if (requested.includes('\0') || requested.includes('..') || requested.includes('//')) return null;
  const want = canonicalName(requested);
  return config.repositories.find((r) => canonicalName(r.name) === want) ?? null;
}

/** The connection limit that applies to one user. */
export function limitFor(config: Config, user: string): number {
  const limits = config.connection.limits;
  return Object.hasOwn(limits, user) ? limits[user]! : config.connection.limitPerUser;
}
