import { Readable, Transform, type TransformCallback } from 'node:stream';
import { setTimeout as sleep } from 'node:timers/promises';
import { KitError, isFinalLocalError } from '../errors.js';
import { sha256 } from '../oci/digest.js';
import { MAX_MANIFEST_BYTES, isIndexMediaType, isManifestMediaType, type Descriptor, type ImageIndex, type ImageManifest } from '../oci/descriptor.js';
import type { Target } from '../oci/target.js';
import { MAX_LAYERS } from '../artifact/manifest-schema.js';
import { retryWhenBlobsVanish } from '../store/blob-race.js';
import { RANGED_FROM } from '../store/ranged-ingest.js';

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
  /**
   * Fetch large blobs over several connections with Range requests when both sides can. Off by
   * default: against a registry that serves blobs itself (distribution on the 2-core VM) the
   * ranges cost the registry 2.5x the CPU per byte (33 s against 13.5 s for 8 GiB) and the pull
   * took 56 s instead of 33 s; they pay where one stream is capped (object storage, a CDN, a
   * long round trip).
   */
  parallelRanges?: boolean;
  /**
   * Supply chain: also copy what is attached to the artifact (signatures, attestations, SBOMs:
   * referrers and cosign's `.sig` / `.att` tags), listed at `from` and recorded at `to`
   * (src/sign/attachments.ts makes these for the local store and for a registry).
   */
  referrers?: { from: ReferrerLink; to: ReferrerLink };
}

/** One side of a referrer copy: what is attached to a subject, and how to attach a copied manifest. */
export interface ReferrerLink {
  list(subject: Descriptor): Promise<Array<{ descriptor: Descriptor; tag?: string }>>;
  attach(att: { descriptor: Descriptor; tag?: string }, bytes: Buffer, subject: Descriptor): Promise<unknown>;
}

export interface CopyResult {
  descriptor: Descriptor;
  blobs: number;
  copied: number;
  skipped: number;
  mounted: number;
  /** Bytes that actually moved. */
  bytes: number;
  /** Attached manifests copied along (with `referrers`). */
  referrers?: number;
}

/** What a destination may offer beyond Target (duck-typed: the local store and remote repositories differ). */
interface ResumableTarget extends Target {
  pushResumable(desc: Descriptor, open: (offset: number) => Promise<Readable>): Promise<{ resumedFrom: number }>;
}
interface TransientSource extends Target {
  fetchTransient(desc: Descriptor, opts: { offset?: number }): Promise<AsyncIterable<Buffer>>;
}
interface IterableTarget extends Target {
  readonly takesIterables: true;
  pushResumable(desc: Descriptor, open: (offset: number) => Promise<Readable | AsyncIterable<Buffer>>): Promise<{ resumedFrom: number }>;
}
/** A source that serves byte ranges of a blob (a registry), and a destination that takes a blob in pieces (the local store). */
interface RangeSource extends Target {
  fetchRange(desc: Descriptor, start: number, end: number): Promise<Readable | undefined>;
}
interface RangedTarget extends Target {
  pushRanged(
    desc: Descriptor,
    fetchRange: (start: number, end: number) => Promise<Readable | undefined>,
    opts: { onProgress?: (bytesOnDisk: number) => void },
  ): Promise<{ resumedFrom: number } | 'unsupported' | undefined>;
}
interface MountingTarget extends Target {
  mount(desc: Descriptor, fromRepository: string): Promise<boolean>;
}
interface ManifestTarget extends Target {
  pushManifest(desc: Descriptor, bytes: Buffer, ref?: string): Promise<void>;
}

const canResume = (t: Target): t is ResumableTarget => typeof (t as Partial<ResumableTarget>).pushResumable === 'function';
/** The local store reads big blobs for uploads with O_DIRECT into reused blocks (io/direct-read.ts); registries send such buffers as they are. */
const canReadTransient = (t: Target): t is TransientSource => typeof (t as Partial<TransientSource>).fetchTransient === 'function';
const takesIterables = (t: Target): t is IterableTarget => (t as Partial<IterableTarget>).takesIterables === true;
/** Blobs from this size on go from the local store to a registry through TransientSource. */
const TRANSIENT_FROM = 4 * 1024 * 1024;
const canServeRanges = (t: Target): t is RangeSource => typeof (t as Partial<RangeSource>).fetchRange === 'function';
const canTakeRanges = (t: Target): t is RangedTarget => typeof (t as Partial<RangedTarget>).pushRanged === 'function';
/** Destinations that never hold a manifest without its blobs (registries); not the local store, where gc or damage can part them. */
const holdsManifestsWhole = (t: Target): boolean => (t as { holdsManifestsWhole?: boolean }).holdsManifestsWhole === true;
const canMount = (t: Target): t is MountingTarget => typeof (t as Partial<MountingTarget>).mount === 'function';
const hasPushManifest = (t: Target): t is ManifestTarget => typeof (t as Partial<ManifestTarget>).pushManifest === 'function';

