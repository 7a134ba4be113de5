import { createHash, randomBytes } from 'node:crypto';
import { createReadStream, createWriteStream } from 'node:fs';
import { chmod, link, mkdir, open, rename, rm, symlink, unlink } from 'node:fs/promises';
import { dirname, join, resolve } from 'node:path';
import { Readable, Transform, type TransformCallback } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import tarStream, { type Header } from 'tar-stream';
import { ExitCode, KitError, isKitError } from '../errors.js';
import { decompressor, layerTooLarge } from './compression.js';
import {
  assertRealParents,
  checkSymlinkTarget,
  lstatOrNull,
  normalizeLayerPath,
  safeJoin,
  unsafeLayer,
} from './paths.js';
import { BLOCK_SIZE } from './tar-header.js';
import { copyKnownFile, copyRawLayer } from './raw-copy.js';
import { WRITE_BUFFER } from '../io/read-ahead.js';

/**
 * Safe extraction of untrusted layers. Every entry is checked before anything is written for
 * it, and nothing is ever written outside `dest`: no absolute paths or `..`, no writing through
 * a symlink, no links leading out, no devices or FIFOs. Files appear at their final path only
 * when complete (temp file + rename). The tar is read once, streaming, in constant memory.
 */

export type ExistingPolicy = 'error' | 'overwrite' | 'skip';

export interface ExtractOptions {
  /** Absolute path of an existing folder. */
  dest: string;
  existing: ExistingPolicy;
  compression: 'none' | 'gzip' | 'zstd';
  /** Cap on the uncompressed tar size; defaults to 1 TiB. */
  maxBytes?: number;
  /** Called with the number of bytes just read from `source` (a delta, not a running total). */
  onProgress?: (bytes: number) => void;
  /** Extract only entries whose normalised path passes (all entries are still validated). */
  include?: (path: string) => boolean;
}

export interface ExtractResult {
  /** Regular files, symlinks and hard links written. */
  files: number;
  /** Folder entries extracted (including ones that already existed). */
  directories: number;
  /** Bytes of file content written. */
  bytes: number;
  /** Paths (normalised) left alone because they existed and the policy was 'skip'. */
  skipped: string[];
  /** Paths (normalised) that already held exactly the entry's bytes (policy 'error'). */
  unchanged: string[];
}

export const DEFAULT_MAX_LAYER_BYTES = 2 ** 40;

/** Extract a tar layer from `source` into `opts.dest`. */
export async function extractTarLayer(source: Readable, opts: ExtractOptions): Promise<ExtractResult> {
  const maxBytes = opts.maxBytes ?? DEFAULT_MAX_LAYER_BYTES;
  const run = new Extraction(resolve(opts.dest), opts, maxBytes);
  const tarSize = new Counter();
  const extract = tarStream.extract();
  let inFlight: Promise<void> = Promise.resolve();
  let entryError: unknown;

  // Errors are collected from the pipeline and from the entry handler below. tar-stream may
  // also emit them on an entry or on the extractor after we stopped listening (a failure
  // upstream destroys the entry in flight; a refusal reaches the extractor after the input
  // ended): without these listeners such a late 'error' would crash the process.
  const ignoreLate = (): void => {};
  extract.on('error', ignoreLate);
  extract.on('entry', (header, entry, next) => {
    entry.on('error', ignoreLate);
    // tar-stream's entry is a streamx Readable. Its async iterator, taken right now, remembers
    // an error or destruction that happens before we start reading (while we check the
    // entry's parents on disk, say); a node Readable made from it then behaves like any other.
    const iterator = entry[Symbol.asyncIterator]() as AsyncIterator<Buffer>;
    const data = Readable.from({ [Symbol.asyncIterator]: () => iterator }, { objectMode: false });
    inFlight = run.entry(header, data).then(
      () => next(),
      (err: unknown) => {
        entryError ??= err;
        next(err as Error);
      },
    );
  });

  const stages: (Readable | Transform | NodeJS.WritableStream)[] = [source];
  if (opts.onProgress) stages.push(new Counter(opts.onProgress));
  const decompress = decompressor(opts.compression, { maxBytes });
  if (decompress) stages.push(decompress);
  stages.push(tarSize, extract);

  try {
    await pipeline(stages as unknown as readonly NodeJS.ReadWriteStream[]);
    // tar-stream can finish while the handler of a last, dataless entry is still running
    // (a tar cut right after that header): its outcome is part of ours.
    await inFlight;
    if (entryError !== undefined) throw entryError;
    run.assertComplete(tarSize.bytes);
  } catch (err) {
    // The pipeline settles as soon as any stage fails; let the entry being written remove
    // its temp file before we report, so the caller never sees a half-written file.
    await inFlight;
    throw mostTelling(err, entryError);
  }
  return run.result();
}

