import { createReadStream, createWriteStream } from 'node:fs';
import { mkdir, mkdtemp, rm } from 'node:fs/promises';
import { join } from 'node:path';
import { Readable, Writable } from 'node:stream';
import { KitError } from '../errors.js';
import { sha256, type Digest } from '../oci/digest.js';
import type { Descriptor } from '../oci/descriptor.js';
import type { Target } from '../oci/target.js';
import { VerifyingStream } from '../oci/verify.js';
import { writeRawLayer, writeTarLayer, type LayerResult } from '../layers/tar-writer.js';
import type { Compression } from '../layers/compression.js';
import type { PackSink } from './pack.js';
import type { PlannedLayer } from './plan.js';
import { WRITE_BUFFER } from '../io/read-ahead.js';

/**
 * `kit pack --push` builds into this instead of the local store: raw layers are the project's
 * own files (hashed once, read again only for the upload, and only when the registry lacks
 * them), tar layers go to temporary files, config and manifest stay in memory. It is also a
 * read-only Target, so the push is the same graph copy as any other.
 */
export class StagedArtifact implements PackSink, Target {
  private readonly blobs = new Map<Digest, { path?: string; bytes?: Buffer; size: number; what: string }>();
  private root: Descriptor | undefined;

  private constructor(private readonly tmpDir: string) {}

  static async create(parent: string): Promise<StagedArtifact> {
    await mkdir(parent, { recursive: true });
    return new StagedArtifact(await mkdtemp(join(parent, 'pack-')));
  }

  async dispose(): Promise<void> {
    await rm(this.tmpDir, { recursive: true, force: true });
  }

  // ---- PackSink

  async addLayer(layer: PlannedLayer, compression: Compression | 'raw', mtime: Date, onProgress: (bytes: number) => void): Promise<{ result: LayerResult; existed: boolean }> {
    if (compression === 'raw') {
      const file = layer.entries[0]!.absPath;
      const result = await writeRawLayer(file, discard(), { onProgress });
      this.blobs.set(result.digest, { path: file, size: result.size, what: `file ${layer.path}` });
      return { result, existed: false };
    }
    const tmp = join(this.tmpDir, `${this.blobs.size}.layer`);
    const result = await writeTarLayer(layer.entries, { compression, mtime, onProgress }, createWriteStream(tmp, { highWaterMark: WRITE_BUFFER }));
    this.blobs.set(result.digest, { path: tmp, size: result.size, what: `layer ${layer.path}` });
    return { result, existed: false };
  }

  async addJson(value: unknown, mediaType: string): Promise<Descriptor> {
    const bytes = Buffer.from(JSON.stringify(value));
    const desc: Descriptor = { mediaType, digest: sha256(bytes), size: bytes.length };
    this.blobs.set(desc.digest, { bytes, size: bytes.length, what: mediaType });
    return desc;
  }

  async tag(desc: Descriptor): Promise<void> {
    this.root = desc;
  }

  // ---- Target (read-only)

  async resolve(ref: string): Promise<Descriptor> {
    if (!this.root || (ref !== this.root.digest && !ref.endsWith(`@${this.root.digest}`))) {
      throw new KitError('NOT_FOUND', `${ref} is not the artifact being packed`, { exitCode: 3 });
    }
    return this.root;
  }

  async exists(desc: Descriptor): Promise<boolean> {
    return this.blobs.has(desc.digest);
  }

  async fetch(desc: Descriptor, opts: { offset?: number } = {}): Promise<Readable> {
    const b = this.blobs.get(desc.digest);
    if (!b) throw new KitError('NOT_FOUND', `blob ${desc.digest} is not part of the artifact being packed`, { exitCode: 3 });
    if (b.bytes) return Readable.from([b.bytes.subarray(opts.offset ?? 0)]);
    const stream = createReadStream(b.path!, { highWaterMark: 1 << 20, start: opts.offset ?? 0 });
    if (opts.offset) return stream;
    // The project's files are read twice (hash, then upload): a file changed in between is
    // caught here with its name, rather than as a registry's digest error.
    const verify = new VerifyingStream({ digest: desc.digest, size: b.size }, `${b.what} changed while it was being pushed`);
    stream.once('error', (e) => verify.destroy(e));
    return stream.pipe(verify);
  }

  async push(): Promise<void> {
    throw new KitError('READ_ONLY', 'a staged artifact cannot receive content');
  }
}

function discard(): Writable {
  return new Writable({
    write(_chunk, _enc, cb) {
      cb();
    },
  });
}
