import { Readable } from 'node:stream';
import { KitError } from '../errors.js';
import { parseDigest, type Digest } from '../oci/digest.js';
import type { Descriptor } from '../oci/descriptor.js';
import { OCTET_STREAM } from './accept.js';
import { blobExists } from './blobs.js';
import { RegistryHttpError, registryError } from './errors.js';
import type { RepoContext } from './repository.js';
import type { RegistryClient, RegistryResponse } from './types.js';

/**
 * Blob uploads: POST /v2/<name>/blobs/uploads/ opens a session, then either one streaming
 * PUT ?digest= (monolithic) or PATCH chunks and a closing PUT (chunked). Registries differ
 * (see ARCHITECTURE.md), so the way is chosen at run time and what a registry teaches is kept
 * in UploadHints, shared by every repository on the same client:
 *
 * - GHCR answers 416 (others 413) to a PATCH body over 4 MiB: the chunk is split into 4 MiB
 *   pieces and resent, and later chunks stay at 4 MiB;
 * - ECR answers 201 to a PATCH: that is success for the chunk;
 * - GAR refuses PATCH altogether: the first chunk is still in memory and the rest of the
 *   stream unread, so the same bytes go out as one PUT in a new session;
 * - a proxy that refuses a big single PUT (413) has consumed the stream: kit remembers to use
 *   chunks for that registry and asks the caller to try again (UPLOAD_TOO_LARGE), unless the
 *   blob was small enough to be held in memory, in which case it switches at once.
 *
 * The content stream is read once. Memory stays bounded by one chunk (or, for blobs under
 * BUFFER_BELOW, the blob). Only the size is checked here; the registry checks the digest and a
 * 400 DIGEST_INVALID becomes a clear DIGEST_MISMATCH.
 */

export interface UploadOptions {
  /** 'auto' (default): one streaming PUT, chunks when needed or learned; or force one way. */
  mode?: 'auto' | 'monolithic' | 'chunked';
  /** PATCH body size for chunked uploads. Default 8 MiB; raised to OCI-Chunk-Min-Length. */
  chunkSize?: number;
  /** In auto mode, blobs above this go in chunks (Quay limits a single PUT to 20 GB). Default 10 GiB. */
  monolithicMaxBytes?: number;
}

/** What kit learned about one registry's upload behaviour. */
export interface UploadHints {
  /** A big single PUT was refused (413): send chunks from now on. */
  preferChunked?: boolean;
  /** PATCH bodies larger than this were refused (GHCR: 4 MiB). */
  maxChunk?: number;
  /** PATCH uploads are refused altogether (GAR): always one PUT. */
  noChunked?: boolean;
}

export const DEFAULT_CHUNK_SIZE = 8 * 1024 * 1024;
/** The chunk size that every registry seen so far accepts (GHCR's PATCH limit). */
export const SAFE_CHUNK_SIZE = 4 * 1024 * 1024;
/** Blobs up to this size are read into memory and sent as a replayable PUT. */
export const BUFFER_BELOW = 4 * 1024 * 1024;
const DEFAULT_MONOLITHIC_MAX = 10 * 1024 * 1024 * 1024;
/** Resynchronisations allowed per chunk before the upload is given up. */
const MAX_CHUNK_RETRIES = 3;

const hintsByClient = new WeakMap<RegistryClient, UploadHints>();

/** The hints of a registry client (created empty on first use). */
export function uploadHints(client: RegistryClient): UploadHints {
  let hints = hintsByClient.get(client);
  if (!hints) {
    hints = {};
    hintsByClient.set(client, hints);
  }
  return hints;
}

export interface Blob {
  digest: Digest;
  size: number;
}

/** Content to upload: a stream, or an async iterable of transient buffers (see ContentReader). */
export type UploadContent = Readable | AsyncIterable<Buffer>;

export async function pushBlob(ctx: RepoContext, desc: Descriptor, content: UploadContent, opts: UploadOptions = {}): Promise<void> {
  const blob: Blob = { digest: parseDigest(desc.digest, 'blob digest'), size: desc.size };
  if (!Number.isSafeInteger(blob.size) || blob.size < 0) {
    if (content instanceof Readable) content.destroy();
    throw new KitError('DESCRIPTOR_INVALID', `descriptor size ${String(blob.size)} is not a non-negative integer`);
  }
  const hints = uploadHints(ctx.client);
  const reader = new ContentReader(content, blob.size, `blob ${blob.digest}`);
  try {
    if (wantsChunks(blob.size, opts, hints)) {
      await chunkedThenMonolithic(ctx, blob, reader, opts, hints);
    } else {
      const outcome = await monolithic(ctx, blob, reader, hints);
      // A buffered blob refused as one PUT is still in memory: send it in chunks right away.
      if (outcome === 'too-large') await chunkedThenMonolithic(ctx, blob, reader, opts, hints);
    }
  } finally {
    reader.close();
  }
}

