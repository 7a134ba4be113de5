import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { createReadStream, createWriteStream, existsSync } from 'node:fs';
import { chmod, link, lstat, mkdir, readFile, readdir, readlink, rm, stat, symlink, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { Readable } from 'node:stream';
import { describe, it } from 'node:test';
import { gzipSync } from 'node:zlib';
import { compress as zstdCompress } from 'zstd-napi';
import { KitError } from '../../../src/errors.js';
import { extractTarLayer, safeJoin, writeRawFile, type ExtractOptions } from '../../../src/layers/extract.js';
import { writeTarLayer, type TarEntry } from '../../../src/layers/tar-writer.js';
import { encodeEntryHeader } from '../../../src/layers/tar-header.js';
import { tempDir } from '../../helpers/tmp.js';
import {
  END_OF_ARCHIVE,
  assertNothingOutside,
  blocks,
  gnuLongNameEntry,
  packTar,
  partialFiles,
  rawHeader,
  readableOf,
  rejectsWithCode,
  sandbox,
  type Sandbox,
} from './tar-fixtures.js';

const MTIME = new Date('2024-01-01T00:00:00Z');

function extract(s: Sandbox, tar: Buffer, opts: Partial<ExtractOptions> = {}): ReturnType<typeof extractTarLayer> {
  return extractTarLayer(readableOf(tar), { dest: s.dest, existing: 'error', compression: 'none', ...opts });
}

/** Extraction of `tar` must fail with UNSAFE_LAYER (or `code`) and leave nothing outside dest. */
async function assertRefused(tar: Buffer, code = 'UNSAFE_LAYER', messagePart?: string, opts: Partial<ExtractOptions> = {}): Promise<Sandbox> {
  const s = await sandbox();
  await rejectsWithCode(extract(s, tar, opts), code, messagePart);
  await assertNothingOutside(s);
  return s;
}

describe('extractTarLayer: round trip', () => {
  async function sourceTree(): Promise<{ root: string; entries: TarEntry[] }> {
    const root = await tempDir();
    const files: Array<[string, Buffer, boolean]> = [
      ['model/weights.bin', Buffer.from(Array.from({ length: 3_000_000 }, (_, i) => (i * 31) % 256)), false],
      ['model/config.json', Buffer.from('{"a":1}'), false],
      ['code/run.sh', Buffer.from('#!/bin/sh\necho hi\n'), true],
      ['empty.txt', Buffer.alloc(0), false],
    ];
    const entries: TarEntry[] = [];
    for (const d of ['model', 'code', 'emptydir']) {
      await mkdir(join(root, d), { recursive: true });
      entries.push({ path: d, absPath: join(root, d), type: 'directory', size: 0, executable: false });
    }
    for (const [p, data, exec] of files) {
      await writeFile(join(root, p), data);
      entries.push({ path: p, absPath: join(root, p), type: 'file', size: data.length, executable: exec });
    }
    return { root, entries };
  }

  for (const compression of ['none', 'gzip', 'zstd'] as const) {
    it(`writes the same bytes and modes back (${compression})`, async () => {
      const { root, entries } = await sourceTree();
      const layer = join(await tempDir(), 'layer');
      const written = await writeTarLayer(entries, { compression, mtime: MTIME }, createWriteStream(layer));
      const s = await sandbox();
      let progress = 0;
      const r = await extractTarLayer(createReadStream(layer), {
        dest: s.dest,
        existing: 'error',
        compression,
        onProgress: (n) => (progress += n),
      });
      assert.equal(progress, written.size, 'progress counts the blob bytes read');
      assert.deepEqual(r, { files: 4, directories: 3, bytes: 3_000_000 + 7 + 18, skipped: [], unchanged: [] });
      for (const e of entries) {
        const st = await stat(join(s.dest, e.path));
        if (e.type === 'directory') {
          assert.ok(st.isDirectory(), e.path);
          assert.equal(st.mode & 0o777, 0o755, e.path);
        } else {
          assert.deepEqual(await readFile(join(s.dest, e.path)), await readFile(join(root, e.path)), e.path);
          assert.equal(st.mode & 0o777, e.executable ? 0o755 : 0o644, e.path);
        }
      }
      await assertNothingOutside(s);
    });
  }

  it('extracts symlinks and hard links that stay inside, with GNU and PAX long names', async () => {
    const longName = `${'deep/'.repeat(30)}file.bin`;
    const tar = Buffer.concat([
      await packTar([
        { header: { name: 'data/a.bin' }, body: 'AAA' },
        { header: { name: 'data/link-to-a', type: 'symlink', linkname: 'a.bin' } },
        { header: { name: 'data/sub/up', type: 'symlink', linkname: '../a.bin' } },
        { header: { name: 'hard-a', type: 'link', linkname: 'data/a.bin' } },
        { header: { name: `pax/${'p'.repeat(200)}.txt` }, body: 'pax' },
      ]).then((b) => b.subarray(0, b.length - 1024)),
      gnuLongNameEntry(longName, Buffer.from('gnu')),
      END_OF_ARCHIVE,
    ]);
    const s = await sandbox();
    const r = await extract(s, tar);
    assert.equal(r.files, 6);
    assert.equal(await readlink(join(s.dest, 'data/link-to-a')), 'a.bin');
    assert.equal(await readFile(join(s.dest, 'data/sub/up'), 'utf8'), 'AAA');
    assert.equal((await stat(join(s.dest, 'hard-a'))).ino, (await stat(join(s.dest, 'data/a.bin'))).ino);
    assert.equal(await readFile(join(s.dest, `pax/${'p'.repeat(200)}.txt`), 'utf8'), 'pax');
    assert.equal(await readFile(join(s.dest, longName), 'utf8'), 'gnu');
    await assertNothingOutside(s);
  });

  it('strips setuid, setgid and sticky bits', async () => {
    const tar = await packTar([
      { header: { name: 'suid', mode: 0o4755 }, body: 'x' },
      { header: { name: 'dir', type: 'directory', mode: 0o3775 } },
    ]);
    const s = await sandbox();
    await extract(s, tar);
    assert.equal((await stat(join(s.dest, 'suid'))).mode & 0o7777, 0o755);
    assert.equal((await stat(join(s.dest, 'dir'))).mode & 0o7777, 0o775);
  });

  it('extracts only what include accepts, still validating everything', async () => {
    const tar = await packTar([
      { header: { name: 'keep/a' }, body: 'a' },
      { header: { name: 'drop/b' }, body: 'b' },
    ]);
    const s = await sandbox();
    const r = await extract(s, tar, { include: (p) => p.startsWith('keep/') });
    assert.equal(r.files, 1);
    assert.deepEqual(await readdir(s.dest), ['keep']);
    const hostile = await packTar([{ header: { name: '../evil' }, body: 'x' }]);
    await assertRefused(hostile, 'UNSAFE_LAYER', '../evil', { include: () => false });
  });

  it('accepts a ./ prefix and a root ./ entry', async () => {
    const tar = await packTar([
      { header: { name: './', type: 'directory' } },
      { header: { name: './x/y.txt' }, body: 'y' },
    ]);
    const s = await sandbox();
    const r = await extract(s, tar);
    assert.equal(await readFile(join(s.dest, 'x/y.txt'), 'utf8'), 'y');
    assert.equal(r.directories, 0);
  });
});

describe('extractTarLayer: tars from other writers', () => {
  for (const format of ['gnu', 'posix', 'ustar'] as const) {
    it(`extracts what GNU tar writes (--format=${format})`, { skip: !existsSync('/usr/bin/tar') && 'no tar here' }, async () => {
      const src = await tempDir();
      const long = format === 'ustar' ? 'short/name.bin' : `${'l'.repeat(110)}/${'m'.repeat(110)}.bin`;
      await mkdir(join(src, 'proj', long, '..'), { recursive: true });
      await writeFile(join(src, 'proj', long), 'deep');
      await writeFile(join(src, 'proj/run.sh'), '#!/bin/sh\n');
      await chmod(join(src, 'proj/run.sh'), 0o755);
      await symlink('run.sh', join(src, 'proj/start'));
      await link(join(src, 'proj/run.sh'), join(src, 'proj/run-again.sh'));
      const layer = join(src, 'layer.tar');
      execFileSync('tar', [`--format=${format}`, '-cf', layer, '-C', join(src, 'proj'), '.']);
      const s = await sandbox();
      const r = await extractTarLayer(createReadStream(layer), { dest: s.dest, existing: 'error', compression: 'none' });
      assert.equal(r.files, 4);
      assert.equal(await readFile(join(s.dest, long), 'utf8'), 'deep');
      assert.equal(await readlink(join(s.dest, 'start')), 'run.sh');
      assert.equal((await stat(join(s.dest, 'run-again.sh'))).ino, (await stat(join(s.dest, 'run.sh'))).ino);
      assert.equal((await stat(join(s.dest, 'run.sh'))).mode & 0o777, 0o755);
      await assertNothingOutside(s);
    });
  }
});

describe('extractTarLayer: existing files', () => {
  const tar = (): Promise<Buffer> => packTar([
    { header: { name: 'a.txt' }, body: 'new' },
    { header: { name: 'b.txt' }, body: 'new' },
  ]);

  it("'error' fails with FILE_EXISTS naming the path, with a hint", async () => {
    const s = await sandbox();
    await writeFile(join(s.dest, 'b.txt'), 'old');
    const err = await rejectsWithCode(extract(s, await tar()), 'FILE_EXISTS', 'b.txt');
    assert.match(err.hint ?? '', /--overwrite or --ignore-existing/);
    assert.equal(await readFile(join(s.dest, 'b.txt'), 'utf8'), 'old');
    assert.deepEqual(await partialFiles(s.dest), []);
  });

  it("'error' accepts a file already holding exactly the entry's bytes (a re-run) and reports it unchanged", async () => {
    const s = await sandbox();
    await writeFile(join(s.dest, 'b.txt'), 'new');
    const r = await extract(s, await tar());
    assert.deepEqual(r.unchanged, ['b.txt']);
    assert.equal(r.files, 1);
    assert.equal(await readFile(join(s.dest, 'a.txt'), 'utf8'), 'new');
    assert.deepEqual(await partialFiles(s.dest), []);
  });

  it("'skip' leaves existing files and reports them", async () => {
    const s = await sandbox();
    await writeFile(join(s.dest, 'b.txt'), 'old');
    const r = await extract(s, await tar(), { existing: 'skip' });
    assert.deepEqual(r.skipped, ['b.txt']);
    assert.equal(r.files, 1);
    assert.equal(await readFile(join(s.dest, 'a.txt'), 'utf8'), 'new');
    assert.equal(await readFile(join(s.dest, 'b.txt'), 'utf8'), 'old');
  });

  it("'overwrite' replaces files, and replaces a symlink rather than writing through it", async () => {
    const s = await sandbox();
    await writeFile(join(s.dest, 'a.txt'), 'old');
    const outside = join(s.root, 'outside.txt');
    await writeFile(outside, 'precious');
    await symlink(outside, join(s.dest, 'b.txt'));
    await extract(s, await tar(), { existing: 'overwrite' });
    assert.equal(await readFile(join(s.dest, 'a.txt'), 'utf8'), 'new');
    assert.ok((await lstat(join(s.dest, 'b.txt'))).isFile());
    assert.equal(await readFile(join(s.dest, 'b.txt'), 'utf8'), 'new');
    assert.equal(await readFile(outside, 'utf8'), 'precious');
  });

  it('merges into existing folders without changing their mode', async () => {
    const s = await sandbox();
    await mkdir(join(s.dest, 'd'));
    await chmod(join(s.dest, 'd'), 0o700);
    const t = await packTar([
      { header: { name: 'd', type: 'directory', mode: 0o755 } },
      { header: { name: 'd/f' }, body: 'f' },
    ]);
    await extract(s, t);
    assert.equal((await stat(join(s.dest, 'd'))).mode & 0o777, 0o700);
  });
});

describe('extractTarLayer: hostile layers are refused, nothing is written outside dest', () => {
  it('refuses ../ paths', async () => {
    await assertRefused(await packTar([{ header: { name: '../evil' }, body: 'x' }]), 'UNSAFE_LAYER', '../evil');
    await assertRefused(await packTar([{ header: { name: 'a/../../sentinel/evil' }, body: 'x' }]));
  });

  it('refuses absolute paths', async () => {
    const s = await sandbox();
    const target = join(s.sentinel, 'evil');
    await rejectsWithCode(extract(s, await packTar([{ header: { name: target }, body: 'x' }])), 'UNSAFE_LAYER', 'absolute');
    await assertNothingOutside(s);
    await assertRefused(await packTar([{ header: { name: '/abs' }, body: 'x' }]));
  });

  it('refuses backslash and drive-letter paths', async () => {
    await assertRefused(await packTar([{ header: { name: '..\\sentinel\\evil' }, body: 'x' }]));
    await assertRefused(await packTar([{ header: { name: 'C:\\evil' }, body: 'x' }]));
    await assertRefused(await packTar([{ header: { name: 'C:evil' }, body: 'x' }]));
  });

  it('refuses a ../ path hidden in a PAX header or a GNU long name', async () => {
    const pax = await packTar([{ header: { name: 'innocent', pax: { path: '../sentinel/evil' } } as never, body: 'x' }]);
    await assertRefused(pax, 'UNSAFE_LAYER', '../sentinel/evil');
    await assertRefused(Buffer.concat([gnuLongNameEntry(`../sentinel/${'e'.repeat(120)}`, Buffer.from('x')), END_OF_ARCHIVE]));
  });

  it('refuses symlinks pointing outside: absolute, ../.., and chained through another link', async () => {
    await assertRefused(await packTar([{ header: { name: 'etc', type: 'symlink', linkname: '/etc' } }]), 'UNSAFE_LAYER', 'absolute');
    await assertRefused(await packTar([{ header: { name: 'up', type: 'symlink', linkname: '../..' } }]), 'UNSAFE_LAYER', 'leaves');
    await assertRefused(await packTar([{ header: { name: 'a/b/up', type: 'symlink', linkname: '../../../sentinel' } }]));
    // sub/a -> .. is inside (it is dest itself); up -> sub/a/../.. is "." lexically but the
    // OS resolves sub/a first and lands above dest: refused for its '..' after a name.
    await assertRefused(
      await packTar([
        { header: { name: 'sub/a', type: 'symlink', linkname: '..' } },
        { header: { name: 'up', type: 'symlink', linkname: 'sub/a/../..' } },
      ]),
      'UNSAFE_LAYER',
      "'..' after a name",
    );
  });

  it('refuses a file written through a symlink from the same layer', async () => {
    // Even a link that points inside: a parent path must be a real folder.
    const s = await assertRefused(
      await packTar([
        { header: { name: 'inner', type: 'directory' } },
        { header: { name: 'data', type: 'symlink', linkname: 'inner' } },
        { header: { name: 'data/file' }, body: 'x' },
      ]),
      'UNSAFE_LAYER',
      'symlink',
    );
    assert.deepEqual(await readdir(join(s.dest, 'inner')), []);
    // And the classic: a link to outside, then a file through it (refused at the link).
    await assertRefused(
      await packTar([
        { header: { name: 'data', type: 'symlink', linkname: '../sentinel' } },
        { header: { name: 'data/pwned' }, body: 'x' },
      ]),
    );
  });

  it('refuses to write through a symlink already in dest', async () => {
    const s = await sandbox();
    await symlink(s.sentinel, join(s.dest, 'data'));
    await rejectsWithCode(extract(s, await packTar([{ header: { name: 'data/pwned' }, body: 'x' }]), { existing: 'overwrite' }), 'UNSAFE_LAYER');
    await assertNothingOutside(s);
  });

  it('refuses hard links to outside, to absolute paths, and to anything but an earlier file', async () => {
    await assertRefused(await packTar([{ header: { name: 'passwd', type: 'link', linkname: '/etc/passwd' } }]), 'UNSAFE_LAYER', 'absolute');
    await assertRefused(await packTar([{ header: { name: 'x', type: 'link', linkname: '../sentinel/x' } }]));
    await assertRefused(
      await packTar([{ header: { name: 'x', type: 'link', linkname: 'later' } }, { header: { name: 'later' }, body: 'l' }]),
      'UNSAFE_LAYER',
      'not a file extracted earlier',
    );
    await assertRefused(
      await packTar([
        { header: { name: 's', type: 'symlink', linkname: 'f' } },
        { header: { name: 'h', type: 'link', linkname: 's' } },
      ]),
    );
  });

  it('refuses character and block devices, FIFOs and unknown typeflags', async () => {
    await assertRefused(await packTar([{ header: { name: 'null', type: 'character-device', devmajor: 1, devminor: 3 } }]), 'UNSAFE_LAYER', 'character-device');
    await assertRefused(await packTar([{ header: { name: 'sda', type: 'block-device', devmajor: 8, devminor: 0 } }]), 'UNSAFE_LAYER', 'block-device');
    await assertRefused(await packTar([{ header: { name: 'pipe', type: 'fifo' } }]), 'UNSAFE_LAYER', 'fifo');
    await assertRefused(Buffer.concat([rawHeader({ name: 'sparse', typeflag: 'S' }), END_OF_ARCHIVE]), 'UNSAFE_LAYER', 'unknown-type');
  });

  it('refuses duplicate entries, however they are spelled', async () => {
    await assertRefused(
      await packTar([{ header: { name: 'a.txt' }, body: '1' }, { header: { name: './a.txt' }, body: '2' }]),
      'UNSAFE_LAYER',
      'twice',
    );
    await assertRefused(
      await packTar([{ header: { name: 'd', type: 'directory' } }, { header: { name: 'd/', type: 'directory' } }]),
      'UNSAFE_LAYER',
      'twice',
    );
  });

  it('refuses a header claiming an absurd size before reading it', async () => {
    const huge = encodeEntryHeader({ path: 'huge.bin', type: 'file', size: 2 ** 45, mode: 0o644, mtime: MTIME });
    await assertRefused(Buffer.concat([huge, Buffer.alloc(4096)]), 'UNSAFE_LAYER', 'over the limit');
    const big = rawHeader({ name: 'big.bin', typeflag: '0', size: 10 << 20 });
    await assertRefused(Buffer.concat([big, Buffer.alloc(4096)]), 'UNSAFE_LAYER', 'over the limit', { maxBytes: 1 << 20 });
  });

  it('refuses a truncated tar, mid-file or at an entry boundary, leaving no partial file', async () => {
    const tar = await packTar([
      { header: { name: 'a.bin' }, body: Buffer.alloc(100_000, 1) },
      { header: { name: 'b.bin' }, body: Buffer.alloc(100_000, 2) },
    ]);
    const s = await assertRefused(tar.subarray(0, 150_000), 'LAYER_TRUNCATED');
    assert.deepEqual(await readdir(s.dest), ['a.bin'], 'only the complete file, no temp file');
    const boundary = 512 + 100_352; // header + padded data of a.bin
    await assertRefused(tar.subarray(0, boundary), 'LAYER_TRUNCATED');
    await assertRefused(Buffer.alloc(0), 'LAYER_TRUNCATED');
    const noisy = await packTar([{ header: { name: 'n.bin' }, body: Buffer.from(Array.from({ length: 50_000 }, (_, i) => (i * i) % 251)) }]);
    const gz = gzipSync(noisy);
    await assertRefused(gz.subarray(0, gz.length / 2), 'LAYER_TRUNCATED', undefined, { compression: 'gzip' });
  });

  it('refuses gzip and zstd bombs with a small maxBytes, before writing past it', async () => {
    const zeros = Buffer.alloc(64 << 20);
    const max = 1 << 20;
    // Honest header: refused from the header alone, before any data is read.
    const honest = Buffer.concat([rawHeader({ name: 'zeros', typeflag: '0', size: zeros.length }), zeros, END_OF_ARCHIVE]);
    await assertRefused(gzipSync(honest, { level: 9 }), 'UNSAFE_LAYER', 'over the limit', { compression: 'gzip', maxBytes: max });
    // Many entries each under the cap, together over it: refused at the entry that crosses it.
    const many = await packTar(Array.from({ length: 8 }, (_, i) => ({ header: { name: `part${i}` }, body: Buffer.alloc(max / 4) })));
    const s = await assertRefused(gzipSync(many), 'LAYER_TOO_LARGE', undefined, { compression: 'gzip', maxBytes: max });
    assert.ok((await readdir(s.dest)).length <= 4);
    // A header that lies small, with the bomb behind it: the decompression cap catches it.
    const liar = Buffer.concat([rawHeader({ name: 'small', typeflag: '0', size: 10 }), blocks(Buffer.from('0123456789')), zeros]);
    await assertRefused(gzipSync(liar, { level: 9 }), 'LAYER_TOO_LARGE', undefined, { compression: 'gzip', maxBytes: max });
    await assertRefused(zstdCompress(liar), 'LAYER_TOO_LARGE', undefined, { compression: 'zstd', maxBytes: max });
  });

  it('reports garbage as LAYER_CORRUPT', async () => {
    await assertRefused(Buffer.alloc(1024, 0x41), 'LAYER_CORRUPT');
  });
});

describe('writeRawFile', () => {
  it('writes a file at its path with the mode given, creating folders', async () => {
    const s = await sandbox();
    const r = await writeRawFile(Readable.from([Buffer.from('weights')]), 'models/m.gguf', { dest: s.dest, existing: 'error', mode: 0o640 });
    assert.equal(r, 'written');
    assert.equal(await readFile(join(s.dest, 'models/m.gguf'), 'utf8'), 'weights');
    assert.equal((await stat(join(s.dest, 'models/m.gguf'))).mode & 0o777, 0o640);
  });

  it('applies the existing-file policy', async () => {
    const s = await sandbox();
    await writeFile(join(s.dest, 'm.bin'), 'old');
    await rejectsWithCode(writeRawFile(Readable.from([Buffer.from('new')]), 'm.bin', { dest: s.dest, existing: 'error' }), 'FILE_EXISTS');
    assert.equal(await writeRawFile(Readable.from([Buffer.from('new')]), 'm.bin', { dest: s.dest, existing: 'skip' }), 'skipped');
    assert.equal(await readFile(join(s.dest, 'm.bin'), 'utf8'), 'old');
    assert.equal(await writeRawFile(Readable.from([Buffer.from('new')]), 'm.bin', { dest: s.dest, existing: 'overwrite' }), 'written');
    assert.equal(await readFile(join(s.dest, 'm.bin'), 'utf8'), 'new');
  });

  it('refuses unsafe paths and symlinked parents', async () => {
    const s = await sandbox();
    for (const bad of ['../sentinel/x', '/etc/x', 'a/../../x', 'C:\\x']) {
      await rejectsWithCode(writeRawFile(Readable.from([Buffer.from('x')]), bad, { dest: s.dest, existing: 'overwrite' }), 'UNSAFE_PATH');
    }
    await symlink(s.sentinel, join(s.dest, 'link'));
    await rejectsWithCode(writeRawFile(Readable.from([Buffer.from('x')]), 'link/x', { dest: s.dest, existing: 'overwrite' }), 'UNSAFE_LAYER');
    await rm(join(s.dest, 'link'));
    await assertNothingOutside(s);
  });

  it('survives a source that fails before it is read', async () => {
    const s = await sandbox();
    const late = new Readable({ read() {} });
    const p = writeRawFile(late, 'deep/n.bin', { dest: s.dest, existing: 'error' });
    late.destroy(new KitError('DIGEST_MISMATCH', 'bad blob')); // while the disk is being checked
    await rejectsWithCode(p, 'DIGEST_MISMATCH');
    assert.deepEqual(await partialFiles(s.dest), []);
  });

  it('removes the temp file when the source fails', async () => {
    const s = await sandbox();
    const failing = new Readable({
      read() {
        this.push(Buffer.alloc(1000));
        this.destroy(new KitError('DIGEST_MISMATCH', 'bad blob'));
      },
    });
    await rejectsWithCode(writeRawFile(failing, 'm.bin', { dest: s.dest, existing: 'error' }), 'DIGEST_MISMATCH');
    assert.deepEqual(await readdir(s.dest), []);
  });
});

describe('safeJoin', () => {
  it('joins normal paths below dest', () => {
    assert.equal(safeJoin('/d', 'a/b.txt'), '/d/a/b.txt');
    assert.equal(safeJoin('/d', './a//b/'), '/d/a/b');
    assert.equal(safeJoin('/d', '..data'), '/d/..data');
  });

  it('throws UNSAFE_PATH for absolute, .., NUL, backslash and drive paths, and dest itself', () => {
    for (const bad of ['/etc/passwd', '../x', 'a/../../x', 'a/..', 'a\0b', '..\\x', 'C:\\x', 'c:x', '', '.', './']) {
      assert.throws(() => safeJoin('/d', bad), (e: unknown) => e instanceof KitError && e.code === 'UNSAFE_PATH', JSON.stringify(bad));
    }
  });
});
