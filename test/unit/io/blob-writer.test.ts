import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { readFile, stat, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { Readable } from 'node:stream';
import { KitError } from '../../../src/errors.js';
import { sha256 } from '../../../src/oci/digest.js';
import { writeBlobFile } from '../../../src/io/blob-writer.js';
import { BLOCK_SIZE } from '../../../src/io/aligned-blocks.js';
import { openedDirect, takesDirectIo, tempDir } from '../../helpers/tmp.js';

/** `data` in chunks of uneven sizes (as a socket delivers them), failing after `failAfter` bytes when set. */
function chunked(data: Buffer, opts: { failAfter?: number; chunk?: number } = {}): Readable {
  let at = 0;
  let i = 0;
  return new Readable({
    read() {
      if (opts.failAfter !== undefined && at >= opts.failAfter) {
        this.destroy(Object.assign(new Error('connection reset'), { code: 'ECONNRESET' }));
        return;
      }
      if (at >= data.length) {
        this.push(null);
        return;
      }
      const size = opts.chunk ?? [65536, 1000, 131072, 4096, 77777][i++ % 5]!;
      const end = Math.min(data.length, at + size, opts.failAfter ?? Infinity);
      this.push(data.subarray(at, end));
      at = end;
    },
  });
}

const isCode = (code: string) => (err: unknown) => err instanceof KitError && err.code === code;

for (const direct of [true, false]) {
  describe(`writeBlobFile (${direct ? 'O_DIRECT where the file system takes it' : 'page cache only'})`, () => {
    it('writes and verifies a blob that spans several blocks and ends mid-page', async () => {
      const data = randomBytes(3 * BLOCK_SIZE + 12345);
      const path = join(await tempDir('kit-bw-'), 'blob');
      await writeBlobFile(chunked(data), { path, flags: 'wx', expected: { digest: sha256(data), size: data.length }, what: 'blob', direct });
      assert.ok((await readFile(path)).equals(data));
    });

    it('continues a file from an unaligned length, hashing the bytes already there', async () => {
      const data = randomBytes(2 * BLOCK_SIZE + 999);
      const start = BLOCK_SIZE + 4097;
      const path = join(await tempDir('kit-bw-'), 'blob');
      await writeFile(path, data.subarray(0, start));
      await writeBlobFile(chunked(data.subarray(start)), { path, flags: 'r+', start, expected: { digest: sha256(data), size: data.length }, what: 'blob', direct });
      assert.ok((await readFile(path)).equals(data));
    });

    it('writes every byte received before the source fails, then throws its error', async () => {
      const data = randomBytes(3 * BLOCK_SIZE);
      const failAfter = BLOCK_SIZE + 70001; // mid-block, mid-page
      const path = join(await tempDir('kit-bw-'), 'blob');
      await assert.rejects(
        writeBlobFile(chunked(data, { failAfter }), { path, flags: 'w', expected: { digest: sha256(data), size: data.length }, what: 'blob', direct }),
        (err: NodeJS.ErrnoException) => err.code === 'ECONNRESET',
      );
      const kept = await readFile(path);
      assert.equal(kept.length, failAfter);
      assert.ok(kept.equals(data.subarray(0, failAfter)));
      // ... and a resume from there completes the blob.
      await writeBlobFile(chunked(data.subarray(failAfter)), { path, flags: 'r+', start: failAfter, expected: { digest: sha256(data), size: data.length }, what: 'blob', direct });
      assert.ok((await readFile(path)).equals(data));
    });

    it('refuses content longer than announced as soon as it arrives', async () => {
      const data = randomBytes(BLOCK_SIZE * 2);
      const source = chunked(Buffer.concat([data, randomBytes(BLOCK_SIZE * 4)]));
      const path = join(await tempDir('kit-bw-'), 'blob');
      await assert.rejects(
        writeBlobFile(source, { path, flags: 'wx', expected: { digest: sha256(data), size: data.length }, what: 'blob x', direct }),
        (err: unknown) => isCode('SIZE_MISMATCH')(err) && /blob x: size mismatch: expected 4194304 bytes, got more than/.test((err as Error).message),
      );
      assert.ok(source.destroyed, 'the source is released');
      assert.ok((await stat(path)).size <= data.length, 'nothing past the announced size is written');
    });

    it('refuses content that does not hash to the digest, and a short clean end', async () => {
      const data = randomBytes(BLOCK_SIZE + 5);
      const path = join(await tempDir('kit-bw-'), 'blob');
      const other = Buffer.from(data);
      other[BLOCK_SIZE] = other[BLOCK_SIZE]! ^ 1;
      await assert.rejects(
        writeBlobFile(chunked(other), { path, flags: 'wx', expected: { digest: sha256(data), size: data.length }, what: 'blob', direct }),
        isCode('DIGEST_MISMATCH'),
      );
      await assert.rejects(
        writeBlobFile(chunked(data.subarray(0, 1000)), { path, flags: 'w', expected: { digest: sha256(data), size: data.length }, what: 'blob', direct }),
        (err: unknown) => isCode('SIZE_MISMATCH')(err) && /expected 2097157 bytes, got 1000/.test((err as Error).message),
      );
    });
  });
}

describe('writeBlobFile, how it writes', () => {
  it('writes with O_DIRECT where the file system takes it, and not when told otherwise', async (t) => {
    const dir = await tempDir('kit-bw-');
    if (!(await takesDirectIo(dir))) return t.skip('this file system refuses O_DIRECT');
    for (const direct of [true, false]) {
      const data = randomBytes(2 * BLOCK_SIZE);
      const path = join(dir, `blob-${direct}`);
      let seen: boolean | undefined;
      // The source looks at the writer's open files while the writer waits for more.
      const source = new Readable({
        read() {
          if (seen === undefined) {
            void openedDirect(path).then((d) => {
              seen = d;
              this.push(data);
              this.push(null);
            });
          }
        },
      });
      await writeBlobFile(source, { path, flags: 'wx', expected: { digest: sha256(data), size: data.length }, what: 'blob', direct });
      assert.equal(seen, direct);
      assert.ok((await readFile(path)).equals(data));
    }
  });
});

describe('writeBlobFile, many at once', () => {
  it('shares the block pool between more blobs than it has blocks, all complete and correct', async () => {
    const dir = await tempDir('kit-bw-');
    const blobs = Array.from({ length: 10 }, () => randomBytes(2 * BLOCK_SIZE + 3));
    await Promise.all(
      blobs.map((data, i) => writeBlobFile(chunked(data), { path: join(dir, `b${i}`), flags: 'wx', expected: { digest: sha256(data), size: data.length }, what: `blob ${i}` })),
    );
    for (const [i, data] of blobs.entries()) assert.ok((await readFile(join(dir, `b${i}`))).equals(data), `blob ${i}`);
  });

  it('a source that fails or is destroyed while the file opens is heard, never waited for', async () => {
    const dir = await tempDir('kit-bw-');
    const data = randomBytes(BLOCK_SIZE);
    const expected = { digest: sha256(data), size: data.length };
    const failing = new Readable({ read() {} });
    process.nextTick(() => failing.destroy(Object.assign(new Error('connection reset'), { code: 'ECONNRESET' })));
    await assert.rejects(writeBlobFile(failing, { path: join(dir, 'a'), flags: 'wx', expected, what: 'blob' }), (err: NodeJS.ErrnoException) => err.code === 'ECONNRESET');
    const gone = new Readable({ read() {} });
    process.nextTick(() => gone.destroy());
    await assert.rejects(writeBlobFile(gone, { path: join(dir, 'b'), flags: 'wx', expected, what: 'blob' }), isCode('DOWNLOAD_INTERRUPTED'));
  });

  it("'wx' refuses a file that exists", async () => {
    const path = join(await tempDir('kit-bw-'), 'blob');
    await writeFile(path, 'x');
    const data = randomBytes(10);
    await assert.rejects(writeBlobFile(chunked(data), { path, flags: 'wx', expected: { digest: sha256(data), size: 10 }, what: 'blob' }), (err: NodeJS.ErrnoException) => err.code === 'EEXIST');
    assert.equal(await readFile(path, 'utf8'), 'x');
  });
});
