import { Transform, type TransformCallback } from 'node:stream';
import { Gunzip, Gzip, constants as zlibConstants } from 'node:zlib';
import { createRequire } from 'node:module';
import type * as ZstdNapi from 'zstd-napi';
import type ZstdBinding from 'zstd-napi/binding.js';
import { KitError, errnoCode } from '../errors.js';

/**
 * Layer compression. Writers get a reproducible byte stream for a given input (same bytes
 * out on every OS, for the same Node/zlib/zstd build); readers get a decompressor whose output
 * is capped, so a decompression bomb fails as soon as it crosses the limit.
 */
export type Compression = 'none' | 'gzip' | 'gzip-fastest' | 'zstd';

const GZIP_LEVEL = 6;
const GZIP_FASTEST_LEVEL = 1;
const ZSTD_LEVEL = 3;

/** A compressing Transform for `c`, or null when the layer is stored uncompressed. */
export function compressor(c: Compression): Transform | null {
  switch (c) {
    case 'none':
      return null;
    case 'gzip':
      return new ReproducibleGzip(GZIP_LEVEL);
    case 'gzip-fastest':
      return new ReproducibleGzip(GZIP_FASTEST_LEVEL);
    case 'zstd':
      // Single-threaded (nbWorkers 0, the default) so the frame layout does not depend on
      // the machine; no checksum or content size flags (unknown in streaming anyway).
      return new (zstd().CompressStream)({ compressionLevel: ZSTD_LEVEL });
  }
}

/**
 * A decompressing Transform whose output is capped at `opts.maxBytes`: the first byte past
 * the cap fails the stream with KitError LAYER_TOO_LARGE. For 'none' with a cap this is a
 * plain byte limit; for 'none' without one there is nothing to do (null).
 * Corrupt input fails with LAYER_CORRUPT, input that ends mid-stream with LAYER_TRUNCATED.
 */
export function decompressor(c: 'none' | 'gzip' | 'zstd', opts: { maxBytes?: number }): Transform | null {
  const max = opts.maxBytes ?? Number.POSITIVE_INFINITY;
  switch (c) {
    case 'none':
      return Number.isFinite(max) ? new ByteLimit(max) : null;
    case 'gzip':
      return new BoundedGunzip(max);
    case 'zstd':
      return new BoundedZstdDecompress(max);
  }
}

export function layerTooLarge(maxBytes: number): KitError {
  return new KitError('LAYER_TOO_LARGE', `layer content is larger than the limit of ${maxBytes} bytes`, {
    hint: 'the layer is corrupt or a decompression bomb; raise the limit only for content you trust',
  });
}

function layerTruncated(what: string, cause?: unknown): KitError {
  return new KitError('LAYER_TRUNCATED', `layer is truncated: ${what}`, {
    hint: 'the download or blob is incomplete; fetch it again',
    cause,
  });
}

function layerCorrupt(what: string, cause?: unknown): KitError {
  return new KitError('LAYER_CORRUPT', `layer is corrupt: ${what}`, {
    hint: 'the blob does not match its media type or was damaged; fetch it again',
    cause,
  });
}

// ---------------------------------------------------------------------------------------
// gzip

/** Gzip header bytes 4-7 (MTIME) and 9 (OS), see RFC 1952 section 2.3. */
const GZIP_MTIME_START = 4;
const GZIP_MTIME_END = 8;
const GZIP_OS_OFFSET = 9;
const GZIP_HEADER_SIZE = 10;
const GZIP_OS_UNKNOWN = 255;

/**
 * zlib's gzip with a header that is the same on every OS: zlib writes its compile-time
 * OS_CODE at offset 9 (3 on Unix, other values on Windows and macOS builds) and Node leaves
 * MTIME at 0. We force MTIME to 0 and OS to 255 ("unknown"), as Go's
 * compress/gzip does. Done by intercepting `push`, so that the result is still one Transform
 * with zlib's own backpressure handling.
 */
class ReproducibleGzip extends Gzip {
  private headerSeen = 0;

  constructor(level: number) {
    super({ level });
  }

  override push(chunk: unknown, encoding?: BufferEncoding): boolean {
    if (Buffer.isBuffer(chunk) && this.headerSeen < GZIP_HEADER_SIZE) {
      chunk = this.patchHeader(chunk);
    }
    return super.push(chunk, encoding);
  }

  private patchHeader(chunk: Buffer): Buffer {
    const out = Buffer.from(chunk); // zlib's output buffers are its own; patch a copy
    for (let i = 0; i < out.length && this.headerSeen < GZIP_HEADER_SIZE; i++, this.headerSeen++) {
      const offset = this.headerSeen;
      if (offset >= GZIP_MTIME_START && offset < GZIP_MTIME_END) out[i] = 0;
      if (offset === GZIP_OS_OFFSET) out[i] = GZIP_OS_UNKNOWN;
    }
    return out;
  }
}

