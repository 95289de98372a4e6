/**
 * Every message that crosses a process boundary in gotd, as zod schemas:
 * what gotsh and gotctl send on gotd.sock, and what the parent, listen,
 * auth and the session workers send each other over Node's IPC channel.
 * Each receiving end parses with these schemas; a message that does not
 * parse is treated as a misbehaving sender (its session is killed), never
 * acted upon.
 */
import { strictObject, z } from './zod';

/* ---------- gotd.sock: one JSON line from the client, one JSON line back ---------- */

/** Largest first request listen reads from a client (bytes, including the newline). */
export const MAX_REQUEST = 4096;

export const SERVICES = ['git-upload-pack', 'git-receive-pack'] as const;
export const serviceSchema = z.enum(SERVICES);
export type Service = z.infer<typeof serviceSchema>;

export const gitRequestSchema = strictObject({
  type: z.literal('git'),
  service: serviceSchema,
  repo: z.string().min(1).max(1024),
  /** GIT_PROTOCOL as the client's git set it ("version=2"), or "". */
  protocol: z.string().max(256),
  /** Forced-command mode (gotsh -u NAME): the user a trusted account vouches for. */
  user: z.string().min(1).max(64).optional(),
});
export type GitRequest = z.infer<typeof gitRequestSchema>;

export const controlRequestSchema = strictObject({
  type: z.literal('control'),
  command: z.enum(['info', 'stop', 'reload']),
  /** reload -c FILE */
  config: z.string().min(1).max(4096).optional(),
});
export type ControlRequest = z.infer<typeof controlRequestSchema>;

export const clientRequestSchema = z.discriminatedUnion('type', [gitRequestSchema, controlRequestSchema]);
export type ClientRequest = z.infer<typeof clientRequestSchema>;

/** The daemon's first line to gotsh: after {"ok":true} the Git protocol begins. */
export const gitReplySchema = strictObject({ ok: z.boolean(), error: z.string().max(1000).optional() });
export type GitReply = z.infer<typeof gitReplySchema>;

export const sessionInfoSchema = strictObject({
  id: z.number().int(),
  user: z.string(),
  repo: z.string(),
  service: serviceSchema,
  ageMs: z.number(),
  pid: z.number().int().optional(),
});

export const layersSchema = strictObject({
  permissionModel: z.boolean(),
  unprivilegedUser: z.boolean(),
  /** How bubblewrap confines, e.g. "bubblewrap (no nested user namespaces)"; null without it. */
  bwrap: z.string().nullable(),
  resourceLimits: z.boolean(),
  detail: z.array(z.string()),
});
export type Layers = z.infer<typeof layersSchema>;

export const infoSchema = strictObject({
  pid: z.number().int(),
  uptimeMs: z.number(),
  configPath: z.string(),
  user: z.string(),
  uid: z.number().int(),
  listen: z.string(),
  layers: layersSchema,
  children: z.array(strictObject({ role: z.string(), pid: z.number().int() })),
  sessions: z.array(sessionInfoSchema),
});
export type Info = z.infer<typeof infoSchema>;

export const controlReplySchema = strictObject({
  ok: z.boolean(),
  error: z.string().max(8192).optional(),
  message: z.string().max(8192).optional(),
  info: infoSchema.optional(),
});
export type ControlReply = z.infer<typeof controlReplySchema>;

/* ---------- shared pieces ---------- */

/** Kernel-reported credentials of a unix socket peer (SO_PEERCRED). */
export const peerSchema = strictObject({
  uid: z.number().int().min(0).max(0xffffffff),
  gid: z.number().int().min(0).max(0xffffffff),
  pid: z.number().int().min(0),
});
export type Peer = z.infer<typeof peerSchema>;

const oid = z.string().regex(/^[0-9a-f]{40}$/);

export const protectSchema = strictObject({
  branches: z.array(z.string()),
  branchNamespaces: z.array(z.string()),
  tagNamespaces: z.array(z.string()),
});

export const refUpdateSchema = strictObject({
  ref: z.string().max(4096),
  old: oid,
  new: oid,
  ok: z.boolean(),
  reason: z.string().max(4096).optional(),
});
export type RefUpdateMsg = z.infer<typeof refUpdateSchema>;

/* ---------- parent <-> listen ---------- */

/**
 * A WebSocket client's request as listen read it from the HTTP request
 * head (see src/gotd/web_request.ts); the parent decides on it and answers
 * in HTTP, or a worker completes the upgrade.
 */
