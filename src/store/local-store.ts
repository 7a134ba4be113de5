import type { Hash } from 'node:crypto';
import { randomUUID } from 'node:crypto';
import { createWriteStream } from 'node:fs';
import { chmod, mkdir, open, readFile, readdir, rename, rm, rmdir, stat, utimes, writeFile } from 'node:fs/promises';
import { join, resolve as resolvePath } from 'node:path';
import { Readable } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import { ExitCode, KitError, errnoCode } from '../errors.js';
import { digestHex, hasherDigest, isDigest, newHasher, parseDigest, sha256, type Digest } from '../oci/digest.js';
import {
  Annotation,
  MAX_MANIFEST_BYTES,
  MediaType,
  isIndexMediaType,
  isManifestMediaType,
  type Descriptor,
  type ImageIndex,
} from '../oci/descriptor.js';
import type { Target } from '../oci/target.js';
import { VerifyingStream, keepWhatArrives } from '../oci/verify.js';
import { WRITE_BUFFER, fileReadable, hashFileInto, readAhead } from '../io/read-ahead.js';
import { writeBlobFile } from '../io/blob-writer.js';
import { readTransient } from '../io/direct-read.js';
import { withFileLock, type HeldLock } from './file-lock.js';
import { tryPidLock } from './pid-lock.js';
import { ingestRanged, settleRangedPartial } from './ranged-ingest.js';
import { createFileOnce, fsyncDir, fsyncFile, isNotFound, isPermissionError, writeError } from './fs-util.js';
import { MAX_PARENT_LINKS, childrenOf, hasChildren, parentDigestOf, type GraphNode } from './graph.js';
import { emptyIndex, readIndexFile, serializeIndex } from './index-file.js';
import { defaultStoreRoot } from './paths.js';
import { describeIngest, ingestKeepReason, inspectIngest, inspectUploads, tempName, type IngestEntry, type IngestKind, type OwnerState } from './gc.js';

/** A tagged entry of index.json: `ref` is the full reference kept in org.opencontainers.image.ref.name. */
export interface TagEntry {
  ref: string;
  descriptor: Descriptor;
}

export interface StoreProblem {
  kind: 'corrupt-blob' | 'missing-blob' | 'bad-index' | 'ingest-leftover';
  digest?: string;
  path?: string;
  message: string;
}

/** Something an interrupted (or running) command left: not damage, reused or removed later. */
export interface Leftover {
  path: string;
  kind: IngestKind;
  bytes: number;
  owner: OwnerState;
  pid?: number;
  ageSeconds: number;
  message: string;
}

export interface VerifyReport {
  /** No problem at all, ingest leftovers included. */
  ok: boolean;
  /** Nothing damaged: every blob matches its digest and every index entry resolves fully (leftovers allowed). */
  clean: boolean;
  /** Every problem; `ingest-leftover` ones are also listed, with details, in `leftovers`. */
  problems: StoreProblem[];
  leftovers: Leftover[];
  blobs: number;
  bytes: number;
  /** Index entries with a reference name. */
  tags: number;
  /** Every index entry (tags, and untagged ones such as referrers), each checked to resolve fully. */
  entries: number;
  /** Blobs no index entry reaches (what `kit store gc` would remove, grace period aside). */
  unreferenced: { blobs: number; bytes: number };
  /**
   * Layers that artifacts built on other artifacts list without holding them: they are their
   * parents' and live in the parents' registries (push and unpack read them there). Not damage.
   */
  borrowed: { blobs: number; bytes: number };
}

export interface GcOptions {
  /** Unreferenced blobs and ingest files younger than this are kept (a running command may still tag them). */
  graceMs: number;
  /** Ignore the grace period (files owned by a running process are still kept). */
  now?: boolean;
}

export interface GcReport {
  blobs: { removed: Digest[]; bytes: number; keptYoung: number; keptYoungBytes: number };
  ingest: { removed: string[]; bytes: number; kept: Array<{ path: string; reason: string }> };
}

const LAYOUT_VERSION = '1.0.0';
const HEX_NAME = /^[a-f0-9]{64}$/;

/**
 * Blobs from this size on are written by writeBlobFile (O_DIRECT from aligned blocks, see
 * io/blob-writer.ts); smaller ones, where the page cache costs little, by a write stream.
 */
const BLOB_WRITER_FROM = 32 * 1024 * 1024;

/**
 * The local store: a standard OCI image layout (`oci-layout`, `index.json`, `blobs/sha256/`)
 * plus an `ingest/` folder for partial writes, so that other OCI tools (skopeo `oci:DIR:REF`,
 * oras, crane) can read it.
 *
 * Blob writes take no lock: content is addressed by digest and lands by an atomic rename, so
 * two writers of one blob write the same bytes. index.json is the only shared mutable file;
 * every change to it goes through `updateIndex`, under a cross-process lock.
 */
export class LocalStore implements Target {
  readonly root: string;

  private constructor(root: string) {
    this.root = root;
  }

  /** Opens the store at `root` (default: `$KIT_HOME/store`), creating the layout if missing. */
  static async open(root: string = defaultStoreRoot()): Promise<LocalStore> {
    const store = new LocalStore(resolvePath(root));
    await store.ensureLayout();
    return store;
  }

  private get indexPath(): string {
    return join(this.root, 'index.json');
  }

  private get layoutPath(): string {
    return join(this.root, 'oci-layout');
  }

  private get blobsDir(): string {
    return join(this.root, 'blobs', 'sha256');
  }

  private get ingestDir(): string {
    return join(this.root, 'ingest');
  }

  /** Upload sessions of interrupted pushes (store/upload-sessions.ts); cleaned by collectGarbage. */
  private get uploadsDir(): string {
    return join(this.root, 'uploads');
  }

  private async ensureLayout(): Promise<void> {
    try {
      await mkdir(this.blobsDir, { recursive: true });
      await mkdir(this.ingestDir, { recursive: true });
      // Two processes may open a new store at once: each file is created exactly once.
      if (!(await fileExists(this.layoutPath))) {
        await createFileOnce(this.layoutPath, JSON.stringify({ imageLayoutVersion: LAYOUT_VERSION }), this.ingestPath());
      }
      if (!(await fileExists(this.indexPath))) {
        await createFileOnce(this.indexPath, serializeIndex(emptyIndex()), this.ingestPath());
      }
    } catch (err) {
      // An existing layout on a read-only mount is still readable; only writes will fail.
      if (isPermissionError(err) && (await fileExists(this.indexPath))) return;
      throw writeError(err, this.root, this.root);
    }
  }

  blobPath(digest: Digest): string {
    // Digests come from manifests, i.e. from anywhere: parsing keeps them from naming other paths.
    return join(this.blobsDir, digestHex(parseDigest(digest, 'blob digest')));
  }

