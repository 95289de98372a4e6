/**
 * Diffstat of two trees: which paths were added, deleted, modified or only
 * changed mode, and how many lines each gained and lost — what
 * `git diff --numstat` reports, without renames.  Line counts come from the
 * length of a shortest edit script (Myers), which fixes both numbers
 * (added + removed = edits, added - removed = growth), so they match git's
 * for ordinary files.  The work is bounded: blobs that look binary, are too
 * large or would overrun the caller's byte budget get no line counts, a
 * diff too costly to finish falls back to counting lines by content, and the
 * list stops when the file budget runs out.
 */
import { MODE_GITLINK, MODE_TREE, parseTree } from './object';
import type { ObjectStore } from './odb';

/** git's own letters: Added, Deleted, Modified, mode changed (m). */
export type FileStatus = 'A' | 'D' | 'M' | 'm';

export interface FileStat {
  path: string;
  status: FileStatus;
  added: number;
  removed: number;
  /** No line counts: binary content, or too large (or over budget) to compare. */
  binary: boolean;
  oldSize: number;
  newSize: number;
}

export interface DiffStat {
  files: FileStat[];
  added: number;
  removed: number;
  /** The file budget ran out before every changed path was listed. */
  truncated: boolean;
}

/** Remaining work for a whole batch of diffs; each diff spends from it. */
export interface DiffBudget {
  /** Blob bytes that may still be read. */
  blobBytes: number;
  /** Changed paths that may still be listed. */
  files: number;
}

export interface DiffLimits {
  /** Larger blobs are not compared (shown like binary files). */
  maxBlobBytes: number;
}

/** git looks at the first 8000 bytes for a NUL to call a file binary. */
const BINARY_PROBE = 8000;
/** Steps of the edit-distance search before falling back to counting by content. */
const MAX_DIFF_WORK = 20_000_000;

interface Entry {
  mode: number;
  oid: string;
}

function readTree(objects: ObjectStore, oid: string | null): Map<string, Entry> {
  const out = new Map<string, Entry>();
  if (!oid) return out;
  const obj = objects.read(oid);
  if (!obj || obj.type !== 'tree') throw new Error(`tree ${oid} is missing or not a tree`);
  // latin1 keeps every byte of a name distinct; paths are shown as UTF-8 later.
  for (const e of parseTree(obj.data)) out.set(e.name.toString('latin1'), { mode: e.mode, oid: e.oid });
  return out;
}

const isTree = (e: Entry | undefined): e is Entry => e !== undefined && e.mode === MODE_TREE;

/** Compares two trees (null = empty tree). */
export function diffTrees(objects: ObjectStore, oldTree: string | null, newTree: string | null, budget: DiffBudget, limits: DiffLimits): DiffStat {
  const stat: DiffStat = { files: [], added: 0, removed: 0, truncated: false };
  const found: { path: string; old: Entry | null; new: Entry | null }[] = [];

  const walk = (a: string | null, b: string | null, prefix: string): void => {
    if (stat.truncated) return;
    const ta = readTree(objects, a);
    const tb = readTree(objects, b);
    const names = new Set([...ta.keys(), ...tb.keys()]);
    for (const name of [...names].sort()) {
      const o = ta.get(name);
      const n = tb.get(name);
      if (o && n && o.oid === n.oid && o.mode === n.mode) continue;
      const path = prefix + name;
      if (isTree(o) && isTree(n)) { walk(o.oid, n.oid, path + '/'); continue; }
      if (isTree(o)) walk(o.oid, null, path + '/');
      if (isTree(n)) walk(null, n.oid, path + '/');
      const of = o && !isTree(o) ? o : null;
      const nf = n && !isTree(n) ? n : null;
      if (!of && !nf) continue;
      if (budget.files <= 0) { stat.truncated = true; return; }
      budget.files--;
      found.push({ path, old: of, new: nf });
    }
  };
  walk(oldTree, newTree, '');

  // Byte order of the full path, as git lists them (a file "a" before "a.c" before "a/x").
  found.sort((x, y) => (x.path < y.path ? -1 : x.path > y.path ? 1 : 0));
  for (const f of found) {
    const fs = fileStat(objects, f.path, f.old, f.new, budget, limits);
    stat.files.push(fs);
    stat.added += fs.added;
    stat.removed += fs.removed;
  }
  return stat;
}

function fileStat(objects: ObjectStore, rawPath: string, o: Entry | null, n: Entry | null, budget: DiffBudget, limits: DiffLimits): FileStat {
  const path = Buffer.from(rawPath, 'latin1').toString('utf8');
  const status: FileStatus = !o ? 'A' : !n ? 'D' : o.oid === n.oid ? 'm' : 'M';
  const base: FileStat = { path, status, added: 0, removed: 0, binary: false, oldSize: 0, newSize: 0 };
  if (status === 'm') return base;
  // A submodule is one line, "Subproject commit <id>"; a file beside it (a type change) counts its lines.
  if (o?.mode === MODE_GITLINK || n?.mode === MODE_GITLINK) {
    const side = (e: Entry | null): number | null => {
      if (!e) return 0;
      if (e.mode === MODE_GITLINK) return 1;
      const blob = readBlob(objects, e.oid, budget, limits);
      return blob.data === null || looksBinary(blob.data) ? null : countLines(blob.data);
    };
    const removed = side(o);
    const added = side(n);
    if (removed === null || added === null) return { ...base, binary: true };
    return { ...base, added, removed };
  }
  const a = o ? readBlob(objects, o.oid, budget, limits) : { data: Buffer.alloc(0), size: 0 };
  const b = n ? readBlob(objects, n.oid, budget, limits) : { data: Buffer.alloc(0), size: 0 };
  base.oldSize = a.size;
  base.newSize = b.size;
  if (a.data === null || b.data === null || looksBinary(a.data) || looksBinary(b.data)) return { ...base, binary: true };
  const { added, removed } = lineChanges(a.data, b.data);
  return { ...base, added, removed };
}