/**
 * Write one raw-layer blob to `relPath` below `opts.dest`, with the same guarantees as tar
 * extraction (confined path, no symlinked parents, temp file + rename). On 'skipped' the
 * source is destroyed unread: there is no point downloading what will not be kept.
 */
export async function writeRawFile(
  source: Readable,
  relPath: string,
  opts: { dest: string; existing: ExistingPolicy; mode?: number; onProgress?: (bytes: number) => void },
): Promise<'written' | 'skipped'> {
  // An error the source hits while we check the disk must not go unheard (it would crash the
  // process); pipeline() reads it from the stream's state once it takes over.
  source.on('error', () => {});
  const dest = resolve(opts.dest);
  try {
    const abs = safeJoin(dest, relPath);
    const rel = normalizeLayerPath(relPath);
    await assertRealParents(dest, rel);
    const decision = await claimPath(rel, abs, 'file', opts.existing);
    if (decision === 'skip') {
      source.destroy();
      return 'skipped';
    }
    await mkdir(dirname(abs), { recursive: true });
    const stages: (Readable | Transform)[] = [source];
    if (opts.onProgress) stages.push(new Counter(opts.onProgress));
    await writeAtomically(abs, (opts.mode ?? 0o644) & 0o777, stages);
    return 'written';
  } catch (err) {
    source.destroy(); // release the connection or file behind it; a no-op once consumed
    throw err;
  }
}

/**
 * writeRawFile for a blob that is a file on this machine (a local store's): the kernel copies
 * it, with the same guarantees otherwise. The store verified the blob's digest when it stored
 * it and keeps it read-only, so by default only its size is checked (as containerd and Docker
 * trust their content stores); `rehash` reads it again to check the digest on the side.
 */
export async function copyRawFile(
  blob: { path: string; digest: string; size: number },
  relPath: string,
  opts: { dest: string; existing: ExistingPolicy; mode?: number; rehash?: boolean; onProgress?: (bytes: number) => void },
): Promise<'written' | 'skipped'> {
  const dest = resolve(opts.dest);
  const abs = safeJoin(dest, relPath);
  const rel = normalizeLayerPath(relPath);
  await assertRealParents(dest, rel);
  if ((await claimPath(rel, abs, 'file', opts.existing)) === 'skip') return 'skipped';
  await mkdir(dirname(abs), { recursive: true });
  await placeAtomically(abs, async (tmp) => {
    const progress = opts.onProgress ? { onProgress: opts.onProgress } : {};
    if (!opts.rehash) {
      // The copy creates the temp file, refusing one that exists (like every temp file of the extractor).
      await copyKnownFile(blob.path, tmp, blob.size, progress).catch((err: unknown) => {
        throw isKitError(err) ? damagedStore(rel, (err as Error).message) : err;
      });
    } else {
      // Created here with O_EXCL, like every temp file of the extractor; the copy then fills it.
      await (await open(tmp, 'wx', 0o600)).close();
      const got = await copyRawLayer(blob.path, tmp, { sync: false, ...progress });
      if (got.digest !== blob.digest || got.size !== blob.size) {
        throw new KitError('DIGEST_MISMATCH', `layer ${rel}: the stored blob holds ${got.size} bytes with digest ${got.digest}, expected ${blob.size} bytes with ${blob.digest}`, {
          hint: 'the local store is damaged: run `kit store verify`, then pull the artifact again',
        });
      }
    }
    await chmod(tmp, (opts.mode ?? 0o644) & 0o777);
  });
  return 'written';
}

function damagedStore(rel: string, why: string): KitError {
  return new KitError('BLOB_CORRUPT', `layer ${rel}: the local store's blob is damaged (${why})`, {
    hint: 'run `kit store verify`, then pull the artifact again',
  });
}

// ---------------------------------------------------------------------------------------

type EntryKind = 'file' | 'directory' | 'symlink' | 'link';

/** A tar entry that passed validation: what to create, where. */
interface CheckedEntry {
  kind: EntryKind;
  rel: string;
  size: number;
  mode: number;
  /** symlink: the target as written; link: the normalised path of the linked file. */
  linkTarget: string;
}