  // ---------------------------------------------------------------- Target

  async resolve(ref: string): Promise<Descriptor> {
    const digest = digestOf(ref);
    if (digest) return this.resolveDigest(digest, ref);
    const entry = (await this.readIndex()).manifests.find((e) => refNameOf(e) === ref);
    if (!entry) throw notFound(ref);
    return withoutRefName(entry);
  }

  /** A digest resolves when its manifest blob is here, tagged or not. */
  private async resolveDigest(digest: Digest, ref: string): Promise<Descriptor> {
    const size = await this.blobSize(digest);
    if (size === undefined) throw notFound(ref);
    const entry = (await this.readIndex()).manifests.find((e) => e.digest === digest && e.size === size);
    if (entry) return descriptorFields(entry);
    const doc = await this.readJson<ManifestHead>({ mediaType: '', digest, size });
    const desc: Descriptor = { mediaType: manifestMediaType(doc, ref), digest, size };
    if (typeof doc.artifactType === 'string') desc.artifactType = doc.artifactType;
    return desc;
  }

  async exists(desc: Descriptor): Promise<boolean> {
    // A file of the wrong size is a torn or corrupt copy: report it absent so it gets rewritten.
    return (await this.blobSize(desc.digest)) === desc.size;
  }

  /**
   * True when the blob is here; its mtime is then renewed, so that `kit store gc`'s grace period
   * covers a blob about to be referenced again (as commitIngested does for a blob written twice).
   */
  async freshen(desc: Descriptor): Promise<boolean> {
    if (!(await this.exists(desc))) return false;
    const now = new Date();
    await utimes(this.blobPath(desc.digest), now, now).catch(() => undefined);
    return true;
  }

  /** Where a blob lies on this machine, for readers that let the kernel copy it (unpack); undefined when it is not here. */
  async localBlobPath(desc: Descriptor): Promise<string | undefined> {
    return (await this.exists(desc)) ? this.blobPath(desc.digest) : undefined;
  }

  async fetch(desc: Descriptor, opts: { offset?: number } = {}): Promise<Readable> {
    const offset = opts.offset ?? 0;
    if (!Number.isSafeInteger(offset) || offset < 0) throw new RangeError(`invalid offset ${offset}`);
    const path = this.blobPath(desc.digest);
    // Open first so a missing blob is an error here, not an 'error' event later.
    const fh = await open(path, 'r').catch((err: unknown) => {
      throw isNotFound(err) ? blobNotFound(desc.digest) : err;
    });
    return fileReadable(fh, offset);
  }

  /**
   * The blob from `offset` on in transient buffers read with O_DIRECT (io/direct-read.ts): for
   * uploads, whose consumer is done with each buffer before it asks for the next.
   */
  async fetchTransient(desc: Descriptor, opts: { offset?: number } = {}): Promise<AsyncIterable<Buffer>> {
    const offset = opts.offset ?? 0;
    if (!Number.isSafeInteger(offset) || offset < 0) throw new RangeError(`invalid offset ${offset}`);
    const path = this.blobPath(desc.digest);
    const size = (await stat(path).catch((err: unknown) => {
      throw isNotFound(err) ? blobNotFound(desc.digest) : err;
    })).size;
    return readTransient(path, offset, size);
  }

  async push(desc: Descriptor, content: Readable): Promise<void> {
    const digest = parseDigest(desc.digest, 'blob digest');
    checkSize(desc.size);
    if (await this.exists(desc)) {
      content.destroy();
      return;
    }
    const temp = this.ingestPath();
    const what = `blob ${digest}`;
    const large = desc.size >= BLOB_WRITER_FROM;
    const out = large ? undefined : createWriteStream(temp, { flags: 'wx', mode: 0o644, highWaterMark: WRITE_BUFFER });
    try {
      if (out) await pipeline(content, new VerifyingStream({ digest, size: desc.size }, what), out);
      else await writeBlobFile(content, { path: temp, flags: 'wx', expected: { digest, size: desc.size }, what });
      await this.commitIngested(temp, digest, desc.size);
    } catch (err) {
      // A stream failing at once may beat the file's open: wait for it, or the temp file would
      // appear after it was removed.
      if (out && !out.closed) await new Promise<void>((r) => out.once('close', () => r()));
      await rm(temp, { force: true });
      throw writeError(err, temp, this.root);
    }
  }

  /**
   * Download-style push that survives interruptions: bytes accumulate in
   * `ingest/<hex>.partial`, which a later call (in this process or after a crash) continues
   * from its current length; `open(offset)` must return the content from that offset on.
   * The bytes already there are re-hashed (read only) so the final digest covers everything.
   * When another process is downloading the same blob, this falls back to a private temp file.
   */
  async pushResumable(desc: Descriptor, open: (offset: number) => Promise<Readable>): Promise<{ resumedFrom: number }> {
    const digest = parseDigest(desc.digest, 'blob digest');
    checkSize(desc.size);
    if (await this.exists(desc)) return { resumedFrom: desc.size };
    const { partial, release } = await this.lockPartial(digest);
    if (!release) {
      await this.push(desc, await open(0));
      return { resumedFrom: 0 };
    }
    try {
      // Left by a ranged download: only its unbroken prefix counts for a single stream.
      await settleRangedPartial(partial, desc.size);
      let offset = (await stat(partial).catch(() => undefined))?.size ?? 0;
      if (offset > desc.size) {
        await rm(partial, { force: true });
        offset = 0;
      }
      // A process killed while committing may have made it read-only (commitIngested) before
      // the rename: writable again, or the append below fails for any user but root.
      if (offset > 0) await chmod(partial, 0o644).catch(() => undefined);
      const expected = { digest, size: desc.size };
      const what = `blob ${digest}`;
      try {
        if (desc.size >= BLOB_WRITER_FROM) {
          // Writes what arrives before a dropped connection itself.
          await writeBlobFile(await open(offset), { path: partial, flags: offset > 0 ? 'r+' : 'w', start: offset, expected, what });
        } else {
          const hash = newHasher();
          if (offset > 0) await hashFileInto(hash, partial, offset);
          const { stream: content, failure } = keepWhatArrives(await open(offset));
          const verifier = new VerifyingStream(expected, what, { hash, bytes: offset }, () => failure() !== undefined);
          await pipeline(content, verifier, createWriteStream(partial, { flags: offset > 0 ? 'a' : 'w', mode: 0o644, highWaterMark: WRITE_BUFFER }));
          const failed = failure();
          if (failed) throw failed;
        }
      } catch (err) {
        // A wrong digest or size means the partial bytes are no good; a broken connection
        // leaves them for the next attempt.
        if (err instanceof KitError && (err.code === 'DIGEST_MISMATCH' || err.code === 'SIZE_MISMATCH')) await rm(partial, { force: true });
        throw writeError(err, partial, this.root);
      }
      await this.commitIngested(partial, digest, desc.size);
      return { resumedFrom: offset };
    } finally {
      await release();
    }
  }

