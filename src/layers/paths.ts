import { lstat } from 'node:fs/promises';
import { isAbsolute, join, posix, relative, resolve, sep } from 'node:path';
import { KitError, errnoCode } from '../errors.js';

/**
 * Path rules shared by the tar writer (never write what we would refuse to read) and the
 * extractor (never write outside the destination). Paths inside a layer are posix, relative
 * to the layer root, without a leading './' or a trailing '/'.
 */

/** `C:`, `c:foo`: a Windows drive prefix, absolute or drive-relative, both escape dest there. */
const DRIVE_RE = /^[A-Za-z]:/;

/**
 * Normalise a path read from a layer (a tar entry name, a hard-link target, a filepath
 * annotation) to `a/b/c` form, or throw. Stricter than "does not escape": any `..` component
 * is refused, because no honest writer emits one and allowing `a/../b` only widens what the
 * symlink checks have to reason about. `.` components, repeated and trailing slashes are
 * tolerated and removed. Returns '' for the layer root itself ('.', './').
 * The error is UNSAFE_PATH, or UNSAFE_LAYER when `code` says so (the extractor reports every
 * refusal under one code).
 */
export function normalizeLayerPath(raw: string, code: 'UNSAFE_PATH' | 'UNSAFE_LAYER' = 'UNSAFE_PATH'): string {
  const fail = (why: string): KitError =>
    code === 'UNSAFE_PATH' ? unsafePath(raw, why) : unsafeLayer(`${JSON.stringify(raw)}: path ${why}`);
  if (raw.includes('\0')) throw fail('contains a NUL byte');
  // A backslash is a separator on Windows: `..\x` or `C:\x` would escape there, and no
  // layer written on any OS by a correct tool carries one in a name.
  if (raw.includes('\\')) throw fail('contains a backslash');
  if (raw.startsWith('/')) throw fail('is absolute');
  if (DRIVE_RE.test(raw)) throw fail('starts with a drive letter');
  const parts: string[] = [];
  for (const part of raw.split('/')) {
    if (part === '' || part === '.') continue;
    if (part === '..') throw fail("contains a '..' component");
    parts.push(part);
  }
  return parts.join('/');
}

/**
 * Join a layer path onto `dest`, refusing anything that could land outside it: absolute
 * paths, `..` components, NUL bytes, backslashes and drive letters. The result is always
 * strictly below `dest` (the empty path, i.e. dest itself, is refused too: nothing may be
 * written *as* the destination).
 */
export function safeJoin(dest: string, relPath: string): string {
  const rel = normalizeLayerPath(relPath);
  if (rel === '') throw unsafePath(relPath, 'names the destination folder itself');
  const root = resolve(dest);
  const full = join(root, ...rel.split('/'));
  // Belt and braces: after the component checks above this cannot fail, but a later edit
  // to the rules must not silently open a hole.
  const back = relative(root, full);
  if (back === '' || back.split(sep)[0] === '..' || isAbsolute(back)) {
    throw unsafePath(relPath, 'leaves the destination folder');
  }
  return full;
}

/**
 * Check a symlink target written in a layer: it must be relative, and resolve (lexically,
 * from the link's own folder) to a place inside the layer root. `..` is accepted only as
 * leading components: those walk up through the link's parent folders, which the extractor
 * has verified are real folders, so the lexical answer is the physical one. A `..` after a
 * name (`a/../..`) is refused, because `a` may itself be a symlink and `..` would then step
 * out of wherever it points (the classic chained-symlink escape).
 * Returns the target's normalised path relative to the layer root.
 */
export function checkSymlinkTarget(entryPath: string, target: string): string {
  const what = `symlink ${entryPath} -> ${target}`;
  if (target === '') throw unsafeLayer(`${what}: empty target`);
  if (target.includes('\0')) throw unsafeLayer(`${what}: target contains a NUL byte`);
  if (target.includes('\\')) throw unsafeLayer(`${what}: target contains a backslash`);
  if (isAbsolute(target) || target.startsWith('/') || DRIVE_RE.test(target)) {
    throw unsafeLayer(`${what}: absolute target`);
  }
  let seenName = false;
  for (const part of target.split('/')) {
    if (part === '' || part === '.') continue;
    if (part === '..') {
      if (seenName) throw unsafeLayer(`${what}: '..' after a name in the target`);
    } else {
      seenName = true;
    }
  }
  const resolved = posix.normalize(posix.join(posix.dirname(entryPath), target));
  if (resolved === '..' || resolved.startsWith('../')) {
    throw unsafeLayer(`${what}: target leaves the destination folder`);
  }
  return resolved === '.' ? '' : resolved;
}

/**
 * Refuse to write `rel` (a normalised layer path) if any folder between `dest` and it is a
 * symlink or not a folder. Checked with lstat on every call, never cached: a cache of "known
 * good" folders is what let node-tar be fooled (CVE-2021-32803, -37701) into writing through a
 * symlink that replaced a folder mid-archive. Missing folders are fine: they get created.
 */
export async function assertRealParents(dest: string, rel: string): Promise<void> {
  const parts = rel.split('/');
  let current = resolve(dest);
  for (let i = 0; i < parts.length - 1; i++) {
    current = join(current, parts[i] as string);
    const st = await lstatOrNull(current);
    if (st === null) return;
    const at = parts.slice(0, i + 1).join('/');
    if (st.isSymbolicLink()) throw unsafeLayer(`${rel}: its parent ${at} is a symlink`);
    if (!st.isDirectory()) throw unsafeLayer(`${rel}: its parent ${at} is not a folder`);
  }
}

export async function lstatOrNull(p: string): Promise<import('node:fs').Stats | null> {
  try {
    return await lstat(p);
  } catch (err) {
    if (errnoCode(err) === 'ENOENT') return null;
    throw err;
  }
}

function unsafePath(raw: string, why: string): KitError {
  return new KitError('UNSAFE_PATH', `unsafe path ${JSON.stringify(raw)}: ${why}`, {
    hint: 'the layer or annotation was crafted to write outside the destination; nothing was written there',
  });
}

export function unsafeLayer(message: string): KitError {
  return new KitError('UNSAFE_LAYER', `refusing layer entry ${message}`, {
    hint: 'the layer contains content kit will not extract; nothing was written outside the destination',
  });
}