/** A blob's bytes, or null (with its size) when it is too large or over budget. */
function readBlob(objects: ObjectStore, oid: string, budget: DiffBudget, limits: DiffLimits): { data: Buffer | null; size: number } {
  const h = objects.header(oid);
  if (!h) throw new Error(`blob ${oid} is missing`);
  if (h.size > limits.maxBlobBytes || h.size > budget.blobBytes) {
    budget.blobBytes = Math.max(0, budget.blobBytes - Math.min(h.size, limits.maxBlobBytes));
    return { data: null, size: h.size };
  }
  const obj = objects.read(oid);
  if (!obj) throw new Error(`blob ${oid} is missing`);
  budget.blobBytes -= obj.data.length;
  return { data: obj.data, size: obj.data.length };
}

export function looksBinary(data: Buffer): boolean {
  return data.subarray(0, BINARY_PROBE).includes(0);
}

/** Lines as git counts them: a last line without a newline still counts. */
export function countLines(data: Buffer): number {
  if (data.length === 0) return 0;
  let n = 0;
  for (let i = data.indexOf(10); i >= 0; i = data.indexOf(10, i + 1)) n++;
  return data[data.length - 1] === 10 ? n : n + 1;
}

/** Splits into lines (each with its newline, so "a" and "a\n" differ as they do for git) and interns them. */
function tokenize(data: Buffer, ids: Map<string, number>): Int32Array {
  const out = new Int32Array(countLines(data));
  let start = 0;
  for (let i = 0; i < out.length; i++) {
    const nl = data.indexOf(10, start);
    const end = nl < 0 ? data.length : nl + 1;
    const key = data.toString('latin1', start, end);
    let id = ids.get(key);
    if (id === undefined) { id = ids.size; ids.set(key, id); }
    out[i] = id;
    start = end;
  }
  return out;
}

/** Lines added and removed between two texts. */
export function lineChanges(oldData: Buffer, newData: Buffer): { added: number; removed: number } {
  const ids = new Map<string, number>();
  let a = tokenize(oldData, ids);
  let b = tokenize(newData, ids);
  let lo = 0;
  while (lo < a.length && lo < b.length && a[lo] === b[lo]) lo++;
  let ea = a.length;
  let eb = b.length;
  while (ea > lo && eb > lo && a[ea - 1] === b[eb - 1]) { ea--; eb--; }
  a = a.subarray(lo, ea);
  b = b.subarray(lo, eb);
  const d = editDistance(a, b, MAX_DIFF_WORK);
  if (d === null) return contentChanges(a, b);
  const growth = b.length - a.length;
  return { added: (d + growth) / 2, removed: (d - growth) / 2 };
}

/**
 * Length of a shortest edit script (insertions + deletions) by Myers'
 * greedy algorithm, or null when it would take more than maxWork steps.
 */
export function editDistance(a: Int32Array, b: Int32Array, maxWork: number): number | null {
  const n = a.length;
  const m = b.length;
  if (n === 0 || m === 0) return n + m;
  // Round d costs at least d + 1 steps, so maxWork also bounds d (and the array).
  const dMax = Math.min(n + m, Math.ceil(Math.sqrt(2 * maxWork)) + 1);
  const off = dMax + 1;
  const v = new Int32Array(2 * dMax + 3);
  let work = 0;
  for (let d = 0; d <= dMax; d++) {
    for (let k = -d; k <= d; k += 2) {
      let x = k === -d || (k !== d && v[off + k - 1]! < v[off + k + 1]!) ? v[off + k + 1]! : v[off + k - 1]! + 1;
      let y = x - k;
      while (x < n && y < m && a[x] === b[y]) { x++; y++; work++; }
      v[off + k] = x;
      if (x >= n && y >= m) return d;
      if (++work > maxWork) return null;
    }
  }
  return null;
}

/** Fallback for huge diffs: lines that lost or gained copies, ignoring order. */
function contentChanges(a: Int32Array, b: Int32Array): { added: number; removed: number } {
  const count = new Map<number, number>();
  for (const x of a) count.set(x, (count.get(x) ?? 0) + 1);
  let added = 0;
  for (const y of b) {
    const c = count.get(y) ?? 0;
    if (c > 0) count.set(y, c - 1); else added++;
  }
  let removed = 0;
  for (const c of count.values()) removed += c;
  return { added, removed };
}
