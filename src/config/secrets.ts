/**
 * The secrets file: WebSocket users with password hashes and groups, HMAC
 * keys and HTTP credentials for notifications.  Refused when anyone but its
 * owner and the daemon's group can read it; never logged.
 */
import * as fs from 'node:fs';
import { z } from 'zod';
import { NAME } from './access';
import { parseHash } from './password';
import { ConfigError, formatIssues } from './validate';

const label = z.string().regex(/^[A-Za-z0-9_.-]{1,64}$/, 'must be a label of letters, digits, "_", "." or "-"');

export const secretsSchema = z.strictObject({
  users: z.record(z.string().refine((s) => NAME.test(s) && s !== 'anonymous', 'must be a user name (not "anonymous")'), z.strictObject({
    password: z.string().refine((s) => parseHash(s) !== null, 'must be a hash from "gotctl hash-password" ($scrypt$...)'),
    groups: z.array(z.string().refine((s) => NAME.test(s), 'must be a group name')).default([]),
  })).default({}),
  hmac: z.record(label, z.string().min(16, 'must be at least 16 characters')).default({}),
  auth: z.record(label, z.strictObject({ user: z.string().min(1).refine((s) => !s.includes(':'), 'must not contain ":"'), password: z.string() })).default({}),
});

export type Secrets = z.output<typeof secretsSchema>;

export const NO_SECRETS: Secrets = { users: {}, hmac: {}, auth: {} };

export interface Owner { uid: number; gid: number }

/**
 * Refuses a secrets file others could read or change: no access for
 * "other", no group write, group read only for the daemon's own group,
 * owned by root or by the daemon's user.
 */
export function checkSecretsMode(file: string, st: fs.Stats, daemon: Owner): void {
  const mode = (st.mode & 0o7777).toString(8).padStart(4, '0');
  if (!st.isFile()) throw new ConfigError(`${file}: not a regular file`);
  if (st.mode & 0o007) throw new ConfigError(`${file}: mode ${mode} lets others access it; use 0600 or 0640`);
  if (st.mode & 0o020) throw new ConfigError(`${file}: mode ${mode} lets its group write it; use 0600 or 0640`);
  if (st.uid !== 0 && st.uid !== daemon.uid) {
    throw new ConfigError(`${file}: owned by uid ${st.uid}; it must belong to root or to the daemon's user`);
  }
  if ((st.mode & 0o040) && st.gid !== 0 && st.gid !== daemon.gid) {
    throw new ConfigError(`${file}: readable by group ${st.gid}, which is not the daemon's group ${daemon.gid}; use 0600 or chgrp`);
  }
}

/** Validates a parsed secrets object (also what the auth process does with what it is sent). */
export function validateSecrets(raw: unknown, file = 'secrets'): Secrets {
  const r = secretsSchema.safeParse(raw);
  if (!r.success) throw new ConfigError(formatIssues(file, r.error.issues));
  return r.data;
}