function wantsChunks(size: number, opts: UploadOptions, hints: UploadHints): boolean {
  if (opts.mode === 'monolithic') return false;
  if (opts.mode === 'chunked') return true;
  if (hints.noChunked) return false;
  return hints.preferChunked === true || size > (opts.monolithicMaxBytes ?? DEFAULT_MONOLITHIC_MAX);
}

async function chunkedThenMonolithic(ctx: RepoContext, blob: Blob, reader: ContentReader, opts: UploadOptions, hints: UploadHints): Promise<void> {
  const session = await openSession(ctx);
  const upload = new ChunkedUpload(ctx, session.location, blob, hints);
  const chunkSize = effectiveChunkSize(opts, hints, session.minChunk);
  let outcome: 'done' | 'refused';
  try {
    outcome = await upload.run(reader, chunkSize);
  } catch (err) {
    // Whatever went wrong (a short source, a refused chunk), the session is of no more use.
    await cancelUpload(ctx, upload.location);
    throw err;
  }
  if (outcome === 'done') return;
  // The registry refused chunked uploads before storing anything; nothing is lost yet.
  hints.noChunked = true;
  await cancelUpload(ctx, upload.location);
  const result = await monolithic(ctx, blob, reader, hints);
  if (result === 'too-large') {
    throw new KitError('UPLOAD_TOO_LARGE', `${ctx.display} refused blob ${blob.digest} (${blob.size} bytes) both in chunks and in one request`, {
      hint: 'the registry (or a proxy before it) limits request sizes; raise the limit there',
    });
  }
}

function effectiveChunkSize(opts: UploadOptions, hints: UploadHints, minChunk: number): number {
  let size = opts.chunkSize ?? DEFAULT_CHUNK_SIZE;
  if (!Number.isSafeInteger(size) || size <= 0) throw new RangeError(`invalid chunk size ${String(size)}`);
  if (hints.maxChunk !== undefined) size = Math.min(size, hints.maxChunk);
  return Math.max(size, minChunk);
}

// ------------------------------------------------------------------ session

export interface Session {
  location: string;
  /** OCI-Chunk-Min-Length: every chunk but the last must be at least this long. */
  minChunk: number;
}

export async function openSession(ctx: RepoContext): Promise<Session> {
  const res = await ctx.client.request({
    method: 'POST',
    url: ctx.path('uploads'),
    headers: { 'content-length': '0' },
    scopes: ctx.scopes.push,
  });
  if (res.status !== 202) throw await registryError(res, 'start a blob upload to', ctx.display);
  await res.dump();
  const min = Number(res.headers['oci-chunk-min-length'] ?? '0');
  return { location: uploadLocation(ctx, res), minChunk: Number.isSafeInteger(min) && min > 0 ? min : 0 };
}

/** Best effort: frees the registry's session; failures do not matter (the spec says ignore them). */
export async function cancelUpload(ctx: RepoContext, location: string): Promise<void> {
  try {
    const res = await ctx.client.request({ method: 'DELETE', url: location, scopes: ctx.scopes.push, retry: false });
    await res.dump();
  } catch {
    // ignored on purpose
  }
}

/**
 * The Location of an upload response, absolute. Relative URLs resolve against the URL that
 * answered. A Location on another origin is passed on as is: the client sends Authorization
 * only to the origin it belongs to. Only http(s) is accepted, and never a downgrade to http.
 */
export function uploadLocation(ctx: RepoContext, res: RegistryResponse, fallback?: string): string {
  const raw = res.headers.location;
  if (raw === undefined || raw === '') {
    if (fallback !== undefined) return fallback;
    throw new KitError('REGISTRY_PROTOCOL', `${ctx.display} answered a blob upload without a Location header (status ${res.status})`);
  }
  let url: URL;
  try {
    url = new URL(raw, res.url);
  } catch {
    throw new KitError('REGISTRY_PROTOCOL', `${ctx.display} gave an invalid upload Location ${JSON.stringify(raw)}`);
  }
  const from = new URL(res.url);
  if ((url.protocol !== 'https:' && url.protocol !== 'http:') || (from.protocol === 'https:' && url.protocol === 'http:')) {
    throw new KitError('REGISTRY_PROTOCOL', `${ctx.display} gave an upload Location kit refuses to use: ${url.protocol}//${url.host}`, {
      hint: 'only http(s) locations are followed, and never from https to http',
    });
  }
  return url.href;
}

