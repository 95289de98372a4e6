/**
 * The checks `git fsck --strict` makes on single objects (git's fsck.c as of
 * git 2.39), applied to every object a client pushes before it becomes
 * visible: whatever we accept, git's own fsck must find nothing wrong with.
 * Messages use git's ids (badEmail, hasDotgit, ...). Where git only informs
 * (badFilemode, badTagName, missingTaggerEntry, ...) we accept, except that
 * tree entry modes git would canonicalise silently are refused: no tool
 * that matters writes them.
 */
import type { ObjectType } from './object';

export class FsckError extends Error {
  override name = 'FsckError';
  constructor(readonly oid: string, readonly id: string, detail: string) {
    super(`object ${oid}: ${id}: ${detail}`);
  }
}

/** Blobs named .gitmodules / .gitattributes in checked trees; their content is checked once all objects are in. */
export interface SpecialBlobs {
  gitmodules: Set<string>;
  gitattributes: Set<string>;
}

export function newSpecialBlobs(): SpecialBlobs {
  return { gitmodules: new Set(), gitattributes: new Set() };
}

/** Throws FsckError when `data` is not an object of `type` that git fsck --strict accepts. */
export function fsckObject(oid: string, type: ObjectType, data: Buffer, special: SpecialBlobs): void {
  switch (type) {
    case 'commit': return fsckCommit(oid, data);
    case 'tag': return fsckTag(oid, data);
    case 'tree': return fsckTree(oid, data, special);
    case 'blob': return;
  }
}

const NL = 0x0a;
const SP = 0x20;

function isDigit(c: number | undefined): boolean {
  return c !== undefined && c >= 0x30 && c <= 0x39;
}

/** Header lines must end in LF and hold no NUL (git stops parsing here if not). */
function verifyHeaders(oid: string, data: Buffer): void {
  for (let i = 0; i < data.length; i++) {
    const c = data[i];
    if (c === 0) throw new FsckError(oid, 'nulInHeader', `unterminated header: NUL at offset ${i}`);
    if (c === NL && data[i + 1] === NL) return;
  }
  if (data.length > 0 && data[data.length - 1] === NL) return;
  throw new FsckError(oid, 'unterminatedHeader', 'unterminated header');
}

function startsWith(data: Buffer, at: number, prefix: string): boolean {
  if (at + prefix.length > data.length) return false;
  for (let i = 0; i < prefix.length; i++) if (data[at + i] !== prefix.charCodeAt(i)) return false;
  return true;
}

/** 40 lower-case hex digits then LF at `at`; lower case only, which is all git ever writes. */
function hexLine(data: Buffer, at: number): boolean {
  if (at + 41 > data.length || data[at + 40] !== NL) return false;
  for (let i = at; i < at + 40; i++) {
    const c = data[i]!;
    if (!((c >= 0x30 && c <= 0x39) || (c >= 0x61 && c <= 0x66))) return false;
  }
  return true;
}

const INT64_MAX = (1n << 63n) - 1n;