/** State of one extraction: what was seen, what was written, and the budget left. */
class Extraction {
  private readonly seen = new Set<string>();
  /** Regular files seen so far: the only thing a hard link may point to. */
  private readonly regularFiles = new Set<string>();
  /** Regular files now on disk from this layer (written, or left in place by 'skip'). */
  private readonly present = new Set<string>();
  /** Folders this run created, implicitly or not: the ones whose mode we may set. */
  private readonly createdDirs = new Set<string>();
  /** Where the last entry's data ends in the tar, to detect a tar cut at an entry boundary. */
  private dataEnd = 0;
  private declaredBytes = 0;
  private readonly counts: ExtractResult = { files: 0, directories: 0, bytes: 0, skipped: [], unchanged: [] };

  constructor(
    private readonly dest: string,
    private readonly opts: ExtractOptions,
    private readonly maxBytes: number,
  ) {}

  result(): ExtractResult {
    return { ...this.counts, skipped: [...this.counts.skipped] };
  }

  async entry(header: Header, data: Readable): Promise<void> {
    const checked = this.check(header);
    // byteOffset (where the entry's data starts) is set by tar-stream but not in its types.
    this.dataEnd = (header as Header & { byteOffset?: number }).byteOffset ?? 0;
    this.dataEnd += Math.ceil(checked.size / BLOCK_SIZE) * BLOCK_SIZE;
    if (checked.rel === '' || (this.opts.include && !this.opts.include(checked.rel))) {
      await drain(data);
      return;
    }
    await this.write(checked, data);
  }

  /** A tar that stops right after an entry, without the end-of-archive block, is cut short. */
  assertComplete(tarBytes: number): void {
    if (tarBytes - this.dataEnd < BLOCK_SIZE) {
      throw new KitError('LAYER_TRUNCATED', 'layer is truncated: the tar ends without its end-of-archive marker', {
        hint: 'the download or blob is incomplete; fetch it again',
      });
    }
  }

  /** Everything that can be decided from the header alone, before touching the disk. */
  private check(h: Header): CheckedEntry {
    const name = h.name;
    const kind = entryKind(h);
    const rel = normalizeLayerPath(name, 'UNSAFE_LAYER');
    const size = h.size ?? 0;
    if (rel === '' && kind !== 'directory') throw unsafeLayer(`${JSON.stringify(name)}: a ${kind} at the layer root`);
    if (!Number.isSafeInteger(size) || size < 0) throw unsafeLayer(`${rel}: invalid size ${size}`);
    if (size > this.maxBytes) {
      throw unsafeLayer(`${rel}: its header claims ${size} bytes, over the limit of ${this.maxBytes}`);
    }
    // Refuse the entry that would take the layer past the cap before reading it, rather
    // than after writing most of it.
    if (this.declaredBytes + size > this.maxBytes) throw layerTooLarge(this.maxBytes);
    if (kind !== 'file' && size !== 0) throw unsafeLayer(`${rel}: a ${kind} entry with ${size} bytes of content`);
    this.declaredBytes += size;
    if (rel !== '') this.checkUnique(rel);
    const linkTarget = this.checkLink(kind, rel, h.linkname ?? '');
    if (kind === 'file') this.regularFiles.add(rel);
    return { kind, rel, size, mode: (h.mode ?? 0o644) & 0o777, linkTarget };
  }

  private checkUnique(rel: string): void {
    if (this.seen.has(rel)) throw unsafeLayer(`${rel}: appears twice in the layer`);
    this.seen.add(rel);
  }

  private checkLink(kind: EntryKind, rel: string, linkname: string): string {
    if (kind === 'symlink') {
      checkSymlinkTarget(rel, linkname);
      return linkname;
    }
    if (kind === 'link') {
      const target = normalizeLayerPath(linkname, 'UNSAFE_LAYER');
      if (!this.regularFiles.has(target)) {
        throw unsafeLayer(`hard link ${rel} -> ${linkname}: the target is not a file extracted earlier from this layer`);
      }
      return target;
    }
    return '';
  }

