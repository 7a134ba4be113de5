import type { Hash } from 'node:crypto';
import type { FileHandle } from 'node:fs/promises';
import { open, readFile, rename, rm, stat, writeFile } from 'node:fs/promises';
import type { Readable } from 'node:stream';
import { setTimeout as sleep } from 'node:timers/promises';
import { KitError, isFinalLocalError, isKitError } from '../errors.js';
import { hasherDigest, newHasher, type Digest } from '../oci/digest.js';
import { hashFileInto } from '../io/read-ahead.js';

/**
 * One large blob downloaded over several connections at once. The blob is cut in pieces that
 * are fetched with Range requests, each written where it belongs in the partial file, and
 * hashed in order from the bytes as they arrive: the piece at the front is hashed at once, the
 * ones after it are held in memory until their turn. No piece may start further than WINDOW
 * ahead of the hashing, which bounds that memory; nothing is read back from the disk.
 *
 * On a fast link one stream is bound by one registry thread and one client thread; across a
 * slow or distant one (a CDN, object storage) by the round trip. Several fill the pipe.
 *
 * Resumable across failures and kills: `<partial>.ranges` (the journal) records how many
 * bytes from the start the partial file holds in one piece; it is written before the first
 * byte lands past that point and again as the prefix grows, so the bytes after it (which may
 * have holes) are never taken for content. A partial file without a journal holds its whole
 * length (a single-stream download's), as before.
 */

/** Blobs from this size on are fetched in ranges. */
export const RANGED_FROM = 64 * 1024 * 1024;
const CONNECTIONS = 4;
/**
 * Pieces fetched at once in this process, all blobs together: copy moves several blobs at a
 * time, and four connections each would multiply the memory held for hashing (a 2 GiB pull
 * with four 153 MiB shards peaked at 227 MiB that way, 150 MiB being the budget).
 */
const slots = new (class Slots {
  private free = CONNECTIONS;
  private readonly waiting: Array<() => void> = [];
  async take(): Promise<() => void> {
    if (this.free > 0) this.free--;
    else await new Promise<void>((r) => this.waiting.push(r));
    let released = false;
    return () => {
      if (released) return;
      released = true;
      const next = this.waiting.shift();
      if (next) next();
      else this.free++;
    };
  }
})();
const PIECE = 4 * 1024 * 1024;
/** No piece starts more than this past the bytes hashed so far: the memory held for hashing. */
const WINDOW = 3 * PIECE;
/** Bytes gathered from a response before one positional writev. */
const WRITE_BATCH = 1024 * 1024;
/** A background fdatasync every so many bytes: the final fsync then has little left to write. */
const SYNC_EVERY = 256 * 1024 * 1024;
const ATTEMPTS = 5;

export interface RangedIngestOptions {
  /** The partial file (created when missing). */
  path: string;
  size: number;
  digest: Digest;
  /** Bytes [start, end) of the blob; undefined when the server ignores Range. */
  fetchRange(start: number, end: number): Promise<Readable | undefined>;
  /** Bytes of the blob on disk so far (absolute: starts with what an earlier attempt left). */
  onProgress?: (bytesOnDisk: number) => void;
  what: string;
}

/** 'unsupported': the server ignores Range; nothing was written and the caller streams the blob. */
export type RangedOutcome = { resumedFrom: number } | 'unsupported';

const journalPath = (partial: string): string => `${partial}.ranges`;

/**
 * Downloads what the partial file lacks and verifies the whole. On success the file holds the
 * blob and its journal is gone; on a broken transfer the journal records what arrived (so a
 * retry or the next run continues) and the error is thrown; a wrong digest removes both.
 */