/** An author/committer/tagger value starting at `at`; returns the position after its LF. */
function fsckIdent(oid: string, data: Buffer, at: number): number {
  const eol = data.indexOf(NL, at);
  const end = eol < 0 ? data.length : eol;
  const next = eol < 0 ? data.length : eol + 1;
  const fail = (id: string, what: string): never => { throw new FsckError(oid, id, `invalid author/committer line - ${what}`); };
  let p = at;
  if (data[p] === 0x3c) fail('missingNameBeforeEmail', 'missing space before email');
  while (p < end && data[p] !== 0x3c && data[p] !== 0x3e) p++;
  if (data[p] === 0x3e) fail('badName', 'bad name');
  if (p >= end || data[p] !== 0x3c) fail('missingEmail', 'missing email');
  if (data[p - 1] !== SP) fail('missingSpaceBeforeEmail', 'missing space before email');
  p++;
  while (p < end && data[p] !== 0x3c && data[p] !== 0x3e) p++;
  if (p >= end || data[p] !== 0x3e) fail('badEmail', 'bad email');
  p++;
  if (data[p] !== SP) fail('missingSpaceBeforeDate', 'missing space before date');
  p++;
  while (data[p] === SP || data[p] === 0x09) p++;
  if (!isDigit(data[p])) fail('badDate', 'bad date');
  if (data[p] === 0x30 && data[p + 1] !== SP) fail('zeroPaddedDate', 'zero-padded date');
  const digits = p;
  while (isDigit(data[p])) p++;
  if (BigInt(data.toString('latin1', digits, p)) > INT64_MAX) fail('badDateOverflow', 'date causes integer overflow');
  if (data[p] !== SP) fail('badDate', 'bad date');
  p++;
  const sign = data[p];
  if ((sign !== 0x2b && sign !== 0x2d) || !isDigit(data[p + 1]) || !isDigit(data[p + 2]) ||
      !isDigit(data[p + 3]) || !isDigit(data[p + 4]) || data[p + 5] !== NL) {
    fail('badTimezone', 'bad time zone');
  }
  return next;
}

function fsckCommit(oid: string, data: Buffer): void {
  verifyHeaders(oid, data);
  let p = 0;
  if (!startsWith(data, p, 'tree ')) throw new FsckError(oid, 'missingTree', "invalid format - expected 'tree' line");
  if (!hexLine(data, p + 5)) throw new FsckError(oid, 'badTreeSha1', "invalid 'tree' line format - bad sha1");
  p += 46;
  while (startsWith(data, p, 'parent ')) {
    if (!hexLine(data, p + 7)) throw new FsckError(oid, 'badParentSha1', "invalid 'parent' line format - bad sha1");
    p += 48;
  }
  let authors = 0;
  while (startsWith(data, p, 'author ')) {
    authors++;
    p = fsckIdent(oid, data, p + 7);
  }
  if (authors < 1) throw new FsckError(oid, 'missingAuthor', "invalid format - expected 'author' line");
  if (authors > 1) throw new FsckError(oid, 'multipleAuthors', "invalid format - multiple 'author' lines");
  if (!startsWith(data, p, 'committer ')) throw new FsckError(oid, 'missingCommitter', "invalid format - expected 'committer' line");
  fsckIdent(oid, data, p + 10);
  if (data.indexOf(0) >= 0) throw new FsckError(oid, 'nulInCommit', 'NUL byte in the commit object body');
}

const OBJECT_TYPES = new Set(['commit', 'tree', 'blob', 'tag']);

function fsckTag(oid: string, data: Buffer): void {
  verifyHeaders(oid, data);
  let p = 0;
  if (!startsWith(data, p, 'object ')) throw new FsckError(oid, 'missingObject', "invalid format - expected 'object' line");
  if (!hexLine(data, p + 7)) throw new FsckError(oid, 'badObjectSha1', "invalid 'object' line format - bad sha1");
  p += 48;
  if (!startsWith(data, p, 'type ')) throw new FsckError(oid, 'missingTypeEntry', "invalid format - expected 'type' line");
  p += 5;
  let eol = data.indexOf(NL, p);
  if (eol < 0) throw new FsckError(oid, 'missingType', "invalid format - unexpected end after 'type' line");
  if (!OBJECT_TYPES.has(data.toString('latin1', p, eol))) throw new FsckError(oid, 'badType', "invalid 'type' value");
  p = eol + 1;
  if (!startsWith(data, p, 'tag ')) throw new FsckError(oid, 'missingTagEntry', "invalid format - expected 'tag' line");
  p += 4;
  eol = data.indexOf(NL, p);
  if (eol < 0) throw new FsckError(oid, 'missingTag', "invalid format - unexpected end after 'type' line");
  p = eol + 1;
  // A missing tagger is only informational (early tags had none).
  if (startsWith(data, p, 'tagger ')) fsckIdent(oid, data, p + 7);
}

// --- trees -------------------------------------------------------------------

