import { randomUUID } from 'node:crypto';
import { createReadStream, createWriteStream } from 'node:fs';
import { chmod, mkdir, open, readFile, readdir, rename, rm, stat, writeFile } from 'node:fs/promises';
import { join, resolve as resolvePath } from 'node:path';
import type { Readable } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import { ExitCode, KitError } from '../errors.js';
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
import { VerifyingStream } from '../oci/verify.js';
import { withFileLock, type HeldLock } from './file-lock.js';
import { tryPidLock } from './pid-lock.js';
import { createFileOnce, fsyncDir, fsyncFile, isNotFound, isPermissionError, writeError } from './fs-util.js';
import { childrenOf, hasChildren, type GraphNode } from './graph.js';
import { emptyIndex, readIndexFile, serializeIndex } from './index-file.js';
import { defaultStoreRoot } from './paths.js';

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

export interface VerifyReport {
  ok: boolean;
  problems: StoreProblem[];
  blobs: number;
  bytes: number;
}

const READ_CHUNK = 1024 * 1024;
const LAYOUT_VERSION = '1.0.0';
const HEX_NAME = /^[a-f0-9]{64}$/;

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

  async fetch(desc: Descriptor, opts: { offset?: number } = {}): Promise<Readable> {
    const offset = opts.offset ?? 0;
    if (!Number.isSafeInteger(offset) || offset < 0) throw new RangeError(`invalid offset ${offset}`);
    const path = this.blobPath(desc.digest);
    // Open first so a missing blob is an error here, not an 'error' event later.
    const fh = await open(path, 'r').catch((err: unknown) => {
      throw isNotFound(err) ? blobNotFound(desc.digest) : err;
    });
    return fh.createReadStream({ start: offset, highWaterMark: READ_CHUNK });
  }

  async push(desc: Descriptor, content: Readable): Promise<void> {
    const digest = parseDigest(desc.digest, 'blob digest');
    checkSize(desc.size);
    if (await this.exists(desc)) {
      content.destroy();
      return;
    }
    const temp = this.ingestPath();
    try {
      await pipeline(
        content,
        new VerifyingStream({ digest, size: desc.size }, `blob ${digest}`),
        createWriteStream(temp, { flags: 'wx', mode: 0o644 }),
      );
      await this.commitIngested(temp, digest, desc.size);
    } catch (err) {
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
    const partial = join(this.ingestDir, `${digestHex(digest)}.partial`);
    const release = await tryPidLock(`${partial}.lock`);
    if (!release) {
      await this.push(desc, await open(0));
      return { resumedFrom: 0 };
    }
    try {
      let offset = (await stat(partial).catch(() => undefined))?.size ?? 0;
      if (offset > desc.size) {
        await rm(partial, { force: true });
        offset = 0;
      }
      const hash = newHasher();
      if (offset > 0) {
        for await (const chunk of createReadStream(partial, { start: 0, end: offset - 1, highWaterMark: READ_CHUNK })) hash.update(chunk as Buffer);
      }
      const content = await open(offset);
      const verifier = new VerifyingStream({ digest, size: desc.size }, `blob ${digest}`, { hash, bytes: offset });
      try {
        await pipeline(content, verifier, createWriteStream(partial, { flags: offset > 0 ? 'a' : 'w', mode: 0o644 }));
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
      throw new KitError('BLOB_MISSING', `cannot tag: ${node.role} is not in the local store`, {
        hint: 'push or pull the complete artifact into the store first',
      });
    });
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
        hint: 'run `kit verify`; the blob is corrupt or the descriptor is wrong',
      });
    }
    const got = sha256(bytes);
    if (got !== digest) {
      throw new KitError('DIGEST_MISMATCH', `blob ${digest} in the local store is corrupt (its content hashes to ${got})`, {
        hint: 'run `kit verify`, then pull or pack the artifact again',
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

  ingestPath(): string {
    return join(this.ingestDir, `${process.pid}-${randomUUID()}.tmp`);
  }

  async commitIngested(tempPath: string, digest: Digest, size: number): Promise<void> {
    const target = this.blobPath(digest);
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
    for (const entry of (await this.readIndex()).manifests) {
      await this.walk({ desc: entry, role: 'index entry' }, async (node) => {
        seen.add(node.desc.digest);
        // A manifest that is present is read even if damaged: an error then stops the
        // collection rather than letting it delete what the manifest may still need.
        return (await this.blobSize(node.desc.digest)) !== undefined;
      });
    }
    return seen;
  }

  async removeUnreferenced(opts: { candidates?: Iterable<Digest> } = {}): Promise<{ removed: Digest[]; bytes: number }> {
    // Under the index lock, so no tag can appear between computing reachability and deleting.
    // Blobs pushed but not yet tagged by another process are not protected: its tag then
    // fails with BLOB_MISSING rather than pointing at nothing.
    return this.withIndexLock(async (held) => {
      const keep = await this.referencedBlobs();
      const pool = opts.candidates ? new Set(opts.candidates) : await this.allBlobDigests();
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

  // ---------------------------------------------------------------- verify

  async verify(): Promise<VerifyReport> {
    const problems: StoreProblem[] = [];
    await this.verifyLayoutFile(problems);
    const { blobs, bytes, corrupt } = await this.verifyBlobs(problems);
    const index = await this.readIndex().catch((err: unknown) => {
      problems.push({ kind: 'bad-index', path: this.indexPath, message: (err as Error).message });
      return undefined;
    });
    if (index) await this.verifyGraph(index, corrupt, problems);
    await this.verifyIngest(problems);
    return { ok: problems.length === 0, problems, blobs, bytes };
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

  /** Re-hashes every blob; returns the digests whose content does not match their name. */
  private async verifyBlobs(problems: StoreProblem[]): Promise<{ blobs: number; bytes: number; corrupt: Set<string> }> {
    const corrupt = new Set<string>();
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
      const got = await hashFile(path);
      blobs++;
      bytes += got.size;
      if (got.digest !== expected) {
        corrupt.add(expected);
        problems.push({ kind: 'corrupt-blob', digest: expected, path, message: `blob ${expected} is corrupt: its content hashes to ${got.digest}` });
      }
    }
    return { blobs, bytes, corrupt };
  }

  /** Checks that every index entry resolves fully: manifests, configs, layers, child manifests. */
  private async verifyGraph(index: ImageIndex, corrupt: Set<string>, problems: StoreProblem[]): Promise<void> {
    const seen = new Set<string>();
    for (const entry of index.manifests) {
      const name = refNameOf(entry) ?? `untagged entry ${entry.digest}`;
      await this.walk({ desc: entry, role: `manifest of ${name}` }, async ({ desc, role }) => {
        if (seen.has(desc.digest) || corrupt.has(desc.digest)) return false; // reported once
        seen.add(desc.digest);
        const size = await this.blobSize(desc.digest);
        if (size === desc.size) return true;
        const path = this.blobPath(desc.digest);
        problems.push(
          size === undefined
            ? { kind: 'missing-blob', digest: desc.digest, path, message: `${role} is missing` }
            : { kind: 'corrupt-blob', digest: desc.digest, path, message: `${role} is ${size} bytes, its descriptor says ${desc.size}` },
        );
        return false;
      }, (node, err) => {
        problems.push({ kind: 'corrupt-blob', digest: node.desc.digest, path: this.blobPath(node.desc.digest), message: `${node.role} cannot be read: ${(err as Error).message}` });
      });
    }
  }

  private async verifyIngest(problems: StoreProblem[]): Promise<void> {
    const names = await readdir(this.ingestDir).catch(() => [] as string[]);
    for (const name of names.sort()) {
      const path = join(this.ingestDir, name);
      problems.push({
        kind: 'ingest-leftover',
        path,
        message: `${path} is left over from an interrupted write (or one still running); safe to delete when no kit process runs`,
      });
    }
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
      children = childrenOf(start.desc, await this.readJson(start.desc));
    } catch (err) {
      if (!onReadError) throw err;
      onReadError(start, err);
      return;
    }
    for (const child of children) await this.walk(child, visit, onReadError);
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
    hint: 'pull or pack the artifact again; `kit verify` checks the whole store',
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
  let size = 0;
  for await (const chunk of createReadStream(path, { highWaterMark: READ_CHUNK })) {
    hash.update(chunk as Buffer);
    size += (chunk as Buffer).length;
  }
  return { digest: hasherDigest(hash), size };
}
