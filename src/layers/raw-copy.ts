import { constants, type Stats } from 'node:fs';
import { copyFile, open, stat } from 'node:fs/promises';
import { KitError, errnoCode } from '../errors.js';
import { hasherDigest, newHasher } from '../oci/digest.js';
import { readAhead } from '../io/read-ahead.js';
import type { LayerResult } from './tar-writer.js';

/**
 * A raw layer is the file itself, so it is copied by the kernel (copy_file_range, or a reflink
 * where the file system shares blocks) while this process reads the same bytes once to hash
 * them: no byte is copied through JavaScript, and the read that hashes warms the page cache
 * the copy reads from. A few reused buffers, so memory stays flat whatever the size.
 *
 * Fails with FILE_CHANGED when the file grew, shrank or was modified meanwhile: a digest
 * computed over a moving file describes nothing. `dest` (a temp file of the caller) is replaced,
 * and written to the disk before this returns unless `sync: false`.
 */
export async function copyRawLayer(src: string, dest: string, opts: { onProgress?: (bytes: number) => void; sync?: boolean } = {}): Promise<LayerResult> {
  const fh = await open(src, 'r').catch((err: unknown) => {
    if (errnoCode(err) === 'ENOENT') throw fileChanged(src, 'it no longer exists');
    throw err;
  });
  try {
    const before = await fh.stat();
    const hash = newHasher();
    let hashed = 0;
    const hashing = (async () => {
      for await (const chunk of readAhead(fh, { end: before.size, reuse: true })) {
        hash.update(chunk);
        hashed += chunk.length;
        opts.onProgress?.(chunk.length);
      }
    })();
    // FICLONE: a reflink when the file system can (btrfs, xfs), else an ordinary kernel copy.
    // The kernel copy outruns the hashing: its write-back to the disk (the fsync the store
    // does before committing) then overlaps the rest of the hashing instead of following it.
    const copied_ = copyFile(src, dest, constants.COPYFILE_FICLONE);
    const copying = opts.sync === false ? copied_ : copied_.then(() => syncFile(dest));
    const [hashed_, copied] = await Promise.allSettled([hashing, copying]);
    if (hashed_.status === 'rejected') throw hashed_.reason;
    if (copied.status === 'rejected') throw copied.reason;
    await assertUnchanged(src, before, await fh.stat(), hashed, (await stat(dest)).size);
    const digest = hasherDigest(hash);
    return { digest, size: hashed, diffId: digest, uncompressedSize: hashed };
  } finally {
    await fh.close();
  }
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
