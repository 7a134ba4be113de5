import { KitError } from '../errors.js';
import { parseDigest } from '../oci/digest.js';
import type { Descriptor } from '../oci/descriptor.js';
import type { UploadSessionKey, UploadSessionRecord, UploadSessionStore } from '../store/upload-sessions.js';
import { OCTET_STREAM } from './accept.js';
import { RegistryHttpError, registryError } from './errors.js';
import { networkCode } from './http.js';
import type { RepoContext } from './repository.js';
import type { RegistryResponse } from './types.js';
import {
  CHUNKED_REFUSED,
  ContentReader,
  SAFE_CHUNK_SIZE,
  cancelUpload,
  closeUpload,
  codesOf,
  heldBytes,
  openSession,
  pushBlob,
  uploadHints,
  uploadLocation,
  type Blob,
  type UploadHints,
  type UploadContent,
  type UploadOptions,
} from './upload.js';

/**
 * Resumable blob uploads, for a source that can be read again from any offset (the local store,
 * a staged pack, another registry). Big blobs go in chunks through one upload session whose
 * state (upload URL, bytes acknowledged) is saved after every accepted chunk (see
 * store/upload-sessions.ts). When a chunk fails, or the process is killed and `kit push` runs
 * again, the registry is asked how much it holds (GET on the upload URL -> `Range: 0-<last>`)
 * and the upload continues from there, reading the source from that offset: what the registry
 * has is never sent twice. When the registry has lost the session (404 BLOB_UPLOAD_UNKNOWN), or
 * will not say where it stands, a new session starts from byte 0: nothing else is possible. (CNCF
 * distribution answers 404 BLOB_UPLOAD_INVALID to an upload URL whose `_state` token is stale,
 * i.e. after a chunk that reached it, whole or in part, but whose answer was lost: the session
 * lives on, but only under a URL kit never received.)
 *
 * Smaller blobs go as one PUT (upload.ts), like before: resending one is cheaper than a session.
 * The registry quirks learnt in upload.ts apply here too: smaller chunks after a 413/416 on a big
 * PATCH (GHCR), a 201 to a PATCH (ECR), chunked uploads refused (GAR: one PUT instead).
 */

export interface ResumableUploadOptions extends UploadOptions {
  /** Where sessions are kept between runs; without one they live as long as the repository object. */
  sessions?: UploadSessionStore;
  /** Blobs of at least this many bytes go in resumable chunks. Default 64 MiB (KIT_UPLOAD_CHUNKED_MIN). */
  chunkedMinBytes?: number;
  /** Told about resumptions, for progress and statistics. */
  onSessionEvent?: (e: UploadSessionEvent) => void;
}

export type UploadSessionEvent =
  /** A session saved by an earlier run (or attempt) was found alive; the upload continues at `offset`. */
  | { type: 'resumed'; digest: string; offset: number }
  /** After a failure the registry was asked where it stands: it holds `offset` bytes. */
  | { type: 'resynced'; digest: string; offset: number; after: string }
  /** The registry lost the session: a new one starts from byte 0 (`lost` bytes must be sent again). */
  | { type: 'restarted'; digest: string; lost: number; after: string };

/** Chunks of the resumable path: 16 MiB (KIT_UPLOAD_CHUNK_SIZE), or what UploadOptions.chunkSize says. */
export const RESUMABLE_CHUNK_SIZE = 16 * 1024 * 1024;
export const RESUMABLE_MIN_BYTES = 64 * 1024 * 1024;
/** Failures in a row, without a byte of progress in between, before the upload is given up. */
const MAX_FAILURES_WITHOUT_PROGRESS = 6;

function envBytes(name: string, fallback: number): number {
  const raw = process.env[name]?.trim();
  if (raw && /^\d+$/.test(raw)) {
    const n = Number(raw);
    if (Number.isSafeInteger(n) && n > 0) return n;
  }
  return fallback;
}

/** In-process sessions: an upload retried by the graph copy continues where the last attempt stopped. */
export class MemoryUploadSessions implements UploadSessionStore {
  readonly #records = new Map<string, UploadSessionRecord>();

  #key(k: UploadSessionKey): string {
    return `${k.registry}\n${k.repository}\n${k.digest}`;
  }

  async load(key: UploadSessionKey): Promise<UploadSessionRecord | undefined> {
    const r = this.#records.get(this.#key(key));
    return r && { ...r };
  }

  async save(record: UploadSessionRecord): Promise<void> {
    this.#records.set(this.#key(record), { ...record });
  }

  async remove(key: UploadSessionKey): Promise<void> {
    this.#records.delete(this.#key(key));
  }
}

