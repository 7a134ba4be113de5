import type { Hash } from 'node:crypto';
import { constants, type Stats } from 'node:fs';
import { execFile } from 'node:child_process';
import { copyFile, open, rm, stat, type FileHandle } from 'node:fs/promises';
import { KitError, errnoCode } from '../errors.js';
import { hasherDigest, newHasher } from '../oci/digest.js';
import { readAhead } from '../io/read-ahead.js';
import { readTransient } from '../io/direct-read.js';
import { DirectFile } from '../io/direct-file.js';
import type { LayerResult } from './tar-writer.js';

/**
 * A raw layer is the file itself: copied into the store while this process hashes the same
 * bytes, read once. A few reused buffers, so memory stays flat whatever the size.
 *
 * `direct` (the store: cold storage nobody reads soon): a reflink where the file system can
 * (btrfs, xfs: no byte moves); else read and written with O_DIRECT from the same aligned
 * blocks, the write of each block running while it is hashed. No page cache on either side:
 * measured on this project's VM (fresh page-cache pages are expensive there, see
 * io/aligned-blocks.ts), a cold 2 GiB file took 3.7-5.0 s with 0.4-0.7 s of kernel time this
 * way, 6.3-8.5 s with 5.8-10.6 s of kernel time as a kernel copy through the page cache.
 * Otherwise (a file restored for use): the kernel copies it (copy_file_range) while the hash
 * reads it through the page cache.
 *
 * Fails with FILE_CHANGED when the file grew, shrank or was modified meanwhile: a digest
 * computed over a moving file describes nothing. `dest` (a temp file of the caller) is replaced,
 * and written to the disk before this returns unless `sync: false`.
 */
export async function copyRawLayer(
  src: string,
  dest: string,
  opts: { onProgress?: (bytes: number) => void; sync?: boolean; direct?: boolean } = {},
): Promise<LayerResult> {
  const fh = await open(src, 'r').catch((err: unknown) => {
    if (errnoCode(err) === 'ENOENT') throw fileChanged(src, 'it no longer exists');
    throw err;
  });
  try {
    const before = await fh.stat();
    const hash = newHasher();
    let hashed: number;
    if (opts.direct) {
      // The caller's empty temp file makes way: a reflink or the copy creates it again, exclusively.
      await rm(dest, { force: true });
      hashed = (await reflink(src, dest)) ? await hashBeside(fh, before.size, hash, Promise.resolve(), dest, opts) : await directCopy(src, dest, before.size, { hash, ...opts });
    } else {
      // FICLONE: a reflink when the file system can (btrfs, xfs), else an ordinary kernel copy.
      hashed = await hashBeside(fh, before.size, hash, copyFile(src, dest, constants.COPYFILE_FICLONE), dest, opts);
    }
    await assertUnchanged(src, before, await fh.stat(), hashed, (await stat(dest)).size);
    const digest = hasherDigest(hash);
    return { digest, size: hashed, diffId: digest, uncompressedSize: hashed };
  } finally {
    await fh.close();
  }
}

/**
 * Hashes the first `size` bytes of `fh` while `copied` (a kernel copy or a reflink to `dest`)
 * completes; the bytes hashed. The kernel copy outruns the hashing: its write-back to the disk
 * (the fsync the store needs before committing) then overlaps the rest of the hashing instead
 * of following it.
 */
async function hashBeside(fh: FileHandle, size: number, hash: Hash, copied: Promise<void>, dest: string, opts: { onProgress?: (bytes: number) => void; sync?: boolean }): Promise<number> {
  let hashed = 0;
  const hashing = (async () => {
    for await (const chunk of readAhead(fh, { end: size, reuse: true })) {
      hash.update(chunk);
      hashed += chunk.length;
      opts.onProgress?.(chunk.length);
    }
  })();
  const copying = opts.sync === false ? copied : copied.then(() => syncFile(dest));
  const [hashed_, copied_] = await Promise.allSettled([hashing, copying]);
  if (hashed_.status === 'rejected') throw hashed_.reason;
  if (copied_.status === 'rejected') throw copied_.reason;
  return hashed;
}

/** A reflink of `src` at a new `dest` (true), or nothing created where the file system cannot (false). */
async function reflink(src: string, dest: string): Promise<boolean> {
  try {
    await copyFile(src, dest, constants.COPYFILE_EXCL | constants.COPYFILE_FICLONE_FORCE);
    return true;
  } catch (err) {
    if (errnoCode(err) === 'EEXIST') throw err; // not ours to remove
    await rm(dest, { force: true });
    return false;
  }
}