const S_IFMT = 0o170000;
const S_IFREG = 0o100000;
const S_IFDIR = 0o040000;
const S_IFLNK = 0o120000;
const S_IFGITLINK = 0o160000;
const ACCEPTED_MODES = new Set([0o100644, 0o100755, 0o100664, S_IFLNK, S_IFDIR, S_IFGITLINK]);

/** The object type a tree entry of `mode` names, or null for a submodule commit (not ours to have). */
export function entryType(mode: number): 'tree' | 'blob' | null {
  const fmt = mode & S_IFMT;
  if (fmt === S_IFDIR) return 'tree';
  if (fmt === S_IFREG || fmt === S_IFLNK) return 'blob';
  return null;
}

/** Next code point of UTF-8 `s` at `pos.i`, skipping those HFS+ ignores; 0 for malformed input. */
function nextHfsChar(s: Buffer, pos: { i: number }): number {
  for (;;) {
    const cp = nextUtf8(s, pos);
    if (cp < 0) return 0;
    switch (cp) {
      case 0x200c: case 0x200d: case 0x200e: case 0x200f:
      case 0x202a: case 0x202b: case 0x202c: case 0x202d: case 0x202e:
      case 0x206a: case 0x206b: case 0x206c: case 0x206d: case 0x206e: case 0x206f:
      case 0xfeff:
        continue;
    }
    return cp;
  }
}

/** Decodes one UTF-8 character (0 at the end); -1 when malformed. */
function nextUtf8(s: Buffer, pos: { i: number }): number {
  if (pos.i >= s.length) return 0;
  const c = s[pos.i]!;
  if (c < 0x80) { pos.i++; return c; }
  let need: number, cp: number, min: number;
  if ((c & 0xe0) === 0xc0) { need = 1; cp = c & 0x1f; min = 0x80; }
  else if ((c & 0xf0) === 0xe0) { need = 2; cp = c & 0x0f; min = 0x800; }
  else if ((c & 0xf8) === 0xf0) { need = 3; cp = c & 0x07; min = 0x10000; }
  else return -1;
  for (let k = 1; k <= need; k++) {
    const d = s[pos.i + k];
    if (d === undefined || (d & 0xc0) !== 0x80) return -1;
    cp = (cp << 6) | (d & 0x3f);
  }
  if (cp < min || cp > 0x10ffff || (cp >= 0xd800 && cp <= 0xdfff)) return -1;
  pos.i += need + 1;
  return cp;
}

function isDirSep(c: number): boolean {
  return c === 0x2f;
}

/** HFS+ would open `name` as "." + needle (case-folded, ignorable code points dropped). */
function isHfsDot(name: Buffer, needle: string): boolean {
  const pos = { i: 0 };
  if (nextHfsChar(name, pos) !== 0x2e) return false;
  for (let k = 0; k < needle.length; k++) {
    const c = nextHfsChar(name, pos);
    if (c > 127) return false;
    if (String.fromCharCode(c).toLowerCase() !== needle[k]) return false;
  }
  const c = nextHfsChar(name, pos);
  return c === 0 || isDirSep(c);
}

/** NTFS would open `name` (from `at`, ending at NUL/end, "\\" or "/" separating) as .git. */
function isNtfsDotgit(name: Buffer, at: number): boolean {
  const ch = (i: number): number => (i < name.length ? name[i]! : 0);
  let i = at;
  const lower = (c: number): number => (c >= 0x41 && c <= 0x5a ? c + 32 : c);
  let c = ch(i++);
  if (c === 0x2e) {
    if (lower(ch(i++)) !== 0x67 || lower(ch(i++)) !== 0x69 || lower(ch(i++)) !== 0x74) return false;
  } else if (lower(c) === 0x67) {
    if (lower(ch(i++)) !== 0x69 || lower(ch(i++)) !== 0x74 || ch(i++) !== 0x7e || ch(i++) !== 0x31) return false;
  } else {
    return false;
  }
  for (;;) {
    c = ch(i++);
    if (c === 0 || c === 0x5c || c === 0x2f || c === 0x3a) return true;
    if (c !== 0x2e && c !== SP) return false;
  }
}

