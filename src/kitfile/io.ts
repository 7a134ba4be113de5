/** Reading the small text files of a context (Kitfile, .kitignore) without trusting them. */
import { constants as fsConstants, type Stats } from 'node:fs';
import { open, stat, type FileHandle } from 'node:fs/promises';
import { ExitCode, KitError, errnoCode } from '../errors.js';

export interface ReadLimits {
  /** How the file is named in messages, e.g. "Kitfile" or ".kitignore". */
  label: string;
  maxBytes: number;
  tooLarge: (size: number) => Error;
  notFound: () => Error;
}

/**
 * Read a regular file of at most `maxBytes`. The type is checked with stat() before opening, so
 * a FIFO (which would block forever) or a device is refused without being opened; the file is
 * then opened non-blocking and checked again on the handle, in case it was swapped in between.
 */
export async function readSmallRegularFile(path: string, limits: ReadLimits): Promise<Buffer> {
  let st: Stats;
  try {
    st = await stat(path);
  } catch (err) {
    if (errnoCode(err) === 'ENOENT' || errnoCode(err) === 'ENOTDIR') throw limits.notFound();
    throw unreadable(path, err);
  }
  assertRegularFile(path, st, limits.label);
  if (st.size > limits.maxBytes) throw limits.tooLarge(st.size);

  let handle: FileHandle;
  try {
    handle = await open(path, fsConstants.O_RDONLY | (fsConstants.O_NONBLOCK ?? 0));
  } catch (err) {
    if (errnoCode(err) === 'ENOENT') throw limits.notFound();
    throw unreadable(path, err);
  }
  try {
    assertRegularFile(path, await handle.stat(), limits.label);
    const buf = await readAtMost(handle, limits.maxBytes + 1);
    if (buf.length > limits.maxBytes) throw limits.tooLarge(buf.length);
    return buf;
  } finally {
    await handle.close();
  }
}

function assertRegularFile(path: string, st: Stats, label: string): void {
  if (st.isFile()) return;
  throw new KitError('KITFILE_NOT_REGULAR', `${label} ${path} is ${describeType(st)}; it must be a regular file`, {
    hint: label === 'Kitfile' ? 'to read a Kitfile from a pipe, pass -f - and redirect it to standard input' : undefined,
    exitCode: ExitCode.usage,
  });
}

function describeType(st: Stats): string {
  if (st.isDirectory()) return 'a directory';
  if (st.isFIFO()) return 'a FIFO (named pipe)';
  if (st.isCharacterDevice() || st.isBlockDevice()) return 'a device';
  if (st.isSocket()) return 'a socket';
  return 'not a regular file';
}

async function readAtMost(handle: FileHandle, limit: number): Promise<Buffer> {
  const chunks: Buffer[] = [];
  let total = 0;
  while (total < limit) {
    const buf = Buffer.alloc(Math.min(64 * 1024, limit - total));
    const { bytesRead } = await handle.read(buf, 0, buf.length, null);
    if (bytesRead === 0) break;
    chunks.push(buf.subarray(0, bytesRead));
    total += bytesRead;
  }
  return Buffer.concat(chunks);
}

export function unreadable(path: string, err: unknown): KitError {
  return new KitError('KITFILE_UNREADABLE', `cannot read ${path}: ${(err as Error).message}`, { cause: err });
}
