/**
 * getopt(3) for gotd's commands: "dnvf:s:" style specs, bundled flags
 * (-dv, -vv), option arguments attached or separate (-ffile, -f file),
 * "--" and the first operand end the options.
 */

export class UsageError extends Error {
  override name = 'UsageError';
}

export interface Parsed { flags: Map<string, string[]>; operands: string[] }

export function getopt(args: readonly string[], spec: string): Parsed {
  const flags = new Map<string, string[]>();
  let i = 0;
  for (; i < args.length; i++) {
    const a = args[i]!;
    if (a === '--') { i++; break; }
    if (!a.startsWith('-') || a === '-') break;
    for (let j = 1; j < a.length; j++) {
      const c = a[j]!;
      const at = spec.indexOf(c);
      if (at < 0 || c === ':') throw new UsageError(`unknown option -${c}`);
      let value = '';
      if (spec[at + 1] === ':') {
        if (j + 1 < a.length) value = a.slice(j + 1);
        else if (i + 1 < args.length) value = args[++i]!;
        else throw new UsageError(`option -${c} needs an argument`);
        j = a.length;
      }
      flags.set(c, [...(flags.get(c) ?? []), value]);
    }
  }
  return { flags, operands: args.slice(i) };
}

/** The last value given for an option, or undefined. */
export function last(p: Parsed, c: string): string | undefined {
  const v = p.flags.get(c);
  return v ? v[v.length - 1] : undefined;
}

export function count(p: Parsed, c: string): number {
  return p.flags.get(c)?.length ?? 0;
}
