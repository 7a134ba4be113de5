/**
 * Bytes of a file for an upload, read with O_DIRECT into the reused page-aligned blocks of
 * aligned-blocks.ts, one read ahead of the consumer.
 *
 * Why: reading a 2 GiB blob through the page cache for `kit push` (cold, as after a reboot)
 * cost 1.5 s of kernel time in copies from the page cache alone, plus 2 GiB of fresh buffers
 * for the garbage collector; the disk fills these blocks itself (DMA) and they are reused.
 *
 * The buffers yielded are TRANSIENT: each is valid only until the next one is asked for (its
 * block is then refilled). Consumers must use the bytes at once (hash them) or hand them to
 * something that is done with them before asking for more: undici sending an async-iterable
 * body waits for the socket to drain each chunk before taking the next.
 */
import { constants } from 'node:fs';
import { open, type FileHandle } from 'node:fs/promises';
import { errnoCode } from '../errors.js';
import { BLOCK_SIZE, alignDown, alignUp, directIoWanted, giveBlock, takeBlock, tryTakeBlock } from './aligned-blocks.js';

/** Bytes [start, end) of the file at `path` (fewer if the file is shorter), in transient buffers. */
export async function* readTransient(path: string, start: number, end: number): AsyncGenerator<Buffer> {
  let fh: FileHandle | undefined;
  let direct = directIoWanted();
  if (direct) {
    try {
      fh = await open(path, constants.O_RDONLY | constants.O_DIRECT);
    } catch (err) {
      if (errnoCode(err) !== 'EINVAL') throw err;
      direct = false;
    }
  }
  fh ??= await open(path, 'r');
  const blocks = [await takeBlock()];
  const second = tryTakeBlock();
  if (second) blocks.push(second);
  let next = alignDown(start); // file offset of the next read (aligned, for O_DIRECT)
  let pending: Promise<{ block: Buffer; at: number; got: number }> | undefined;
  const issue = (block: Buffer): Promise<{ block: Buffer; at: number; got: number }> => {
    const at = next;
    const length = Math.min(BLOCK_SIZE, alignUp(end) - at);
    next += length;
    return readBlock(block, length, at).then((got) => ({ block, at, got }));
  };
  const readBlock = async (block: Buffer, length: number, at: number): Promise<number> => {
    try {
      return (await fh!.read(block, 0, length, at)).bytesRead;
    } catch (err) {
      if (!direct || errnoCode(err) !== 'EINVAL') throw err;
      // Accepted at open, refused at read (some file systems): the page cache it is.
      direct = false;
      await fh!.close();
      fh = await open(path, 'r');
      return (await fh.read(block, 0, length, at)).bytesRead;
    }
  };
  let turn = 0;
  try {
    if (start >= end) return;
    pending = issue(blocks[0]!);
    for (;;) {
      const { block, at, got } = await pending;
      pending = undefined;
      turn++;
      // Read the next block while this one is consumed, when there is a second block.
      const more = got > 0 && at + got < end && next < alignUp(end);
      if (more && blocks.length > 1) pending = issue(blocks[turn % blocks.length]!);
      const from = Math.max(start, at) - at;
      const to = Math.min(end, at + got) - at;
      if (to > from) yield block.subarray(from, to);
      // A short read: the file ends here.
      if (!more || got < Math.min(BLOCK_SIZE, alignUp(end) - at)) return;
      pending ??= issue(block);
    }
  } finally {
    await pending?.catch(() => undefined);
    for (const b of blocks) giveBlock(b);
    await fh?.close().catch(() => undefined);
  }
}
