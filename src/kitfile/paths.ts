/**
 * Kitfile paths: what a path in a Kitfile may be, and its one canonical spelling.
 *
 * A Kitfile path names a file or directory inside the context directory, in posix form, so that
 * the same Kitfile packs the same artifact on any machine. Everything else (absolute paths,
 * paths that climb out with `..`, Windows paths, URLs) is refused before any file is touched.
 */
import { posix } from 'node:path';
import { parseReference } from '../oci/reference.js';

/**
 * The clean posix relative form: `./x`, `x/`, `x//y` and `a/../x` become `x`, `x`, `x/y`, `x`;
 * the context root is `.`. It does not validate: `../x` stays `../x` and `/x` stays `/x`.
 */
export function normalizeKitfilePath(p: string): string {
  if (p === '') return '.';
  let n = posix.normalize(p);
  if (n.length > 1 && n.endsWith('/')) n = n.slice(0, -1);
  if (n.startsWith('./')) n = n.slice(2);
  return n === '' ? '.' : n;
}

const URL_SCHEME = /^[A-Za-z][A-Za-z0-9+.-]*:\/\//;
const WINDOWS_DRIVE = /^[A-Za-z]:/;
const CONTROL_CHARS = /[\u0000-\u001f\u007f]/;

/**
 * Why `p` is not an acceptable Kitfile path, or undefined when it is. The checks run in an order
 * that gives the most useful reason: `C:\x` is reported as a Windows path, not as a backslash.
 */
export function kitfilePathProblem(p: string): string | undefined {
  if (p.trim() === '') return 'must not be empty';
  if (CONTROL_CHARS.test(p)) return `${JSON.stringify(p)} contains control characters`;
  if (URL_SCHEME.test(p)) {
    return `${JSON.stringify(p)} is a URL; a Kitfile path names a file or directory inside the context (download remote data first)`;
  }
  if (WINDOWS_DRIVE.test(p) || p.startsWith('\\\\')) {
    return `${JSON.stringify(p)} is a Windows path; use a path relative to the context with forward slashes`;
  }
  if (p.includes('\\')) return `${JSON.stringify(p)} contains a backslash; use forward slashes`;
  if (p.startsWith('/')) return `${JSON.stringify(p)} is absolute; paths are relative to the context directory`;
  const n = normalizeKitfilePath(p);
  if (n === '..' || n.startsWith('../')) return `${JSON.stringify(p)} points outside the context directory`;
  return undefined;
}

/**
 * True when `model.path` names another artifact rather than a path: a registry host (with a dot
 * or a port, or `localhost`), a repository, and a `:tag` or `@sha256:` digest, e.g.
 * `registry.example.com/team/base:1.0`. Requiring host *and* tag keeps ordinary relative paths
 * like `models/base.gguf` from being mistaken for references; a directory named like a host
 * (`my.dir/file:1`) is the one ambiguity, and it reads as a reference. The rule looks at the
 * text only, so that every reader of an artifact (far from the project) decides the same way;
 * `kit pack` refuses a reference that also exists as a path in the project (MODEL_PATH_AMBIGUOUS)
 * rather than guess.
 */
export function isArtifactReference(path: string): boolean {
  const slash = path.indexOf('/');
  if (slash <= 0) return false;
  const host = path.slice(0, slash);
  if (!(host.includes('.') || host.includes(':') || host === 'localhost')) return false;
  const rest = path.slice(slash + 1);
  const lastSlash = rest.lastIndexOf('/');
  const hasTag = rest.lastIndexOf(':') > lastSlash && !rest.includes('@');
  const hasDigest = /@sha(256|512):[0-9a-f]+$/.test(rest);
  if (!hasTag && !hasDigest) return false;
  try {
    parseReference(path);
    return true;
  } catch {
    return false;
  }
}
