/**
 * The zod the message schemas are written in: zod's v3 API, which the zod
 * package ships beside v4. Every session worker parses its session message
 * before it does anything else, so zod's load time is on every session's
 * path: v3 loads in ~11 ms (10 files), v4 in ~50 ms (95 files) — measured
 * with `node -e "require('zod/v3')"` against `require('zod')` on the CI
 * machine. The config loader, which runs only at start and reload, keeps
 * v4 for its richer error reports.
 */
import { z } from 'zod/v3';

export { z };

/** An object schema that refuses unknown keys (v4's z.strictObject). */
export function strictObject<T extends z.ZodRawShape>(shape: T): z.ZodObject<T, 'strict'> {
  return z.object(shape).strict();
}
