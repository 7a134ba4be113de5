/**
 * Writes the binary and generated items of fixtures/hostile/ (the hand-written ones, Kitfiles and
 * JSON documents, are edited in place). Run after a build, from the repository root:
 *
 *   node dist/test/reliability/helpers-faults/make-hostile-corpus.js
 *
 * Every byte is decided here (raw ustar headers, fixed times, gzip level 9 without a name or
 * time), so the output is the same on every machine and the files in git can be checked against it
 * (`checkCorpus`, used by the hostile-layers test).
 */
import { gunzipSync, gzipSync } from 'node:zlib';
import { mkdir, readFile, writeFile } from 'node:fs/promises';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';

const BLOCK = 512;

export interface RawEntry {
  name: string;
  /** ustar typeflag: 0 file, 1 hard link, 2 symlink, 3 char device, 4 block device, 5 folder, 6 FIFO, x PAX. */
  type: '0' | '1' | '2' | '3' | '4' | '5' | '6' | 'x';
  body?: Buffer | string;
  linkname?: string;
  mode?: number;
  /** The size written in the header, when it must differ from the body's (absurd sizes). */
  headerSize?: number | { base256: bigint };
  devmajor?: number;
  devminor?: number;
}

function octal(n: number, width: number): string {
  return `${n.toString(8).padStart(width - 1, '0')}\0`;
}

/** One ustar header block, checksum included. */
export function ustarHeader(e: RawEntry, size: number): Buffer {
  const b = Buffer.alloc(BLOCK);
  b.write(e.name, 0, 100, 'utf8');
  b.write(octal(e.mode ?? (e.type === '5' ? 0o755 : 0o644), 8), 100, 'ascii');
  b.write(octal(0, 8), 108, 'ascii');
  b.write(octal(0, 8), 116, 'ascii');
  const hs = e.headerSize ?? size;
  if (typeof hs === 'number') {
    b.write(octal(hs, 12), 124, 'ascii');
  } else {
    // GNU base-256: first byte 0x80, then the value big-endian in the remaining 11 bytes.
    let v = hs.base256;
    for (let i = 135; i > 124; i--) {
      b[i] = Number(v & 0xffn);
      v >>= 8n;
    }
    b[124] = 0x80;
  }
  b.write(octal(0, 12), 136, 'ascii'); // mtime: the epoch
  b.write('        ', 148, 'ascii'); // checksum placeholder
  b.write(e.type, 156, 'ascii');
  if (e.linkname) b.write(e.linkname, 157, 100, 'utf8');
  b.write('ustar\0', 257, 'ascii');
  b.write('00', 263, 'ascii');
  b.write(octal(e.devmajor ?? 0, 8), 329, 'ascii');
  b.write(octal(e.devminor ?? 0, 8), 337, 'ascii');
  let sum = 0;
  for (const byte of b) sum += byte;
  b.write(`${sum.toString(8).padStart(6, '0')}\0 `, 148, 'ascii');
  return b;
}

function pad(n: number): Buffer {
  return Buffer.alloc((BLOCK - (n % BLOCK)) % BLOCK);
}

/** A tar of raw entries; `end` false leaves out the two zero blocks that close an archive. */
export function rawTar(entries: RawEntry[], opts: { end?: boolean } = {}): Buffer {
  const parts: Buffer[] = [];
  for (const e of entries) {
    const body = e.body === undefined ? Buffer.alloc(0) : Buffer.from(e.body);
    parts.push(ustarHeader(e, body.length), body, pad(body.length));
  }
  if (opts.end !== false) parts.push(Buffer.alloc(2 * BLOCK));
  return Buffer.concat(parts);
}

function paxRecords(records: Record<string, string>): Buffer {
  let out = '';
  for (const [k, v] of Object.entries(records)) {
    const rest = ` ${k}=${v}\n`;
    let len = rest.length + 1;
    while (String(len).length + rest.length !== len) len = String(len).length + rest.length;
    out += `${len}${rest}`;
  }
  return Buffer.from(out, 'utf8');
}

const DIR: RawEntry = { name: 'data/', type: '5' };