/**
 * Uploads the blob `desc` names, reading it through `open(offset)` (the content from byte
 * `offset` on). Returns the offset the upload continued from (0 for a fresh upload).
 */
export async function pushBlobResumable(
  ctx: RepoContext,
  desc: Descriptor,
  open: (offset: number) => Promise<UploadContent>,
  opts: ResumableUploadOptions = {},
): Promise<{ resumedFrom: number }> {
  const blob: Blob = { digest: parseDigest(desc.digest, 'blob digest'), size: desc.size };
  if (!Number.isSafeInteger(blob.size) || blob.size < 0) {
    throw new KitError('DESCRIPTOR_INVALID', `descriptor size ${String(blob.size)} is not a non-negative integer`);
  }
  const hints = uploadHints(ctx.client);
  const minBytes = opts.chunkedMinBytes ?? envBytes('KIT_UPLOAD_CHUNKED_MIN', RESUMABLE_MIN_BYTES);
  const chunked =
    opts.mode === 'chunked' ||
    (opts.mode !== 'monolithic' && !hints.noChunked && blob.size > 0 && (blob.size >= minBytes || hints.preferChunked === true));
  if (!chunked) {
    try {
      await pushBlob(ctx, desc, await open(0), opts);
    } catch (err) {
      // One PUT that broke: the source can be read again, so the graph copy may simply retry.
      if (!(err instanceof KitError && err.code === 'UPLOAD_TOO_LARGE') && isTransient(err)) {
        throw new KitError('UPLOAD_INTERRUPTED', `upload of blob ${blob.digest} to ${ctx.display} was interrupted (${describe(err)})`, {
          hint: 'run the same command again',
          cause: err,
        });
      }
      throw err;
    }
    return { resumedFrom: 0 };
  }
  const upload = new ResumableChunkedUpload(ctx, blob, open, hints, opts);
  return upload.run();
}

/** Why a chunk failed: worth asking the registry where it stands and going on, or final. */
function isTransient(err: unknown): boolean {
  if (err instanceof RegistryHttpError) {
    const s = err.status;
    return s === 408 || s === 416 || s === 429 || (s >= 500 && s !== 501) || sessionLost(err);
  }
  if (err instanceof KitError) return err.code === 'REGISTRY_UNREACHABLE' || err.code === 'UPLOAD_INTERRUPTED';
  const code = networkCode(err);
  return code !== undefined && (code.startsWith('UND_ERR_') || ['ECONNRESET', 'EPIPE', 'ETIMEDOUT', 'ECONNREFUSED', 'ECONNABORTED'].includes(code));
}

/** 404 (distribution says BLOB_UPLOAD_UNKNOWN or BLOB_UPLOAD_INVALID), or 400 with those codes. */
function sessionLost(err: RegistryHttpError): boolean {
  const codes = codesOf(err);
  return err.status === 404 || codes.includes('BLOB_UPLOAD_UNKNOWN') || codes.includes('BLOB_UPLOAD_INVALID');
}

function describe(err: unknown): string {
  if (err instanceof RegistryHttpError) return `status ${err.status}${codesOf(err).length ? ` ${codesOf(err)[0]}` : ''}`;
  if (err instanceof KitError) return err.code;
  return networkCode(err) ?? (err as Error)?.message ?? String(err);
}

/** Thrown inside the upload to make the outer loop ask the registry where it stands. */
class Resync extends Error {
  constructor(readonly why: string) {
    super(why);
  }
}

class ResumableChunkedUpload {
  private location = '';
  private offset = 0;
  private createdAt = new Date().toISOString();
  private readonly key: UploadSessionKey;
  private sessions: UploadSessionStore | undefined;
  private readonly chunkSize: number;

  constructor(
    private readonly ctx: RepoContext,
    private readonly blob: Blob,
    private readonly open: (offset: number) => Promise<UploadContent>,
    private readonly hints: UploadHints,
    private readonly opts: ResumableUploadOptions,
  ) {
    this.key = { registry: ctx.client.registry, repository: ctx.name, digest: blob.digest };
    this.sessions = opts.sessions;
    const size = opts.chunkSize ?? envBytes('KIT_UPLOAD_CHUNK_SIZE', RESUMABLE_CHUNK_SIZE);
    if (!Number.isSafeInteger(size) || size <= 0) throw new RangeError(`invalid chunk size ${String(size)}`);
    this.chunkSize = size;
  }

  private get what(): string {
    return `${this.ctx.display}@${this.blob.digest}`;
  }