  /**
   * A large blob fetched over several connections at once (ranged-ingest.ts), into the same
   * partial file a single-stream download uses, under the same lock. 'unsupported' when the
   * source ignores Range (nothing written: use pushResumable); undefined when another process
   * is downloading the blob (pushResumable then downloads it privately).
   */
  async pushRanged(
    desc: Descriptor,
    fetchRange: (start: number, end: number) => Promise<Readable | undefined>,
    opts: { onProgress?: (bytesOnDisk: number) => void } = {},
  ): Promise<{ resumedFrom: number } | 'unsupported' | undefined> {
    const digest = parseDigest(desc.digest, 'blob digest');
    checkSize(desc.size);
    if (await this.exists(desc)) return { resumedFrom: desc.size };
    const { partial, release } = await this.lockPartial(digest);
    if (!release) return undefined;
    try {
      await chmod(partial, 0o644).catch(() => undefined); // see pushResumable
      const outcome = await ingestRanged({ path: partial, size: desc.size, digest, fetchRange, what: `blob ${digest}`, ...opts }).catch((err: unknown) => {
        throw writeError(err, partial, this.root);
      });
      if (outcome !== 'unsupported') await this.commitIngested(partial, digest, desc.size);
      return outcome;
    } finally {
      await release();
    }
  }

  /** The partial-download file of a blob, and its pid lock (release undefined: another process holds it). */
  private async lockPartial(digest: Digest): Promise<{ partial: string; release: (() => Promise<void>) | undefined }> {
    const partial = join(this.ingestDir, `${digestHex(digest)}.partial`);
    const release = await tryPidLock(`${partial}.lock`).catch((err: unknown) => {
      throw writeError(err, `${partial}.lock`, this.root);
    });
    return { partial, release };
  }

  /** Bytes of an interrupted download of this blob kept in the ingest area (0 when none). */
  async partialBytes(digest: Digest): Promise<number> {
    return (await stat(join(this.ingestDir, `${digestHex(digest)}.partial`)).catch(() => undefined))?.size ?? 0;
  }

  async tag(desc: Descriptor, ref: string): Promise<void> {
    if (!ref) throw new KitError('REFERENCE_INVALID', 'cannot tag with an empty reference', { exitCode: ExitCode.usage });
    parseDigest(desc.digest, 'manifest digest');
    checkSize(desc.size);
    const entry = tagEntry(desc, ref);
    await this.updateIndex(async (index) => {
      // Checked under the lock: removeUnreferenced takes it too, so nothing found here can be
      // collected before the tag that keeps it alive is written.
      await this.ensureComplete(desc);
      replaceRef(index, ref, entry);
    });
  }

  // ---------------------------------------------------------------- tags

  async untag(ref: string): Promise<Descriptor | undefined> {
    return this.updateIndex((index) => {
      const found = index.manifests.find((e) => refNameOf(e) === ref);
      index.manifests = index.manifests.filter((e) => refNameOf(e) !== ref);
      return found && withoutRefName(found);
    });
  }

  async listTags(): Promise<TagEntry[]> {
    const tags: TagEntry[] = [];
    for (const entry of (await this.readIndex()).manifests) {
      const ref = refNameOf(entry);
      if (ref !== undefined) tags.push({ ref, descriptor: withoutRefName(entry) });
    }
    return tags.sort((a, b) => (a.ref < b.ref ? -1 : a.ref > b.ref ? 1 : 0));
  }

  /** Throws BLOB_MISSING unless the manifest and everything it points at are here. */
  private async ensureComplete(desc: Descriptor): Promise<void> {
    await this.walk({ desc, role: `manifest ${desc.digest}` }, async (node) => {
      if (await this.exists(node.desc)) return true;
      if (node.optional) return false; // a parent's layer: it stays in the parent's registry
      throw new KitError('BLOB_MISSING', `cannot tag: ${node.role} is not in the local store`, {
        hint: 'push or pull the complete artifact into the store first',
      });
    });
  }

  // ---------------------------------------------------------------- referrers
  // Supply chain (src/sign, src/supplychain): signatures, attestations and SBOMs attached to an
  // artifact live in the layout as index.json entries without a ref name, naming their subject
  // in the ReferrerAnnotation.Subject annotation (and cosign's older tag-based `.sig` / `.att`
  // manifests, which carry no `subject` field, also in ReferrerAnnotation.Tag). `kit list`
  // shows tags only; gc keeps a referrer exactly as long as its subject (referencedBlobs).

  /**
   * Stores a manifest that carries a `subject` (its blobs must be here already) and records it as
   * a referrer of that subject: the same call as RemoteRepository.pushReferrer.
   */
  async pushReferrer(desc: Descriptor, bytes: Buffer, subject: Descriptor): Promise<void> {
    const declared = (parseManifestHead(bytes, desc.digest).subject as { digest?: unknown } | undefined)?.digest;
    if (declared !== subject.digest) {
      throw new KitError('REFERRER_INVALID', `manifest ${desc.digest} does not name ${subject.digest} as its subject`, {
        hint: 'a referrer must carry a "subject" descriptor of the manifest it refers to',
      });
    }
    await this.push(desc, Readable.from([bytes]));
    await this.addReferrerEntry(desc, bytes, subject.digest);
  }

  /** Stores a cosign tag-based attachment (`sha256-<hex>.sig` / `.att`), replacing the one kept for that tag. */
  async attachByTag(desc: Descriptor, bytes: Buffer, subject: Descriptor, tag: string): Promise<void> {
    await this.push(desc, Readable.from([bytes]));
    await this.addReferrerEntry(desc, bytes, subject.digest, tag);
  }

  /** The referrers of `subject` kept here (tag-based attachments excluded: see attachedByTag). */
  async referrers(subject: Descriptor, opts: { artifactType?: string } = {}): Promise<Descriptor[]> {
    return (await this.readIndex()).manifests
      .filter((e) => e.annotations?.[ReferrerAnnotation.Subject] === subject.digest && e.annotations?.[ReferrerAnnotation.Tag] === undefined)
      .filter((e) => opts.artifactType === undefined || e.artifactType === opts.artifactType)
      .map(referrerDescriptor);
  }

