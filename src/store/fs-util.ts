import { link, open, rm, writeFile } from 'node:fs/promises';
import { KitError, errnoCode } from '../errors.js';

/** Errno codes that mean "you may not write here" rather than "something is broken". */
const READ_ONLY_CODES = new Set(['EACCES', 'EPERM', 'EROFS']);

export function isNotFound(err: unknown): boolean {
  return errnoCode(err) === 'ENOENT';
}

export function isPermissionError(err: unknown): boolean {
  return READ_ONLY_CODES.has(errnoCode(err) ?? '');
}

/**
 * Turns a permission error from a write into the one error a user can act on; anything else
 * is returned unchanged. `path` is what kit tried to write, `root` the store it belongs to.
 */
export function writeError(err: unknown, path: string, root: string): unknown {
  if (!isPermissionError(err)) return err;
  return new KitError('STORE_READONLY', `the local store ${root} is not writable (${errnoCode(err)} on ${path})`, {
    hint: 'fix the folder permissions, or set KIT_HOME to a writable folder',
    cause: err,
  });
}

/** Flushes a file's data to disk, so that a rename after it cannot expose a torn file. */
export async function fsyncFile(path: string): Promise<void> {
  const fh = await open(path, 'r');
  try {
    await fh.sync();
  } finally {
    await fh.close();
  }
}

/**
 * Flushes a directory entry table, so that a rename into it survives a crash. Some
 * filesystems refuse fsync on directories; durability there is best effort.
 */
export async function fsyncDir(path: string): Promise<void> {
  let fh;
  try {
    fh = await open(path, 'r');
    await fh.sync();
  } catch (err) {
    if (!['EINVAL', 'EISDIR', 'EPERM', 'EBADF'].includes(errnoCode(err) ?? '')) throw err;
  } finally {
    await fh?.close();
  }
}

/**
 * Creates `path` with `content` unless it already exists, without ever exposing a partly
 * written file: the content goes to `tempPath` first and is hard-linked into place, and
 * link() fails atomically when another process got there first.
 */
export async function createFileOnce(path: string, content: string, tempPath: string): Promise<void> {
  await writeFile(tempPath, content, { flag: 'wx' });
  try {
    await fsyncFile(tempPath);
    await link(tempPath, path);
  } catch (err) {
    if (errnoCode(err) !== 'EEXIST') throw err;
  } finally {
    await rm(tempPath, { force: true });
  }
}
