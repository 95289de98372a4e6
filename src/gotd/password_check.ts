/**
 * WebSocket password checks in the auth process.  scrypt is expensive on
 * purpose (a third of a second of CPU and 32 MiB here), which makes it a
 * lever for whoever sends guesses:
 *
 * - one check runs at a time, so guesses can take at most one core from
 *   the sessions being served (listen's per-address rate keeps any one
 *   address from queueing many); at most MAX_WAITING wait;
 * - a check that succeeded is remembered for CACHE_MS as an HMAC under a
 *   key that exists only in this process's memory, so that a user's
 *   fetch-then-push does not pay twice.  A changed hash in the secrets
 *   file invalidates it (the stored hash is part of what is MACed).
 */
import * as crypto from 'node:crypto';
import { verifyPassword } from '../config/password';

const CACHE_MS = 5 * 60_000;
const MAX_CACHED = 1000;
const MAX_WAITING = 64;

const key = crypto.randomBytes(32);
const cache = new Map<string, { mac: Buffer; until: number }>();
const waiting: Array<() => void> = [];
let running = false;

function mac(user: string, password: string, stored: string): Buffer {
  return crypto.createHmac('sha256', key).update(`${user}\0${stored}\0${password}`).digest();
}

async function oneAtATime<T>(f: () => Promise<T>): Promise<T> {
  if (running) {
    if (waiting.length >= MAX_WAITING) throw new Error('too many password checks waiting');
    await new Promise<void>((resolve) => waiting.push(resolve));
  }
  running = true;
  try {
    return await f();
  } finally {
    const next = waiting.shift();
    if (next) next(); else running = false;
  }
}

/** True when password matches the stored scrypt hash of user. */
export async function checkPassword(user: string, password: string, stored: string): Promise<boolean> {
  const m = mac(user, password, stored);
  const hit = cache.get(user);
  if (hit && hit.until > Date.now() && crypto.timingSafeEqual(hit.mac, m)) return true;
  const good = await oneAtATime(() => verifyPassword(password, stored));
  if (good) {
    cache.delete(user);
    if (cache.size >= MAX_CACHED) cache.delete(cache.keys().next().value!);
    cache.set(user, { mac: m, until: Date.now() + CACHE_MS });
  }
  return good;
}
