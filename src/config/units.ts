/**
 * The small value languages of gotd.conf: durations ("1h", "10s", "5m",
 * integer seconds) and rates ("20/min", "5/s", "100/h").
 */

const DURATION = /^([0-9]{1,9})([smh]?)$/;
const UNIT_MS: Record<string, number> = { '': 1000, s: 1000, m: 60_000, h: 3_600_000 };

/** Milliseconds for a duration, or an error text saying what is wrong. */
export function parseDuration(value: unknown): number | string {
  if (typeof value === 'number') {
    if (!Number.isInteger(value) || value <= 0) return 'must be a positive number of seconds';
    return value * 1000;
  }
  if (typeof value !== 'string') return 'must be a duration like "10s", "5m", "1h" or a number of seconds';
  const m = DURATION.exec(value.trim());
  if (!m) return `bad duration ${JSON.stringify(value)}: expected a number with an optional s, m or h suffix`;
  const n = Number(m[1]);
  if (n <= 0) return 'must be longer than zero';
  const ms = n * UNIT_MS[m[2]!]!;
  if (ms > 2 ** 31 - 1) return `duration ${JSON.stringify(value)} is too long (at most 596h)`;
  return ms;
}

export interface Rate { count: number; perMs: number }

const RATE = /^([0-9]{1,9})\s*\/\s*(s|min|h)$/;
const PER_MS: Record<string, number> = { s: 1000, min: 60_000, h: 3_600_000 };

/** A rate such as "20/min", or an error text saying what is wrong. */
export function parseRate(value: unknown): Rate | string {
  if (typeof value !== 'string') return 'must be a rate like "20/min", "5/s" or "100/h"';
  const m = RATE.exec(value.trim());
  if (!m) return `bad rate ${JSON.stringify(value)}: expected "N/s", "N/min" or "N/h"`;
  const count = Number(m[1]);
  if (count <= 0) return 'must allow at least one connection';
  return { count, perMs: PER_MS[m[2]!]! };
}

/** "90s" for 90000 ms: how durations are shown back to people. */
export function formatDuration(ms: number): string {
  if (ms % 3_600_000 === 0) return `${ms / 3_600_000}h`;
  if (ms % 60_000 === 0) return `${ms / 60_000}m`;
  if (ms % 1000 === 0) return `${ms / 1000}s`;
  return `${ms}ms`;
}
