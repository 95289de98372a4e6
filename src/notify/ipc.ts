/**
 * Messages between the parent and the notify process.  (Kept here until the
 * daemon's src/ipc/messages.ts is merged; they move there then.)
 *
 * The parent sends one "pushed" message per successful push to a repository
 * that has a [repository.notify] section: the repository's name and path,
 * who pushed, the ref updates, that repository's notify settings, and only
 * the secrets those settings name.  Nothing comes back but "ready": the
 * parent never waits for a delivery.
 */
import { z } from 'zod';

const oid = z.string().regex(/^[0-9a-f]{40}$/);

export const notifyRefUpdateSchema = z.strictObject({
  ref: z.string().max(4096),
  old: oid,
  new: oid,
  ok: z.boolean(),
  reason: z.string().max(4096).optional(),
});

export const httpTargetSchema = z.strictObject({
  url: z.string().min(1).max(4096),
  /** Label in the secrets file's [hmac] table. */
  hmac: z.string().max(64).optional(),
  /** Label of an [auth.LABEL] table in the secrets file. */
  auth: z.string().max(64).optional(),
  /** Allow Basic auth over plain http://. */
  insecure: z.boolean().default(false),
});
export type HttpTargetConfig = z.output<typeof httpTargetSchema>;

export const emailTargetSchema = z.strictObject({
  to: z.string().min(3).max(320),
  from: z.string().min(3).max(320).optional(),
  replyTo: z.string().min(3).max(320).optional(),
  relay: z.string().min(1).max(255),
  port: z.number().int().min(1).max(65535),
});
export type EmailTargetConfig = z.output<typeof emailTargetSchema>;

export const notifySettingsSchema = z.strictObject({
  /** Short branch names ("main" for refs/heads/main). */
  branches: z.array(z.string().max(1024)).max(10_000),
  /** Ref name prefixes ending in "/". */
  namespaces: z.array(z.string().max(1024)).max(10_000),
  http: z.array(httpTargetSchema).max(100),
  email: z.array(emailTargetSchema).max(100),
});
export type NotifySettings = z.output<typeof notifySettingsSchema>;

export const notifySecretsSchema = z.strictObject({
  hmac: z.record(z.string().max(64), z.string().max(4096)),
  auth: z.record(z.string().max(64), z.strictObject({ user: z.string().max(1024), password: z.string().max(4096) })),
});
export type NotifySecrets = z.output<typeof notifySecretsSchema>;

export const pushedSchema = z.strictObject({
  type: z.literal('pushed'),
  /** The configured repository name, as notifications show it. */
  repo: z.string().min(1).max(1024),
  /** Its path on disk, opened read-only. */
  path: z.string().min(1).max(4096),
  /** Who pushed (auth_user in the JSON). */
  user: z.string().max(256),
  updates: z.array(notifyRefUpdateSchema).max(100_000),
  notify: notifySettingsSchema,
  secrets: notifySecretsSchema,
});
export type Pushed = z.output<typeof pushedSchema>;

export const toNotifySchema = z.discriminatedUnion('type', [pushedSchema]);
export type ToNotify = z.output<typeof toNotifySchema>;

export const fromNotifySchema = z.discriminatedUnion('type', [
  z.strictObject({ type: z.literal('ready') }),
]);
export type FromNotify = z.output<typeof fromNotifySchema>;
