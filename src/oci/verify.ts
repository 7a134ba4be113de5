import type { Hash } from 'node:crypto';
import { PassThrough, Transform, type Readable, type TransformCallback } from 'node:stream';
import { KitError } from '../errors.js';
import { hasherDigest, newHasher, type Digest } from './digest.js';

/**
 * A pass-through stream that hashes and counts what flows through it, and fails the stream
 * when the content turns out longer than `expectedSize` (as soon as it happens) or, at the
 * end, of another size or digest. Content read from anywhere untrusted passes through one.
 */
export class VerifyingStream extends Transform {
  private readonly hash: Hash;
  private count: number;

  /** `resume`: the hash and count of bytes already received (a download resumed at an offset). */
  constructor(
    private readonly expected: { digest: Digest; size: number },
    private readonly what = 'content',
    resume?: { hash: Hash; bytes: number },
    /** When this says so, an end before `expected.size` is not an error (its source failed and the caller keeps what arrived). */
    private readonly shortEndAllowed?: () => boolean,
  ) {
    super();
    this.hash = resume?.hash ?? newHasher();
    this.count = resume?.bytes ?? 0;
  }

  get bytes(): number {
    return this.count;
  }

  override _transform(chunk: Buffer, _enc: BufferEncoding, cb: TransformCallback): void {
    this.count += chunk.length;
    if (this.count > this.expected.size) {
      cb(sizeMismatch(this.what, this.expected.size, `more than ${this.expected.size}`));
      return;
    }
    this.hash.update(chunk);
    cb(null, chunk);
  }

  override _flush(cb: TransformCallback): void {
    if (this.count < this.expected.size && this.shortEndAllowed?.()) {
      cb();
      return;
    }
    if (this.count !== this.expected.size) {
      cb(sizeMismatch(this.what, this.expected.size, String(this.count)));
      return;
    }
    const got = hasherDigest(this.hash);
    if (got !== this.expected.digest) {
      cb(digestMismatch(this.what, this.expected.digest, got));
      return;
    }
    cb();
  }
}

export function digestMismatch(what: string, expected: string, got: string): KitError {
  return new KitError('DIGEST_MISMATCH', `${what}: digest mismatch: expected ${expected}, got ${got}`, {
    hint: 'the content is corrupt or was altered; nothing was kept',
  });
}

export function sizeMismatch(what: string, expected: number, got: string): KitError {
  return new KitError('SIZE_MISMATCH', `${what}: size mismatch: expected ${expected} bytes, got ${got}`, {
    hint: 'the content is corrupt or was altered; nothing was kept',
  });
}

/** Hashes and counts without expectations: for content whose digest is being computed. */
export class HashingStream extends Transform {
  private readonly hash = newHasher();
  private count = 0;

  get bytes(): number {
    return this.count;
  }

  /** Valid once the stream has finished. */
  digest(): Digest {
    return hasherDigest(this.hash);
  }

  override _transform(chunk: Buffer, _enc: BufferEncoding, cb: TransformCallback): void {
    this.count += chunk.length;
    this.hash.update(chunk);
    cb(null, chunk);
  }
}

/**
 * Passes `source` through and, when it fails, ends instead of failing, keeping the error for
 * the caller: everything that arrived before a dropped connection still reaches the disk
 * (a pipeline would discard what is buffered on the way), so a resume asks for less again.
 */
export function keepWhatArrives(source: Readable): { stream: Readable; failure: () => Error | undefined } {
  const out = new PassThrough({ highWaterMark: 1024 * 1024 });
  let failure: Error | undefined;
  source.on('error', (err) => {
    if (failure) return;
    failure = err;
    source.unpipe(out);
    out.end();
  });
  // Downstream gave up (a write failed, a digest mismatch): release the source.
  out.once('close', () => source.destroy());
  source.pipe(out);
  return { stream: out, failure: () => failure };
}