/** The layer items: file name -> bytes. */
export function layerCorpus(): Record<string, Buffer> {
  const zeros = Buffer.alloc(96 * 1024 * 1024);
  const bomb = rawTar([DIR, { name: 'data/zeros.bin', type: '0', body: zeros }]);
  return {
    'dotdot.tar': rawTar([DIR, { name: 'data/../../kit-hostile-dotdot', type: '0', body: 'escaped\n' }]),
    'absolute-path.tar': rawTar([{ name: '/tmp/kit-hostile-absolute', type: '0', body: 'escaped\n' }]),
    'symlink-escape.tar': rawTar([DIR, { name: 'data/link', type: '2', linkname: '../../outside' }]),
    'symlink-absolute.tar': rawTar([DIR, { name: 'data/link', type: '2', linkname: '/etc' }]),
    'symlink-then-file.tar': rawTar([
      DIR,
      { name: 'data/link', type: '2', linkname: '../../outside' },
      { name: 'data/link/planted', type: '0', body: 'escaped\n' },
    ]),
    // The link itself stays inside; the file after it would be written through it.
    'symlink-inside-then-file.tar': rawTar([
      DIR,
      { name: 'data/sub', type: '5' },
      { name: 'data/alias', type: '2', linkname: 'sub' },
      { name: 'data/alias/planted', type: '0', body: 'through a symlink\n' },
    ]),
    'hardlink-escape.tar': rawTar([DIR, { name: 'data/hard', type: '1', linkname: '../outside/sentinel' }]),
    'hardlink-absolute.tar': rawTar([DIR, { name: 'data/passwd', type: '1', linkname: '/etc/passwd' }]),
    'char-device.tar': rawTar([DIR, { name: 'data/null', type: '3', devmajor: 1, devminor: 3 }]),
    'block-device.tar': rawTar([DIR, { name: 'data/disk', type: '4', devmajor: 8, devminor: 0 }]),
    'fifo.tar': rawTar([DIR, { name: 'data/pipe', type: '6' }]),
    'duplicate-entry.tar': rawTar([
      DIR,
      { name: 'data/model.bin', type: '0', body: 'first\n' },
      { name: 'data/model.bin', type: '0', body: 'second, replacing the first\n' },
    ]),
    // 8 GiB - 1 claimed in the octal field, no data behind it.
    'absurd-size-octal.tar': rawTar([DIR, { name: 'data/huge.bin', type: '0', headerSize: 0o77777777777 }]),
    // 2^62 in GNU base-256: not even a safe integer.
    'absurd-size-base256.tar': rawTar([DIR, { name: 'data/huge.bin', type: '0', headerSize: { base256: 2n ** 62n } }]),
    // A PAX size record of 10^20 bytes.
    'absurd-size-pax.tar': rawTar([
      DIR,
      { name: 'PaxHeader/huge.bin', type: 'x', body: paxRecords({ size: '100000000000000000000' }) },
      { name: 'data/huge.bin', type: '0', headerSize: 0 },
    ]),
    // The file says 4096 bytes; the archive ends after 1000 of them.
    'truncated-mid-entry.tar': rawTar([DIR, { name: 'data/cut.bin', type: '0', body: Buffer.alloc(4096, 0x41) }]).subarray(0, 2 * BLOCK + 1000),
    // Whole entries, but no end-of-archive blocks: a download cut at an entry boundary.
    'truncated-no-eof.tar': rawTar([DIR, { name: 'data/a.txt', type: '0', body: 'a\n' }], { end: false }),
    // The same, gzipped: the tar is complete as a gzip stream but cut inside the entry.
    'truncated-mid-entry.tar.gz': gzip(rawTar([DIR, { name: 'data/cut.bin', type: '0', body: Buffer.alloc(4096, 0x41) }]).subarray(0, 2 * BLOCK + 1000)),
    // 96 MiB of zeros in ~95 KiB: over the cap of 100x the blob's size + 64 MiB (the entry's
    // honest header already says so).
    'gzip-bomb.tar.gz': gzip(bomb),
    // 96 MiB of zero bytes and no header at all: only the inflated byte count can stop it.
    'gzip-bomb-no-headers.tar.gz': gzip(zeros),
  };
}

/** gzip at level 9 with the OS byte set to "unknown", as kit's own writer does. */
function gzip(data: Buffer): Buffer {
  const out = gzipSync(data, { level: 9 });
  out[9] = 0xff;
  return out;
}

/** A Kitfile over the 1 MiB limit: a valid head, then comment lines. */
export function hugeKitfile(): string {
  const head = 'manifestVersion: 1.0.0\npackage:\n  name: huge\n';
  const line = '# padding padding padding padding padding padding padding padding padding padding\n';
  return head + line.repeat(Math.ceil((1024 * 1024 + 4096) / line.length));
}

/** Generated items: path below fixtures/hostile -> content. */
export function generatedCorpus(): Record<string, Buffer> {
  const out: Record<string, Buffer> = {};
  for (const [name, bytes] of Object.entries(layerCorpus())) out[`layers/${name}`] = bytes;
  out['kitfiles/huge/Kitfile'] = Buffer.from(hugeKitfile());
  out['kitfiles/deep-nesting/Kitfile'] = Buffer.from(`manifestVersion: 1.0.0\npackage:\n  name: deep\nmodel:\n  path: model.bin\n  parameters: ${'['.repeat(5000)}${']'.repeat(5000)}\n`);
  out['manifests/layer-media-type-mismatch/layer.tar'] = rawTar([DIR, { name: 'data/train.csv', type: '0', body: 'a,b\n1,2\n' }]);
  return out;
}

export function corpusRoot(): string {
  // dist/test/reliability/helpers-faults -> repository root
  return join(dirname(fileURLToPath(import.meta.url)), '..', '..', '..', '..', 'fixtures', 'hostile');
}

/** Names of generated items whose file differs from what the generator makes now. */
export async function checkCorpus(root = corpusRoot()): Promise<string[]> {
  const stale: string[] = [];
  for (const [rel, bytes] of Object.entries(generatedCorpus())) {
    const have = await readFile(join(root, rel)).catch(() => undefined);
    // Compressed bytes depend on the zlib build: compare what they inflate to.
    const same = have !== undefined && (rel.endsWith('.gz') ? gunzipSync(have).equals(gunzipSync(bytes)) : have.equals(bytes));
    if (!same) stale.push(rel);
  }
  return stale;
}

async function main(): Promise<void> {
  const root = corpusRoot();
  for (const [rel, bytes] of Object.entries(generatedCorpus())) {
    await mkdir(dirname(join(root, rel)), { recursive: true });
    await writeFile(join(root, rel), bytes);
    process.stdout.write(`wrote fixtures/hostile/${rel} (${bytes.length} bytes)\n`);
  }
}

if (process.argv[1] && fileURLToPath(import.meta.url) === process.argv[1]) await main();
