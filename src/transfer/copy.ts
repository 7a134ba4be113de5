import { Readable, Transform, type TransformCallback } from 'node:stream';
import { setTimeout as sleep } from 'node:timers/promises';
import { KitError } from '../errors.js';
import { sha256 } from '../oci/digest.js';
import { MAX_MANIFEST_BYTES, isIndexMediaType, isManifestMediaType, type Descriptor, type ImageIndex, type ImageManifest } from '../oci/descriptor.js';
import type { Target } from '../oci/target.js';

/**
 * One graph copy serves push, pull and cross-repository tag: resolve the root, then copy
 * children before parents, skipping what the destination has, with bounded concurrency;
 * manifests go last so a registry never sees a manifest whose blobs are missing.
 */

export type CopyEvent =
  | { type: 'plan'; blobs: number; bytes: number }
  | { type: 'blob-start'; digest: string; size: number; mediaType: string; title?: string }
  | { type: 'blob-progress'; digest: string; bytes: number }
  | { type: 'blob-done'; digest: string; size: number; how: 'copied' | 'skipped' | 'mounted'; resumedFrom?: number }
  | { type: 'manifest'; digest: string; ref?: string };

export interface CopyOptions {
  /** Blobs moved at once (default 4). */
  concurrency?: number;
  onEvent?: (e: CopyEvent) => void;
  /** Other repositories of the destination's registry that may hold the blobs (cross-repository mount). */
  mountFrom?: string[];
  /** Attempts per blob when a transfer breaks mid-way (default 5). */
  attempts?: number;
}

export interface CopyResult {
  descriptor: Descriptor;
  blobs: number;
  copied: number;
  skipped: number;
  mounted: number;
  /** Bytes that actually moved. */
  bytes: number;
}

/** What a destination may offer beyond Target (duck-typed: the local store and remote repositories differ). */
interface ResumableTarget extends Target {
  pushResumable(desc: Descriptor, open: (offset: number) => Promise<Readable>): Promise<{ resumedFrom: number }>;
}
interface MountingTarget extends Target {
  mount(desc: Descriptor, fromRepository: string): Promise<boolean>;
}
interface ManifestTarget extends Target {
  pushManifest(desc: Descriptor, bytes: Buffer, ref?: string): Promise<void>;
}

const canResume = (t: Target): t is ResumableTarget => typeof (t as Partial<ResumableTarget>).pushResumable === 'function';
const canMount = (t: Target): t is MountingTarget => typeof (t as Partial<MountingTarget>).mount === 'function';
const hasPushManifest = (t: Target): t is ManifestTarget => typeof (t as Partial<ManifestTarget>).pushManifest === 'function';

/** Copy the artifact `srcRef` names from `src` to `dst`, tagging it `dstRef` there when given. */
export async function copy(src: Target, dst: Target, srcRef: string, dstRef: string | undefined, opts: CopyOptions = {}): Promise<CopyResult> {
  const root = await src.resolve(srcRef);
  const result: CopyResult = { descriptor: root, blobs: 0, copied: 0, skipped: 0, mounted: 0, bytes: 0 };
  await copyNode(src, dst, root, opts, result, 0);
  if (dstRef !== undefined) {
    const bytes = await readManifestBytes(src, root);
    if (hasPushManifest(dst)) await dst.pushManifest(root, bytes, dstRef);
    else await dst.tag(root, dstRef);
  }
  opts.onEvent?.({ type: 'manifest', digest: root.digest, ...(dstRef !== undefined ? { ref: dstRef } : {}) });
  return result;
}

const MAX_DEPTH = 8;

/** KitErrors that mean "try this blob again with a fresh stream", not "give up". */
const RETRYABLE_CODES = new Set(['UPLOAD_TOO_LARGE', 'UPLOAD_INTERRUPTED']);

async function copyNode(src: Target, dst: Target, desc: Descriptor, opts: CopyOptions, result: CopyResult, depth: number): Promise<void> {
  if (depth > MAX_DEPTH) throw new KitError('ARTIFACT_TOO_DEEP', `artifact graph below ${desc.digest} is nested more than ${MAX_DEPTH} levels`);
  const bytes = await readManifestBytes(src, desc);
  let children: Descriptor[];
  if (isManifestMediaType(desc.mediaType)) {
    const m = parseJson<ImageManifest>(bytes, desc);
    if (!m.config || !Array.isArray(m.layers)) throw new KitError('MANIFEST_INVALID', `manifest ${desc.digest} has no config or layers`);
    const blobs = [m.config, ...m.layers];
    opts.onEvent?.({ type: 'plan', blobs: blobs.length, bytes: blobs.reduce((n, b) => n + b.size, 0) });
    await copyBlobs(src, dst, dedupe(blobs), opts, result);
  } else if (isIndexMediaType(desc.mediaType)) {
    const idx = parseJson<ImageIndex>(bytes, desc);
    children = Array.isArray(idx.manifests) ? idx.manifests : [];
    for (const child of children) {
      if (!(await dst.exists(child))) await copyNode(src, dst, child, opts, result, depth + 1);
    }
  } else {
    throw new KitError('MANIFEST_INVALID', `${desc.digest} has media type ${desc.mediaType}, not a manifest or index`);
  }
  if (!(await dst.exists(desc))) {
    if (hasPushManifest(dst)) await dst.pushManifest(desc, bytes);
    else await dst.push(desc, Readable.from([bytes]));
  }
}

