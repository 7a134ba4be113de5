import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { readTransient } from '../../../src/io/direct-read.js';
import { BLOCK_SIZE, takeBlock, giveBlock } from '../../../src/io/aligned-blocks.js';
import { openedDirect, takesDirectIo, tempDir } from '../../helpers/tmp.js';

/** What a careful consumer does with transient buffers: use each before asking for the next. */
async function collect(it: AsyncIterable<Buffer>): Promise<{ bytes: Buffer; pieces: number }> {
  const parts: Buffer[] = [];
  for await (const b of it) parts.push(Buffer.from(b));
  return { bytes: Buffer.concat(parts), pieces: parts.length };
}

describe('readTransient', () => {
  const size = 3 * BLOCK_SIZE + 5000;
  const data = randomBytes(size);
  let path: string;

  it('reads any range of a file, aligned or not, block by block', async () => {
    path = join(await tempDir('kit-dr-'), 'blob');
    await writeFile(path, data);
    for (const [start, end] of [
      [0, size],
      [1, size],
      [4095, 4097],
      [BLOCK_SIZE - 1, 2 * BLOCK_SIZE + 1],
      [size - 1, size],
      [size, size],
      [12345, 12345],
    ] as const) {
      const { bytes, pieces } = await collect(readTransient(path, start, end));
      assert.ok(bytes.equals(data.subarray(start, end)), `bytes ${start}-${end}`);
      assert.ok(pieces <= Math.ceil((end - start) / BLOCK_SIZE) + 1, `${pieces} pieces for ${start}-${end}`);
    }
  });

  it('reads with O_DIRECT where the file system takes it', async (t) => {
    if (!(await takesDirectIo(join(path, '..')))) return t.skip('this file system refuses O_DIRECT');
    const it = readTransient(path, 0, size)[Symbol.asyncIterator]();
    try {
      await it.next();
      assert.equal(await openedDirect(path), true);
    } finally {
      await it.return?.(undefined);
    }
    assert.equal(await openedDirect(path), false, 'closed once the consumer stops');
  });

  it('stops at the end of a file shorter than asked', async () => {
    const { bytes } = await collect(readTransient(path, BLOCK_SIZE, size + 10 * BLOCK_SIZE));
    assert.ok(bytes.equals(data.subarray(BLOCK_SIZE)));
  });

  it('gives its blocks back when the consumer stops early, and works with one block only', async () => {
    for await (const _ of readTransient(path, 0, size)) break;
    // Hold all blocks but one: the reader then works with a single block.
    const held: Buffer[] = [];
    for (let i = 0; i < 7; i++) held.push(await takeBlock());
    try {
      const { bytes } = await collect(readTransient(path, 100, size));
      assert.ok(bytes.equals(data.subarray(100)));
    } finally {
      for (const b of held) giveBlock(b);
    }
  });

  it('reads through the page cache when KIT_DIRECT_IO=0', async () => {
    process.env.KIT_DIRECT_IO = '0';
    try {
      const { bytes } = await collect(readTransient(path, 7, size));
      assert.ok(bytes.equals(data.subarray(7)));
    } finally {
      delete process.env.KIT_DIRECT_IO;
    }
  });

  it('fails with ENOENT for a missing file', async () => {
    await assert.rejects(collect(readTransient(join(path, '..', 'missing'), 0, 10)), (err: NodeJS.ErrnoException) => err.code === 'ENOENT');
  });
});
