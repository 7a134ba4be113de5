import { describe, it, before } from 'node:test';
import assert from 'node:assert/strict';
import { chmod, readFile, stat, truncate, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { EXAMPLE, runKit } from '../helpers/cli.js';
import { tempDir } from '../helpers/tmp.js';

/**
 * Unpack from the local store copies raw blobs with the kernel and trusts the digest the store
 * checked when it stored them (as containerd and Docker trust their content stores), which is
 * what lets it run at `cp` speed. What it still catches, and what --verify-blobs adds.
 */

const REF = 'registry.example.com/team/store-blobs:1.0';
const WEIGHTS = 'models/sentiment.safetensors';

describe('unpack and the local store blobs', () => {
  let home: string;
  let blobPath: string;
  let original: Buffer;
  before(async () => {
    home = await tempDir();
    const packed = await runKit(['pack', EXAMPLE, '-t', REF], { home });
    assert.equal(packed.code, 0, packed.stderr);
    const inspect = JSON.parse((await runKit(['inspect', REF], { home })).stdout) as { manifest: { layers: Array<{ digest: string; annotations?: Record<string, string> }> } };
    const layer = inspect.manifest.layers.find((l) => l.annotations?.['org.cncf.model.filepath'] === WEIGHTS)!;
    blobPath = join(home, 'store', 'blobs', 'sha256', layer.digest.slice('sha256:'.length));
    original = await readFile(blobPath);
  });

  const restore = async () => {
    await chmod(blobPath, 0o644);
    await writeFile(blobPath, original);
    await chmod(blobPath, 0o444);
  };

  it('restores raw files byte for byte', async () => {
    const out = join(await tempDir(), 'out');
    const r = await runKit(['unpack', REF, '-d', out, '-v'], { home });
    assert.equal(r.code, 0, r.stderr);
    assert.deepEqual(await readFile(join(out, WEIGHTS)), original);
  });

  it('--verify-blobs refuses a stored blob whose bytes were changed, and writes nothing for it', async () => {
    const altered = Buffer.from(original);
    altered[altered.length >> 1]! ^= 0xff;
    await chmod(blobPath, 0o644);
    await writeFile(blobPath, altered);
    try {
      const out = join(await tempDir(), 'out');
      const r = await runKit(['unpack', REF, '-d', out, '--verify-blobs', '--filter', 'model'], { home });
      assert.notEqual(r.code, 0);
      const lines = r.stderr.trim().split('\n');
      assert.match(lines[0]!, /sentiment\.safetensors.*digest/);
      assert.match(r.stderr, /kit store verify/);
      assert.equal(await stat(join(out, WEIGHTS)).catch(() => undefined), undefined, 'no file left for the refused layer');
      // What the store check names too.
      const v = await runKit(['store', 'verify'], { home });
      assert.notEqual(v.code, 0);
    } finally {
      await restore();
    }
  });

  it('a stored blob of the wrong size is not used: unpack fails naming it, with no file written', async () => {
    await chmod(blobPath, 0o644);
    await truncate(blobPath, original.length - 100);
    try {
      const out = join(await tempDir(), 'out');
      const r = await runKit(['unpack', REF, '-d', out, '--filter', 'model'], { home });
      assert.notEqual(r.code, 0);
      assert.match(r.stderr.trim().split('\n')[0]!, /size|not found|missing/i);
      assert.equal(await stat(join(out, WEIGHTS)).catch(() => undefined), undefined);
    } finally {
      await restore();
    }
  });
});