/** NTFS would open `name` as "." + dotName: trailing dots/spaces, alternate streams and 8.3 short names. */
function isNtfsDot(name: Buffer, at: number, dotName: string, shortPrefix: string): boolean {
  const ch = (i: number): number => (at + i < name.length ? name[at + i]! : 0);
  const lower = (c: number): number => (c >= 0x41 && c <= 0x5a ? c + 32 : c);
  const onlySpacesAndPeriods = (i: number): boolean => {
    for (;;) {
      const c = ch(i++);
      if (c === 0 || c === 0x3a) return true;
      if (c !== SP && c !== 0x2e) return false;
    }
  };
  const caseEq = (from: number, text: string): boolean => {
    for (let k = 0; k < text.length; k++) if (lower(ch(from + k)) !== text.charCodeAt(k)) return false;
    return true;
  };
  if (ch(0) === 0x2e && caseEq(1, dotName)) return onlySpacesAndPeriods(dotName.length + 1);
  if (caseEq(0, dotName.slice(0, 6)) && ch(6) === 0x7e && ch(7) >= 0x31 && ch(7) <= 0x34) return onlySpacesAndPeriods(8);
  let sawTilde = false;
  for (let i = 0; i < 8; i++) {
    const c = ch(i);
    if (c === 0) return false;
    if (sawTilde) {
      if (!isDigit(c)) return false;
    } else if (c === 0x7e) {
      const d = ch(++i);
      if (d < 0x31 || d > 0x39) return false;
      sawTilde = true;
    } else if (i >= 6) {
      return false;
    } else if (c & 0x80) {
      return false;
    } else if (lower(c) !== shortPrefix.charCodeAt(i)) {
      return false;
    }
  }
  return onlySpacesAndPeriods(8);
}

function isDotgit(name: Buffer): boolean {
  return isHfsDot(name, 'git') || isNtfsDotgit(name, 0);
}

function isDotgitmodules(name: Buffer, at = 0): boolean {
  return (at === 0 && isHfsDot(name, 'gitmodules')) || isNtfsDot(name, at, 'gitmodules', 'gi7eba');
}

function isDotgitattributes(name: Buffer): boolean {
  return isHfsDot(name, 'gitattributes') || isNtfsDot(name, 0, 'gitattributes', 'gi7d29');
}

function isLessThanSlash(c: number): boolean {
  return c > 0 && c < 0x2f;
}

/**
 * Tree entries sort by name with directories compared as if their name
 * ended in "/"; a file and a directory of the same name are duplicates even
 * when other names sort between them ("foo", "foo.bar", "foo/"). Names are
 * [start, end) ranges of `d`; `candidates` holds file names that a later
 * directory could duplicate.
 */
function verifyOrdered(d: Buffer, mode1: number, s1: number, e1: number, mode2: number, s2: number, e2: number, candidates: number[]): 'ok' | 'unordered' | 'dups' {
  const len = Math.min(e1 - s1, e2 - s2);
  let k = 0;
  while (k < len && d[s1 + k] === d[s2 + k]) k++;
  if (k < len) return d[s1 + k]! < d[s2 + k]! ? 'ok' : 'unordered';
  let c1 = s1 + len < e1 ? d[s1 + len]! : 0;
  let c2 = s2 + len < e2 ? d[s2 + len]! : 0;
  if (c1 === 0 && c2 === 0) return 'dups';
  if (c1 === 0 && (mode1 & S_IFMT) === S_IFDIR) c1 = 0x2f;
  if (c2 === 0 && (mode2 & S_IFMT) === S_IFDIR) c2 = 0x2f;
  if (c1 === 0 && isLessThanSlash(c2)) {
    candidates.push(s1, e1);
  } else if (c2 === 0x2f && isLessThanSlash(c1)) {
    while (candidates.length > 0) {
      const fe = candidates.pop()!;
      const fs = candidates.pop()!;
      const flen = fe - fs;
      if (flen > e2 - s2 || d.compare(d, fs, fe, s2, s2 + flen) !== 0) continue;
      if (flen === e2 - s2) return 'dups';
      if (isLessThanSlash(d[s2 + flen]!)) {
        candidates.push(fs, fe);
        break;
      }
    }
  }
  return c1 < c2 ? 'ok' : 'unordered';
}