  async run(): Promise<{ resumedFrom: number }> {
    // Another process pushing the same blob owns the saved session: work without one.
    const release = this.sessions?.lock ? await this.sessions.lock(this.key).catch(() => undefined) : async () => {};
    if (!release) this.sessions = undefined;
    try {
      return await this.upload();
    } finally {
      await release?.().catch(() => undefined);
    }
  }

  private async upload(): Promise<{ resumedFrom: number }> {
    let restored: boolean;
    try {
      restored = await this.restore();
    } catch (err) {
      // The registry cannot be asked where the saved session stands: keep it for the next try.
      if (isTransient(err)) throw this.interrupted(err);
      throw err;
    }
    if (!restored) await this.begin();
    const resumedFrom = restored ? this.offset : 0;
    // Progress is measured against the furthest point reached: failures that keep the upload
    // moving are fine, failures in a row at one spot are not.
    let furthest = this.offset;
    let failures = 0;
    for (;;) {
      try {
        if (this.offset < this.blob.size) {
          if ((await this.sendRest()) === 'refused') {
            await this.monolithicInstead();
            return { resumedFrom: 0 };
          }
        }
        await this.finish();
        await this.forget();
        return { resumedFrom };
      } catch (err) {
        if (!(err instanceof Resync) && !isTransient(err)) {
          // A refusal (denied, digest rejected, the source changed): the session is of no more use.
          await cancelUpload(this.ctx, this.location);
          await this.forget();
          throw err;
        }
        if (this.offset > furthest) {
          furthest = this.offset;
          failures = 0;
        }
        if (++failures > MAX_FAILURES_WITHOUT_PROGRESS) throw this.interrupted(err);
        const why = err instanceof Resync ? err.why : describe(err);
        try {
          await this.resync(why);
        } catch (resyncErr) {
          if (!isTransient(resyncErr)) throw resyncErr;
          // The registry cannot be asked right now: the session is kept (in the store) for the
          // next attempt, which the graph copy or the user's next `kit push` makes.
          throw this.interrupted(resyncErr);
        }
      }
    }
  }

  private interrupted(cause: unknown): KitError {
    return new KitError('UPLOAD_INTERRUPTED', `upload of blob ${this.blob.digest} to ${this.ctx.display} was interrupted at byte ${this.offset} of ${this.blob.size} (${describe(cause)})`, {
      hint: 'run the same command again: the upload continues where the registry says it stopped',
      cause,
    });
  }

  // -------------------------------------------------------------- session state

  /** A saved session that the registry still knows: true, with location and offset set. */
  private async restore(): Promise<boolean> {
    const record = await this.sessions?.load(this.key);
    if (!record || record.size !== this.blob.size || !this.acceptableLocation(record.location)) {
      if (record) await this.forget();
      return false;
    }
    this.location = record.location;
    this.offset = record.offset;
    this.createdAt = record.createdAt;
    const status = await this.status();
    if (status === 'lost') {
      this.location = '';
      this.offset = 0;
      await this.forget();
      return false;
    }
    this.offset = status;
    await this.remember();
    this.opts.onSessionEvent?.({ type: 'resumed', digest: this.blob.digest, offset: this.offset });
    return true;
  }

  /** A saved URL is used only if a fresh one could have been: http(s), and no https -> http. */
  private acceptableLocation(location: string): boolean {
    try {
      const u = new URL(location);
      const base = new URL(this.ctx.client.baseUrl);
      if (u.protocol !== 'https:' && u.protocol !== 'http:') return false;
      return !(base.protocol === 'https:' && u.protocol === 'http:');
    } catch {
      return false;
    }
  }

  private async begin(): Promise<void> {
    const session = await openSession(this.ctx);
    this.location = session.location;
    this.offset = 0;
    this.createdAt = new Date().toISOString();
    await this.remember();
  }

  private async remember(): Promise<void> {
    if (!this.sessions) return;
    const record: UploadSessionRecord = {
      version: 1,
      ...this.key,
      size: this.blob.size,
      location: this.location,
      offset: this.offset,
      createdAt: this.createdAt,
      updatedAt: new Date().toISOString(),
    };
    // Losing the record only costs a resend on a later run: never fail the upload for it.
    await this.sessions.save(record).catch(() => undefined);
  }

  private async forget(): Promise<void> {
    await this.sessions?.remove(this.key).catch(() => undefined);
  }