  private async write(e: CheckedEntry, data: Readable): Promise<void> {
    const abs = join(this.dest, ...e.rel.split('/'));
    await assertRealParents(this.dest, e.rel);
    const decision = await claimPath(e.rel, abs, e.kind === 'directory' ? 'directory' : 'file', this.opts.existing, e.kind === 'file' ? e.size : undefined);
    if (decision === 'compare') {
      // Same size as what is there: a re-run after a kill (or of a finished unpack) finds its
      // own file. Identical bytes mean done; anything else is the user's file, kept and reported.
      if (!(await sameBytes(data, abs))) throw fileExists(e.rel);
      this.counts.unchanged.push(e.rel);
      this.present.add(e.rel);
      return;
    }
    if (decision === 'skip') {
      this.counts.skipped.push(e.rel);
      if (e.kind === 'file') this.present.add(e.rel);
      await drain(data);
      return;
    }
    await this.makeParents(abs);
    switch (e.kind) {
      case 'directory':
        await drain(data);
        await this.makeDirectory(abs, e.mode, decision);
        this.counts.directories++;
        return;
      case 'file': {
        const counter = new Counter((n) => (this.counts.bytes += n));
        await writeAtomically(abs, e.mode, [data, counter]);
        this.present.add(e.rel);
        this.counts.files++;
        return;
      }
      case 'symlink':
        await drain(data);
        await placeAtomically(abs, (tmp) => symlink(e.linkTarget, tmp));
        this.counts.files++;
        return;
      case 'link':
        await drain(data);
        await this.hardLink(e, abs);
        this.counts.files++;
        return;
    }
  }

  /** mkdir -p the entry's folder, remembering which folders are new. */
  private async makeParents(abs: string): Promise<void> {
    const parent = dirname(abs);
    const first = await mkdir(parent, { recursive: true });
    if (first === undefined) return;
    for (let d = parent; d.length >= first.length; d = dirname(d)) this.createdDirs.add(d);
  }

  /**
   * A folder entry. An existing folder keeps its mode unless this run created it (as the
   * parent of an earlier entry); a file or symlink in its place is replaced ('overwrite').
   * The owner keeps rwx so that the entries below can still be written.
   */
  private async makeDirectory(abs: string, mode: number, decision: Decision): Promise<void> {
    if (decision === 'merge' && !this.createdDirs.has(abs)) return;
    if (decision === 'replace') await unlink(abs);
    if (decision !== 'merge') await mkdir(abs);
    this.createdDirs.add(abs);
    await chmod(abs, mode | 0o700);
  }

  /** Link to a file of this layer now on disk, after re-checking it is still a plain file. */
  private async hardLink(e: CheckedEntry, abs: string): Promise<void> {
    if (!this.present.has(e.linkTarget)) {
      throw unsafeLayer(`hard link ${e.rel} -> ${e.linkTarget}: the target was not extracted (excluded by the filter)`);
    }
    await assertRealParents(this.dest, e.linkTarget);
    const targetAbs = join(this.dest, ...e.linkTarget.split('/'));
    const st = await lstatOrNull(targetAbs);
    if (!st?.isFile()) throw unsafeLayer(`hard link ${e.rel} -> ${e.linkTarget}: the target is not a regular file`);
    await placeAtomically(abs, (tmp) => link(targetAbs, tmp));
  }
}

function entryKind(h: Header): EntryKind {
  // At run time the type is null for typeflags tar-stream does not know.
  const type = h.type as string | null;
  switch (type) {
    case 'file':
    case 'contiguous-file':
      return 'file';
    case 'directory':
      return 'directory';
    case 'symlink':
      return 'symlink';
    case 'link':
      return 'link';
    default:
      // Devices, FIFOs, sparse and unknown typeflags: nothing an ML project needs, and each
      // is a way to make the extractor do something other than write a file.
      throw unsafeLayer(`${JSON.stringify(h.name)}: ${type ?? 'unknown-type'} entries are not allowed`);
  }
}

// ---------------------------------------------------------------------------------------
// Existing paths

type Decision = 'write' | 'replace' | 'merge' | 'skip' | 'compare';

/**
 * What to do at `abs`, which an entry of `kind` is about to occupy. A folder entry on an
 * existing folder merges (no policy applies); anything else that exists is subject to the
 * policy. A folder is never replaced by a file, even with 'overwrite': that would delete a tree.
 */
async function claimPath(rel: string, abs: string, kind: 'file' | 'directory', policy: ExistingPolicy, size?: number): Promise<Decision> {
  const st = await lstatOrNull(abs);
  if (st === null) return 'write';
  if (kind === 'directory' && st.isDirectory()) return 'merge';
  if (policy === 'skip') return 'skip';
  if (policy === 'error' && size !== undefined && st.isFile() && st.size === size) return 'compare';
  if (policy === 'error') throw fileExists(rel);
  if (kind === 'file' && st.isDirectory()) {
    throw new KitError('FILE_EXISTS', `${rel} already exists as a folder; not replacing it with a file`, {
      hint: 'remove the folder, or unpack into another folder',
      exitCode: ExitCode.conflict,
    });
  }
  return 'replace';
}