/**
 * First bytes of the names that HFS+ or NTFS may take for .git,
 * .gitmodules or .gitattributes: ".", "g", "G", "~" (8.3 short names), and
 * the lead bytes of the code points HFS+ ignores (U+200C..U+206F, U+FEFF).
 */
const MAY_BE_SPECIAL = new Uint8Array(256);
for (const c of ['.', 'g', 'G', '~']) MAY_BE_SPECIAL[c.charCodeAt(0)] = 1;
MAY_BE_SPECIAL[0xe2] = 1;
MAY_BE_SPECIAL[0xef] = 1;

function fsckTree(oid: string, data: Buffer, special: SpecialBlobs): void {
  let flags = 0;
  const candidates: number[] = [];
  let prevMode = 0;
  let prevStart = -1;
  let prevEnd = -1;
  let p = 0;
  const bad = (): never => { throw new FsckError(oid, 'badTree', 'cannot be parsed as a tree'); };
  while (p < data.length) {
    // Entry: octal mode, space, name, NUL, 20-byte id.
    if (data.length - p < 20 + 3) bad();
    const modeStart = p;
    let mode = 0;
    while (p < data.length && data[p] !== SP) {
      const c = data[p]!;
      if (c < 0x30 || c > 0x37) bad();
      mode = mode * 8 + (c - 0x30);
      if (mode > 0o7777777) bad();
      p++;
    }
    if (p === modeStart || p >= data.length) bad();
    const nameStart = ++p;
    const nul = data.indexOf(0, nameStart);
    if (nul < 0 || nul === nameStart || nul + 21 > data.length) bad();
    const oidAt = nul + 1;
    p = nul + 21;

    let zero = true;
    for (let k = oidAt; k < oidAt + 20; k++) if (data[k] !== 0) { zero = false; break; }
    if (zero) flags |= F_NULL_SHA1;
    const slash = data.indexOf(0x2f, nameStart);
    if (slash >= 0 && slash < nul) flags |= F_FULL_PATHNAME;
    const nameLen = nul - nameStart;
    const c0 = data[nameStart]!;
    if (nameLen === 1 && c0 === 0x2e) flags |= F_HAS_DOT;
    if (nameLen === 2 && c0 === 0x2e && data[nameStart + 1] === 0x2e) flags |= F_HAS_DOTDOT;
    if (data[modeStart] === 0x30) flags |= F_ZERO_PADDED;
    if (!ACCEPTED_MODES.has(mode)) flags |= F_BAD_MODE;
    const isLink = (mode & S_IFMT) === S_IFLNK;
    const backslash = data.indexOf(0x5c, nameStart);
    const hasBackslash = backslash >= 0 && backslash < nul;
    if (MAY_BE_SPECIAL[c0] || hasBackslash) {
      const name = data.subarray(nameStart, nul);
      const hex = (): string => data.toString('hex', oidAt, oidAt + 20);
      if (isDotgit(name)) flags |= F_HAS_DOTGIT;
      if (isDotgitmodules(name)) {
        if (isLink) flags |= F_GITMODULES_SYMLINK;
        else special.gitmodules.add(hex());
      }
      if (isDotgitattributes(name) && !isLink) special.gitattributes.add(hex());
      // Windows reads "\" as a separator: check each component after one.
      for (let b = name.indexOf(0x5c); b >= 0; b = name.indexOf(0x5c, b + 1)) {
        if (isNtfsDotgit(name, b + 1)) flags |= F_HAS_DOTGIT;
        if (isDotgitmodules(name, b + 1)) {
          if (isLink) flags |= F_GITMODULES_SYMLINK;
          else special.gitmodules.add(hex());
        }
      }
    }
    if (prevStart >= 0) {
      const order = verifyOrdered(data, prevMode, prevStart, prevEnd, mode, nameStart, nul, candidates);
      if (order === 'unordered') flags |= F_NOT_SORTED;
      else if (order === 'dups') flags |= F_DUPLICATES;
    }
    prevMode = mode;
    prevStart = nameStart;
    prevEnd = nul;
  }
  if (flags === 0) return;
  for (const [bit, id, text] of TREE_MESSAGES) {
    if (flags & bit) throw new FsckError(oid, id, text);
  }
}

