/**
 * Validation of an already parsed configuration (no file or TOML access, so
 * the confined children can use it on what the parent sends them); error
 * texts name the key ("repository[1].access[0]: bad rule ...").
 */
import type { z } from 'zod';
import { configSchema, type Config } from './schema';

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

/** A TOML-ish name for a type zod names: "a table", "an array", "a string". */
function typeName(t: string): string {
  if (t === 'object') return 'a table';
  if (t === 'Infinity' || t === 'NaN') return t;
  return /^[aeiou]/.test(t) ? `an ${t}` : `a ${t}`;
}

function describe(issue: z.core.$ZodIssue): { at: readonly PropertyKey[]; what: string } {
  if (issue.code === 'unrecognized_keys') {
    return { at: [...issue.path, issue.keys[0]!], what: issue.keys.length > 1 ? `unknown keys ${issue.keys.join(', ')}` : 'unknown key' };
  }
  if (issue.code === 'invalid_type') {
    const got = / received (\w+)$/.exec(issue.message)?.[1];
    if (got === 'undefined') return { at: issue.path, what: 'missing (required)' };
    return { at: issue.path, what: `must be ${typeName(issue.expected)}${got ? `, not ${typeName(got)}` : ''}` };
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

/** Validates a parsed configuration object; the children run this on what the parent sends them. */
export function validateConfig(raw: unknown, file = 'config'): Config {
  const r = configSchema.safeParse(raw);
  if (!r.success) throw new ConfigError(formatIssues(file, r.error.issues));
  return r.data;
}