/** Appends `digest=` without re-encoding the rest of the query (some Locations are signed). */
export function withDigest(location: string, digest: Digest): string {
  const hash = location.indexOf('#');
  const base = hash >= 0 ? location.slice(0, hash) : location;
  return `${base}${base.includes('?') ? '&' : '?'}digest=${encodeURIComponent(digest)}`;
}

// ------------------------------------------------------------------ monolithic

/**
 * One PUT with the whole blob. Small blobs are buffered (the client may replay them); bigger
 * ones stream with a Content-Length, sent once. 'too-large' means a 413 on a buffered blob,
 * whose bytes are back in `reader` for another try.
 */
async function monolithic(ctx: RepoContext, blob: Blob, reader: ContentReader, hints: UploadHints): Promise<'done' | 'too-large'> {
  // A small blob is read before the session opens: a size error then leaves nothing behind.
  let bytes: Buffer | undefined;
  if (blob.size <= BUFFER_BELOW) {
    bytes = await reader.read(blob.size);
    await reader.assertEnd();
  }
  const session = await openSession(ctx);
  const url = withDigest(session.location, blob.digest);
  const headers = { 'content-type': OCTET_STREAM, 'content-length': String(blob.size) };
  let res: RegistryResponse;
  try {
    if (bytes !== undefined) {
      res = await ctx.client.request({ method: 'PUT', url, headers, body: bytes, scopes: ctx.scopes.push });
    } else {
      let handedOut = false;
      res = await ctx.client.request({
        method: 'PUT',
        url,
        headers,
        stream: () => {
          if (handedOut) throw new KitError('UPLOAD_NOT_REPLAYABLE', `blob ${blob.digest}: a streamed upload cannot be sent twice`);
          handedOut = true;
          return reader.rest();
        },
        scopes: ctx.scopes.push,
        retry: false,
      });
    }
  } catch (err) {
    await cancelUpload(ctx, session.location);
    // A size error of our own explains a failed request better than the socket error it caused.
    throw reader.error ?? err;
  }
  if (res.status === 201 || res.status === 204) {
    await res.dump();
    checkStoredDigest(ctx, res, blob);
    return 'done';
  }
  if (res.status === 413) {
    await res.dump();
    await cancelUpload(ctx, session.location);
    hints.preferChunked = true;
    if (bytes !== undefined) {
      reader.unread(bytes);
      return 'too-large';
    }
    throw new KitError('UPLOAD_TOO_LARGE', `${ctx.display} refused blob ${blob.digest} (${blob.size} bytes) as a single upload (413)`, {
      hint: 'run the command again: kit now uploads to this registry in chunks',
    });
  }
  const err = await registryError(res, 'upload blob', `${ctx.display}@${blob.digest}`);
  await cancelUpload(ctx, session.location);
  throw codesOf(err).includes('DIGEST_INVALID') ? digestRejected(ctx, blob) : err;
}

export function checkStoredDigest(ctx: RepoContext, res: RegistryResponse, blob: Blob): void {
  const stored = res.headers['docker-content-digest'];
  if (stored !== undefined && /^sha256:/.test(stored) && stored !== blob.digest) {
    throw new KitError('DIGEST_MISMATCH', `${ctx.display} stored blob ${blob.digest} as ${stored}`, {
      hint: 'the registry disagrees about the content; push again, and report it if it persists',
    });
  }
}

/** The registry's own error codes (DIGEST_INVALID, BLOB_UPLOAD_UNKNOWN, ...) carried by an error. */
export function codesOf(err: KitError): string[] {
  return err instanceof RegistryHttpError ? err.registryErrors.map((e) => e.code) : [];
}

export function digestRejected(ctx: RepoContext, blob: Blob): KitError {
  return new KitError('DIGEST_MISMATCH', `${ctx.display} rejected blob ${blob.digest}: the uploaded content does not hash to that digest`, {
    hint: 'the source content is corrupt or changed while it was read; verify it (`kit store verify`) and push again',
  });
}