function dedupe(descs: Descriptor[]): Descriptor[] {
  const seen = new Set<string>();
  return descs.filter((d) => (seen.has(d.digest) ? false : (seen.add(d.digest), true)));
}

/** Manifest bytes, capped and verified against their digest (pulling by digest proves the content). */
async function readManifestBytes(src: Target, desc: Descriptor): Promise<Buffer> {
  if (desc.size > MAX_MANIFEST_BYTES) {
    throw new KitError('MANIFEST_TOO_LARGE', `manifest ${desc.digest} is ${desc.size} bytes, over the ${MAX_MANIFEST_BYTES}-byte limit`);
  }
  const chunks: Buffer[] = [];
  let total = 0;
  for await (const c of (await src.fetch(desc)) as AsyncIterable<Buffer>) {
    total += c.length;
    if (total > MAX_MANIFEST_BYTES) throw new KitError('MANIFEST_TOO_LARGE', `manifest ${desc.digest} is over the ${MAX_MANIFEST_BYTES}-byte limit`);
    chunks.push(c);
  }
  const bytes = Buffer.concat(chunks);
  if (sha256(bytes) !== desc.digest) {
    throw new KitError('DIGEST_MISMATCH', `manifest content does not match its digest ${desc.digest}`, { hint: 'the registry returned other content than it named; nothing was stored' });
  }
  return bytes;
}

function parseJson<T>(bytes: Buffer, desc: Descriptor): T {
  try {
    return JSON.parse(bytes.toString('utf8')) as T;
  } catch (e) {
    throw new KitError('JSON_INVALID', `manifest ${desc.digest} is not valid JSON: ${(e as Error).message}`);
  }
}

async function copyBlobs(src: Target, dst: Target, blobs: Descriptor[], opts: CopyOptions, result: CopyResult): Promise<void> {
  const queue = [...blobs];
  const workers = Array.from({ length: Math.max(1, Math.min(opts.concurrency ?? 4, queue.length)) }, async () => {
    for (let d = queue.shift(); d !== undefined; d = queue.shift()) await copyBlob(src, dst, d, opts, result);
  });
  await Promise.all(workers);
}

async function copyBlob(src: Target, dst: Target, desc: Descriptor, opts: CopyOptions, result: CopyResult): Promise<void> {
  result.blobs++;
  const title = desc.annotations?.['org.cncf.model.filepath'] ?? desc.annotations?.['org.opencontainers.image.title'];
  opts.onEvent?.({ type: 'blob-start', digest: desc.digest, size: desc.size, mediaType: desc.mediaType, ...(title ? { title } : {}) });
  if (await dst.exists(desc)) {
    result.skipped++;
    opts.onEvent?.({ type: 'blob-done', digest: desc.digest, size: desc.size, how: 'skipped' });
    return;
  }
  if (canMount(dst)) {
    for (const from of opts.mountFrom ?? []) {
      if (await dst.mount(desc, from).catch(() => false)) {
        result.mounted++;
        opts.onEvent?.({ type: 'blob-done', digest: desc.digest, size: desc.size, how: 'mounted' });
        return;
      }
    }
  }
  const counted = (s: Readable) => s.pipe(new ProgressCounter((n) => opts.onEvent?.({ type: 'blob-progress', digest: desc.digest, bytes: n })));
  let resumedFrom: number | undefined;
  const attempts = opts.attempts ?? 5;
  for (let attempt = 1; ; attempt++) {
    try {
      if (canResume(dst)) {
        const r = await dst.pushResumable(desc, async (offset) => {
          const s = await src.fetch(desc, { offset });
          return forwardErrors(s, counted(s));
        });
        resumedFrom = r.resumedFrom > 0 ? r.resumedFrom : resumedFrom;
      } else {
        const s = await src.fetch(desc);
        await dst.push(desc, forwardErrors(s, counted(s)));
      }
      break;
    } catch (err) {
      // Verification failures and refusals are final; a broken transfer is tried again and,
      // where the destination keeps partial content, resumes where it stopped.
      if ((err instanceof KitError && !RETRYABLE_CODES.has(err.code)) || attempt >= attempts) throw err;
      await sleep(Math.min(200 * 2 ** attempt, 5000) * Math.random());
    }
  }
  result.copied++;
  result.bytes += desc.size;
  opts.onEvent?.({ type: 'blob-done', digest: desc.digest, size: desc.size, how: 'copied', ...(resumedFrom ? { resumedFrom } : {}) });
}

/** pipe() does not forward errors; without this a broken source would hang the destination. */
function forwardErrors(source: Readable, piped: Readable): Readable {
  source.once('error', (e) => piped.destroy(e));
  return piped;
}

class ProgressCounter extends Transform {
  constructor(private readonly report: (bytes: number) => void) {
    super();
  }

  override _transform(chunk: Buffer, _enc: BufferEncoding, cb: TransformCallback): void {
    this.report(chunk.length);
    cb(null, chunk);
  }
}