export async function ingestRanged(o: RangedIngestOptions): Promise<RangedOutcome> {
  const journal = journalPath(o.path);
  const resumedFrom = await heldPrefix(o.path, o.size);
  const hash = newHasher();
  const pieces: Piece[] = [];
  for (let s = resumedFrom; s < o.size; s += PIECE) pieces.push(new Piece(s, Math.min(o.size, s + PIECE)));

  let firstBody: Readable | undefined;
  let firstSlot: (() => void) | undefined;
  if (pieces.length > 0) {
    // The first piece decides: a server that ignores Range has had nothing written by then.
    firstSlot = await slots.take();
    firstBody = await o.fetchRange(pieces[0]!.start, pieces[0]!.end).catch((err: unknown) => {
      firstSlot!();
      if (isKitError(err) && (err.code === 'RANGE_INVALID' || err.code === 'RANGE_NOT_SATISFIABLE')) return undefined;
      throw err;
    });
    if (!firstBody) {
      firstSlot();
      return 'unsupported';
    }
    await saveJournal(journal, o.size, resumedFrom).catch((err: unknown) => {
      firstSlot!();
      firstBody!.destroy();
      throw err;
    });
  }
  if (resumedFrom > 0) await hashFileInto(hash, o.path, resumedFrom);

  const fh = await open(o.path, (await stat(o.path).catch(() => undefined)) ? 'r+' : 'w+', 0o644);
  const run = new RangedRun(o, fh, hash, pieces, resumedFrom, journal);
  try {
    await run.download(firstBody, firstSlot);
  } finally {
    await run.settle();
    await fh.close();
  }
  const got = hasherDigest(hash);
  if (run.hashed !== o.size || got !== o.digest) {
    await rm(o.path, { force: true });
    await rm(journal, { force: true });
    throw new KitError('DIGEST_MISMATCH', `${o.what}: digest mismatch: expected ${o.digest}, got ${got}`, {
      hint: 'the content is corrupt or was altered; nothing was kept',
    });
  }
  await rm(journal, { force: true });
  return { resumedFrom };
}

/**
 * Where a single-stream download must continue from: a journal's partial file is cut back to
 * the prefix it holds in one piece (the rest may have holes), and the journal goes.
 */
export async function settleRangedPartial(partial: string, size: number): Promise<void> {
  const journal = journalPath(partial);
  if (!(await stat(journal).catch(() => undefined))) return;
  const prefix = await heldPrefix(partial, size);
  const fh = await open(partial, 'r+').catch(() => undefined);
  if (fh) await fh.truncate(prefix).finally(() => fh.close());
  await rm(journal, { force: true });
}

// ------------------------------------------------------------------------------------------

/** A byte range of the blob, fetched by one connection. */
class Piece {
  /** Received in order, not yet hashed (the piece is not at the front yet). */
  readonly held: Buffer[] = [];
  /** Bytes received; of them, handed to a write; of them, on disk. */
  received = 0;
  queued = 0;
  written = 0;
  done = false;
  constructor(
    readonly start: number,
    readonly end: number,
  ) {}
}

/** The state of one download: pieces, the hashing front, the writes, the journal. */
class RangedRun {
  /** Bytes hashed (from 0); the pieces before `front` are complete and hashed. */
  hashed: number;
  private front = 0;
  private next = 0;
  private onDisk: number;
  private prefixOnDisk: number;
  private failure: { err: unknown } | undefined;
  private readonly bodies = new Set<Readable>();
  private waiters: Array<() => void> = [];
  private journalWrites: Promise<void> = Promise.resolve();
  private syncing: Promise<void> | undefined;
  private sinceSync = 0;

  constructor(
    private readonly o: RangedIngestOptions,
    private readonly fh: FileHandle,
    private readonly hash: Hash,
    private readonly pieces: Piece[],
    start: number,
    private readonly journal: string,
  ) {
    this.hashed = start;
    this.onDisk = start;
    this.prefixOnDisk = start;
  }

