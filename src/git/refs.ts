/**
 * References: loose files under refs/, packed-refs (with peeled lines), and
 * symbolic refs such as HEAD, which may point at a branch not born yet.
 * A loose ref overrides a packed one of the same name. Broken or badly named
 * refs are skipped, as git skips them, rather than failing a whole listing.
 */
import * as fs from 'node:fs';
import * as path from 'node:path';
import { isOid, parseTag } from './object';
import type { ObjectStore } from './odb';

export interface Ref {
  name: string;
  oid: string;
  /** What an annotated tag finally points at (absent for anything else). */
  peeled?: string;
  /** For a symbolic ref (e.g. refs/remotes/origin/HEAD): the ref it points to. */
  symref?: string;
}

const MAX_SYMREF_DEPTH = 5;

/** git check-ref-format rules for a full ref name (refs/... or HEAD-like one-level names excluded). */
export function isValidRefName(name: string): boolean {
  if (name.length === 0 || name.length > 4096) return false;
  if (name === '@' || name.startsWith('/') || name.endsWith('/') || name.endsWith('.')) return false;
  if (name.includes('..') || name.includes('//') || name.includes('@{')) return false;
  for (let i = 0; i < name.length; i++) {
    const c = name.charCodeAt(i);
    if (c < 0x20 || c === 0x7f || c === 0x20 || c === 0x7e || c === 0x5e || c === 0x3a ||
        c === 0x3f || c === 0x2a || c === 0x5b || c === 0x5c) return false;
  }
  for (const part of name.split('/')) {
    if (part.startsWith('.') || part.endsWith('.lock')) return false;
  }
  return true;
}

/** Byte-wise comparison of ref names, the order git lists them in. */
export function compareRefNames(a: string, b: string): number {
  if (a === b) return 0;
  // UTF-16 order equals UTF-8 byte order except around surrogates; be exact there.
  if (/[\ud800-\udfff]/.test(a + b)) return Buffer.compare(Buffer.from(a), Buffer.from(b));
  return a < b ? -1 : 1;
}

type LooseRef = { oid: string } | { target: string };

interface PackedRefs {
  stamp: string;
  refs: Map<string, { oid: string; peeled?: string }>;
  fullyPeeled: boolean;
  peeledTags: boolean;
}

export class RefStore {
  private packed: PackedRefs | null = null;

  constructor(readonly gitDir: string, private readonly objects?: ObjectStore) {}

  private readLoose(name: string, known?: ReadonlySet<string>): LooseRef | null {
    const file = path.join(this.gitDir, name);
    // Most refs are packed: look before reading, a failed read costs an exception.
    if (known ? !known.has(name) : !fs.statSync(file, { throwIfNoEntry: false })?.isFile()) return null;
    let text: string;
    try {
      text = fs.readFileSync(file, 'latin1');
    } catch {
      return null; // deleted since
    }
    const line = text.replace(/\n$/, '');
    if (line.startsWith('ref: ')) {
      const target = line.slice(5).trim();
      return target === 'HEAD' || isValidRefName(target) ? { target } : null;
    }
    const oid = line.slice(0, 40);
    return isOid(oid) && (line.length === 40 || /\s/.test(line[40]!)) ? { oid } : null;
  }

  private readPacked(): PackedRefs {
    const file = path.join(this.gitDir, 'packed-refs');
    let stamp = '';
    try {
      const st = fs.statSync(file);
      stamp = `${st.ino}:${st.size}:${st.mtimeMs}`;
    } catch { /* no packed-refs */ }
    if (this.packed && this.packed.stamp === stamp) return this.packed;
    const refs = new Map<string, { oid: string; peeled?: string }>();
    let fullyPeeled = false;
    let peeledTags = false;
    let text = '';
    if (stamp) {
      try { text = fs.readFileSync(file, 'latin1'); } catch { /* removed meanwhile: treat as empty */ }
    }
    let last: { oid: string; peeled?: string } | null = null;
    for (const line of text.split('\n')) {
      if (line.startsWith('# pack-refs with:')) {
        const traits = line.slice(17).trim().split(/\s+/);
        fullyPeeled = traits.includes('fully-peeled');
        peeledTags = fullyPeeled || traits.includes('peeled');
        continue;
      }
      if (line.startsWith('^')) {
        const p = line.slice(1, 41);
        if (last && isOid(p)) last.peeled = p;
        last = null;
        continue;
      }
      const oid = line.slice(0, 40);
      const name = line.slice(41);
      if (!isOid(oid) || line[40] !== ' ' || !isValidRefName(name)) {
        last = null;
        continue;
      }
      last = { oid };
      refs.set(Buffer.from(name, 'latin1').toString('utf8'), last);
    }
    this.packed = { stamp, refs, fullyPeeled, peeledTags };
    return this.packed;
  }

