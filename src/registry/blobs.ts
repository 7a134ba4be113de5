import { Readable, Transform, pipeline, type TransformCallback } from 'node:stream';
import { ExitCode, KitError } from '../errors.js';
import { parseDigest } from '../oci/digest.js';
import type { Descriptor } from '../oci/descriptor.js';
import { registryError } from './errors.js';
import type { RepoContext } from './repository.js';

/**
 * Blob reads: /v2/<name>/blobs/<digest>. Blob GETs usually redirect to object storage (S3,
 * GCS, a CDN), so they follow redirects; the client keeps Authorization on the registry's
 * origin only.
 */

export async function blobExists(ctx: RepoContext, desc: Descriptor): Promise<boolean> {
  const digest = parseDigest(desc.digest, 'blob digest');
  const res = await ctx.client.request({
    method: 'HEAD',
    url: ctx.path('blobs', digest),
    scopes: ctx.scopes.pull,
    followRedirects: true,
  });
  await res.dump();
  if (res.status === 404) return false;
  if (res.status !== 200) throw await registryError(res, 'check blob', `${ctx.display}@${digest}`);
  // Same digest with another length is not the content we mean (or a broken registry).
  const length = res.headers['content-length'];
  return length === undefined || !/^\d+$/.test(length) || Number(length) === desc.size;
}

/**
 * The blob from byte `offset` on. Asks with `Range: bytes=<offset>-`; a registry (or storage
 * backend) that ignores Range answers 200 with the whole blob, and then the first `offset`
 * bytes are skipped here, so the stream always starts at `offset` and a resumed download can
 * simply append.
 */
export async function fetchBlob(ctx: RepoContext, desc: Descriptor, offset: number): Promise<Readable> {
  const digest = parseDigest(desc.digest, 'blob digest');
  if (!Number.isSafeInteger(offset) || offset < 0) throw new RangeError(`invalid offset ${offset}`);
  if (offset > 0 && offset === desc.size) return Readable.from([]); // nothing left: no request
  if (offset > desc.size) {
    throw new KitError('RANGE_INVALID', `cannot read blob ${digest} from byte ${offset}: it has only ${desc.size} bytes`);
  }
  const headers: Record<string, string> = {};
  if (offset > 0) headers.range = `bytes=${offset}-`;
  const res = await ctx.client.request({
    method: 'GET',
    url: ctx.path('blobs', digest),
    headers,
    scopes: ctx.scopes.pull,
    followRedirects: true,
  });
  if (res.status === 404) {
    await res.dump();
    throw new KitError('NOT_FOUND', `blob ${digest} was not found in ${ctx.display}`, {
      hint: 'the artifact is incomplete in the registry; push it again',
      exitCode: ExitCode.notFound,
    });
  }
  if (res.status === 416) {
    await res.dump();
    throw new KitError('RANGE_NOT_SATISFIABLE', `${ctx.display} cannot serve blob ${digest} from byte ${offset} (416)`, {
      hint: 'the partial download does not fit the blob; delete it and download again',
    });
  }
  if (res.status === 200) return offset > 0 ? skip(res.body, offset) : res.body;
  if (res.status === 206 && offset > 0) {
    const start = rangeStart(res.headers['content-range']);
    if (start === undefined || start === offset) return res.body;
    if (start < offset) return skip(res.body, offset - start);
    res.body.destroy();
    throw new KitError('RANGE_INVALID', `${ctx.display} answered blob ${digest} from byte ${start}, after the ${offset} asked for`);
  }
  throw await registryError(res, 'fetch blob', `${ctx.display}@${digest}`);
}

/** `bytes 100-199/1000` -> 100 */
function rangeStart(contentRange: string | undefined): number | undefined {
  const m = /^bytes\s+(\d+)-\d+\/(?:\d+|\*)$/i.exec(contentRange?.trim() ?? '');
  return m ? Number(m[1]) : undefined;
}

/** The stream without its first `n` bytes; errors and destruction travel both ways. */
function skip(body: Readable, n: number): Readable {
  const out = new SkipBytes(n);
  pipeline(body, out, () => {
    // Errors reach the consumer through `out`, which pipeline destroys with them.
  });
  return out;
}

/** Drops the first `n` bytes of a stream. */
class SkipBytes extends Transform {
  constructor(private remaining: number) {
    super();
  }

  override _transform(chunk: Buffer, _enc: BufferEncoding, cb: TransformCallback): void {
    if (this.remaining >= chunk.length) {
      this.remaining -= chunk.length;
      cb();
      return;
    }
    const rest = chunk.subarray(this.remaining);
    this.remaining = 0;
    cb(null, rest);
  }
}