// ------------------------------------------------------------------ chunked

/** PATCH statuses that, on the first chunk, mean "this registry does not take chunked uploads". */
export const CHUNKED_REFUSED = new Set([400, 404, 405, 413, 416, 501]);

/**
 * One chunked upload session. `offset` is what the registry holds; each PATCH carries
 * `Content-Range: <first>-<last>` and goes to the Location the previous answer gave. After a
 * failed PATCH the session is resynchronised from the registry's `Range` header (GET on the
 * upload URL), and the upload continues from there: the current chunk is still in memory, so
 * any offset inside it can be resumed; one before it cannot (the stream is read once).
 */
class ChunkedUpload {
  location: string;
  private offset = 0;
  private earlyCreated = false;

  constructor(
    private readonly ctx: RepoContext,
    location: string,
    private readonly blob: Blob,
    private readonly hints: UploadHints,
  ) {
    this.location = location;
  }

  /** 'refused': the registry took nothing and will not take chunks; the first chunk is back in `reader`. */
  async run(reader: ContentReader, chunkSize: number): Promise<'done' | 'refused'> {
    while (this.offset < this.blob.size) {
      // A chunk is read whole (bounded memory); send() splits it when the registry wants smaller PATCHes.
      const chunk = await reader.read(Math.min(chunkSize, this.blob.size - this.offset));
      if ((await this.send(chunk)) === 'refused') {
        reader.unread(chunk);
        return 'refused';
      }
    }
    await reader.assertEnd();
    await this.finish();
    return 'done';
  }

  private async send(chunk: Buffer): Promise<'sent' | 'refused'> {
    const chunkStart = this.offset;
    let failures = 0;
    while (this.offset < chunkStart + chunk.length) {
      const from = this.offset - chunkStart;
      const piece = chunk.subarray(from, from + (this.hints.maxChunk ?? chunk.length));
      let res: RegistryResponse;
      try {
        res = await this.patch(piece);
      } catch (err) {
        if (++failures > MAX_CHUNK_RETRIES) throw err;
        await this.resync(chunkStart, chunk.length);
        continue;
      }
      const status = res.status;
      if (status === 202 || status === 201 || status === 204) {
        // ECR answers 201 to a PATCH: the chunk is in, and the closing PUT may be moot.
        if (status === 201) this.earlyCreated = true;
        this.location = uploadLocation(this.ctx, res, this.location);
        await res.dump();
        this.offset += piece.length;
        failures = 0;
        continue;
      }
      const err = await registryError(res, `upload blob (chunk at byte ${this.offset})`, `${this.ctx.display}@${this.blob.digest}`);
      if ((status === 413 || status === 416) && piece.length > SAFE_CHUNK_SIZE) {
        // GHCR (416) and body-size limits (413): smaller pieces from now on.
        this.hints.maxChunk = SAFE_CHUNK_SIZE;
        if (status === 416) await this.resync(chunkStart, chunk.length).catch(() => undefined);
        continue;
      }
      if (this.offset === 0 && CHUNKED_REFUSED.has(status) && !codesOf(err).includes('DIGEST_INVALID')) {
        return 'refused';
      }
      if ((status === 416 || status >= 500) && ++failures <= MAX_CHUNK_RETRIES) {
        await this.resync(chunkStart, chunk.length);
        continue;
      }
      throw err;
    }
    return 'sent';
  }

  private patch(piece: Buffer): Promise<RegistryResponse> {
    return this.ctx.client.request({
      method: 'PATCH',
      url: this.location,
      headers: {
        'content-type': OCTET_STREAM,
        'content-range': `${this.offset}-${this.offset + piece.length - 1}`,
        'content-length': String(piece.length),
      },
      body: piece,
      scopes: this.ctx.scopes.push,
    });
  }

