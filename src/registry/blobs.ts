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
    throw blobNotFound(ctx, digest);
  }
  if (res.status === 416) {
    await res.dump();
    throw new KitError('RANGE_NOT_SATISFIABLE', `${ctx.display} cannot serve blob ${digest} from byte ${offset} (416)`, {
      hint: 'the partial download does not fit the blob; delete it and download again',
    });
  }
  if (res.status === 200) {
    checkLength(ctx, desc, res.body, parseLength(res.headers['content-length']), desc.size);
    return expectBytes(offset > 0 ? skip(res.body, offset) : res.body, desc.size - offset, `blob ${digest} from ${ctx.display}`);
  }
  if (res.status === 206 && offset > 0) {
    const range = parseContentRange(res.headers['content-range']);
    if (range?.total !== undefined) checkLength(ctx, desc, res.body, range.total, desc.size);
    const start = range?.start;
    let body: Readable;
    if (start === undefined || start === offset) body = res.body;
    else if (start < offset) body = skip(res.body, offset - start);
    else {
      discard(res.body);
      throw new KitError('RANGE_INVALID', `${ctx.display} answered blob ${digest} from byte ${start}, after the ${offset} asked for`);
    }
    return expectBytes(body, desc.size - offset, `blob ${digest} from ${ctx.display}`);
  }
  throw await registryError(res, 'fetch blob', `${ctx.display}@${digest}`);
}

/**
 * Bytes [start, end) of a blob, for downloads that fetch one large blob over several
 * connections at once. undefined when the registry (or its storage backend) ignores Range and
 * answers 200 with the whole blob: that response is dropped unread and the caller downloads the
 * blob in one stream instead. The stream fails with DOWNLOAD_INTERRUPTED when it ends early,
 * and a registry that answers with another range than the one asked is refused.
 */
export async function fetchBlobRange(ctx: RepoContext, desc: Descriptor, start: number, end: number): Promise<Readable | undefined> {
  const digest = parseDigest(desc.digest, 'blob digest');
  if (!Number.isSafeInteger(start) || !Number.isSafeInteger(end) || start < 0 || end <= start || end > desc.size) {
    throw new RangeError(`invalid range ${start}-${end} of a ${desc.size}-byte blob`);
  }
  const res = await ctx.client.request({
    method: 'GET',
    url: ctx.path('blobs', digest),
    headers: { range: `bytes=${start}-${end - 1}` },
    scopes: ctx.scopes.pull,
    followRedirects: true,
  });
  if (res.status === 200) {
    discard(res.body);
    return undefined;
  }
  if (res.status === 206) {
    const range = parseContentRange(res.headers['content-range']);
    if (range?.total !== undefined) checkLength(ctx, desc, res.body, range.total, desc.size);
    if (range === undefined || range.start !== start || range.end !== end - 1) {
      discard(res.body);
      throw new KitError('RANGE_INVALID', `${ctx.display} answered bytes ${res.headers['content-range'] ?? '(no Content-Range)'} of blob ${digest} when asked for bytes ${start}-${end - 1}`, {
        hint: 'the registry mishandles Range requests',
      });
    }
    return expectBytes(res.body, end - start, `blob ${digest} from ${ctx.display} (bytes ${start}-${end - 1})`, true);
  }
  if (res.status === 404) {
    await res.dump();
    throw blobNotFound(ctx, digest);
  }
  if (res.status === 416) {
    await res.dump();
    throw new KitError('RANGE_NOT_SATISFIABLE', `${ctx.display} cannot serve bytes ${start}-${end - 1} of blob ${digest} (416)`, {
      hint: 'the registry mishandles Range requests',
    });
  }
  throw await registryError(res, 'fetch blob', `${ctx.display}@${digest}`);
}

function blobNotFound(ctx: RepoContext, digest: string): KitError {
  return new KitError('NOT_FOUND', `blob ${digest} was not found in ${ctx.display}`, {
    hint: 'the artifact is incomplete in the registry; push it again',
    exitCode: ExitCode.notFound,
  });
}

/**
 * A blob whose length, as the registry states it, is not the descriptor's: refused before a
 * byte is read (more would be a lie to fill the disk, fewer a blob that cannot match).
 */
function checkLength(ctx: RepoContext, desc: Descriptor, body: Readable, stated: number | undefined, expected: number): void {
  if (stated === undefined || stated === expected) return;
  discard(body);
  throw new KitError('SIZE_MISMATCH', `${ctx.display} serves blob ${desc.digest} as ${stated} bytes, but the manifest says ${expected}`, {
    hint: 'the artifact is malformed or the registry is misbehaving; nothing was kept',
  });
}

/**
 * Drops a response body unread. undici's body emits an 'error' (RequestAbortedError) when it is
 * destroyed before its end: without a listener that would crash the process.
 */
function discard(body: Readable): void {
  body.on('error', () => {});
  body.destroy();
}

function parseLength(v: string | undefined): number | undefined {
  if (v === undefined || !/^\d+$/.test(v.trim())) return undefined;
  const n = Number(v.trim());
  return Number.isSafeInteger(n) ? n : undefined;
}

/** `bytes 100-199/1000` -> { start: 100, end: 199, total: 1000 } (total undefined for `*`). */
function parseContentRange(contentRange: string | undefined): { start: number; end: number; total?: number } | undefined {
  const m = /^bytes\s+(\d+)-(\d+)\/(\d+|\*)$/i.exec(contentRange?.trim() ?? '');
  if (!m) return undefined;
  const range = { start: Number(m[1]), end: Number(m[2]) };
  return m[3] === '*' ? range : { ...range, total: Number(m[3]) };
}

/**
 * The body, failing with DOWNLOAD_INTERRUPTED when it ends cleanly before `expected` bytes (a
 * chunked response cut short by a proxy looks complete to HTTP): the bytes received are good,
 * so the download resumes from there rather than being thrown away as a size mismatch.
 */
function expectBytes(body: Readable, expected: number, what: string, exact = false): Readable {
  let seen = 0;
  const out = new Transform({
    // 1 MiB: a consumer that writes in large blocks takes them without stalling the socket.
    highWaterMark: 1024 * 1024,
    transform(chunk: Buffer, _enc, cb) {
      seen += chunk.length;
      // `exact` (a range): more than asked for is a lying registry, not content to keep.
      if (exact && seen > expected) {
        cb(new KitError('SIZE_MISMATCH', `${what}: the registry sent more than the ${expected} bytes asked for`, { hint: 'the registry is misbehaving; nothing past the range was kept' }));
        return;
      }
      cb(null, chunk);
    },
    flush(cb) {
      if (seen >= expected) return cb();
      cb(new KitError('DOWNLOAD_INTERRUPTED', `${what}: the response ended after ${seen} of ${expected} bytes`, {
        hint: 'the connection or a proxy cut the download short; run the command again to resume it',
      }));
    },
  });
  pipeline(body, out, () => {
    // Errors reach the consumer through `out`.
  });
  return out;
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
