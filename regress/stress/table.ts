/**
 * The rows every part of `make stress` reports, and the table they make.
 * A row is one case: what was tried, how often, what the limit is, what was
 * measured, and whether it held.
 */
export interface Row {
  part: 'fuzz' | 'exhaust' | 'load' | 'faults';
  case: string;
  /** How much was done: "1.2M inputs", "100 kills", "60 s". */
  runs: string;
  /** What was measured: "max RSS 61 MB", "p99 0.8 s", "cut after 10.0 s". */
  figure: string;
  /** The limit or target it is held against. */
  limit: string;
  ok: boolean;
  /** On failure: what went wrong (first failure, with the seed to replay it). */
  detail?: string;
}

export interface StressOptions {
  /** Fuzzing time per parser, seconds. */
  fuzzSeconds: number;
  /** Load duration, seconds. */
  loadSeconds: number;
  /** Load: concurrent clients. */
  clients: number;
  /** Faults: seeded kills. */
  kills: number;
  seed: number;
  /** Progress lines go here (stderr in make stress). */
  log: (line: string) => void;
}

export function renderTable(rows: Row[]): string {
  const head = ['part', 'case', 'runs', 'figure', 'limit', 'result'];
  const body = rows.map((r) => [r.part, r.case, r.runs, r.figure, r.limit, r.ok ? 'ok' : 'FAIL']);
  const width = head.map((h, i) => Math.max(h.length, ...body.map((b) => b[i]!.length)));
  const line = (cells: string[]): string => `| ${cells.map((c, i) => c.padEnd(width[i]!)).join(' | ')} |`;
  const out = [line(head), `|${width.map((w) => '-'.repeat(w + 2)).join('|')}|`, ...body.map(line)];
  for (const r of rows) if (!r.ok && r.detail) out.push('', `FAIL ${r.part} ${r.case}: ${r.detail}`);
  return out.join('\n');
}