function fileExists(rel: string): KitError {
  return new KitError('FILE_EXISTS', `${rel} already exists`, {
    hint: 'use --overwrite or --ignore-existing',
    exitCode: ExitCode.conflict,
  });
}

// ---------------------------------------------------------------------------------------
// Writing

/**
 * Stream `stages` into a temp file beside `abs`, set its mode, and rename it into place, so
 * the final path only ever holds a complete file. rename replaces a file or symlink at `abs`
 * itself, never writing through it. On any failure the temp file is removed.
 */
async function writeAtomically(abs: string, mode: number, stages: (Readable | Transform)[]): Promise<void> {
  await placeAtomically(abs, async (tmp) => {
    // 'wx' (O_CREAT|O_EXCL) refuses to open through anything already at the temp name.
    const out = createWriteStream(tmp, { flags: 'wx', mode: 0o600, highWaterMark: WRITE_BUFFER });
    await pipeline([...stages, out] as unknown as readonly NodeJS.ReadWriteStream[]);
    await chmod(tmp, mode);
  });
}

/** Create something at a fresh temp name with `make`, then rename it to `abs`. */
async function placeAtomically(abs: string, make: (tmp: string) => Promise<unknown>): Promise<void> {
  // Not derived from the final name, which may already be at the file system's length limit.
  const tmp = join(dirname(abs), `.kit-partial-${randomBytes(8).toString('hex')}`);
  try {
    await make(tmp);
    await rename(tmp, abs);
  } catch (err) {
    await rm(tmp, { force: true });
    throw err;
  }
}

/** Read an entry's data to its end without keeping it (tar-stream needs it consumed). */
/** Whether the entry's bytes equal the file at `abs` (sizes already match); consumes `data`. */
async function sameBytes(data: Readable, abs: string): Promise<boolean> {
  const digestOf = async (stream: AsyncIterable<Buffer>): Promise<string> => {
    const h = createHash('sha256');
    for await (const chunk of stream) h.update(chunk);
    return h.digest('hex');
  };
  const [entry, onDisk] = await Promise.all([digestOf(data), digestOf(createReadStream(abs, { highWaterMark: 1024 * 1024 }))]);
  return entry === onDisk;
}

async function drain(data: Readable): Promise<void> {
  for await (const _chunk of data) {
    // discard
  }
}

/** Counts bytes passing through, optionally reporting each chunk's size. */
class Counter extends Transform {
  bytes = 0;

  constructor(private readonly report?: (bytes: number) => void) {
    super();
  }

  override _transform(chunk: Buffer, _enc: BufferEncoding, cb: TransformCallback): void {
    this.bytes += chunk.length;
    this.report?.(chunk.length);
    cb(null, chunk);
  }
}

/**
 * The error to report when the stream failed with `streamErr` and an entry with `entryErr`.
 * An entry's refusal is more telling than what the stream then saw (a hostile header that
 * claims more data than there is is also, incidentally, a truncated tar); a failure upstream
 * (a decompression bomb, a cut-off download) reaches the entry as the same error.
 */
function mostTelling(streamErr: unknown, entryErr: unknown): unknown {
  if (entryErr instanceof KitError) return entryErr;
  if (streamErr instanceof KitError) return streamErr;
  const translated = translateTarError(streamErr);
  if (translated instanceof KitError) return translated;
  // Neither side knows what happened: the entry's own error (ENOSPC, EACCES) is the cause,
  // the stream only saw its reader go away.
  return entryErr ?? streamErr;
}

/** tar-stream reports problems as plain Errors; give the user a code and a meaning. */
function translateTarError(err: unknown): unknown {
  if (err instanceof KitError || !(err instanceof Error)) return err;
  if (err.message === 'Unexpected end of data') {
    return new KitError('LAYER_TRUNCATED', 'layer is truncated: the tar ends in the middle of an entry', {
      hint: 'the download or blob is incomplete; fetch it again',
      cause: err,
    });
  }
  if (/^(Invalid tar header|Invalid header|Header exceeds max size)/.test(err.message)) {
    return new KitError('LAYER_CORRUPT', `layer is corrupt: ${err.message}`, {
      hint: 'the blob is not a tar of the declared compression, or was damaged',
      cause: err,
    });
  }
  return err;
}

export { safeJoin } from './paths.js';
