/**
 * `.kitignore`: which files of the context are left out of the artifact. The syntax and matching
 * are Docker's `.dockerignore` (via @balena/dockerignore, a port of moby's matcher):
 *  - one pattern per line; lines starting with `#` are comments; blank lines are skipped;
 *  - `*` and `?` match within one path segment, `**` across segments;
 *  - a leading `/` is dropped (patterns are always relative to the context root);
 *  - a pattern matching a directory also matches everything below it;
 *  - `!pattern` re-includes what an earlier pattern excluded; the last matching pattern wins;
 *  - matching is case-sensitive, as in Docker on Linux.
 * The Kitfile (any of its names) and `.kitignore` at the context root are always ignored: they
 * describe the artifact and are stored in its config, not in a layer.
 */
import { join, posix } from 'node:path';
import dockerignoreModule, { type Ignore } from '@balena/dockerignore';
import { KitError } from '../errors.js';
import { readSmallRegularFile } from './io.js';
import { KITFILE_NAMES, KITIGNORE_NAME, MAX_KITFILE_BYTES } from './names.js';

export interface KitIgnore {
  /** `relPath` is posix and relative to the context root (`./x`, `x/` are accepted too). */
  ignores(relPath: string): boolean;
}

// The package is CommonJS whose typings declare an ES default export; at run time the default
// import is the factory itself, which also carries itself as `.default`. Use that for both.
const dockerignore = dockerignoreModule.default;

const ALWAYS_IGNORED: ReadonlySet<string> = new Set([...KITFILE_NAMES, KITIGNORE_NAME]);

/**
 * The matcher behind createKitIgnore. Besides `ignores`, it tells a directory walker whether it
 * may skip an ignored directory without looking inside: only when no `!` pattern could
 * re-include something below it (Docker walks the same way).
 */
export class KitIgnoreMatcher implements KitIgnore {
  private readonly matcher: Ignore;
  readonly hasExceptions: boolean;

  constructor(patterns: string[]) {
    const lines = patterns.map((p, i) => (i === 0 ? p.replace(/^\uFEFF/, '') : p));
    this.hasExceptions = lines.some((l) => l.trim().startsWith('!'));
    this.matcher = dockerignore({ ignorecase: false }).add(lines.map(escapeRegexOnlyChars));
  }

  ignores(relPath: string): boolean {
    const p = cleanRelPath(relPath);
    if (p === undefined) return false;
    if (ALWAYS_IGNORED.has(p)) return true;
    return this.matcher.ignores(p);
  }

  /** True when `dirRelPath` and everything below it are ignored. */
  ignoresWholeDirectory(dirRelPath: string): boolean {
    return !this.hasExceptions && this.ignores(dirRelPath);
  }
}

/**
 * The library turns a pattern into a regular expression and escapes only `.` and `$`, so `+`,
 * `(`, `)`, `{`, `}` and `|` would act as regex operators. In Docker (Go's filepath.Match) they
 * are literal; a backslash makes them literal in the library too. Comments are left alone.
 */
function escapeRegexOnlyChars(pattern: string): string {
  if (pattern.trimStart().startsWith('#')) return pattern;
  return pattern.replace(/[+(){}|]/g, '\\$&');
}

/** Posix, no `./` prefix, no trailing `/`; undefined for the root or a path outside the context. */
function cleanRelPath(relPath: string): string | undefined {
  let p = posix.normalize(relPath.replace(/^\/+/, ''));
  if (p.endsWith('/')) p = p.slice(0, -1);
  if (p === '.' || p === '' || p === '..' || p.startsWith('../')) return undefined;
  return p;
}

/** A matcher from pattern lines (as they would appear in a .kitignore). */
export function createKitIgnore(patterns: string[]): KitIgnore {
  return new KitIgnoreMatcher(patterns);
}

/** The context's `.kitignore` (none is fine: then only the always-ignored files are). */
export async function loadKitignore(contextDir: string): Promise<KitIgnore> {
  return loadKitignoreMatcher(contextDir);
}

export async function loadKitignoreMatcher(contextDir: string): Promise<KitIgnoreMatcher> {
  const path = join(contextDir, KITIGNORE_NAME);
  let text: string;
  try {
    const buf = await readSmallRegularFile(path, {
      label: KITIGNORE_NAME,
      maxBytes: MAX_KITFILE_BYTES,
      tooLarge: (size) => new KitError('KITIGNORE_TOO_LARGE', `${path} is ${size} bytes; the limit is ${MAX_KITFILE_BYTES} bytes (1 MiB)`),
      notFound: () => new NoKitignore(),
    });
    text = buf.toString('utf8');
  } catch (err) {
    if (err instanceof NoKitignore) return new KitIgnoreMatcher([]);
    throw err;
  }
  return new KitIgnoreMatcher(text.split(/\r?\n/));
}

class NoKitignore extends Error {}