  /** `firstBody` and `firstSlot`: the response to the first piece, and the slot it holds. */
  async download(firstBody: Readable | undefined, firstSlot: (() => void) | undefined): Promise<void> {
    this.o.onProgress?.(this.onDisk);
    const connections = Math.min(CONNECTIONS, this.pieces.length);
    let first = firstBody;
    let heldSlot = firstSlot;
    await Promise.all(
      Array.from({ length: connections }, async () => {
        for (let i = this.next++; i < this.pieces.length && !this.failure; i = this.next++) {
          const piece = this.pieces[i]!;
          const body = first;
          first = undefined;
          let release = heldSlot;
          heldSlot = undefined;
          try {
            if (!body) {
              await this.waitForWindow(piece);
              release = await slots.take();
            }
            if (!this.failure) await this.fetchPiece(i, body);
          } catch (err) {
            body?.destroy();
            this.fail(err);
          } finally {
            release?.();
          }
        }
      }),
    );
    first?.destroy();
    heldSlot?.();
    if (this.failure) throw this.failure.err;
  }

  /** After success or failure: the background sync and the journal are done with. */
  async settle(): Promise<void> {
    await this.syncing?.catch(() => undefined);
    await this.journalWrites;
    if (this.failure) await saveJournal(this.journal, this.o.size, this.prefixOnDisk).catch(() => undefined);
  }

  private fail(err: unknown): void {
    this.failure ??= { err };
    // The other connections stop at once; what they wrote so far stays on disk.
    for (const b of this.bodies) b.destroy(new Error('another range of the download failed'));
    for (const w of this.waiters.splice(0)) w();
  }

  private async waitForWindow(piece: Piece): Promise<void> {
    while (piece.start - this.hashed > WINDOW && !this.failure) await new Promise<void>((r) => this.waiters.push(r));
  }

  private async fetchPiece(index: number, firstBody?: Readable): Promise<void> {
    const piece = this.pieces[index]!;
    for (let attempt = 1; ; attempt++) {
      const at = piece.start + piece.received;
      try {
        const body = firstBody ?? (await this.o.fetchRange(at, piece.end));
        firstBody = undefined;
        if (!body) throw new KitError('RANGE_INVALID', `${this.o.what}: the registry stopped honouring Range requests`);
        await this.receive(index, body);
        return;
      } catch (err) {
        if (this.failure || !retryable(err) || attempt >= ATTEMPTS) throw err;
        await sleep(Math.min(200 * 2 ** attempt, 5000) * Math.random());
        if (this.failure) throw err;
      }
    }
  }

  /** One response into its piece: hashed or held, and written ~1 MiB at a time with one write in flight. */
  private receive(index: number, body: Readable): Promise<void> {
    const piece = this.pieces[index]!;
    this.bodies.add(body);
    let batch: Buffer[] = [];
    let batchBytes = 0;
    let writing: Promise<void> = Promise.resolve();
    const flush = (): void => {
      const buffers = batch;
      const n = batchBytes;
      const pos = piece.start + piece.queued;
      batch = [];
      batchBytes = 0;
      const inFlight = piece.queued > piece.written;
      piece.queued += n;
      const previous = writing;
      writing = writing.then(() => writevAll(this.fh, buffers, pos)).then(() => {
        piece.written += n;
        this.wrote(n);
      });
      // A failed write (a full disk) ends the response too: paused, it would never end by itself.
      writing.catch((err: unknown) => body.destroy(err as Error));
      // One write in flight and one batch gathering: past that the socket waits for the disk.
      if (inFlight) {
        body.pause();
        previous.then(() => body.resume(), () => undefined);
      }
    };
    return new Promise<void>((resolve, reject) => {
      let settled = false;
      const finish = (err?: unknown): void => {
        if (settled) return;
        settled = true;
        this.bodies.delete(body);
        // Whatever happened, the writes already queued finish first: their bytes count.
        writing.then(
          () => (err ? reject(err) : resolve()),
          (werr: unknown) => reject(werr),
        );
      };
      body.on('data', (chunk: Buffer) => {
        if (piece.received + chunk.length > piece.end - piece.start) {
          body.destroy(new KitError('SIZE_MISMATCH', `${this.o.what}: the registry sent more than the range ${piece.start}-${piece.end - 1} asked for`));
          return;
        }
        piece.received += chunk.length;
        if (index === this.front && piece.held.length === 0) {
          this.hash.update(chunk);
          this.hashed += chunk.length;
        } else piece.held.push(chunk);
        batch.push(chunk);
        batchBytes += chunk.length;
        if (batchBytes >= WRITE_BATCH) flush();
      });
      body.once('end', () => {
        if (batchBytes > 0) flush();
        if (piece.received < piece.end - piece.start) {
          finish(new KitError('DOWNLOAD_INTERRUPTED', `${this.o.what}: the response for bytes ${piece.start}-${piece.end - 1} ended early`));
          return;
        }
        writing.then(() => {
          piece.done = true;
          this.advance();
        }, () => undefined);
        finish();
      });
      body.once('error', (err) => {
        if (batchBytes > 0) flush();
        finish(err);
      });
      // Destroyed without an error: it did not deliver its range either, and nothing else
      // would ever settle this promise.
      body.once('close', () => {
        if (body.readableEnded) return;
        if (batchBytes > 0) flush();
        finish(body.errored ?? new KitError('DOWNLOAD_INTERRUPTED', `${this.o.what}: the response for bytes ${piece.start}-${piece.end - 1} stopped early`));
      });
    });
  }