  /** The tag-based attachment kept for `subject` under `tag`, if any. */
  async attachedByTag(subject: Descriptor, tag: string): Promise<Descriptor | undefined> {
    const entry = (await this.readIndex()).manifests.find((e) => e.annotations?.[ReferrerAnnotation.Subject] === subject.digest && e.annotations?.[ReferrerAnnotation.Tag] === tag);
    return entry && referrerDescriptor(entry);
  }

  private async addReferrerEntry(desc: Descriptor, bytes: Buffer, subject: Digest, tag?: string): Promise<void> {
    parseDigest(subject, 'subject digest');
    const head = parseManifestHead(bytes, desc.digest);
    const entry = descriptorFields(desc);
    const artifactType = typeof head.artifactType === 'string' ? head.artifactType : undefined;
    if (artifactType !== undefined) entry.artifactType = artifactType;
    const annotations: Record<string, string> = {};
    for (const [k, v] of Object.entries((head.annotations as Record<string, unknown> | undefined) ?? {})) if (typeof v === 'string') annotations[k] = v;
    annotations[ReferrerAnnotation.Subject] = subject;
    if (tag !== undefined) annotations[ReferrerAnnotation.Tag] = tag;
    entry.annotations = annotations;
    await this.updateIndex(async (index) => {
      // Under the lock, as in tag(): gc cannot take the blobs between this check and the write.
      await this.ensureComplete(desc);
      if ((await this.blobSize(subject)) === undefined) {
        throw new KitError('BLOB_MISSING', `cannot attach ${desc.digest}: its subject ${subject} is not in the local store`, {
          hint: 'pull or pack the artifact first',
        });
      }
      const same = (e: Descriptor) => e.annotations?.[ReferrerAnnotation.Subject] === subject && e.annotations?.[ReferrerAnnotation.Tag] === tag;
      if (index.manifests.some((e) => same(e) && e.digest === desc.digest)) return;
      // A tag holds one manifest: the new one replaces the old (callers merge signatures first).
      if (tag !== undefined) index.manifests = index.manifests.filter((e) => !same(e));
      index.manifests.push(entry);
    });
  }

  /**
   * Drops the referrer entries whose subject is no longer reachable from a tag (its last tag was
   * removed), under the held index lock; returns the blobs those referrers used, as candidates
   * for removal (the caller's referencedBlobs() decides what is still needed).
   */
  private async dropOrphanReferrers(held: HeldLock): Promise<Set<Digest>> {
    const index = await this.readIndex();
    const reachable = await this.referencedBlobs();
    const orphans = index.manifests.filter((e) => isReferrerEntry(e) && !reachable.has(e.digest));
    const blobs = new Set<Digest>();
    if (orphans.length === 0) return blobs;
    for (const o of orphans) {
      await this.walk({ desc: o, role: `referrer ${o.digest}` }, async (node) => {
        blobs.add(node.desc.digest);
        return (await this.blobSize(node.desc.digest)) !== undefined;
      }, () => undefined);
    }
    const gone = new Set(orphans);
    index.manifests = index.manifests.filter((e) => !gone.has(e));
    held.assertHeld();
    await this.writeIndex(serializeIndex(index));
    return blobs;
  }

  // ---------------------------------------------------------------- small blobs

  async readJson<T>(desc: Descriptor, maxBytes: number = MAX_MANIFEST_BYTES): Promise<T> {
    const digest = parseDigest(desc.digest, 'blob digest');
    checkSize(desc.size);
    if (desc.size > maxBytes) {
      throw new KitError('BLOB_TOO_LARGE', `${digest} is ${desc.size} bytes, over the ${maxBytes}-byte limit for JSON content`);
    }
    const bytes = await this.readUpTo(digest, desc.size + 1);
    if (bytes.length !== desc.size) {
      throw new KitError('SIZE_MISMATCH', `blob ${digest} in the local store: expected ${desc.size} bytes, found ${bytes.length}${bytes.length > desc.size ? ' or more' : ''}`, {
        hint: 'run `kit store verify`; the blob is corrupt or the descriptor is wrong',
      });
    }
    const got = sha256(bytes);
    if (got !== digest) {
      throw new KitError('DIGEST_MISMATCH', `blob ${digest} in the local store is corrupt (its content hashes to ${got})`, {
        hint: 'run `kit store verify`, then pull or pack the artifact again',
      });
    }
    try {
      return JSON.parse(bytes.toString('utf8')) as T;
    } catch (err) {
      throw new KitError('JSON_INVALID', `blob ${digest} is not valid JSON: ${(err as Error).message}`, { cause: err });
    }
  }

  /** Reads at most `limit` bytes of a blob: a corrupt oversized file never gets loaded whole. */
  private async readUpTo(digest: Digest, limit: number): Promise<Buffer> {
    const fh = await open(this.blobPath(digest), 'r').catch((err: unknown) => {
      throw isNotFound(err) ? blobNotFound(digest) : err;
    });
    try {
      const buf = Buffer.alloc(limit);
      let filled = 0;
      while (filled < limit) {
        const { bytesRead } = await fh.read(buf, filled, limit - filled, filled);
        if (bytesRead === 0) break;
        filled += bytesRead;
      }
      return buf.subarray(0, filled);
    } finally {
      await fh.close();
    }
  }

  async writeJson(value: unknown, mediaType: string, annotations?: Record<string, string>): Promise<Descriptor> {
    const text = JSON.stringify(value);
    if (typeof text !== 'string') throw new TypeError('writeJson: value has no JSON form');
    const bytes = Buffer.from(text, 'utf8');
    const desc: Descriptor = { mediaType, digest: sha256(bytes), size: bytes.length };
    const artifactType = artifactTypeOf(value, mediaType);
    if (artifactType) desc.artifactType = artifactType;
    if (annotations && Object.keys(annotations).length > 0) desc.annotations = { ...annotations };
    if (await this.exists(desc)) return desc;
    const temp = this.ingestPath();
    try {
      await writeFile(temp, bytes, { flag: 'wx', mode: 0o644 });
      await this.commitIngested(temp, desc.digest, desc.size);
    } catch (err) {
      await rm(temp, { force: true });
      throw writeError(err, temp, this.root);
    }
    return desc;
  }

  // ---------------------------------------------------------------- ingest

  /** A fresh temp file name in the ingest area, naming this process as its owner (see gc.ts). */
  ingestPath(): string {
    // Every write to the store starts here: the first one cleans up after killed processes.
    void this.sweepDeadIngest();
    return join(this.ingestDir, tempName(randomUUID()));
  }

  private sweep: Promise<void> | undefined;

