/**
 * Password hashes for the secrets file: scrypt in a self-describing string
 * "$scrypt$ln=15,r=8,p=1$<salt>$<hash>" (base64 without padding), checked
 * with a constant-time compare.
 */
import * as crypto from 'node:crypto';

const LN = 15;
const R = 8;
const P = 1;
const KEYLEN = 32;
const FORMAT = /^\$scrypt\$ln=([0-9]{1,2}),r=([0-9]{1,2}),p=([0-9]{1,2})\$([A-Za-z0-9+/]{16,88})\$([A-Za-z0-9+/]{43,88})$/;

interface Params { ln: number; r: number; p: number; salt: Buffer; hash: Buffer }

function b64(b: Buffer): string {
  return b.toString('base64').replace(/=+$/, '');
}

/** Parses a stored hash; null when it is not one we can check (or its cost is absurd). */
export function parseHash(text: string): Params | null {
  const m = FORMAT.exec(text);
  if (!m) return null;
  const ln = Number(m[1]), r = Number(m[2]), p = Number(m[3]);
  if (ln < 10 || ln > 20 || r < 1 || r > 32 || p < 1 || p > 16) return null;
  const hash = Buffer.from(m[5]!, 'base64');
  if (hash.length < 32) return null;
  return { ln, r, p, salt: Buffer.from(m[4]!, 'base64'), hash };
}

function derive(password: string, salt: Buffer, ln: number, r: number, p: number, keylen: number): Promise<Buffer> {
  const N = 2 ** ln;
  return new Promise((resolve, reject) => {
    crypto.scrypt(password.normalize('NFC'), salt, keylen, { N, r, p, maxmem: 256 * N * r + (1 << 20) }, (err, key) => {
      if (err) reject(err); else resolve(key);
    });
  });
}

export async function hashPassword(password: string): Promise<string> {
  const salt = crypto.randomBytes(16);
  const key = await derive(password, salt, LN, R, P, KEYLEN);
  return `$scrypt$ln=${LN},r=${R},p=${P}$${b64(salt)}$${b64(key)}`;
}

/** True when password matches the stored hash; false for any malformed hash. */
export async function verifyPassword(password: string, stored: string): Promise<boolean> {
  const h = parseHash(stored);
  if (!h) return false;
  const key = await derive(password, h.salt, h.ln, h.r, h.p, h.hash.length);
  return crypto.timingSafeEqual(key, h.hash);
}