  /** Follows a ref (loose, then packed) through symbolic links; null when unborn or broken. */
  private resolveFull(name: string, depth = 0): string | null {
    if (depth > MAX_SYMREF_DEPTH) return null;
    const loose = this.readLoose(name);
    if (loose) {
      if ('oid' in loose) return loose.oid;
      return this.resolveFull(loose.target, depth + 1);
    }
    if (name === 'HEAD') return null;
    return this.readPacked().refs.get(name)?.oid ?? null;
  }

  head(): { target: string | null; oid: string | null } {
    const loose = this.readLoose('HEAD');
    if (!loose) return { target: null, oid: null };
    if ('oid' in loose) return { target: null, oid: loose.oid };
    return { target: loose.target, oid: this.resolveFull(loose.target, 1) };
  }

  /** Resolves a full ref name, HEAD, or a short name by git's rules (refs/NAME, refs/tags/NAME, refs/heads/NAME, ...). */
  resolve(name: string): string | null {
    if (name === 'HEAD') return this.head().oid;
    const candidates = name.startsWith('refs/')
      ? [name]
      : [`refs/${name}`, `refs/tags/${name}`, `refs/heads/${name}`, `refs/remotes/${name}`, `refs/remotes/${name}/HEAD`];
    for (const c of candidates) {
      if (!isValidRefName(c)) continue;
      const oid = this.resolveFull(c);
      if (oid) return oid;
    }
    return null;
  }

  /** Every ref under refs/ whose name starts with prefix, sorted by name. */
  list(prefix = 'refs/'): Ref[] {
    const packed = this.readPacked();
    const names = new Set<string>();
    for (const name of packed.refs.keys()) if (name.startsWith(prefix)) names.add(name);
    // Only walk the part of refs/ that can match.
    const slash = prefix.lastIndexOf('/');
    const base = prefix.startsWith('refs/') && slash >= 4 ? prefix.slice(0, slash) : 'refs';
    const loose = new Set<string>();
    this.walkLoose(base, (name) => {
      if (!name.startsWith(prefix)) return;
      names.add(name);
      loose.add(name);
    });
    const out: Ref[] = [];
    for (const name of [...names].sort(compareRefNames)) {
      const ref = this.describe(name, packed, loose);
      if (ref) out.push(ref);
    }
    return out;
  }

  private walkLoose(dir: string, fn: (name: string) => void): void {
    let entries: fs.Dirent[];
    try {
      entries = fs.readdirSync(path.join(this.gitDir, dir), { withFileTypes: true });
    } catch {
      return;
    }
    for (const e of entries) {
      const name = `${dir}/${e.name}`;
      if (e.isDirectory()) this.walkLoose(name, fn);
      else if (e.isFile() && isValidRefName(name)) fn(name);
    }
  }

  private describe(name: string, packed: PackedRefs, looseNames: ReadonlySet<string>): Ref | null {
    const loose = this.readLoose(name, looseNames);
    if (loose && 'target' in loose) {
      const oid = this.resolveFull(loose.target, 1);
      if (!oid) return null;
      return this.withPeel({ name, oid, symref: loose.target }, null, packed);
    }
    if (loose) return this.withPeel({ name, oid: loose.oid }, null, packed);
    const p = packed.refs.get(name);
    if (!p) return null; // deleted while we listed
    return this.withPeel({ name, oid: p.oid }, p, packed);
  }

  private withPeel(ref: Ref, p: { oid: string; peeled?: string } | null, packed: PackedRefs): Ref {
    if (p) {
      if (p.peeled) return { ...ref, peeled: p.peeled };
      if (packed.fullyPeeled || (packed.peeledTags && ref.name.startsWith('refs/tags/'))) return ref;
    }
    const peeled = this.peel(ref.oid);
    return peeled && peeled !== ref.oid ? { ...ref, peeled } : ref;
  }

  /** What an object finally points at through annotated tags (itself if not a tag; null if missing). */
  peel(oid: string): string | null {
    if (!this.objects) return oid;
    let cur = oid;
    for (let i = 0; i < 64; i++) {
      const h = this.objects.header(cur);
      if (!h) return null;
      if (h.type !== 'tag') return cur;
      const obj = this.objects.read(cur);
      if (!obj) return null;
      try {
        cur = parseTag(obj.data).object;
      } catch {
        return null;
      }
    }
    return null;
  }
}