  /**
   * Once per process: removes the temp files of writers that were killed (their pid, in this
   * pid namespace, is gone), and download locks of dead processes that guard no partial
   * download (killed between committing the blob and releasing the lock). Partial downloads
   * stay, for the next pull to resume; their locks are taken over then.
   */
  private sweepDeadIngest(): Promise<void> {
    this.sweep ??= (async () => {
      try {
        const entries = await inspectIngest(this.ingestDir);
        const names = new Set(entries.map((e) => e.name));
        for (const e of entries) {
          const orphanLock = e.kind === 'lock' && e.name.endsWith('.partial.lock') && !names.has(e.name.slice(0, -'.lock'.length));
          if (e.owner === 'dead' && (e.kind === 'temp' || orphanLock)) await rm(e.path, { force: true });
        }
      } catch {
        // best effort: `kit store gc` does it thoroughly
      }
    })();
    return this.sweep;
  }

  async commitIngested(tempPath: string, digest: Digest, size: number): Promise<void> {
    const target = this.blobPath(digest);
    await this.sweepDeadIngest();
    try {
      await fsyncFile(tempPath);
      const actual = (await stat(tempPath)).size;
      if (actual !== size) {
        throw new KitError('SIZE_MISMATCH', `blob ${digest}: expected ${size} bytes, wrote ${actual}`, {
          hint: 'the content is corrupt or was altered; nothing was kept',
        });
      }
      // Read-only blobs: a stray write through a hard link (unpack may link files) cannot corrupt the store.
      await chmod(tempPath, 0o444);
      if ((await this.blobSize(digest)) === size) {
        await rm(tempPath, { force: true });
        // Reused: freshen it, so that `kit store gc`'s grace period covers it until it is tagged.
        const now = new Date();
        await utimes(target, now, now).catch(() => undefined);
        return;
      }
      await rename(tempPath, target);
      await fsyncDir(this.blobsDir);
    } catch (err) {
      await rm(tempPath, { force: true });
      throw writeError(err, target, this.root);
    }
  }

  // ---------------------------------------------------------------- index.json

  async updateIndex<T>(fn: (index: ImageIndex) => T | Promise<T>): Promise<T> {
    return this.withIndexLock(async (held) => {
      const index = await this.readIndex();
      const before = serializeIndex(index);
      const result = await fn(index);
      const after = serializeIndex(index);
      if (after !== before) {
        held.assertHeld();
        await this.writeIndex(after);
      }
      return result;
    });
  }

  /** Lock-free read: index.json is only ever replaced by rename, so a reader sees a whole version. */
  private readIndex(): Promise<ImageIndex> {
    return readIndexFile(this.indexPath);
  }

  private async writeIndex(text: string): Promise<void> {
    const temp = this.ingestPath();
    try {
      await writeFile(temp, text, { flag: 'wx', mode: 0o644 });
      await fsyncFile(temp);
      await rename(temp, this.indexPath);
      await fsyncDir(this.root);
    } catch (err) {
      await rm(temp, { force: true });
      throw writeError(err, this.indexPath, this.root);
    }
  }

  private withIndexLock<T>(fn: (held: HeldLock) => Promise<T>): Promise<T> {
    return withFileLock(this.indexPath, fn, (err) => writeError(err, `${this.indexPath}.lock`, this.root));
  }

  // ---------------------------------------------------------------- garbage collection

  async referencedBlobs(): Promise<Set<Digest>> {
    const seen = new Set<Digest>();
    const visit = (entry: Descriptor) =>
      this.walk({ desc: entry, role: 'index entry' }, async (node) => {
        seen.add(node.desc.digest);
        // A manifest that is present is read even if damaged: an error then stops the
        // collection rather than letting it delete what the manifest may still need.
        return (await this.blobSize(node.desc.digest)) !== undefined;
      });
    const entries = (await this.readIndex()).manifests;
    for (const entry of entries) if (!isReferrerEntry(entry)) await visit(entry);
    // Supply chain: a referrer is reachable when its subject is (again and again: a signature
    // may refer to an SBOM that refers to the artifact); the others are left to be dropped.
    let pending = entries.filter(isReferrerEntry);
    for (let grew = true; grew; ) {
      grew = false;
      const still: Descriptor[] = [];
      for (const r of pending) {
        if (seen.has(r.annotations![ReferrerAnnotation.Subject] as Digest)) {
          await visit(r);
          grew = true;
        } else still.push(r);
      }
      pending = still;
    }
    return seen;
  }

  async removeUnreferenced(opts: { candidates?: Iterable<Digest> } = {}): Promise<{ removed: Digest[]; bytes: number }> {
    // Under the index lock, so no tag can appear between computing reachability and deleting.
    // Blobs pushed but not yet tagged by another process are not protected: its tag then
    // fails with BLOB_MISSING rather than pointing at nothing.
    return this.withIndexLock(async (held) => {
      // Supply chain: referrers of what is no longer tagged go with it (and their blobs with them).
      const orphaned = await this.dropOrphanReferrers(held);
      const keep = await this.referencedBlobs();
      const pool = opts.candidates ? new Set([...opts.candidates, ...orphaned]) : await this.allBlobDigests();
      const removed: Digest[] = [];
      let bytes = 0;
      for (const digest of pool) {
        if (keep.has(digest)) continue;
        held.assertHeld();
        const size = await this.removeBlob(digest);
        if (size === undefined) continue;
        removed.push(digest);
        bytes += size;
      }
      if (removed.length > 0) await fsyncDir(this.blobsDir);
      return { removed, bytes };
    });
  }

  /** Deletes a blob; its size, or undefined when it was not there. */
  private async removeBlob(digest: Digest): Promise<number | undefined> {
    const size = await this.blobSize(digest);
    if (size === undefined) return undefined;
    try {
      await rm(this.blobPath(digest));
      return size;
    } catch (err) {
      if (isNotFound(err)) return undefined;
      throw writeError(err, this.blobPath(digest), this.root);
    }
  }

  private async allBlobDigests(): Promise<Set<Digest>> {
    const names = await readdir(this.blobsDir).catch((err: unknown) => {
      if (isNotFound(err)) return [] as string[];
      throw err;
    });
    return new Set(names.filter((n) => HEX_NAME.test(n)).map((n) => `sha256:${n}` as Digest));
  }

