/**
 * Which ref updates a repository's notify settings cover: refs/heads/NAME
 * for each listed branch, every ref under each listed namespace, and every
 * ref at all when neither list has anything in it.
 */

export interface RefFilter {
  branches: readonly string[];
  namespaces: readonly string[];
}

export function refMatches(ref: string, filter: RefFilter): boolean {
  if (filter.branches.length === 0 && filter.namespaces.length === 0) return true;
  for (const b of filter.branches) {
    if (ref === (b.startsWith('refs/heads/') ? b : `refs/heads/${b}`)) return true;
  }
  // A namespace is a prefix of whole components: "refs/tags" must not match "refs/tagsx/...".
  return filter.namespaces.some((ns) => ref.startsWith(ns.endsWith('/') ? ns : `${ns}/`));
}