  /**
   * Asks the registry how much it holds (GET <upload URL> -> `Range: 0-<last>`) and moves
   * `offset` there, if that lies within the chunk in memory.
   */
  private async resync(chunkStart: number, chunkLength: number): Promise<void> {
    const res = await this.ctx.client.request({ method: 'GET', url: this.location, scopes: this.ctx.scopes.push });
    if (res.status !== 204 && res.status !== 200 && res.status !== 202) {
      // distribution, for one, refuses an upload URL whose state token is stale (a PATCH that
      // landed but whose answer was lost): then there is nothing to resume.
      throw await registryError(res, 'resume the interrupted upload of blob', `${this.ctx.display}@${this.blob.digest}`);
    }
    await res.dump();
    this.location = uploadLocation(this.ctx, res, this.location);
    const held = heldBytes(res.headers.range, this.offset);
    if (held === undefined || held < chunkStart || held > chunkStart + chunkLength) {
      throw new KitError('UPLOAD_INTERRUPTED', `blob upload of ${this.blob.digest} to ${this.ctx.display} lost its place: the registry holds ${held ?? 'an unknown number of'} bytes, kit can resume only between ${chunkStart} and ${chunkStart + chunkLength}`, {
        hint: 'push again; the upload restarts from the beginning',
      });
    }
    this.offset = held;
  }

  private finish(): Promise<void> {
    return closeUpload(this.ctx, this.location, this.blob, this.earlyCreated);
  }
}

/**
 * The closing PUT ?digest= with no body, for chunked uploads. When `presenceCounts` (the
 * session may already be closed: an early 201, a lost answer), a refusal is forgiven if the
 * registry turns out to hold the blob.
 */
export async function closeUpload(ctx: RepoContext, location: string, blob: Blob, presenceCounts: boolean): Promise<void> {
  const res = await ctx.client.request({
    method: 'PUT',
    url: withDigest(location, blob.digest),
    headers: { 'content-type': OCTET_STREAM, 'content-length': '0' },
    body: Buffer.alloc(0),
    scopes: ctx.scopes.push,
  });
  if (res.status === 201 || res.status === 204) {
    await res.dump();
    checkStoredDigest(ctx, res, blob);
    return;
  }
  const err = await registryError(res, 'complete the upload of blob', `${ctx.display}@${blob.digest}`);
  if (codesOf(err).includes('DIGEST_INVALID')) throw digestRejected(ctx, blob);
  if (presenceCounts && (await blobExists(ctx, { mediaType: OCTET_STREAM, digest: blob.digest, size: blob.size }).catch(() => false))) return;
  throw err;
}

/**
 * `Range: 0-<last>` (also `bytes=0-<last>`) -> bytes held. distribution answers `0-0` for an
 * empty session as well as for one byte; with nothing confirmed yet, that reads as 0.
 */
export function heldBytes(range: string | undefined, confirmed: number): number | undefined {
  if (range === undefined) return undefined;
  const m = /^(?:bytes=)?0-(\d+)$/.exec(range.trim());
  if (!m) return undefined;
  const last = Number(m[1]);
  if (last === 0 && confirmed === 0) return 0;
  return last + 1;
}

// ------------------------------------------------------------------ mount

/**
 * Cross-repository mount: POST ?mount=<digest>&from=<repo>. 201: the registry linked the blob,
 * nothing to send. 202: it opened an upload session instead (mount unsupported, or the source
 * not readable with these credentials): the session is cancelled and the caller uploads.
 */
export async function mountBlob(ctx: RepoContext, desc: Descriptor, fromRepository: string): Promise<boolean> {
  const digest = parseDigest(desc.digest, 'blob digest');
  const from = ctx.checkRepository(fromRepository);
  const res = await ctx.client.request({
    method: 'POST',
    url: `${ctx.path('uploads')}?mount=${encodeURIComponent(digest)}&from=${encodeURIComponent(from)}`,
    headers: { 'content-length': '0' },
    scopes: [`repository:${from}:pull`, ...ctx.scopes.push],
  });
  if (res.status === 201) {
    await res.dump();
    checkStoredDigest(ctx, res, { digest, size: desc.size });
    return true;
  }
  if (res.status === 202) {
    await res.dump();
    const location = res.headers.location ? uploadLocation(ctx, res) : undefined;
    if (location !== undefined) await cancelUpload(ctx, location);
    return false;
  }
  // Registries without mount support say so in various ways; the caller falls back to a push.
  if (res.status === 404 || res.status === 405) {
    await res.dump();
    return false;
  }
  throw await registryError(res, `mount blob ${digest} from ${from} into`, ctx.display);
}

// ------------------------------------------------------------------ content

/**
 * Reads the content stream exactly once, in pieces of a requested size, and enforces the
 * declared size: more bytes than declared, or fewer, is a SIZE_MISMATCH. Bytes handed out can
 * be given back (`unread`) when a request was refused before the registry kept them.
 *
 * The source may be a stream or an async iterable of TRANSIENT buffers (io/direct-read.ts:
 * each valid only until the next is asked for). take() and rest() then hand them on
 * untouched, one at a time, to a consumer that is done with each before asking for the next
 * (undici sending an iterable body); read() copies. Nothing pulls while bytes are pending.
 */