  /**
   * `kit store gc`: removes the blobs no index entry reaches and the stale files of the
   * ingest area. Young ones (under `graceMs`) are kept unless `now`: a pack or pull running
   * at the same time writes its blobs before it tags them, and a blob a running command
   * reuses is freshened when it does (commitIngested). Files whose owner process is alive
   * are always kept; temp files whose owner is gone always go.
   */
  async collectGarbage(opts: GcOptions): Promise<GcReport> {
    const at = Date.now();
    const blobs = await this.withIndexLock(async (held) => {
      // Under the index lock: no tag can appear between computing reachability and deleting.
      await this.dropOrphanReferrers(held); // supply chain: referrers go with their subject
      const keep = await this.referencedBlobs();
      const removed: Digest[] = [];
      let bytes = 0;
      let keptYoung = 0;
      let keptYoungBytes = 0;
      for (const digest of [...(await this.allBlobDigests())].sort()) {
        if (keep.has(digest)) continue;
        const st = await stat(this.blobPath(digest)).catch(() => undefined);
        if (!st) continue;
        if (!opts.now && at - st.mtimeMs < opts.graceMs) {
          keptYoung++;
          keptYoungBytes += st.size;
          continue;
        }
        held.assertHeld();
        const size = await this.removeBlob(digest);
        if (size === undefined) continue;
        removed.push(digest);
        bytes += size;
      }
      if (removed.length > 0) await fsyncDir(this.blobsDir);
      return { removed, bytes, keptYoung, keptYoungBytes };
    });
    const ingest: GcReport['ingest'] = { removed: [], bytes: 0, kept: [] };
    const folders = await folderTimes(this.uploadsDir);
    const uploads = await inspectUploads(this.uploadsDir);
    for (const e of [...(await inspectIngest(this.ingestDir)), ...uploads]) {
      const reason = ingestKeepReason(e, { graceMs: opts.graceMs, now: opts.now === true, at });
      if (reason !== undefined) {
        ingest.kept.push({ path: e.path, reason });
        continue;
      }
      try {
        await rm(e.path, { force: true });
      } catch (err) {
        throw writeError(err, e.path, this.root);
      }
      ingest.removed.push(e.path);
      ingest.bytes += e.bytes;
    }
    await removeEmptyFolders(this.uploadsDir, folders);
    return { blobs, ingest };
  }

  // ---------------------------------------------------------------- verify

  /**
   * `kit store verify`: re-hashes every blob, checks that every index entry resolves fully
   * (manifests, configs, layers, child manifests, each of the size its descriptor says), and
   * lists what interrupted commands left in the ingest area. The graph is checked under the
   * index lock when the store is writable, so that a `kit remove` running meanwhile cannot
   * make a blob look missing.
   */
  async verify(): Promise<VerifyReport> {
    const problems: StoreProblem[] = [];
    await this.verifyLayoutFile(problems);
    const { blobs, bytes, corrupt, sizes } = await this.verifyBlobs(problems);
    let started = false;
    const borrowed = new Map<string, number>();
    const checkGraph = async (): Promise<{ tags: number; entries: number; referenced: Set<string> }> => {
      started = true;
      borrowed.clear();
      const referenced = new Set<string>();
      const index = await this.readIndex().catch((err: unknown) => {
        problems.push({ kind: 'bad-index', path: this.indexPath, message: (err as Error).message });
        return undefined;
      });
      if (index) await this.verifyGraph(index, corrupt, problems, referenced, borrowed);
      const entries = index?.manifests ?? [];
      // What gc would keep (it also lets referrers of removed artifacts go); on a damaged
      // graph, everything the walk reached.
      const kept = index ? await this.referencedBlobs().catch(() => referenced) : referenced;
      return { tags: entries.filter((e) => refNameOf(e) !== undefined).length, entries: entries.length, referenced: kept };
    };
    const graph = await this.withIndexLock(checkGraph).catch(async (err: unknown) => {
      // A read-only store, or a full disk, can still be checked: lock-free (the lock is a folder to create).
      if (started) throw err;
      if ((err instanceof KitError && err.code === 'STORE_READONLY') || isPermissionError(err) || ['ENOSPC', 'EDQUOT'].includes(errnoCode(err) ?? '')) return checkGraph();
      throw err;
    });
    let unreferencedBlobs = 0;
    let unreferencedBytes = 0;
    for (const [digest, size] of sizes) {
      if (graph.referenced.has(digest) || corrupt.has(digest)) continue;
      unreferencedBlobs++;
      unreferencedBytes += size;
    }
    const leftovers = await this.verifyIngest(problems);
    const clean = problems.every((p) => p.kind === 'ingest-leftover');
    return {
      ok: problems.length === 0,
      clean,
      problems,
      leftovers,
      blobs,
      bytes,
      tags: graph.tags,
      entries: graph.entries,
      unreferenced: { blobs: unreferencedBlobs, bytes: unreferencedBytes },
      borrowed: { blobs: borrowed.size, bytes: [...borrowed.values()].reduce((n, b) => n + b, 0) },
    };
  }

  private async verifyLayoutFile(problems: StoreProblem[]): Promise<void> {
    try {
      const layout = JSON.parse(await readFile(this.layoutPath, 'utf8')) as { imageLayoutVersion?: unknown };
      if (typeof layout.imageLayoutVersion === 'string') return;
      problems.push({ kind: 'bad-index', path: this.layoutPath, message: `${this.layoutPath} has no imageLayoutVersion` });
    } catch (err) {
      problems.push({ kind: 'bad-index', path: this.layoutPath, message: `${this.layoutPath} is unreadable: ${(err as Error).message}` });
    }
  }

  /** Re-hashes every blob; returns the digests whose content does not match their name, and every blob's size. */
  private async verifyBlobs(problems: StoreProblem[]): Promise<{ blobs: number; bytes: number; corrupt: Set<string>; sizes: Map<string, number> }> {
    const corrupt = new Set<string>();
    const sizes = new Map<string, number>();
    let blobs = 0;
    let bytes = 0;
    const names = await readdir(this.blobsDir).catch(() => [] as string[]);
    for (const name of names.sort()) {
      const path = join(this.blobsDir, name);
      if (!HEX_NAME.test(name)) {
        problems.push({ kind: 'corrupt-blob', path, message: `unexpected file ${path} among the blobs` });
        continue;
      }
      const expected = `sha256:${name}`;
      let got: { digest: Digest; size: number };
      try {
        got = await hashFile(path);
      } catch (err) {
        if (isNotFound(err)) continue; // removed meanwhile by a `kit remove` or `kit store gc`
        corrupt.add(expected);
        problems.push({ kind: 'corrupt-blob', digest: expected, path, message: `blob ${expected} cannot be read: ${(err as Error).message}` });
        continue;
      }
      blobs++;
      bytes += got.size;
      sizes.set(expected, got.size);
      if (got.digest !== expected) {
        corrupt.add(expected);
        problems.push({ kind: 'corrupt-blob', digest: expected, path, message: `blob ${expected} is corrupt: its content hashes to ${got.digest}` });
      }
    }
    return { blobs, bytes, corrupt, sizes };
  }

