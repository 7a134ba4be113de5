import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import { appendFileSync } from 'node:fs';
import { readFile, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { copyRawLayer } from '../../../src/layers/raw-copy.js';
import { KitError } from '../../../src/errors.js';
import { openedDirect, takesDirectIo, tempDir } from '../../helpers/tmp.js';

for (const direct of [false, true]) describe(`copyRawLayer${direct ? ' (direct: O_DIRECT or a reflink, into the store)' : ''}`, () => {
  it('copies the file and gives the sha256 of exactly what it copied', async () => {
    const dir = await tempDir();
    const data = Buffer.from(Array.from({ length: (5 << 20) + 17 }, (_, i) => (i * 7) % 251));
    await writeFile(join(dir, 'w.bin'), data);
    await writeFile(join(dir, 'out'), '');
    let progress = 0;
    const r = await copyRawLayer(join(dir, 'w.bin'), join(dir, 'out'), { onProgress: (n) => (progress += n), direct });
    const hex = createHash('sha256').update(data).digest('hex');
    assert.deepEqual(r, { digest: `sha256:${hex}`, size: data.length, diffId: `sha256:${hex}`, uncompressedSize: data.length });
    assert.equal(progress, data.length);
    assert.deepEqual(await readFile(join(dir, 'out')), data);
  });

  it('fails with FILE_CHANGED when the file changes while it is copied', async () => {
    const dir = await tempDir();
    const p = join(dir, 'w.bin');
    await writeFile(p, Buffer.alloc(6 << 20, 1));
    await writeFile(join(dir, 'out'), '');
    let changed = false;
    await assert.rejects(
      copyRawLayer(p, join(dir, 'out'), {
        direct,
        onProgress: () => {
          if (changed) return;
          changed = true;
          appendFileSync(p, 'more');
        },
      }),
      (err: unknown) => err instanceof KitError && err.code === 'FILE_CHANGED' && /w\.bin changed while kit was reading it/.test(err.message),
    );
  });

  if (direct) {
    it('writes the store copy with O_DIRECT where the file system takes it (and has no reflink)', async (t) => {
      const dir = await tempDir();
      if (!(await takesDirectIo(dir))) return t.skip('this file system refuses O_DIRECT');
      const data = Buffer.alloc(48 << 20, 3);
      await writeFile(join(dir, 'w.bin'), data);
      const out = join(dir, 'out');
      // Looked at while the copy is on (24 blocks: long enough for a look to finish meanwhile).
      const looks: Array<Promise<boolean | undefined>> = [];
      await copyRawLayer(join(dir, 'w.bin'), out, { direct, onProgress: () => void looks.push(openedDirect(out)) });
      const seen = (await Promise.all(looks)).some((d) => d === true);
      // A reflink (btrfs, xfs) moves no byte and opens nothing: then there is nothing to see.
      if (!seen) {
        const { execFileSync } = await import('node:child_process');
        const fs = execFileSync('stat', ['-f', '-c', '%T', dir], { encoding: 'utf8' }).trim();
        assert.ok(['btrfs', 'xfs'].includes(fs), `no O_DIRECT write seen on ${fs}`);
      }
      assert.ok((await readFile(out)).equals(data));
    });
  }
});