const F_NULL_SHA1 = 1;
const F_FULL_PATHNAME = 2;
const F_HAS_DOT = 4;
const F_HAS_DOTDOT = 8;
const F_HAS_DOTGIT = 16;
const F_ZERO_PADDED = 32;
const F_BAD_MODE = 64;
const F_DUPLICATES = 128;
const F_NOT_SORTED = 256;
const F_GITMODULES_SYMLINK = 512;

/** In git's order of reporting. */
const TREE_MESSAGES: [number, string, string][] = [
  [F_NULL_SHA1, 'nullSha1', 'contains entries pointing to null sha1'],
  [F_FULL_PATHNAME, 'fullPathname', 'contains full pathnames'],
  [F_HAS_DOT, 'hasDot', "contains '.'"],
  [F_HAS_DOTDOT, 'hasDotdot', "contains '..'"],
  [F_HAS_DOTGIT, 'hasDotgit', "contains '.git'"],
  [F_ZERO_PADDED, 'zeroPaddedFilemode', 'contains zero-padded file modes'],
  [F_BAD_MODE, 'badFilemode', 'contains bad file modes'],
  [F_DUPLICATES, 'duplicateEntries', 'contains duplicate file entries'],
  [F_NOT_SORTED, 'treeNotSorted', 'not properly sorted'],
  [F_GITMODULES_SYMLINK, 'gitmodulesSymlink', '.gitmodules is a symbolic link'],
];

// --- .gitmodules and .gitattributes --------------------------------------------

/** Largest .gitattributes git reads, and its longest line. */
const ATTR_MAX_FILE_SIZE = 100 * 1024 * 1024;
const ATTR_MAX_LINE_LENGTH = 2048;

/**
 * Checks a blob that some tree names .gitmodules or .gitattributes. `obj`
 * is null when the object is missing; `type` is what it really is.
 */
export function fsckSpecialBlob(
  oid: string, kind: 'gitmodules' | 'gitattributes', obj: { type: ObjectType; data: Buffer } | null,
): void {
  if (!obj) throw new FsckError(oid, `${kind}Missing`, `unable to read .${kind} blob`);
  if (obj.type !== 'blob') throw new FsckError(oid, `${kind}Blob`, `non-blob found at .${kind}`);
  if (kind === 'gitattributes') {
    const data = obj.data;
    if (data.length > ATTR_MAX_FILE_SIZE) throw new FsckError(oid, 'gitattributesLarge', '.gitattributes too large to parse');
    const end = data.indexOf(0) < 0 ? data.length : data.indexOf(0);
    for (let p = 0; p < end;) {
      let eol = data.indexOf(NL, p);
      if (eol < 0 || eol > end) eol = end;
      if (eol - p >= ATTR_MAX_LINE_LENGTH) throw new FsckError(oid, 'gitattributesLineLength', '.gitattributes has too long lines to parse');
      p = eol + 1;
    }
    return;
  }
  for (const { section, subsection, key, value } of parseConfig(obj.data)) {
    if (section !== 'submodule' || subsection === null) continue;
    if (!submoduleNameOk(subsection)) throw new FsckError(oid, 'gitmodulesName', `disallowed submodule name: ${subsection}`);
    if (key === 'url' && value !== null && !submoduleUrlOk(value)) throw new FsckError(oid, 'gitmodulesUrl', `disallowed submodule url: ${value}`);
    if (key === 'path' && value !== null && value.startsWith('-')) throw new FsckError(oid, 'gitmodulesPath', `disallowed submodule path: ${value}`);
    if (key === 'update' && value !== null && value.startsWith('!')) throw new FsckError(oid, 'gitmodulesUpdate', `disallowed submodule update setting: ${value}`);
  }
}