  /** Checks that every index entry resolves fully: manifests, configs, layers, child manifests. */
  private async verifyGraph(index: ImageIndex, corrupt: Set<string>, problems: StoreProblem[], referenced: Set<string>, borrowed: Map<string, number>): Promise<void> {
    const seen = new Set<string>();
    for (const entry of index.manifests) {
      const name = refNameOf(entry) ?? `untagged entry ${entry.digest}`;
      await this.walk({ desc: entry, role: `manifest of ${name}` }, async ({ desc, role, optional }) => {
        referenced.add(desc.digest);
        if (seen.has(desc.digest) || corrupt.has(desc.digest)) return false; // reported once
        const size = await this.blobSize(desc.digest);
        if (size === undefined && optional) {
          // Not marked seen: where another artifact needs this blob here, its absence is damage.
          borrowed.set(desc.digest, desc.size);
          return false;
        }
        seen.add(desc.digest);
        if (size === desc.size) return true;
        const path = this.blobPath(desc.digest);
        const of = role.startsWith('manifest of ') ? '' : ` (in ${name})`;
        problems.push(
          size === undefined
            ? { kind: 'missing-blob', digest: desc.digest, path, message: `${role}${of} is missing` }
            : { kind: 'corrupt-blob', digest: desc.digest, path, message: `${role}${of} is ${size} bytes, its descriptor says ${desc.size}` },
        );
        return false;
      }, (node, err) => {
        problems.push({ kind: 'corrupt-blob', digest: node.desc.digest, path: this.blobPath(node.desc.digest), message: `${node.role} cannot be read: ${(err as Error).message}` });
      });
    }
  }

  /** Lists what the ingest area holds (and a lock left on index.json), as leftovers. */
  private async verifyIngest(problems: StoreProblem[]): Promise<Leftover[]> {
    const at = Date.now();
    const entries: IngestEntry[] = [...(await inspectIngest(this.ingestDir).catch(() => [])), ...(await inspectUploads(this.uploadsDir))];
    const lock = `${this.indexPath}.lock`;
    const lockStat = await stat(lock).catch(() => undefined);
    if (lockStat) {
      entries.push({ name: 'index.json.lock', path: lock, kind: 'lock', bytes: 0, mtimeMs: lockStat.mtimeMs, owner: 'unknown', directory: true });
    }
    const leftovers: Leftover[] = [];
    for (const e of entries) {
      const what = e.path === lock ? 'the lock of index.json: held by a running kit process, or left by a killed one (taken over after 10s)' : describeIngest(e);
      const message = `${e.path} is left over from an interrupted write (or one still running): ${what}`;
      problems.push({ kind: 'ingest-leftover', path: e.path, message });
      leftovers.push({
        path: e.path,
        kind: e.kind,
        bytes: e.bytes,
        owner: e.owner,
        ...(e.pid !== undefined ? { pid: e.pid } : {}),
        ageSeconds: Math.max(0, Math.round((at - e.mtimeMs) / 1000)),
        message: what,
      });
    }
    return leftovers;
  }

  // ---------------------------------------------------------------- helpers

  /** Size of a stored blob, or undefined when absent. */
  private async blobSize(digest: Digest): Promise<number | undefined> {
    try {
      return (await stat(this.blobPath(digest))).size;
    } catch (err) {
      if (isNotFound(err)) return undefined;
      throw err;
    }
  }

  /**
   * Depth-first walk from `start`: `visit` says whether to descend into a node (its blob is
   * then read as a manifest or index). Read errors go to `onReadError`, or are thrown.
   */
  private async walk(
    start: GraphNode,
    visit: (node: GraphNode) => Promise<boolean>,
    onReadError?: (node: GraphNode, err: unknown) => void,
  ): Promise<void> {
    if (!(await visit(start)) || !hasChildren(start.desc.mediaType)) return;
    let children: GraphNode[];
    try {
      const doc = await this.readJson(start.desc);
      children = childrenOf(start.desc, doc);
      if (isManifestMediaType(start.desc.mediaType)) children = await this.withParentLink(start, doc, children);
    } catch (err) {
      if (!onReadError) throw err;
      onReadError(start, err);
      return;
    }
    for (const child of children) await this.walk(child, visit, onReadError);
  }

  /**
   * An artifact built on another one records its parent (KitAnnotation.Parent): the parent's
   * manifest is one more child, kept (with its config) as long as the child is, and the layers
   * the parent and its own parents list may be absent here: `kit pack` takes them over without
   * downloading them, and push and unpack read them from the parent's registry. Of a parent
   * itself only the manifest and config are kept.
   */
  private async withParentLink(node: GraphNode, doc: unknown, children: GraphNode[]): Promise<GraphNode[]> {
    const depth = node.ancestorDepth ?? 0;
    // Of a parent, only the config counts: its layers are the child's business where the child
    // lists them, and otherwise no business of this store.
    let out = depth > 0 ? children.filter((c) => c.kind !== 'layer') : children;
    const parent = parentDigestOf(doc);
    if (parent === undefined || depth >= MAX_PARENT_LINKS) return out;
    const provided = await this.layersListedFrom(parent, depth + 1);
    out = out.map((c) => (c.kind === 'layer' && provided.has(c.desc.digest) ? { ...c, optional: true } : c));
    // Unknown size when the manifest is missing: 0 makes every visitor report it absent.
    const parentNode: GraphNode = {
      desc: { mediaType: MediaType.ImageManifest, digest: parent, size: (await this.blobSize(parent)) ?? 0 },
      role: `manifest ${parent} of the parent of manifest ${node.desc.digest}`,
      kind: 'manifest',
      ancestorDepth: depth + 1,
    };
    return [parentNode, ...out];
  }

  /** Every layer digest the manifest `digest` and its recorded parents list (those manifests that are here). */
  private async layersListedFrom(digest: Digest, depth: number): Promise<Set<string>> {
    const listed = new Set<string>();
    for (let d: Digest | undefined = digest, level = depth; d !== undefined && level <= MAX_PARENT_LINKS; level++) {
      const size = await this.blobSize(d);
      if (size === undefined) break;
      const doc = await this.readJson<{ layers?: unknown }>({ mediaType: MediaType.ImageManifest, digest: d, size }).catch(() => undefined);
      if (!doc) break;
      for (const l of Array.isArray(doc.layers) ? doc.layers : []) {
        const ld = (l as { digest?: unknown } | null)?.digest;
        if (typeof ld === 'string') listed.add(ld);
      }
      d = parentDigestOf(doc);
    }
    return listed;
  }

  /** Every blob the artifact `desc` reaches (config, layers, the manifests and configs of its parents): what removing it may free. */
  async blobsOf(desc: Descriptor): Promise<Set<Digest>> {
    const found = new Set<Digest>();
    await this.walk({ desc, role: `manifest ${desc.digest}` }, async (node) => {
      found.add(node.desc.digest);
      return (await this.blobSize(node.desc.digest)) !== undefined;
    }, () => undefined);
    return found;
  }
}

