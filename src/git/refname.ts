/**
 * Ref names a push may create: git-check-ref-format(1)'s rules, plus
 * receive-pack's own rule that only names under refs/ can be pushed (HEAD
 * and other top-level names are never touched by a push).
 */

/** Why `name` is not a valid ref name, or null when it is. */
export function refnameProblem(name: string): string | null {
  if (name.length === 0) return 'empty ref name';
  if (name === '@') return "ref name is '@'";
  if (name.startsWith('/') || name.endsWith('/')) return 'ref name begins or ends with a slash';
  if (name.endsWith('.')) return 'ref name ends with a dot';
  if (name.includes('..')) return "ref name contains '..'";
  if (name.includes('@{')) return "ref name contains '@{'";
  for (let i = 0; i < name.length; i++) {
    const c = name.charCodeAt(i);
    if (c < 0x20 || c === 0x7f) return 'ref name contains a control character';
    if (' ~^:?*[\\'.includes(name[i]!)) return `ref name contains '${name[i]}'`;
  }
  const parts = name.split('/');
  if (parts.length < 2) return 'ref name has only one level';
  for (const part of parts) {
    if (part.length === 0) return 'ref name contains consecutive slashes';
    if (part.startsWith('.')) return 'ref name component begins with a dot';
    if (part.endsWith('.lock')) return "ref name component ends with '.lock'";
  }
  return null;
}

/** Why a push may not update `name`, or null when the name is acceptable. */
export function pushRefnameProblem(name: string): string | null {
  if (!name.startsWith('refs/')) return 'funny refname';
  return refnameProblem(name);
}