/** Copy the artifact `srcRef` names from `src` to `dst`, tagging it `dstRef` there when given. */
export async function copy(src: Target, dst: Target, srcRef: string, dstRef: string | undefined, opts: CopyOptions = {}): Promise<CopyResult> {
  const root = await src.resolve(srcRef);
  const result: CopyResult = { descriptor: root, blobs: 0, copied: 0, skipped: 0, mounted: 0, bytes: 0 };
  await retryWhenBlobsVanish(async () => {
    await copyNode(src, dst, root, opts, result, 0);
    if (dstRef === undefined) return;
    const bytes = await readManifestBytes(src, root);
    if (hasPushManifest(dst)) await dst.pushManifest(root, bytes, dstRef);
    else await dst.tag(root, dstRef);
  });
  opts.onEvent?.({ type: 'manifest', digest: root.digest, ...(dstRef !== undefined ? { ref: dstRef } : {}) });
  if (opts.referrers) result.referrers = await copyReferrers(src, dst, root, opts, opts.referrers, result, 0);
  return result;
}

/** Referrers of referrers are followed this deep (a signature of an SBOM of the artifact). */
const MAX_REFERRER_DEPTH = 2;

/**
 * Supply chain: copies every manifest attached to `subject` that the destination lacks (its blobs
 * first, as any graph), then records it there as attached to the same subject.
 */
async function copyReferrers(src: Target, dst: Target, subject: Descriptor, opts: CopyOptions, link: { from: ReferrerLink; to: ReferrerLink }, result: CopyResult, depth: number): Promise<number> {
  const listed = async (side: ReferrerLink, where: string) => {
    try {
      return await side.list(subject);
    } catch (err) {
      throw new KitError('REFERRERS_UNAVAILABLE', `cannot list what is attached to ${subject.digest} at the ${where}: ${(err as Error).message}`, {
        hint: 'pass --no-referrers to copy the artifact without its signatures and attestations',
        cause: err,
      });
    }
  };
  const attached = await listed(link.from, 'source');
  // Nothing attached (the usual case): the destination is not asked, which spares a push the
  // two or three requests a registry without the referrers API needs to answer "none".
  if (attached.length === 0) return 0;
  const have = new Set((await listed(link.to, 'destination')).map((a) => `${a.tag ?? ''}@${a.descriptor.digest}`));
  let copied = 0;
  for (const att of attached) {
    if (!have.has(`${att.tag ?? ''}@${att.descriptor.digest}`)) {
      await copyNode(src, dst, att.descriptor, opts, result, depth + 1);
      await link.to.attach(att, await readManifestBytes(src, att.descriptor), subject);
      copied++;
    }
    if (depth + 1 < MAX_REFERRER_DEPTH && att.tag === undefined) copied += await copyReferrers(src, dst, att.descriptor, opts, link, result, depth + 1);
  }
  return copied;
}

const MAX_DEPTH = 8;

/** KitErrors that mean "try this blob again with a fresh stream", not "give up". */
const RETRYABLE_CODES = new Set(['UPLOAD_TOO_LARGE', 'UPLOAD_INTERRUPTED', 'DOWNLOAD_INTERRUPTED']);