export const webRequestSchema = strictObject({
  service: serviceSchema,
  /** The path without its leading "/", percent-decoded; may name nothing. */
  repo: z.string().max(1024),
  /** The Git-Protocol header ("version=2"), or "". */
  protocol: z.string().max(256),
  /** HTTP Basic credentials; user null = none sent (anonymous). */
  user: z.string().min(1).max(256).nullable(),
  password: z.string().max(1024),
  /** The client's address (after trusted_proxies), for logs and the rate limit. */
  address: z.string().max(64),
  /** Sec-WebSocket-Accept for the 101 answer; null when the request is not a valid WebSocket upgrade. */
  accept: z.string().regex(/^[A-Za-z0-9+/]{27}=$/).nullable(),
});
export type WebRequest = z.infer<typeof webRequestSchema>;

export const toListenSchema = z.discriminatedUnion('type', [
  /** The configuration as parsed TOML; listen validates it with the config schema itself. */
  strictObject({ type: z.literal('config'), config: z.unknown(), daemonUid: z.number().int() }),
  /** Comes with the bound unix socket handle. */
  strictObject({ type: z.literal('server'), path: z.string() }),
  /** Sessions running in the parent, for max_connections. */
  strictObject({ type: z.literal('load'), sessions: z.number().int().min(0) }),
  /** Stop accepting; the parent is shutting down. */
  strictObject({ type: z.literal('stop') }),
  /** Comes with a bound TCP socket handle: listen for WebSocket clients there (TLS when cert/key are given). */
  strictObject({
    type: z.literal('websocket'), address: z.string().max(300),
    tls: strictObject({ cert: z.string().max(1 << 20), key: z.string().max(1 << 20) }).nullable(),
  }),
  /** Wrong WebSocket credentials came from this address: charge its rate bucket extra. */
  strictObject({ type: z.literal('failed'), address: z.string().max(64) }),
]);
export type ToListen = z.infer<typeof toListenSchema>;

export const fromListenSchema = z.discriminatedUnion('type', [
  strictObject({ type: z.literal('ready') }),
  strictObject({ type: z.literal('listening'), path: z.string() }),
  /** Comes with the client socket; the request has been read and parsed. */
  strictObject({ type: z.literal('client'), peer: peerSchema, request: gitRequestSchema }),
  strictObject({ type: z.literal('control'), peer: peerSchema, request: controlRequestSchema }),
  /** Comes with the client socket (or, for TLS, listen's end of a relay); nothing after the request head was read. */
  strictObject({ type: z.literal('web'), request: webRequestSchema }),
]);
export type FromListen = z.infer<typeof fromListenSchema>;

/* ---------- parent <-> auth ---------- */

export const whoSchema = z.discriminatedUnion('kind', [
  /** gotd.sock: the kernel's word, plus a forced-command assertion to be checked. */
  strictObject({ kind: z.literal('unix'), peer: peerSchema, asUser: z.string().max(64).optional() }),
  /** WebSocket: HTTP Basic credentials, or none (anonymous). */
  strictObject({ kind: z.literal('web'), user: z.string().max(256).nullable(), password: z.string().max(1024) }),
]);
export type Who = z.infer<typeof whoSchema>;

export const toAuthSchema = z.discriminatedUnion('type', [
  strictObject({ type: z.literal('config'), config: z.unknown(), secrets: z.unknown() }),
  strictObject({
    type: z.literal('authorize'), id: z.number().int(), who: whoSchema,
    repo: z.string().max(1024), service: serviceSchema,
  }),
]);
export type ToAuth = z.infer<typeof toAuthSchema>;

export const fromAuthSchema = z.discriminatedUnion('type', [
  strictObject({ type: z.literal('ready') }),
  strictObject({ type: z.literal('configured') }),
  strictObject({
    type: z.literal('decision'), id: z.number().int(),
    verdict: z.enum(['ro', 'rw', 'deny']),
    /** False when WebSocket credentials were missing or wrong (HTTP 401 rather than 403). */
    authenticated: z.boolean(),
    /** Who the client is, for logs and per-user limits. */
    user: z.string().max(256),
    /** The configured name of the repository, when permitted. */
    repo: z.string().max(1024).optional(),
    /** Why, for the log only; the client always just hears "access denied". */
    reason: z.string().max(1000),
    /** Auth could not decide (not configured yet, overloaded, a lookup failed): "try again", never "wrong password". */
    unavailable: z.boolean().optional(),
  }),
]);
export type FromAuth = z.infer<typeof fromAuthSchema>;
export type Decision = Extract<FromAuth, { type: 'decision' }>;

/* ---------- parent <-> session worker (reader / writer) ---------- */