  private wrote(n: number): void {
    this.onDisk += n;
    this.o.onProgress?.(this.onDisk);
    this.sinceSync += n;
    if (this.sinceSync >= SYNC_EVERY && !this.syncing) {
      this.sinceSync = 0;
      this.syncing = this.fh.datasync().finally(() => (this.syncing = undefined));
      this.syncing.catch(() => undefined);
    }
  }

  /** Moves the hashing front over complete pieces, hashing what they held; records the prefix on disk. */
  private advance(): void {
    while (this.front < this.pieces.length) {
      const piece = this.pieces[this.front]!;
      for (const b of piece.held.splice(0)) {
        this.hash.update(b);
        this.hashed += b.length;
      }
      if (!piece.done) break;
      this.front++;
    }
    let prefix = this.prefixOnDisk;
    for (const p of this.pieces) {
      if (p.end <= prefix) continue;
      if (p.start !== prefix || !p.done) break;
      prefix = p.end;
    }
    if (prefix > this.prefixOnDisk) {
      this.prefixOnDisk = prefix;
      this.journalWrites = this.journalWrites.then(() => saveJournal(this.journal, this.o.size, prefix)).catch(() => undefined);
    }
    for (const w of this.waiters.splice(0)) w();
  }
}

/** Bytes from the start that the partial file holds: the journal's count, else the file's length. */
async function heldPrefix(partial: string, size: number): Promise<number> {
  const length = (await stat(partial).catch(() => undefined))?.size ?? 0;
  const text = await readFile(journalPath(partial), 'utf8').catch(() => undefined);
  if (text === undefined) return length <= size ? length : 0;
  try {
    const j = JSON.parse(text) as { version?: unknown; size?: unknown; prefix?: unknown };
    if (j.version !== 1 || j.size !== size || !Number.isSafeInteger(j.prefix)) return 0;
    return Math.max(0, Math.min(j.prefix as number, length, size));
  } catch {
    return 0;
  }
}

async function saveJournal(journal: string, size: number, prefix: number): Promise<void> {
  const temp = `${journal}.${process.pid}.tmp`;
  await writeFile(temp, JSON.stringify({ version: 1, size, prefix }));
  await rename(temp, journal);
}

async function writevAll(fh: FileHandle, buffers: Buffer[], position: number): Promise<void> {
  let pos = position;
  let rest = buffers;
  while (rest.length > 0) {
    const { bytesWritten } = await fh.writev(rest, pos);
    pos += bytesWritten;
    let skip = bytesWritten;
    while (rest.length > 0 && skip >= rest[0]!.length) skip -= rest.shift()!.length;
    if (skip > 0) rest = [rest[0]!.subarray(skip), ...rest.slice(1)];
  }
}

/** A broken connection or a body cut short is tried again; a refusal, a lie or a local failure is not. */
function retryable(err: unknown): boolean {
  if (isKitError(err)) return err.code === 'DOWNLOAD_INTERRUPTED';
  return !isFinalLocalError(err);
}