async function copyNode(src: Target, dst: Target, desc: Descriptor, opts: CopyOptions, result: CopyResult, depth: number): Promise<void> {
  if (depth > MAX_DEPTH) throw new KitError('ARTIFACT_TOO_DEEP', `artifact graph below ${desc.digest} is nested more than ${MAX_DEPTH} levels`);
  // Decided before anything is read: a "manifest" of another type would be fetched as a blob.
  if (!isManifestMediaType(desc.mediaType) && !isIndexMediaType(desc.mediaType)) {
    throw new KitError('MANIFEST_INVALID', `${desc.digest} has media type ${desc.mediaType}, not a manifest or index`, {
      hint: 'kit copies OCI image manifests and indexes; the artifact is malformed or not an OCI artifact',
    });
  }
  const bytes = await readManifestBytes(src, desc);
  let children: Descriptor[];
  if (isManifestMediaType(desc.mediaType)) {
    const m = parseJson<ImageManifest>(bytes, desc);
    checkDocument(m, desc);
    if (!m.config || !Array.isArray(m.layers)) throw new KitError('MANIFEST_INVALID', `manifest ${desc.digest} has no config or layers`);
    if ((m as { manifests?: unknown }).manifests !== undefined) {
      // A document that reads as a manifest and as an index (CVE-2021-41190) means different things to different tools.
      throw new KitError('MANIFEST_INVALID', `manifest ${desc.digest} also has an index's "manifests" list; kit will not guess which it is`);
    }
    if (m.layers.length > MAX_LAYERS) {
      throw new KitError('MANIFEST_INVALID', `manifest ${desc.digest} lists ${m.layers.length} layers, more than the ${MAX_LAYERS} kit accepts`, {
        hint: 'the artifact is malformed or hostile; nothing was downloaded',
      });
    }
    const blobs = dedupe([m.config, ...m.layers]);
    opts.onEvent?.({ type: 'plan', blobs: blobs.length, bytes: blobs.reduce((n, b) => n + b.size, 0) });
    // A registry refuses a manifest whose blobs it lacks, so one it has is there whole: nothing
    // to check blob by blob (a re-push is one request, as oras-go skips an existing root).
    if (holdsManifestsWhole(dst) && (await dst.exists(desc))) {
      for (const d of blobs) reportSkipped(d, opts, result);
      return;
    }
    await copyBlobs(src, dst, blobs, opts, result);
  } else if (isIndexMediaType(desc.mediaType)) {
    const idx = parseJson<ImageIndex>(bytes, desc);
    checkDocument(idx, desc);
    children = Array.isArray(idx.manifests) ? idx.manifests : [];
    if (children.length > MAX_LAYERS) {
      throw new KitError('MANIFEST_INVALID', `index ${desc.digest} lists ${children.length} manifests, more than the ${MAX_LAYERS} kit accepts`);
    }
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

/**
 * The document must be a JSON object whose own `mediaType`, when it has one, is the one it was
 * served as: a manifest that says it is an index (or anything else) is refused, not guessed at.
 */
function checkDocument(doc: unknown, desc: Descriptor): void {
  if (doc === null || typeof doc !== 'object' || Array.isArray(doc)) {
    throw new KitError('MANIFEST_INVALID', `manifest ${desc.digest} is not a JSON object`);
  }
  const own = (doc as { mediaType?: unknown }).mediaType;
  if (own !== undefined && own !== desc.mediaType) {
    throw new KitError('MANIFEST_INVALID', `manifest ${desc.digest} was served as ${desc.mediaType} but says it is ${JSON.stringify(own).slice(0, 120)}`, {
      hint: 'mismatched media types: the artifact is malformed or hostile; nothing was downloaded',
    });
  }
}

function parseJson<T>(bytes: Buffer, desc: Descriptor): T {
  try {
    return JSON.parse(bytes.toString('utf8')) as T;
  } catch (e) {
    throw new KitError('JSON_INVALID', `manifest ${desc.digest} is not valid JSON: ${(e as Error).message}`);
  }
}

/** Existence checks are tiny requests: many at once, so that a re-push of 50 layers is one round trip deep, not twelve. */
const EXISTS_CONCURRENCY = 16;

async function copyBlobs(src: Target, dst: Target, blobs: Descriptor[], opts: CopyOptions, result: CopyResult): Promise<void> {
  const there = await mapLimit(blobs, EXISTS_CONCURRENCY, (d) => dst.exists(d));
  for (const [i, d] of blobs.entries()) if (there[i]) reportSkipped(d, opts, result);
  // The largest first: a big weight file started last would be left transferring alone.
  const queue = blobs.filter((_, i) => !there[i]).sort((a, b) => b.size - a.size);
  // After a failure no new blob is started, and the ones in flight are let finish before the
  // failure is reported: nothing keeps writing into the destination once the copy has failed.
  let failure: { err: unknown } | undefined;
  const workers = Array.from({ length: Math.max(1, Math.min(opts.concurrency ?? 4, queue.length)) }, async () => {
    for (let d = queue.shift(); d !== undefined && failure === undefined; d = queue.shift()) {
      try {
        await copyBlob(src, dst, d, opts, result);
      } catch (err) {
        failure ??= { err };
      }
    }
  });
  await Promise.all(workers);
  if (failure) throw failure.err;
}

function reportSkipped(d: Descriptor, opts: CopyOptions, result: CopyResult): void {
  result.blobs++;
  result.skipped++;
  opts.onEvent?.({ type: 'blob-start', digest: d.digest, size: d.size, mediaType: d.mediaType, ...titleOf(d) });
  opts.onEvent?.({ type: 'blob-done', digest: d.digest, size: d.size, how: 'skipped' });
}

function titleOf(d: Descriptor): { title?: string } {
  const title = d.annotations?.['org.cncf.model.filepath'] ?? d.annotations?.['org.opencontainers.image.title'];
  return title ? { title } : {};
}

async function mapLimit<T, R>(items: T[], limit: number, fn: (item: T) => Promise<R>): Promise<R[]> {
  const out: R[] = new Array<R>(items.length);
  let next = 0;
  const workers = Array.from({ length: Math.min(limit, items.length) }, async () => {
    for (let i = next++; i < items.length; i = next++) out[i] = await fn(items[i]!);
  });
  await Promise.all(workers);
  return out;
}

/** Copies one blob the destination was found to lack (checked again: another process may have put it there since). */
async function copyBlob(src: Target, dst: Target, desc: Descriptor, opts: CopyOptions, result: CopyResult): Promise<void> {
  result.blobs++;
  opts.onEvent?.({ type: 'blob-start', digest: desc.digest, size: desc.size, mediaType: desc.mediaType, ...titleOf(desc) });
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
  // Progress is the bytes of this blob the destination holds: a retry that starts again at
  // `offset` first takes back what the broken attempt had reported beyond it.
  let reported = 0;
  const progress = (n: number) => {
    reported += n;
    opts.onEvent?.({ type: 'blob-progress', digest: desc.digest, bytes: n });
  };
  const counted = (s: Readable, offset: number) => {
    if (offset !== reported) progress(offset - reported);
    return s.pipe(new ProgressCounter(progress));
  };
  // Counts without a stream in between: each buffer is taken only when the consumer asks.
  const countedIterable = (source: AsyncIterable<Buffer>, offset: number): AsyncIterable<Buffer> => {
    if (offset !== reported) progress(offset - reported);
    return (async function* () {
      for await (const chunk of source) {
        progress(chunk.length);
        yield chunk;
      }
    })();
  };
  let resumedFrom: number | undefined;
  // Large blobs from a registry into the store, when asked: several ranges at once
  // (store/ranged-ingest.ts), unless the registry ignores Range or another process is
  // downloading the blob.
  let ranged = desc.size >= RANGED_FROM && opts.parallelRanges === true && canServeRanges(src) && canTakeRanges(dst);
  const attempts = opts.attempts ?? 5;
  for (let attempt = 1; ; attempt++) {
    try {
      const r = ranged && canServeRanges(src) && canTakeRanges(dst)
        ? await dst.pushRanged(desc, (start, end) => src.fetchRange(desc, start, end), { onProgress: (onDisk) => progress(onDisk - reported) })
        : undefined;
      if (r !== undefined && r !== 'unsupported') {
        resumedFrom = r.resumedFrom > 0 ? r.resumedFrom : resumedFrom;
        break;
      }
      ranged = false;
      if (desc.size >= TRANSIENT_FROM && canReadTransient(src) && takesIterables(dst)) {
        const r = await dst.pushResumable(desc, async (offset) => countedIterable(await src.fetchTransient(desc, { offset }), offset));
        resumedFrom = r.resumedFrom > 0 ? r.resumedFrom : resumedFrom;
      } else if (canResume(dst)) {
        const r = await dst.pushResumable(desc, async (offset) => {
          const s = await src.fetch(desc, { offset });
          return forwardErrors(s, counted(s, offset));
        });
        resumedFrom = r.resumedFrom > 0 ? r.resumedFrom : resumedFrom;
      } else {
        const s = await src.fetch(desc);
        await dst.push(desc, forwardErrors(s, counted(s, 0)));
      }
      break;
    } catch (err) {
      // Verification failures, refusals and local conditions no retry changes (a full disk, a
      // read-only store) are final; a broken transfer is tried again and, where the destination
      // keeps partial content, resumes where it stopped.
      if ((err instanceof KitError && !RETRYABLE_CODES.has(err.code)) || isFinalLocalError(err) || attempt >= attempts) throw err;
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