function isXplatformSep(c: string | undefined): boolean {
  return c === '/' || c === '\\';
}

/** Submodule names become paths under .git/modules: no empty name, no ".." component. */
export function submoduleNameOk(name: string): boolean {
  if (name.length === 0) return false;
  for (let i = 0; i <= name.length; i++) {
    if (i === 0 || isXplatformSep(name[i - 1])) {
      if (name[i] === '.' && name[i + 1] === '.' && (i + 2 === name.length || isXplatformSep(name[i + 2]))) return false;
    }
  }
  return true;
}

function urlDecode(s: string): string {
  return Buffer.from(s.replace(/%([0-9a-fA-F]{2})/g, (_m, h: string) => String.fromCharCode(parseInt(h, 16))), 'latin1').toString('latin1');
}

function startsWithDotSlash(s: string): boolean {
  return s[0] === '.' && (s[1] === '/' || s[1] === '\\');
}

function startsWithDotDotSlash(s: string): boolean {
  return s[0] === '.' && startsWithDotSlash(s.slice(1));
}

/** git's check_submodule_url: option-like, newline-smuggling and host-escaping URLs are refused. */
export function submoduleUrlOk(url: string): boolean {
  if (url.startsWith('-')) return false;
  if (startsWithDotSlash(url) || startsWithDotDotSlash(url) || url.startsWith('git://')) {
    if (urlDecode(url).includes('\n')) return false;
    let rest = url;
    let dotdots = 0;
    for (;;) {
      if (startsWithDotDotSlash(rest)) { dotdots++; rest = rest.slice(3); continue; }
      if (startsWithDotSlash(rest)) { rest = rest.slice(2); continue; }
      break;
    }
    return !(dotdots > 0 && (rest[0] === ':' || rest[0] === '/'));
  }
  let curl: string | null = null;
  for (const p of ['http::', 'https::', 'ftp::', 'ftps::']) if (url.startsWith(p)) curl = url.slice(p.length);
  if (curl === null && /^(https?|ftps?):\/\//.test(url)) curl = url;
  if (curl === null) return true;
  return credentialUrlOk(curl);
}

/** git's credential_from_url_gently as fsck uses it: a scheme, a non-empty host, no newline in any part. */
function credentialUrlOk(url: string): boolean {
  const protoEnd = url.indexOf('://');
  if (protoEnd <= 0) return false;
  const cp = protoEnd + 3;
  const at = url.indexOf('@', cp);
  const colon = url.indexOf(':', cp);
  let slash = cp;
  while (slash < url.length && !'/?#'.includes(url[slash]!)) slash++;
  const parts: string[] = [url.slice(0, protoEnd)];
  let host: number;
  if (at < 0 || slash <= at) {
    host = cp;
  } else if (colon < 0 || at <= colon) {
    parts.push(urlDecode(url.slice(cp, at)));
    host = at + 1;
  } else {
    parts.push(urlDecode(url.slice(cp, colon)), urlDecode(url.slice(colon + 1, at)));
    host = at + 1;
  }
  const hostName = urlDecode(url.slice(host, slash));
  parts.push(hostName);
  let rest = slash;
  while (url[rest] === '/') rest++;
  if (rest < url.length) parts.push(urlDecode(url.slice(rest)));
  if (parts.some((s) => s.includes('\n'))) return false;
  return hostName.length > 0;
}

export interface ConfigEntry {
  section: string;
  subsection: string | null;
  key: string;
  value: string | null;
}

/**
 * Git's config file syntax, enough to see every entry git would see in a
 * .gitmodules. Parsing stops at the first syntax error, as git's does (git
 * still checks the entries before it).
 */
export function parseConfig(buf: Buffer): ConfigEntry[] {
  let s = buf.toString('utf8');
  if (s.startsWith('\ufeff')) s = s.slice(1);
  const out: ConfigEntry[] = [];
  let i = 0;
  let section: string | null = null;
  let subsection: string | null = null;
  const peek = (): string | undefined => {
    if (s[i] === '\r' && s[i + 1] === '\n') return '\n';
    return s[i];
  };
  const next = (): string | undefined => {
    const c = peek();
    if (c === '\n' && s[i] === '\r') i += 2;
    else if (c !== undefined) i++;
    return c;
  };
  const isSpace = (c: string | undefined): boolean => c === ' ' || c === '\t' || c === '\n' || c === '\r' || c === '\v' || c === '\f';
  const isAlnum = (c: string | undefined): boolean => c !== undefined && /^[A-Za-z0-9]$/.test(c);
  for (;;) {
    const c = next();
    if (c === undefined) return out;
    if (isSpace(c)) continue;
    if (c === '#' || c === ';') {
      while (peek() !== undefined && next() !== '\n');
      continue;
    }
    if (c === '[') {
      let name = '';
      let sub: string | null = null;
      for (;;) {
        const d = next();
        if (d === undefined || d === '\n') return out;
        if (d === ']') break;
        if (isSpace(d)) {
          while (peek() === ' ' || peek() === '\t') next();
          if (next() !== '"') return out;
          sub = '';
          for (;;) {
            let e = next();
            if (e === undefined || e === '\n') return out;
            if (e === '"') break;
            if (e === '\\') {
              e = next();
              if (e === undefined || e === '\n') return out;
            }
            sub += e;
          }
          if (next() !== ']') return out;
          break;
        }
        if (!isAlnum(d) && d !== '-' && d !== '.') return out;
        name += d.toLowerCase();
      }
      if (sub === null) {
        const dot = name.indexOf('.');
        if (dot >= 0) {
          sub = name.slice(dot + 1);
          name = name.slice(0, dot);
        }
      }
      if (name.length === 0) return out;
      section = name;
      subsection = sub;
      continue;
    }
    if (!/^[A-Za-z]$/.test(c)) return out;
    let key = c.toLowerCase();
    while (isAlnum(peek()) || peek() === '-') key += next()!.toLowerCase();
    while (peek() === ' ' || peek() === '\t') next();
    let value: string | null = null;
    const d = peek();
    if (d === undefined || d === '\n') {
      next();
    } else if (d === '=') {
      next();
      const v = parseValue();
      if (v === null) return out;
      value = v;
    } else {
      return out;
    }
    // Keys before any section header are legal and belong to no section.
    if (section !== null) out.push({ section, subsection, key, value });
  }

  function parseValue(): string | null {
    let v = '';
    let quoted = false;
    let pendingSpace = 0;
    let comment = false;
    while (peek() === ' ' || peek() === '\t') next();
    for (;;) {
      const c = next();
      if (c === undefined) return quoted ? null : v;
      if (c === '\n') {
        if (quoted) return null;
        return v;
      }
      if (comment) continue;
      if (!quoted && (c === ' ' || c === '\t')) { pendingSpace++; continue; }
      if (!quoted && (c === '#' || c === ';')) { comment = true; continue; }
      if (pendingSpace) { v += ' '.repeat(pendingSpace); pendingSpace = 0; }
      if (c === '\\') {
        const e = next();
        switch (e) {
          case '\n': continue;
          case 't': v += '\t'; continue;
          case 'b': v += '\b'; continue;
          case 'n': v += '\n'; continue;
          case '\\': case '"': v += e; continue;
          default: return null;
        }
      }
      if (c === '"') { quoted = !quoted; continue; }
      v += c;
    }
  }
}