  /**
   * GET on the upload URL: the bytes the registry holds (its `Range`), or 'lost' when it no
   * longer knows the session. Adopts the fresh Location it gives.
   */
  private async status(): Promise<number | 'lost'> {
    const res = await this.ctx.client.request({ method: 'GET', url: this.location, scopes: this.ctx.scopes.push });
    if (res.status === 204 || res.status === 200 || res.status === 202) {
      await res.dump();
      const held = heldBytes(res.headers.range, this.offset);
      // Without a usable Range the registry cannot tell where to go on: start over.
      if (held === undefined || held > this.blob.size) return 'lost';
      this.location = uploadLocation(this.ctx, res, this.location);
      return held;
    }
    const err = await registryError(res, 'check the upload of blob', this.what);
    if (err instanceof RegistryHttpError && sessionLost(err)) return 'lost';
    throw err;
  }

  /** After a failure: continue where the registry stands, or in a new session from byte 0. */
  private async resync(after: string): Promise<void> {
    const status = await this.status();
    if (status === 'lost') {
      const lost = this.offset;
      await cancelUpload(this.ctx, this.location);
      await this.begin();
      this.opts.onSessionEvent?.({ type: 'restarted', digest: this.blob.digest, lost, after });
      return;
    }
    this.offset = status;
    await this.remember();
    this.opts.onSessionEvent?.({ type: 'resynced', digest: this.blob.digest, offset: status, after });
  }

  // -------------------------------------------------------------- sending

  /**
   * PATCHes everything from `offset` on, reading the source from there, one streamed piece at a
   * time. A piece that fails is not replayed from memory: the session loop asks the registry
   * where it stands and calls this again, which reads the source anew from that offset.
   */
  private async sendRest(): Promise<'sent' | 'refused'> {
    const start = this.offset;
    const reader = new ContentReader(await this.open(start), this.blob.size - start, `blob ${this.blob.digest}`);
    try {
      while (this.offset < this.blob.size) {
        const length = Math.min(this.chunkSize, this.hints.maxChunk ?? Infinity, this.blob.size - this.offset);
        if ((await this.sendPiece(reader, length)) === 'refused') return 'refused';
      }
      await reader.assertEnd();
      return 'sent';
    } finally {
      reader.close();
    }
  }

  private async sendPiece(reader: ContentReader, length: number): Promise<'sent' | 'refused'> {
    let res: RegistryResponse;
    try {
      res = await this.patch(reader.take(length), length);
    } catch (err) {
      // A size error of our own explains a failed request better than the socket error it caused.
      throw reader.error ?? err;
    }
    if (res.status === 202 || res.status === 201 || res.status === 204) {
      // ECR answers 201 to a PATCH: the chunk is in (the closing PUT then checks the blob).
      this.location = uploadLocation(this.ctx, res, this.location);
      await res.dump();
      this.offset += length;
      await this.remember();
      return 'sent';
    }
    const err = await registryError(res, `upload blob (chunk at byte ${this.offset})`, this.what);
    if ((res.status === 413 || res.status === 416) && length > SAFE_CHUNK_SIZE) {
      // GHCR (416) and body-size limits (413): smaller pieces from now on; the registry says
      // where to go on (a 416 may have moved nothing, or part).
      this.hints.maxChunk = SAFE_CHUNK_SIZE;
      throw new Resync(`status ${res.status} on a ${length}-byte chunk`);
    }
    if (this.offset === 0 && CHUNKED_REFUSED.has(res.status) && !codesOf(err).some((c) => c === 'DIGEST_INVALID' || c.startsWith('BLOB_UPLOAD_'))) {
      return 'refused';
    }
    throw err;
  }

  private patch(piece: AsyncIterable<Buffer>, length: number): Promise<RegistryResponse> {
    let handedOut = false;
    return this.ctx.client.request({
      method: 'PATCH',
      url: this.location,
      headers: {
        'content-type': OCTET_STREAM,
        'content-range': `${this.offset}-${this.offset + length - 1}`,
        'content-length': String(length),
      },
      stream: () => {
        if (handedOut) throw new KitError('UPLOAD_NOT_REPLAYABLE', `blob ${this.blob.digest}: a streamed chunk cannot be sent twice`);
        handedOut = true;
        return piece;
      },
      retry: false,
      scopes: this.ctx.scopes.push,
    });
  }

  /** The closing PUT. A lost answer may have closed the session already: the blob's presence then counts. */
  private finish(): Promise<void> {
    return closeUpload(this.ctx, this.location, this.blob, true);
  }

  /** The registry refused chunks before storing anything (GAR): one streaming PUT from byte 0. */
  private async monolithicInstead(): Promise<void> {
    this.hints.noChunked = true;
    await cancelUpload(this.ctx, this.location);
    await this.forget();
    await pushBlob(this.ctx, { mediaType: OCTET_STREAM, digest: this.blob.digest, size: this.blob.size }, await this.open(0), { ...this.opts, mode: 'monolithic' });
  }
}
