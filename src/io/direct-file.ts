/**
 * A file written with O_DIRECT where the file system takes it (see aligned-blocks.ts for why),
 * through the page cache where it does not, or for the few bytes O_DIRECT cannot take.
 *
 * write() takes a buffer whose memory address is congruent to the file position modulo ALIGN:
 * a block of aligned-blocks.ts written at a position congruent to its offset in the block.
 * The aligned middle of each write goes with O_DIRECT; an unaligned head or tail (a resumed
 * download's first bytes, a file's last partial page) through the page cache.
 */
import { constants } from 'node:fs';
import { open, type FileHandle } from 'node:fs/promises';
import { errnoCode } from '../errors.js';
import { alignDown, alignUp, directIoWanted } from './aligned-blocks.js';

export class DirectFile {
  private constructor(
    private readonly plain: FileHandle,
    private direct: FileHandle | undefined,
  ) {}

  /** 'wx': a new file (fails when it exists); 'w': created or emptied; 'r+': an existing file, kept. */
  static async open(path: string, flags: 'wx' | 'w' | 'r+', direct = directIoWanted()): Promise<DirectFile> {
    const plain = await open(path, flags, 0o644);
    const d = direct ? await open(path, constants.O_WRONLY | constants.O_DIRECT).catch(() => undefined) : undefined;
    return new DirectFile(plain, d);
  }

  /** Whether writes still go with O_DIRECT. */
  get isDirect(): boolean {
    return this.direct !== undefined;
  }

  /** Writes all of `buf` at `position`. */
  async write(buf: Buffer, position: number): Promise<void> {
    const end = position + buf.length;
    const put = (fh: FileHandle, from: number, to: number): Promise<void> => writeAll(fh, buf, from - position, to - from, from);
    if (!this.direct) return put(this.plain, position, end);
    const midFrom = Math.min(alignUp(position), end);
    const midTo = Math.max(alignDown(end), midFrom);
    if (midFrom > position) await put(this.plain, position, midFrom);
    if (midTo > midFrom) {
      try {
        await put(this.direct, midFrom, midTo);
      } catch (err) {
        if (errnoCode(err) !== 'EINVAL') throw err;
        // Accepted at open, refused at write (some file systems; or a short write left an
        // unaligned rest): the page cache it is, from here on.
        await this.direct.close().catch(() => undefined);
        this.direct = undefined;
        await put(this.plain, midFrom, midTo);
      }
    }
    if (end > midTo) await put(this.plain, midTo, end);
  }

  async datasync(): Promise<void> {
    await this.plain.datasync();
  }

  async close(): Promise<void> {
    await this.direct?.close().catch(() => undefined);
    await this.plain.close();
  }
}

async function writeAll(fh: FileHandle, buf: Buffer, offset: number, length: number, position: number): Promise<void> {
  while (length > 0) {
    const { bytesWritten } = await fh.write(buf, offset, length, position);
    if (bytesWritten <= 0) throw Object.assign(new Error(`write returned ${bytesWritten}`), { code: 'EIO' });
    offset += bytesWritten;
    position += bytesWritten;
    length -= bytesWritten;
  }
}
