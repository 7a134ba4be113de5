import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { createHash } from 'node:crypto';
import { appendFileSync, chmodSync, chownSync, closeSync, createWriteStream, existsSync, openSync, truncateSync, writeSync } from 'node:fs';
import { chmod, mkdir, readFile, utimes, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { describe, it } from 'node:test';
import { gunzipSync } from 'node:zlib';
import { decompress as zstdDecompress } from 'zstd-napi';
import { sha256 } from '../../../src/oci/digest.js';
import { writeRawLayer, writeTarLayer, type TarEntry } from '../../../src/layers/tar-writer.js';
import type { Compression } from '../../../src/layers/compression.js';
import { tempDir } from '../../helpers/tmp.js';
import tarStream from 'tar-stream';
import { collect, MemorySink, rejectsWithCode } from './tar-fixtures.js';

const MTIME = new Date('2024-01-01T00:00:00Z');
const ALL: Compression[] = ['none', 'gzip', 'gzip-fastest', 'zstd'];

/** A small project tree; returns its tar entries (deliberately unsorted). */
async function project(root: string, variant: { mode: number; mtime: Date; owner?: number }): Promise<TarEntry[]> {
  const files: Array<[string, string, boolean]> = [
    ['src/train.py', 'print("train")\n', true],
    ['data/train.csv', 'a,b\n1,2\n'.repeat(1000), false],
    ['README.md', '# model\n', false],
    ['data/z/deep.bin', 'z'.repeat(70_000), false],
  ];
  for (const [p, body, exec] of files) {
    await mkdir(join(root, p, '..'), { recursive: true });
    await writeFile(join(root, p), body);
    await chmod(join(root, p), exec ? variant.mode | 0o100 : variant.mode);
    await utimes(join(root, p), variant.mtime, variant.mtime);
    if (variant.owner !== undefined) tryChown(join(root, p), variant.owner);
  }
  const entries: TarEntry[] = files.map(([p, body, exec]) => ({
    path: p,
    absPath: join(root, p),
    type: 'file',
    size: Buffer.byteLength(body),
    executable: exec,
  }));
  for (const d of ['data/z', 'src', 'data']) {
    entries.push({ path: d, absPath: join(root, d), type: 'directory', size: 0, executable: false });
  }
  return entries;
}

function tryChown(p: string, id: number): void {
  try {
    chownSync(p, id, id);
  } catch {
    // not root: ownership differs anyway between users, and the writer never reads it
  }
}

async function layerBytes(entries: TarEntry[], compression: Compression, mtime = MTIME): Promise<{ blob: Buffer; r: Awaited<ReturnType<typeof writeTarLayer>> }> {
  const sink = new MemorySink();
  const r = await writeTarLayer(entries, { compression, mtime }, sink);
  return { blob: sink.data, r };
}

function uncompress(c: Compression, blob: Buffer): Buffer {
  if (c === 'none') return blob;
  if (c === 'zstd') return zstdDecompress(blob);
  return gunzipSync(blob);
}

async function listTar(tar: Buffer): Promise<Array<{ name: string; mode: number; uid: number; gid: number; uname: string; gname: string; mtime: number; type: string; body: Buffer }>> {
  const ex = tarStream.extract();
  const out: Array<{ name: string; mode: number; uid: number; gid: number; uname: string; gname: string; mtime: number; type: string; body: Buffer }> = [];
  const done = (async () => {
    for await (const entry of ex) {
      const h = entry.header;
      const body = await collect(entry as unknown as AsyncIterable<Buffer>);
      out.push({ name: h.name, mode: h.mode, uid: h.uid, gid: h.gid, uname: h.uname, gname: h.gname, mtime: h.mtime.getTime(), type: h.type, body });
    }
  })();
  ex.end(tar);
  await done;
  return out;
}

describe('writeTarLayer', () => {
  it('is reproducible: same entries twice give the same digest and diffId, for every compression', async () => {
    const root = await tempDir();
    const entries = await project(root, { mode: 0o644, mtime: new Date() });
    for (const c of ALL) {
      const a = await layerBytes(entries, c);
      const b = await layerBytes([...entries].reverse(), c);
      assert.deepEqual(a.r, b.r, c);
      assert.deepEqual(a.blob, b.blob, c);
    }
  });

  it('does not depend on modes, mtimes or owners on disk', async () => {
    const one = await tempDir();
    const two = await tempDir();
    const a = await project(one, { mode: 0o600, mtime: new Date('2001-02-03T04:05:06Z'), owner: 0 });
    const b = await project(two, { mode: 0o664, mtime: new Date('2023-06-07T08:09:10Z'), owner: 4242 });
    for (const c of ALL) {
      assert.deepEqual((await layerBytes(a, c)).r, (await layerBytes(b, c)).r, c);
    }
  });

  it('reports digest/size of the blob and diffId/size of the tar inside it', async () => {
    const root = await tempDir();
    const entries = await project(root, { mode: 0o644, mtime: MTIME });
    const plain = await layerBytes(entries, 'none');
    assert.equal(plain.r.digest, plain.r.diffId);
    assert.equal(plain.r.digest, sha256(plain.blob));
    assert.equal(plain.r.size, plain.blob.length);
    for (const c of ['gzip', 'gzip-fastest', 'zstd'] as const) {
      const { blob, r } = await layerBytes(entries, c);
      assert.equal(r.digest, sha256(blob), c);
      assert.equal(r.size, blob.length, c);
      const tar = uncompress(c, blob);
      assert.deepEqual(tar, plain.blob, `${c} holds the same tar`);
      assert.equal(r.diffId, plain.r.diffId, c);
      assert.equal(r.uncompressedSize, tar.length, c);
    }
  });

  it('writes sorted entries with fixed owners, modes and mtime', async () => {
    const root = await tempDir();
    const entries = await project(root, { mode: 0o600, mtime: new Date() });
    const { blob } = await layerBytes(entries, 'none');
    assert.equal(blob.length % 512, 0);
    assert.deepEqual(blob.subarray(-1024), Buffer.alloc(1024), 'ends with two zero blocks');
    const listed = await listTar(blob);
    assert.deepEqual(
      listed.map((e) => e.name),
      ['README.md', 'data/', 'data/train.csv', 'data/z/', 'data/z/deep.bin', 'src/', 'src/train.py'],
    );
    for (const e of listed) {
      assert.equal(e.uid, 0);
      assert.equal(e.gid, 0);
      assert.equal(e.uname, '');
      assert.equal(e.gname, '');
      assert.equal(e.mtime, MTIME.getTime());
      const want = e.type === 'directory' || e.name === 'src/train.py' ? 0o755 : 0o644;
      assert.equal(e.mode, want, e.name);
    }
    assert.equal(listed.find((e) => e.name === 'data/z/deep.bin')!.body.toString(), 'z'.repeat(70_000));
    // No PAX headers for short ASCII names, so no atime/ctime either.
    assert.ok(!blob.includes(Buffer.from('PaxHeaders')));
  });

  it('sorts by UTF-8 bytes and uses PAX only for names ustar cannot hold', async () => {
    const root = await tempDir();
    const long = `${'d'.repeat(120)}/${'f'.repeat(90)}`; // fits as ustar prefix + name
    const tooLong = `x/${'y'.repeat(150)}`; // last component over 100: needs PAX
    const unicode = 'données/modèle.bin';
    const names = [long, tooLong, unicode, 'a\u{1F600}', 'a\uFFFD'];
    const entries: TarEntry[] = [];
    for (const n of names) {
      await mkdir(join(root, n, '..'), { recursive: true });
      await writeFile(join(root, n), n);
      entries.push({ path: n, absPath: join(root, n), type: 'file', size: Buffer.byteLength(n), executable: false });
    }
    const { blob } = await layerBytes(entries, 'none');
    const listed = await listTar(blob);
    const expected = [...names].sort((a, b) => Buffer.compare(Buffer.from(a), Buffer.from(b)));
    assert.deepEqual(listed.map((e) => e.name), expected);
    for (const e of listed) assert.equal(e.body.toString(), e.name);
    const paxCount = blob.toString('latin1').split('PaxHeaders.0/').length - 1;
    assert.equal(paxCount, 4, 'PAX for the over-long name and the three non-ASCII ones, not for the prefix split');
  });

  it('is read correctly by GNU tar', { skip: !existsSync('/usr/bin/tar') && 'no tar here' }, async () => {
    const root = await tempDir();
    const entries = await project(root, { mode: 0o644, mtime: MTIME });
    const long = `${'n'.repeat(130)}/${'m'.repeat(120)}.bin`;
    await mkdir(join(root, long, '..'), { recursive: true });
    await writeFile(join(root, long), 'long');
    entries.push({ path: long, absPath: join(root, long), type: 'file', size: 4, executable: false });
    const out = await tempDir();
    const layer = join(out, 'layer.tar.gz');
    await writeTarLayer(entries, { compression: 'gzip', mtime: MTIME }, createWriteStream(layer));
    const x = join(out, 'x');
    await mkdir(x);
    execFileSync('tar', ['-xzf', layer, '-C', x]);
    assert.equal(await readFile(join(x, long), 'utf8'), 'long');
    assert.deepEqual(await readFile(join(x, 'data/train.csv')), await readFile(join(root, 'data/train.csv')));
    const verbose = execFileSync('tar', ['-tvzf', layer, '--numeric-owner']).toString();
    assert.match(verbose, /-rwxr-xr-x 0\/0 +15 2024-01-01 00:00 src\/train\.py/);
  });

  it('fails with FILE_CHANGED when a file grows, shrinks or is modified while read', async () => {
    const root = await tempDir();
    const p = join(root, 'weights.bin');
    const size = 3 << 20;
    const entry: TarEntry = { path: 'weights.bin', absPath: p, type: 'file', size, executable: false };
    const cases: Array<[string, () => Promise<void> | void]> = [
      // Synchronous: the change has landed when the first chunk is handed on (reads ahead of
      // it may already hold old bytes; the final check of size and mtime then catches it).
      ['grew', () => appendFileSync(p, 'more')],
      ['shrank', () => truncateSync(p, 1 << 20)],
      ['modified', () => {
        // Same size, one byte changed: only the mtime can tell.
        const fd = openSync(p, 'r+');
        writeSync(fd, Buffer.from('X'), 0, 1, size - 1);
        closeSync(fd);
      }],
    ];
    for (const [what, change] of cases) {
      await writeFile(p, Buffer.alloc(size, 7));
      await utimes(p, new Date('2000-01-01'), new Date('2000-01-01'));
      let changed = false;
      const onProgress = (): void => {
        if (changed) return;
        changed = true;
        void change();
      };
      const sink = new MemorySink();
      const err = await rejectsWithCode(writeTarLayer([entry], { compression: 'none', mtime: MTIME, onProgress }, sink), 'FILE_CHANGED', 'weights.bin');
      // Read-ahead may already hold the old bytes when the change lands: then the final
      // fstat is what notices ("modified"). Either way the layer is refused.
      assert.match(err.message, new RegExp(`${what}|modified`));
      assert.ok(sink.data.length <= 512 + size, `${what}: never more content than the header announced`);
    }
    // A size that disagrees with the plan before reading starts.
    await writeFile(p, 'short');
    await rejectsWithCode(writeTarLayer([entry], { compression: 'none', mtime: MTIME }, new MemorySink()), 'FILE_CHANGED');
  });

  it('reports progress in source bytes read, in chunks of at most 1 MiB', async () => {
    const root = await tempDir();
    const p = join(root, 'big.bin');
    await writeFile(p, Buffer.alloc((2 << 20) + 5, 1));
    const seen: number[] = [];
    await writeTarLayer(
      [{ path: 'big.bin', absPath: p, type: 'file', size: (2 << 20) + 5, executable: false }],
      { compression: 'zstd', mtime: MTIME, onProgress: (n) => seen.push(n) },
      new MemorySink(),
    );
    assert.equal(seen.reduce((a, b) => a + b, 0), (2 << 20) + 5);
    assert.ok(seen.every((n) => n <= 1 << 20));
  });

  it('refuses entry paths it would refuse to extract, and duplicates', async () => {
    for (const bad of ['../x', '/abs', './a', 'a/', 'a/../b', 'a\\b', '']) {
      const e: TarEntry = { path: bad, absPath: '/dev/null', type: 'file', size: 0, executable: false };
      await rejectsWithCode(writeTarLayer([e], { compression: 'none', mtime: MTIME }, new MemorySink()), 'UNSAFE_PATH');
    }
    const d: TarEntry = { path: 'a', absPath: '/tmp', type: 'directory', size: 0, executable: false };
    await rejectsWithCode(writeTarLayer([d, d], { compression: 'none', mtime: MTIME }, new MemorySink()), 'LAYER_DUPLICATE_ENTRY');
  });

  it('ends an fs WriteStream dest and waits for it', async () => {
    const root = await tempDir();
    const entries = await project(root, { mode: 0o644, mtime: MTIME });
    const out = join(await tempDir(), 'layer');
    const ws = createWriteStream(out);
    const r = await writeTarLayer(entries, { compression: 'gzip', mtime: MTIME }, ws);
    assert.ok(ws.closed);
    assert.equal(sha256(await readFile(out)), r.digest);
  });
});

describe('writeRawLayer', () => {
  it('digest and diffId are the sha256 of the file, sizes its length', async () => {
    const root = await tempDir();
    const p = join(root, 'model.safetensors');
    const data = Buffer.from(Array.from({ length: (1 << 20) * 2 + 333 }, (_, i) => i % 256));
    await writeFile(p, data);
    chmodSync(p, 0o600);
    const sink = new MemorySink();
    let progress = 0;
    const r = await writeRawLayer(p, sink, { onProgress: (n) => (progress += n) });
    const hex = createHash('sha256').update(data).digest('hex');
    assert.deepEqual(r, { digest: `sha256:${hex}`, size: data.length, diffId: `sha256:${hex}`, uncompressedSize: data.length });
    assert.deepEqual(sink.data, data);
    assert.equal(progress, data.length);
  });

  it('fails with FILE_CHANGED when the file changes while read', async () => {
    const root = await tempDir();
    const p = join(root, 'w.bin');
    await writeFile(p, Buffer.alloc(3 << 20));
    let once = false;
    const onProgress = (): void => {
      if (!once) {
        once = true;
        appendFileSync(p, 'x');
      }
    };
    await rejectsWithCode(writeRawLayer(p, new MemorySink(), { onProgress }), 'FILE_CHANGED');
  });
});
