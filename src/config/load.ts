/**
 * Reading gotd.conf: TOML, then the zod schema; every error names the file
 * and the key ("/etc/gotd.conf: repository[1].access[0]: bad rule ...").
 */
import * as fs from 'node:fs';
import * as toml from 'toml';
import type { z } from 'zod';
import { configSchema, type Config } from './schema';
import type { Secrets } from './secrets';

export class ConfigError extends Error {
  override name = 'ConfigError';
}

/** repository[1].access[0] */
export function formatPath(path: readonly PropertyKey[]): string {
  let out = '';
  for (const p of path) {
    if (typeof p === 'number') out += `[${p}]`;
    else out += (out ? '.' : '') + String(p);
  }
  return out;
}

function describe(issue: z.core.$ZodIssue): { at: readonly PropertyKey[]; what: string } {
  if (issue.code === 'unrecognized_keys') {
    return { at: [...issue.path, issue.keys[0]!], what: issue.keys.length > 1 ? `unknown keys ${issue.keys.join(', ')}` : 'unknown key' };
  }
  if (issue.code === 'invalid_type') {
    const got = / received (\w+)$/.exec(issue.message)?.[1];
    if (got === 'undefined') return { at: issue.path, what: 'missing (required)' };
    return { at: issue.path, what: `must be ${issue.expected === 'object' ? 'a table' : `a ${issue.expected}`}${got ? `, not ${got === 'object' ? 'a table' : `a ${got}`}` : ''}` };
  }
  return { at: issue.path, what: issue.message };
}

export function formatIssues(file: string, issues: readonly z.core.$ZodIssue[]): string {
  return issues.slice(0, 5).map((i) => {
    const { at, what } = describe(i);
    const key = formatPath(at);
    return `${file}: ${key ? key + ': ' : ''}${what}`;
  }).join('\n');
}

/** TOML text to a plain object; syntax errors carry line and column (and, unless quote is false, toml's words). */
export function parseToml(file: string, text: string, opts: { quote: boolean } = { quote: true }): unknown {
  try {
    return toml.parse(text);
  } catch (e) {
    const err = e as { line?: number; column?: number; message?: string };
    const where = err.line ? `line ${err.line}, column ${err.column ?? 0}: ` : '';
    throw new ConfigError(`${file}: ${where}${opts.quote ? `TOML syntax error: ${err.message ?? String(e)}` : 'TOML syntax error'}`);
  }
}

/** Validates a parsed configuration object; the children run this on what the parent sends them. */
export function validateConfig(raw: unknown, file = 'config'): Config {
  const r = configSchema.safeParse(raw);
  if (!r.success) throw new ConfigError(formatIssues(file, r.error.issues));
  return r.data;
}

/** Settings that name secrets must find them. */
export function crossCheck(config: Config, secrets: Secrets, file: string): void {
  config.repositories.forEach((r, i) => {
    r.notify?.http.forEach((h, j) => {
      const at = `${file}: repository[${i}].notify.http[${j}]`;
      if (h.hmac !== undefined && !(h.hmac in secrets.hmac)) throw new ConfigError(`${at}.hmac: no [hmac] entry "${h.hmac}" in the secrets file`);
      if (h.auth !== undefined && !(h.auth in secrets.auth)) throw new ConfigError(`${at}.auth: no [auth.${h.auth}] entry in the secrets file`);
    });
  });
}

/** Reads and validates a configuration file. */
export function loadConfig(file: string): { config: Config; raw: unknown } {
  let text: string;
  try {
    text = fs.readFileSync(file, 'utf8');
  } catch (e) {
    throw new ConfigError(`${file}: ${(e as Error).message}`);
  }
  const raw = parseToml(file, text);
  return { config: validateConfig(raw, file), raw };
}
