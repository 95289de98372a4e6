/**
 * Protected refs (the `[repository.protect]` rules, handed in as data):
 * a protected branch, or any branch in a protected namespace, may be created
 * and fast-forwarded but never deleted or rewound; a tag in a protected
 * namespace, lightweight or annotated, may be created but never moved or
 * deleted.
 */
import type { ObjectType } from './object';
import { parseCommit } from './object';

export interface ProtectRules {
  branches: string[];
  branchNamespaces: string[];
  tagNamespaces: string[];
}

export const NO_PROTECTION: ProtectRules = { branches: [], branchNamespaces: [], tagNamespaces: [] };

const ZERO = '0'.repeat(40);

function branchRef(name: string): string {
  return name.startsWith('refs/') ? name : `refs/heads/${name}`;
}

function namespace(prefix: string): string {
  return prefix.endsWith('/') ? prefix : prefix + '/';
}

function inNamespace(ref: string, prefixes: string[]): boolean {
  return prefixes.some((p) => ref.startsWith(namespace(p)));
}

export function isProtectedBranch(rules: ProtectRules, ref: string): boolean {
  return rules.branches.some((b) => branchRef(b) === ref) || inNamespace(ref, rules.branchNamespaces);
}

export function isProtectedTag(rules: ProtectRules, ref: string): boolean {
  return inNamespace(ref, rules.tagNamespaces);
}

export interface CommitReader {
  read(oid: string): { type: ObjectType; data: Buffer } | null;
}

/** True when commit `ancestor` is reachable from commit `tip` (or is it). Walks the whole history if it must. */
export function isAncestor(objects: CommitReader, ancestor: string, tip: string): boolean {
  if (ancestor === tip) return true;
  const seen = new Set<string>([tip]);
  const todo = [tip];
  while (todo.length > 0) {
    const oid = todo.pop()!;
    const obj = objects.read(oid);
    if (!obj || obj.type !== 'commit') continue;
    for (const p of parseCommit(obj.data).parents) {
      if (p === ancestor) return true;
      if (!seen.has(p)) {
        seen.add(p);
        todo.push(p);
      }
    }
  }
  return false;
}

/**
 * Why the rules forbid moving `ref` from `old` to `next` (zero ids for
 * create/delete), or null. `objects` must see the pushed objects too.
 */
export function protectProblem(rules: ProtectRules, ref: string, old: string, next: string, objects: CommitReader): string | null {
  if (old === ZERO) return null;
  if (isProtectedTag(rules, ref)) {
    return next === ZERO ? 'protected tag: may not be deleted' : 'protected tag: may not be moved';
  }
  if (isProtectedBranch(rules, ref)) {
    if (next === ZERO) return 'protected branch: may not be deleted';
    const o = objects.read(old);
    const n = objects.read(next);
    if (!o || o.type !== 'commit' || !n || n.type !== 'commit' || !isAncestor(objects, old, next)) {
      return 'protected branch: non-fast-forward';
    }
  }
  return null;
}
