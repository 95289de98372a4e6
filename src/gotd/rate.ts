/**
 * The WebSocket rate limit: a token bucket per client address, refilled at
 * `rate` and holding at most one unit's worth of tokens.  IPv6 clients are
 * counted per /64, the block one subscriber usually gets, so that hopping
 * between addresses of one network does not multiply the rate.  The table
 * is bounded: full buckets are forgotten, and beyond MAX_BUCKETS the
 * oldest go first.
 */
import * as net from 'node:net';
import type { Rate } from '../config/units';

const MAX_BUCKETS = 65_536;

interface Bucket { tokens: number; at: number }

/** The key an address is counted under. */
export function rateKey(address: string): string {
  if (net.isIP(address) !== 6) return address;
  const groups = expand6(address);
  return groups ? `${groups.slice(0, 4).join(':')}::/64` : address;
}

function expand6(a: string): string[] | null {
  const [head, tail, extra] = a.split('::');
  if (extra !== undefined) return null;
  const h = head ? head.split(':') : [];
  const t = tail !== undefined ? (tail ? tail.split(':') : []) : [];
  if (t.some((g) => g.includes('.')) || h.some((g) => g.includes('.'))) return null;
  const fill = tail !== undefined ? 8 - h.length - t.length : 0;
  if (fill < 0) return null;
  return [...h, ...Array<string>(fill).fill('0'), ...t].map((g) => g.toLowerCase().replace(/^0+(?=.)/, ''));
}

export class RateLimiter {
  private readonly buckets = new Map<string, Bucket>();

  constructor(private readonly rate: () => Rate, private readonly now: () => number = Date.now) {}

  private bucket(key: string): Bucket {
    const { count, perMs } = this.rate();
    const now = this.now();
    let b = this.buckets.get(key);
    if (b) {
      b.tokens = Math.min(count, b.tokens + ((now - b.at) * count) / perMs);
      b.at = now;
      // Most recently used last: eviction takes the front.
      this.buckets.delete(key);
    } else {
      b = { tokens: count, at: now };
      while (this.buckets.size >= MAX_BUCKETS) this.buckets.delete(this.buckets.keys().next().value!);
    }
    this.buckets.set(key, b);
    return b;
  }

  /** Takes a token for a new connection: 0 when allowed, else the seconds until the next one. */
  take(address: string): number {
    const b = this.bucket(rateKey(address));
    if (b.tokens >= 1) { b.tokens -= 1; return 0; }
    const { count, perMs } = this.rate();
    return Math.max(1, Math.ceil(((1 - b.tokens) * perMs) / count / 1000));
  }

  /** Charges extra tokens (down to one unit's worth of debt), e.g. for a wrong password. */
  charge(address: string, tokens: number): void {
    const b = this.bucket(rateKey(address));
    b.tokens = Math.max(-this.rate().count, b.tokens - tokens);
  }

  /** Forgets buckets that have filled up again. */
  sweep(): void {
    const { count, perMs } = this.rate();
    const now = this.now();
    for (const [k, b] of this.buckets) {
      if (b.tokens + ((now - b.at) * count) / perMs >= count) this.buckets.delete(k);
    }
  }

  get size(): number { return this.buckets.size; }
}