export class ContentReader {
  /** The first size error, kept so that it can explain a request that failed because of it. */
  error: KitError | undefined;
  private readonly it: AsyncIterator<Buffer>;
  private pending: Buffer[] = [];
  private pendingBytes = 0;
  /** Bytes pulled from the source so far. */
  private pulled = 0;
  private ended = false;

  constructor(
    private readonly source: UploadContent,
    private readonly size: number,
    private readonly what: string,
  ) {
    this.it = source[Symbol.asyncIterator]() as AsyncIterator<Buffer>;
  }

  /** Exactly `n` bytes (n never goes past the declared size). */
  async read(n: number): Promise<Buffer> {
    const out = Buffer.allocUnsafe(n);
    let filled = 0;
    while (filled < n) {
      // What is pending goes out before the next pull, which may refill a transient buffer.
      if (this.pending.length === 0 && !(await this.pull())) throw this.fail(`ends after ${this.pulled} bytes`);
      const b = this.pending.shift()!;
      const k = Math.min(b.length, n - filled);
      b.copy(out, filled, 0, k);
      filled += k;
      this.pendingBytes -= k;
      if (k < b.length) this.pending.unshift(b.subarray(k));
    }
    return out;
  }

  /**
   * The next `n` bytes as a stream, handed on as they arrive: a chunk of a chunked upload is
   * never gathered in memory (four 16 MiB chunks in flight would be most of kit's memory).
   */
  take(n: number): AsyncIterable<Buffer> {
    const self = this;
    async function* piece(): AsyncGenerator<Buffer> {
      let left = n;
      while (left > 0) {
        if (self.pendingBytes === 0 && !(await self.pull())) throw self.fail(`ends after ${self.pulled} bytes`);
        const b = self.pending.shift()!;
        if (b.length > left) {
          self.pending.unshift(b.subarray(left));
          self.pendingBytes -= left;
          yield b.subarray(0, left);
          return;
        }
        self.pendingBytes -= b.length;
        left -= b.length;
        yield b;
      }
    }
    return piece();
  }

  /** Puts bytes back in front (they were handed out but not kept by the registry). */
  unread(bytes: Buffer): void {
    if (bytes.length === 0) return;
    this.pending.unshift(bytes);
    this.pendingBytes += bytes.length;
  }

  /** Fails when the source holds more than the declared size. */
  async assertEnd(): Promise<void> {
    if (this.pendingBytes > 0 || (await this.pull())) throw this.fail(`has more than ${this.size} bytes`);
  }

  /** Everything not yet handed out, as a stream that errors on a size mismatch. */
  rest(): AsyncIterable<Buffer> {
    const self = this;
    async function* remaining(): AsyncGenerator<Buffer> {
      for (const b of self.pending.splice(0)) yield b;
      self.pendingBytes = 0;
      while (await self.pull()) {
        const b = self.pending.shift()!;
        self.pendingBytes = 0;
        yield b;
      }
    }
    return remaining();
  }

  close(): void {
    if (this.ended) return;
    if (this.source instanceof Readable) this.source.destroy();
    else void this.it.return?.().catch(() => undefined);
  }

  /** Pulls one piece from the source into `pending`; false at the end. */
  private async pull(): Promise<boolean> {
    if (this.ended) return false;
    const { value, done } = await this.it.next();
    if (done) {
      this.ended = true;
      if (this.pulled !== this.size) throw this.fail(`ends after ${this.pulled} bytes`);
      return false;
    }
    const buf = Buffer.isBuffer(value) ? value : Buffer.from(value as Uint8Array);
    this.pulled += buf.length;
    if (this.pulled > this.size) throw this.fail(`has more than ${this.size} bytes`);
    if (buf.length === 0) return this.pull();
    this.pending.push(buf);
    this.pendingBytes += buf.length;
    return true;
  }

  private fail(how: string): KitError {
    this.error ??= new KitError('SIZE_MISMATCH', `${this.what}: size mismatch: expected ${this.size} bytes, the content ${how}`, {
      hint: 'the source content is corrupt or changed while it was read; nothing was kept by the registry',
    });
    return this.error;
  }
}
