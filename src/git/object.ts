/**
 * Git objects: type names and pack type codes, hashing, and parsers for
 * commit, tree and tag that are strict enough to walk history safely (the
 * fsck-grade checks for incoming objects live in their own module).
 */
import { createHash } from 'node:crypto';

export type ObjectType = 'commit' | 'tree' | 'blob' | 'tag';

/** Pack entry type codes (gitformat-pack(5)). */
export const OBJ_COMMIT = 1;
export const OBJ_TREE = 2;
export const OBJ_BLOB = 3;
export const OBJ_TAG = 4;
export const OBJ_OFS_DELTA = 6;
export const OBJ_REF_DELTA = 7;

const TYPE_NAMES: readonly (ObjectType | null)[] = [null, 'commit', 'tree', 'blob', 'tag', null, null, null];

export function typeName(code: number): ObjectType {
  const name = TYPE_NAMES[code];
  if (!name) throw new Error(`not a base object type code: ${code}`);
  return name;
}

export function typeCode(type: ObjectType): number {
  switch (type) {
    case 'commit': return OBJ_COMMIT;
    case 'tree': return OBJ_TREE;
    case 'blob': return OBJ_BLOB;
    case 'tag': return OBJ_TAG;
  }
}

export function isObjectType(s: string): s is ObjectType {
  return s === 'commit' || s === 'tree' || s === 'blob' || s === 'tag';
}

export const ZERO_OID = '0'.repeat(40);
const OID_RE = /^[0-9a-f]{40}$/;

/** True for a 40-digit lower-case hex object id. */
export function isOid(s: string): boolean {
  return OID_RE.test(s);
}

/** The object id git gives `data` stored as `type`. */
export function hashObject(type: ObjectType, data: Buffer): string {
  return createHash('sha1').update(`${type} ${data.length}\0`, 'latin1').update(data).digest('hex');
}

/** A malformed object: the repository (or a client's pack) is corrupt. */
export class ObjectFormatError extends Error {
  override name = 'ObjectFormatError';
}

export interface Signature {
  name: string;
  email: string;
  /** Seconds since the epoch. */
  time: number;
  /** As written, e.g. "+0200". */
  tz: string;
}

export interface Commit {
  tree: string;
  parents: string[];
  author: Signature | null;
  committer: Signature | null;
  /** Committer time (0 when absent or unparsable), what revision walks order by. */
  date: number;
  message: Buffer;
}

export interface Tag {
  object: string;
  type: ObjectType;
  tag: string;
  tagger: Signature | null;
  date: number;
  message: Buffer;
}

const SIG_RE = /^(.*) <([^<>]*)> (\d+) ([+-]\d{4})$/;

export function parseSignature(text: string): Signature | null {
  const m = SIG_RE.exec(text);
  if (!m) return null;
  return { name: m[1]!, email: m[2]!, time: Number(m[3]), tz: m[4]! };
}

/** Splits the header of a commit or tag into (key, value) pairs and the message. */
function headerLines(data: Buffer, what: string): { fields: [string, string][]; message: Buffer } {
  let end = data.indexOf('\n\n', 0, 'latin1');
  const messageStart = end < 0 ? data.length : end + 2;
  if (end < 0) end = data.length;
  const fields: [string, string][] = [];
  for (const line of data.toString('utf8', 0, end).split('\n')) {
    if (line.startsWith(' ')) {
      // Continuation of a multi-line field (gpgsig, mergetag).
      const last = fields[fields.length - 1];
      if (!last) throw new ObjectFormatError(`${what}: continuation line before any header`);
      last[1] += '\n' + line.slice(1);
      continue;
    }
    const sp = line.indexOf(' ');
    if (sp <= 0) throw new ObjectFormatError(`${what}: malformed header line ${JSON.stringify(line.slice(0, 80))}`);
    fields.push([line.slice(0, sp), line.slice(sp + 1)]);
  }
  return { fields, message: data.subarray(messageStart) };
}

export function parseCommit(data: Buffer): Commit {
  const { fields, message } = headerLines(data, 'commit');
  let i = 0;
  const first = fields[i++];
  if (!first || first[0] !== 'tree' || !isOid(first[1])) throw new ObjectFormatError('commit: missing or bad tree line');
  const parents: string[] = [];
  while (i < fields.length && fields[i]![0] === 'parent') {
    const p = fields[i++]![1];
    if (!isOid(p)) throw new ObjectFormatError('commit: bad parent line');
    parents.push(p);
  }
  let author: Signature | null = null;
  let committer: Signature | null = null;
  for (; i < fields.length; i++) {
    const [k, v] = fields[i]!;
    if (k === 'author' && !author) author = parseSignature(v);
    else if (k === 'committer' && !committer) committer = parseSignature(v);
    else if (k === 'tree' || k === 'parent') throw new ObjectFormatError(`commit: misplaced ${k} line`);
  }
  return { tree: first[1], parents, author, committer, date: committer?.time ?? 0, message };
}

export function parseTag(data: Buffer): Tag {
  const { fields, message } = headerLines(data, 'tag');
  const [o, t, n] = fields;
  if (!o || o[0] !== 'object' || !isOid(o[1])) throw new ObjectFormatError('tag: missing or bad object line');
  if (!t || t[0] !== 'type' || !isObjectType(t[1])) throw new ObjectFormatError('tag: missing or bad type line');
  if (!n || n[0] !== 'tag' || n[1].length === 0) throw new ObjectFormatError('tag: missing tag line');
  const tg = fields.find(([k]) => k === 'tagger');
  const tagger = tg ? parseSignature(tg[1]) : null;
  return { object: o[1], type: t[1], tag: n[1], tagger, date: tagger?.time ?? 0, message };
}

export interface TreeEntry {
  mode: number;
  name: Buffer;
  oid: string;
}

export const MODE_TREE = 0o40000;
export const MODE_GITLINK = 0o160000;

/**
 * Walks tree entries without allocating strings: calls fn(mode, nameStart,
 * nameEnd, oidOffset) for each. The hot path of every object walk.
 */
export function forEachTreeEntry(
  data: Buffer,
  fn: (mode: number, nameStart: number, nameEnd: number, oidOffset: number) => void,
): void {
  let p = 0;
  const n = data.length;
  while (p < n) {
    let mode = 0;
    let c = data[p]!;
    if (c === 0x20) throw new ObjectFormatError('tree: empty mode');
    while (c !== 0x20) {
      if (c < 0x30 || c > 0x37) throw new ObjectFormatError('tree: bad mode');
      mode = mode * 8 + (c - 0x30);
      if (++p >= n) throw new ObjectFormatError('tree: truncated entry');
      c = data[p]!;
    }
    const nameStart = ++p;
    const nul = data.indexOf(0, p);
    if (nul < 0 || nul === nameStart) throw new ObjectFormatError('tree: bad entry name');
    const oidOffset = nul + 1;
    if (oidOffset + 20 > n) throw new ObjectFormatError('tree: truncated object id');
    fn(mode, nameStart, nul, oidOffset);
    p = oidOffset + 20;
  }
}

export function parseTree(data: Buffer): TreeEntry[] {
  const out: TreeEntry[] = [];
  forEachTreeEntry(data, (mode, s, e, o) => {
    out.push({ mode, name: data.subarray(s, e), oid: data.toString('hex', o, o + 20) });
  });
  return out;
}