export const sessionSchema = strictObject({
  type: z.literal('session'),
  repoPath: z.string().min(1),
  access: z.enum(['ro', 'rw']),
  protocol: z.union([z.literal(0), z.literal(1), z.literal(2)]),
  protect: protectSchema,
  requestTimeoutMs: z.number().int().positive(),
  maxInputBytes: z.number().int().positive(),
  /** When gotd started: lock files and quarantines older than this were left by a crash. */
  staleBefore: z.number().int().positive(),
  /** A WebSocket client: the worker answers the upgrade with this Sec-WebSocket-Accept and speaks WebSocket. */
  websocket: strictObject({ accept: z.string().regex(/^[A-Za-z0-9+/]{27}=$/) }).optional(),
});
export type SessionMsg = z.infer<typeof sessionSchema>;

export const fromWorkerSchema = z.discriminatedUnion('type', [
  strictObject({ type: z.literal('ready') }),
  // The worker holds the client socket: the parent may close its own copy.
  strictObject({ type: z.literal('started') }),
  strictObject({
    type: z.literal('done'),
    ok: z.boolean(),
    error: z.string().max(4096).optional(),
    bytesIn: z.number().min(0),
    bytesOut: z.number().min(0),
    updates: z.array(refUpdateSchema).max(100_000).default([]),
    pushOptions: z.array(z.string().max(4096)).max(1000).default([]),
  }),
]);
export type FromWorker = z.infer<typeof fromWorkerSchema>;

/* ---------- parent -> notify ---------- */

/*
 * One "pushed" message per successful push to a repository with a
 * [repository.notify] section: the repository's name and path, who pushed,
 * the applied ref updates, that repository's notify settings, and only the
 * secrets those settings name.  Nothing comes back but "ready": the parent
 * never waits for a delivery.
 */

export const httpTargetSchema = strictObject({
  url: z.string().min(1).max(4096),
  /** Label in the secrets file's [hmac] table. */
  hmac: z.string().max(64).optional(),
  /** Label of an [auth.LABEL] table in the secrets file. */
  auth: z.string().max(64).optional(),
  /** Allow Basic auth over plain http://. */
  insecure: z.boolean().default(false),
});
export type HttpTargetConfig = z.output<typeof httpTargetSchema>;

export const emailTargetSchema = strictObject({
  to: z.string().min(3).max(320),
  from: z.string().min(3).max(320).optional(),
  replyTo: z.string().min(3).max(320).optional(),
  relay: z.string().min(1).max(255),
  port: z.number().int().min(1).max(65535),
});
export type EmailTargetConfig = z.output<typeof emailTargetSchema>;

export const notifySettingsSchema = strictObject({
  /** Short branch names ("main" for refs/heads/main). */
  branches: z.array(z.string().max(1024)).max(10_000),
  /** Ref name prefixes ending in "/". */
  namespaces: z.array(z.string().max(1024)).max(10_000),
  http: z.array(httpTargetSchema).max(100),
  email: z.array(emailTargetSchema).max(100),
});
export type NotifySettings = z.output<typeof notifySettingsSchema>;

export const notifySecretsSchema = strictObject({
  hmac: z.record(z.string().max(64), z.string().max(4096)),
  auth: z.record(z.string().max(64), strictObject({ user: z.string().max(1024), password: z.string().max(4096) })),
});
export type NotifySecrets = z.output<typeof notifySecretsSchema>;

export const pushedSchema = strictObject({
  type: z.literal('pushed'),
  /** The configured repository name, as notifications show it. */
  repo: z.string().min(1).max(1024),
  /** Its path on disk, opened read-only. */
  path: z.string().min(1).max(4096),
  /** Who pushed (auth_user in the JSON). */
  user: z.string().max(256),
  updates: z.array(refUpdateSchema).max(100_000),
  notify: notifySettingsSchema,
  secrets: notifySecretsSchema,
});
export type Pushed = z.output<typeof pushedSchema>;

export const toNotifySchema = z.discriminatedUnion('type', [pushedSchema]);
export type ToNotify = z.output<typeof toNotifySchema>;

export const fromNotifySchema = z.discriminatedUnion('type', [
  strictObject({ type: z.literal('ready') }),
]);
export type FromNotify = z.output<typeof fromNotifySchema>;

/* ---------- parsing ---------- */

/** Parses a received message; null means "misbehaving sender". */
export function parseMessage<S extends z.ZodType>(schema: S, raw: unknown): z.output<S> | null {
  const r = schema.safeParse(raw);
  return r.success ? r.data : null;
}

/** GIT_PROTOCOL ("version=2:object-format=sha1") to the protocol version the engine speaks. */
export function protocolVersion(gitProtocol: string): 0 | 1 | 2 {
  let v: 0 | 1 | 2 = 0;
  for (const kv of gitProtocol.split(':')) {
    if (kv === 'version=2') v = 2;
    else if (kv === 'version=1' && v === 0) v = 1;
  }
  return v;
}
