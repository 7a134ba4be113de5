/** File names with a meaning in a context directory. */

/** Kitfile names, in the order discovery tries them (as KitOps does). */
export const KITFILE_NAMES = ['Kitfile', 'kitfile', '.kitfile'] as const;

/** The ignore file, .dockerignore syntax. */
export const KITIGNORE_NAME = '.kitignore';

/** Kitfiles and ignore files are read, not packed; this bounds what `kit` reads into memory. */
export const MAX_KITFILE_BYTES = 1024 * 1024;
