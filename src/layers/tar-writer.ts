import type { Stats } from 'node:fs';
import { open, type FileHandle } from 'node:fs/promises';
import { Readable, type Writable } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import { KitError, errnoCode } from '../errors.js';
import type { Digest } from '../oci/digest.js';
import { HashingStream } from '../oci/verify.js';
import { readAhead } from '../io/read-ahead.js';
import { compressor, type Compression } from './compression.js';
import { normalizeLayerPath } from './paths.js';
import { encodeEntryHeader, endOfArchive, paddingFor } from './tar-header.js';

export interface TarEntry {
  /** posix, relative, no leading './', e.g. 'data/train.csv' or 'data'. */
  path: string;
  absPath: string;
  type: 'file' | 'directory';
  /** 0 for directories. */
  size: number;
  executable: boolean;
}

export interface LayerResult {
  /** Digest of the blob as stored (compressed). */
  digest: Digest;
  size: number;
  /** Digest of the uncompressed tar (the OCI / ModelPack diffId). */
  diffId: Digest;
  uncompressedSize: number;
}

export interface TarLayerOptions {
  compression: Compression;
  /** The one mtime every entry gets, so the layer depends only on content. */
  mtime: Date;
  /** Called with the number of source bytes just read (a delta, not a running total). */
  onProgress?: (bytes: number) => void;
}

/** Files are read in chunks this size: large enough for fast disks, constant in memory. */
const DIR_MODE = 0o755;
const EXEC_MODE = 0o755;
const FILE_MODE = 0o644;

/**
 * Write `entries` as one tar layer to `dest`, compressed as asked, hashing the tar (diffId)
 * and the compressed bytes (digest) in the same single pass over each file. The result depends
 * only on the entries' paths, types, executable bits and contents, plus `opts.mtime` and the
 * compression: not on owners, modes, times or the order entries were listed in.
 * `dest` is ended and waited for; on failure it is destroyed and the caller removes the file.
 */
export async function writeTarLayer(entries: TarEntry[], opts: TarLayerOptions, dest: Writable): Promise<LayerResult> {
  const sorted = sortEntries(entries);
  const tarHash = new HashingStream();
  const compress = compressor(opts.compression);
  const blobHash = compress ? new HashingStream() : tarHash;
  const source = Readable.from(tarBytes(sorted, opts), { objectMode: false });
  await pipeline(compress ? [source, tarHash, compress, blobHash, dest] : [source, tarHash, dest]);
  const diffId = tarHash.digest();
  return {
    digest: compress ? blobHash.digest() : diffId, // a hasher's digest can be taken once
    size: blobHash.bytes,
    diffId,
    uncompressedSize: tarHash.bytes,
  };
}

/**
 * Write one file as a raw (untarred, uncompressed) layer: digest and diffId are both the
 * file's sha256. Fails with FILE_CHANGED if the file is modified while being read.
 */
export async function writeRawLayer(
  absPath: string,
  dest: Writable,
  opts: { onProgress?: (bytes: number) => void } = {},
): Promise<LayerResult> {
  const hash = new HashingStream();
  const fh = await openSource(absPath, absPath);
  try {
    const before = await fh.stat();
    const content = fileContent(fh, { path: absPath, size: before.size }, before, opts.onProgress);
    await pipeline(Readable.from(content, { objectMode: false }), hash, dest);
  } finally {
    await fh.close();
  }
  const digest = hash.digest();
  return { digest, size: hash.bytes, diffId: digest, uncompressedSize: hash.bytes };
}

/** Validate and sort by path in byte order (UTF-8), which is what makes the order stable. */
function sortEntries(entries: TarEntry[]): TarEntry[] {
  const keyed = entries.map((e) => ({ e, key: Buffer.from(checkEntryPath(e), 'utf8') }));
  keyed.sort((a, b) => Buffer.compare(a.key, b.key));
  for (let i = 1; i < keyed.length; i++) {
    if (Buffer.compare(keyed[i - 1]!.key, keyed[i]!.key) === 0) {
      throw new KitError('LAYER_DUPLICATE_ENTRY', `layer lists ${keyed[i]!.e.path} twice`);
    }
  }
  return keyed.map((k) => k.e);
}

/** Never write a path our own extractor would refuse. */
function checkEntryPath(e: TarEntry): string {
  const normal = normalizeLayerPath(e.path);
  if (normal === '' || normal !== e.path) {
    throw new KitError('UNSAFE_PATH', `layer entry path ${JSON.stringify(e.path)} is not a normalised relative path`, {
      hint: "use posix separators, no leading './' or '/', no trailing '/', no '..'",
    });
  }
  return normal;
}

function modeOf(e: TarEntry): number {
  if (e.type === 'directory') return DIR_MODE;
  return e.executable ? EXEC_MODE : FILE_MODE;
}

/** The uncompressed tar, as a sequence of chunks, reading each file once. */
async function* tarBytes(entries: TarEntry[], opts: TarLayerOptions): AsyncGenerator<Buffer> {
  for (const e of entries) {
    const size = e.type === 'directory' ? 0 : e.size;
    yield encodeEntryHeader({ path: e.path, type: e.type, size, mode: modeOf(e), mtime: opts.mtime });
    if (e.type === 'directory') continue;
    yield* entryContent(e, opts.onProgress);
    const pad = paddingFor(size);
    if (pad) yield pad;
  }
  yield endOfArchive();
}

async function* entryContent(e: TarEntry, onProgress: ((bytes: number) => void) | undefined): AsyncGenerator<Buffer> {
  const fh = await openSource(e.absPath, e.path);
  try {
    const before = await fh.stat();
    if (before.size !== e.size) throw fileChanged(e.path, `its size is ${before.size}, expected ${e.size}`);
    yield* fileContent(fh, { path: e.path, size: e.size }, before, onProgress);
  } finally {
    await fh.close();
  }
}

/**
 * Exactly `expect.size` bytes of the open file, in 1 MiB chunks. Fails with FILE_CHANGED
 * (before passing on a byte too many) if the file grew, shrank, or was modified while being
 * read: a tar whose header size disagrees with its content is corrupt, and a blob whose
 * digest was computed over a moving file describes nothing.
 */
async function* fileContent(
  fh: FileHandle,
  expect: { path: string; size: number },
  before: Stats,
  onProgress: ((bytes: number) => void) | undefined,
): AsyncGenerator<Buffer> {
  let read = 0;
  // Stops at the expected size: a file that grew is caught by the size and mtime checks below.
  for await (const chunk of readAhead(fh, { end: expect.size + 1 })) {
    read += chunk.length;
    if (read > expect.size) throw fileChanged(expect.path, `it grew past ${expect.size} bytes while being read`);
    onProgress?.(chunk.length);
    yield chunk;
  }
  if (read !== expect.size) throw fileChanged(expect.path, `it shrank to ${read} of ${expect.size} bytes while being read`);
  const after = await fh.stat();
  if (after.size !== before.size || after.mtimeMs !== before.mtimeMs) {
    throw fileChanged(expect.path, 'it was modified while being read');
  }
}

async function openSource(absPath: string, shownAs: string): Promise<FileHandle> {
  try {
    return await open(absPath, 'r');
  } catch (err) {
    if (errnoCode(err) === 'ENOENT') throw fileChanged(shownAs, 'it no longer exists');
    throw err;
  }
}

function fileChanged(path: string, why: string): KitError {
  return new KitError('FILE_CHANGED', `${path} changed while kit was reading it: ${why}`, {
    hint: 'stop whatever is writing to it and run the command again',
  });
}