/** Copies the first `size` bytes of `src` to a new `dest` with O_DIRECT both ways, hashing them; the bytes copied. */
async function directCopy(src: string, dest: string, size: number, opts: { hash: Hash; onProgress?: (bytes: number) => void; sync?: boolean }): Promise<number> {
  const out = await DirectFile.open(dest, 'wx');
  let at = 0;
  try {
    // Each buffer is reused once the next is asked for: written (and hashed) before that.
    for await (const chunk of readTransient(src, 0, size)) {
      const written = out.write(chunk, at);
      opts.hash.update(chunk);
      opts.onProgress?.(chunk.length);
      await written;
      at += chunk.length;
    }
    if (opts.sync !== false) await out.datasync();
  } finally {
    await out.close();
  }
  return at;
}

/**
 * A kernel copy of a file whose digest is already known and trusted (a blob the local store
 * verified when it stored it): no byte passes through this process, so restoring it costs what
 * `cp` costs. `dest` must not exist; it is created by the copy. Progress comes from the
 * growing size of `dest`, polled; the copy's length is checked against `size` at the end.
 *
 * Not O_DIRECT, unlike the store's copies: the files are read next, and on this project's VM
 * a 1 GiB restore of five files took 2.1-2.7 s that way (the disk reading and writing at once)
 * against 1.3-2.1 s through the page cache.
 *
 * GNU cp does the copy where it is installed: Node's copyFile truncates its destination before
 * copying, and on ext4 a file truncated to zero is flushed to the disk when it is closed
 * (auto_da_alloc), which measured here added 0.8-1.2 s to every 2 GiB restored (copy_file_range
 * itself took 1.8 s). cp creates the file instead. Elsewhere (busybox, macOS) copyFile does it.
 */
export async function copyKnownFile(src: string, dest: string, size: number, opts: { onProgress?: (bytes: number) => void } = {}): Promise<void> {
  let reported = 0;
  const report = async (): Promise<void> => {
    const now = (await stat(dest).catch(() => undefined))?.size ?? reported;
    if (now > reported) opts.onProgress?.(now - reported);
    reported = Math.max(reported, now);
  };
  const poll = opts.onProgress ? setInterval(() => void report(), 200) : undefined;
  try {
    if (!(size >= GNU_CP_FROM && (await gnuCopy(src, dest)))) await copyFile(src, dest, constants.COPYFILE_EXCL | constants.COPYFILE_FICLONE);
  } finally {
    clearInterval(poll);
  }
  const copied = (await stat(dest)).size;
  if (copied !== size) throw fileChanged(src, `it holds ${copied} bytes where ${size} were expected`);
  if (copied > reported) opts.onProgress?.(copied - reported);
}

/** Below this a process start costs more than the flush it avoids. */
const GNU_CP_FROM = 16 * 1024 * 1024;
let gnuCp: Promise<boolean> | undefined;

/** Copies with GNU cp when it is there; false (and nothing created) when it is not. */
async function gnuCopy(src: string, dest: string): Promise<boolean> {
  gnuCp ??= run('cp', ['--version']).then((r) => r.code === 0 && r.stdout.includes('GNU coreutils'), () => false);
  if (!(await gnuCp)) return false;
  // --no-clobber, -T: dest is created, never followed or written through if something is there.
  const r = await run('cp', ['--reflink=auto', '--no-clobber', '-T', '--', src, dest]);
  if (r.code !== 0) {
    await rm(dest, { force: true });
    throw new Error(`cp ${src} ${dest}: ${r.stderr.trim() || `exit code ${r.code}`}`);
  }
  return true;
}

function run(cmd: string, args: string[]): Promise<{ code: number | null; stdout: string; stderr: string }> {
  return new Promise((resolve, reject) => {
    execFile(cmd, args, { encoding: 'utf8' }, (err, stdout, stderr) => {
      if (err && typeof (err as { code?: unknown }).code === 'string') return reject(err); // not spawned (ENOENT)
      resolve({ code: err ? ((err as { code?: number }).code ?? 1) : 0, stdout, stderr });
    });
  });
}

async function syncFile(path: string): Promise<void> {
  const fh = await open(path, 'r');
  try {
    await fh.sync();
  } finally {
    await fh.close();
  }
}

async function assertUnchanged(path: string, before: Stats, after: Stats, hashed: number, copied: number): Promise<void> {
  if (after.size !== before.size || after.mtimeMs !== before.mtimeMs || hashed !== before.size || copied !== before.size) {
    throw fileChanged(path, 'it was modified while being read');
  }
}

function fileChanged(path: string, why: string): KitError {
  return new KitError('FILE_CHANGED', `${path} changed while kit was reading it: ${why}`, {
    hint: 'stop whatever is writing to it and run the command again',
  });
}
