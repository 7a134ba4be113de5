import { describe, it, before } from 'node:test';
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { chmod, readFile, readdir, stat, truncate, writeFile } from 'node:fs/promises';
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

describe('unpack restores several raw layers at once', () => {
  const REF5 = 'registry.example.com/team/five-parts:1.0';
  let home: string;
  let project: string;
  const files = ['w.bin', 'p1.bin', 'p2.bin', 'p3.bin', 'p4.bin'];
  before(async () => {
    home = await tempDir();
    project = await tempDir();
    for (const [i, f] of files.entries()) await writeFile(join(project, f), randomBytes(3 * 1024 * 1024 + i * 4097));
    await writeFile(
      join(project, 'Kitfile'),
      ['manifestVersion: 1.0.0', 'package:', '  name: five', 'model:', '  name: five', '  path: w.bin', '  parts:', ...files.slice(1).map((f) => `    - path: ${f}`), ''].join('\n'),
    );
    const packed = await runKit(['pack', project, '-t', REF5], { home });
    assert.equal(packed.code, 0, packed.stderr);
  });

  it('every file byte for byte', async () => {
    const out = join(await tempDir(), 'out');
    const r = await runKit(['unpack', REF5, '-d', out], { home });
    assert.equal(r.code, 0, r.stderr);
    for (const f of files) assert.ok((await readFile(join(out, f))).equals(await readFile(join(project, f))), f);
  });

  it('one bad blob among them: one error line naming it, no temp file left, the command waits for the others', async () => {
    const inspect = JSON.parse((await runKit(['inspect', REF5], { home })).stdout) as { manifest: { layers: Array<{ digest: string; annotations?: Record<string, string> }> } };
    const bad = inspect.manifest.layers.find((l) => l.annotations?.['org.cncf.model.filepath'] === 'p2.bin')!;
    const path = join(home, 'store', 'blobs', 'sha256', bad.digest.slice('sha256:'.length));
    const kept = await readFile(path);
    await chmod(path, 0o644);
    await truncate(path, 1000);
    try {
      const out = join(await tempDir(), 'out');
      const r = await runKit(['unpack', REF5, '-d', out], { home });
      assert.notEqual(r.code, 0);
      const lines = r.stderr.trim().split('\n');
      assert.match(lines[0]!, /p2\.bin|size|not found|missing/i, r.stderr);
      assert.doesNotMatch(r.stderr, /\n\s+at /, 'no stack trace');
      assert.equal(await stat(join(out, 'p2.bin')).catch(() => undefined), undefined);
      const left = await readdir(out).catch(() => [] as string[]);
      assert.deepEqual(left.filter((n) => n.startsWith('.kit-')), [], 'no temp file left');
    } finally {
      await chmod(path, 0o644);
      await writeFile(path, kept);
      await chmod(path, 0o444);
    }
  });
});