// ------------------------------------------------------------------ module helpers

/** The fields of a manifest or index that tell what it is. */
interface ManifestHead {
  mediaType?: unknown;
  artifactType?: unknown;
  manifests?: unknown;
  config?: unknown;
}

function manifestMediaType(doc: ManifestHead, ref: string): string {
  if (typeof doc.mediaType === 'string') return doc.mediaType;
  // mediaType is optional in older manifests: the shape tells.
  if (Array.isArray(doc.manifests)) return MediaType.ImageIndex;
  if (doc.config !== undefined) return MediaType.ImageManifest;
  throw new KitError('NOT_A_MANIFEST', `${ref} names a blob that is not a manifest or index`, { exitCode: ExitCode.usage });
}

/** The artifactType a descriptor of this manifest or index should carry, per image-spec. */
function artifactTypeOf(value: unknown, mediaType: string): string | undefined {
  if (!isManifestMediaType(mediaType) && !isIndexMediaType(mediaType)) return undefined;
  const at = (value as { artifactType?: unknown } | null)?.artifactType;
  return typeof at === 'string' ? at : undefined;
}

/** `sha256:...` or `anything@sha256:...` -> the digest; any other reference -> undefined. */
function digestOf(ref: string): Digest | undefined {
  const candidate = ref.slice(ref.lastIndexOf('@') + 1);
  return isDigest(candidate) ? candidate : undefined;
}

/** Annotations of the index.json entries that hold referrers (see LocalStore.pushReferrer). */
export const ReferrerAnnotation = {
  /** The digest of the manifest the entry refers to. */
  Subject: 'ml.kitops.kit.referrer.subject',
  /** For cosign's tag-based attachments: the tag they live under in a registry (`sha256-<hex>.sig`). */
  Tag: 'ml.kitops.kit.referrer.tag',
} as const;

function isReferrerEntry(e: Descriptor): boolean {
  return refNameOf(e) === undefined && typeof e.annotations?.[ReferrerAnnotation.Subject] === 'string';
}

/** A referrer's descriptor as a referrers index lists it: the store's own subject annotation left out. */
function referrerDescriptor(e: Descriptor): Descriptor {
  const d = descriptorFields(e);
  const { [ReferrerAnnotation.Subject]: _subject, ...rest } = e.annotations ?? {};
  if (Object.keys(rest).length > 0) d.annotations = rest;
  return d;
}

function parseManifestHead(bytes: Buffer, digest: string): Record<string, unknown> {
  try {
    const v: unknown = JSON.parse(bytes.toString('utf8'));
    if (v !== null && typeof v === 'object' && !Array.isArray(v)) return v as Record<string, unknown>;
  } catch {
    // reported below
  }
  throw new KitError('MANIFEST_INVALID', `manifest ${digest} is not a JSON object`);
}

function refNameOf(entry: Descriptor): string | undefined {
  return entry.annotations?.[Annotation.RefName];
}

/** The index entry for `ref`: the descriptor's own annotations are kept, the ref name set. */
function tagEntry(desc: Descriptor, ref: string): Descriptor {
  const entry = descriptorFields(desc);
  entry.annotations = { ...desc.annotations, [Annotation.RefName]: ref };
  return entry;
}

/** Replaces the entries tagged `ref` by `entry`, keeping the first one's place in the index. */
function replaceRef(index: ImageIndex, ref: string, entry: Descriptor): void {
  const at = index.manifests.findIndex((e) => refNameOf(e) === ref);
  index.manifests = index.manifests.filter((e) => refNameOf(e) !== ref);
  if (at < 0) index.manifests.push(entry);
  else index.manifests.splice(at, 0, entry);
}

/** The descriptor of an index entry, without the ref name (a property of the entry, not the content). */
function withoutRefName(entry: Descriptor): Descriptor {
  const desc = descriptorFields(entry);
  const { [Annotation.RefName]: _ref, ...rest } = entry.annotations ?? {};
  if (Object.keys(rest).length > 0) desc.annotations = rest;
  return desc;
}

function descriptorFields(d: Descriptor): Descriptor {
  const desc: Descriptor = { mediaType: d.mediaType, digest: d.digest, size: d.size };
  if (d.artifactType !== undefined) desc.artifactType = d.artifactType;
  return desc;
}

function checkSize(size: number): void {
  if (!Number.isSafeInteger(size) || size < 0) {
    throw new KitError('DESCRIPTOR_INVALID', `descriptor size ${String(size)} is not a non-negative integer`);
  }
}

function notFound(ref: string): KitError {
  return new KitError('NOT_FOUND', `${ref} was not found in the local store`, {
    hint: 'run `kit list` to see what the store holds, or `kit pull` it first',
    exitCode: ExitCode.notFound,
  });
}

function blobNotFound(digest: Digest): KitError {
  return new KitError('NOT_FOUND', `blob ${digest} is not in the local store`, {
    hint: 'pull or pack the artifact again; `kit store verify` checks the whole store',
    exitCode: ExitCode.notFound,
  });
}

async function fileExists(path: string): Promise<boolean> {
  try {
    await stat(path);
    return true;
  } catch (err) {
    if (isNotFound(err)) return false;
    throw err;
  }
}

async function hashFile(path: string): Promise<{ digest: Digest; size: number }> {
  const hash = newHasher();
  const size = await hashFileInto(hash, path);
  return { digest: hasherDigest(hash), size };
}


/** mtime of every folder below `root`. */
async function folderTimes(root: string, into = new Map<string, number>()): Promise<Map<string, number>> {
  for (const e of await readdir(root, { withFileTypes: true }).catch(() => [])) {
    if (!e.isDirectory()) continue;
    const sub = join(root, e.name);
    const st = await stat(sub).catch(() => undefined);
    if (st) into.set(sub, st.mtimeMs);
    await folderTimes(sub, into);
  }
  return into;
}

/**
 * Removes the empty folders below `root` (not `root` itself), deepest first: only those that,
 * before this gc removed anything, had not changed for 10 seconds (a running push may be about
 * to fill a new one).
 */
async function removeEmptyFolders(root: string, before: Map<string, number>): Promise<void> {
  const settled = Date.now() - 10_000;
  const walk = async (dir: string): Promise<boolean> => {
    const entries = await readdir(dir, { withFileTypes: true }).catch(() => undefined);
    if (!entries) return false;
    let empty = true;
    for (const e of entries) {
      const sub = join(dir, e.name);
      if (!e.isDirectory() || !(await walk(sub)) || (before.get(sub) ?? Infinity) > settled) {
        empty = false;
        continue;
      }
      await rmdir(sub).catch(() => (empty = false));
    }
    return empty;
  };
  await walk(root);
}