/**
 * zlib's gunzip, counting what it produces. zlib stops producing while the reader is
 * full (backpressure inside one input chunk), so the count crosses the cap within one
 * output chunk (16 KiB) of it: the bomb is stopped, not buffered.
 */
class BoundedGunzip extends Gunzip {
  private produced = 0;

  constructor(private readonly maxBytes: number) {
    super();
  }

  override push(chunk: unknown, encoding?: BufferEncoding): boolean {
    if (Buffer.isBuffer(chunk)) {
      this.produced += chunk.length;
      if (this.produced > this.maxBytes) {
        this.destroy(layerTooLarge(this.maxBytes));
        return false;
      }
    }
    return super.push(chunk, encoding);
  }

  /** zlib reports errors by destroying the stream; give them a meaning for the user. */
  override destroy(error?: Error): this {
    return super.destroy(error === undefined ? undefined : translateZlibError(error));
  }
}

function translateZlibError(err: Error): Error {
  if (err instanceof KitError) return err;
  const code = errnoCode(err);
  if (code === 'Z_BUF_ERROR' || (err as { errno?: number }).errno === zlibConstants.Z_BUF_ERROR) {
    return layerTruncated('the gzip stream ends early', err);
  }
  if (code !== undefined && code.startsWith('Z_')) return layerCorrupt(`gzip: ${err.message}`, err);
  return err;
}

// ---------------------------------------------------------------------------------------
// zstd

/**
 * zstd-napi is a native addon: loaded the first time a zstd layer is met, not by every command
 * that imports this module (a cold `kit unpack` of raw layers spent 0.1 s loading it).
 */
const load = createRequire(import.meta.url); // caches what it loads, like any require
const zstd = (): typeof ZstdNapi => load('zstd-napi') as typeof ZstdNapi;
const zstdBinding = (): typeof ZstdBinding => load('zstd-napi/binding.js') as typeof ZstdBinding;

/** zstd's recommended output buffer size for streaming decompression (~128 KiB). */
let zstdOutSize: number | undefined;
const ZSTD_OUT_SIZE = (): number => (zstdOutSize ??= zstdBinding().dStreamOutSize());

/**
 * Streaming zstd decompression on zstd-napi's context, written here rather than using its
 * DecompressStream because that one decodes a whole input chunk in one go, pushing however
 * much it expands to: a zstd bomb can turn 64 KiB into gigabytes before anything downstream
 * could count it. Here every output block is counted against the cap and we wait for the
 * reader whenever it is full.
 */
class BoundedZstdDecompress extends Transform {
  private readonly dctx = new (zstdBinding().DCtx)();
  private produced = 0;
  private inFrame = false;
  private wakeReader: (() => void) | null = null;

  constructor(private readonly maxBytes: number) {
    super();
  }

  override _transform(chunk: Buffer, _enc: BufferEncoding, cb: TransformCallback): void {
    this.decode(chunk).then(() => cb(), (err: unknown) => cb(err as Error));
  }

  override _flush(cb: TransformCallback): void {
    cb(this.inFrame ? layerTruncated('the zstd stream ends in the middle of a frame') : null);
  }

  override _read(size: number): void {
    const wake = this.wakeReader;
    this.wakeReader = null;
    wake?.();
    super._read(size);
  }

  private async decode(input: Buffer): Promise<void> {
    let src = input;
    for (;;) {
      const out = Buffer.allocUnsafe(ZSTD_OUT_SIZE());
      const [remaining, produced, consumed] = this.step(out, src);
      src = src.subarray(consumed);
      if (produced > 0) {
        this.produced += produced;
        if (this.produced > this.maxBytes) throw layerTooLarge(this.maxBytes);
        if (!this.push(out.subarray(0, produced))) await this.readerWantsMore();
        if (this.destroyed) return;
      }
      // Done with this chunk when the input is used up and zstd has nothing left to flush
      // (it did not fill the buffer, or said the frame is complete).
      if (src.length === 0 && (produced < out.length || remaining === 0)) {
        this.inFrame = remaining !== 0;
        return;
      }
    }
  }

  private step(out: Buffer, src: Buffer): [number, number, number] {
    try {
      return this.dctx.decompressStream(out, src);
    } catch (err) {
      throw layerCorrupt(`zstd: ${(err as Error).message}`, err);
    }
  }

  private readerWantsMore(): Promise<void> {
    return new Promise((resolve) => {
      this.wakeReader = resolve;
    });
  }
}

// ---------------------------------------------------------------------------------------
// no compression

/** Passes bytes through and fails as soon as more than `maxBytes` have gone by. */
class ByteLimit extends Transform {
  private count = 0;

  constructor(private readonly maxBytes: number) {
    super();
  }

  override _transform(chunk: Buffer, _enc: BufferEncoding, cb: TransformCallback): void {
    this.count += chunk.length;
    if (this.count > this.maxBytes) {
      cb(layerTooLarge(this.maxBytes));
      return;
    }
    cb(null, chunk);
  }
}
