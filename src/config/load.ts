/**
 * Reading gotd.conf and the secrets file: TOML, then the zod schemas; every
 * error names the file and the key.  Only the parent reads these files.
 */
import * as fs from 'node:fs';
import * as toml from 'toml';
import type { Config } from './schema';
import { checkSecretsMode, validateSecrets, type Owner, type Secrets } from './secrets';
import { ConfigError, validateConfig } from './validate';

export { ConfigError } from './validate';

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

/** Settings that name secrets must find them. */
export function crossCheck(config: Config, secrets: Secrets, file: string): void {
  config.repositories.forEach((r, i) => {
    r.notify?.http.forEach((h, j) => {
      const at = `${file}: repository[${i}].notify.http[${j}]`;
      if (h.hmac !== undefined && !Object.hasOwn(secrets.hmac, h.hmac)) throw new ConfigError(`${at}.hmac: no [hmac] entry "${h.hmac}" in the secrets file`);
      if (h.auth !== undefined && !Object.hasOwn(secrets.auth, h.auth)) throw new ConfigError(`${at}.auth: no [auth.${h.auth}] entry in the secrets file`);
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

/** Reads, checks and validates the secrets file.  Errors never quote its values. */
export function loadSecrets(file: string, daemon: Owner): { secrets: Secrets; raw: unknown } {
  let fd: number;
  try {
    fd = fs.openSync(file, fs.constants.O_RDONLY | fs.constants.O_NOFOLLOW);
  } catch (e) {
    throw new ConfigError(`${file}: ${(e as NodeJS.ErrnoException).code === 'ELOOP' ? 'is a symbolic link' : (e as Error).message}`);
  }
  try {
    checkSecretsMode(file, fs.fstatSync(fd), daemon);
    const raw = parseToml(file, fs.readFileSync(fd, 'utf8'), { quote: false });
    return { secrets: validateSecrets(raw, file), raw };
  } finally {
    fs.closeSync(fd);
  }
}
