import { Readable } from 'node:stream';
import { ExitCode, KitError, isKitError } from '../errors.js';
import { parseDigest, sha256 } from '../oci/digest.js';
import { MAX_MANIFEST_BYTES, type Descriptor, type ImageManifest } from '../oci/descriptor.js';
import type { Target } from '../oci/target.js';
import { legacyManifest, mergeLayers } from './legacy.js';
import { legacyTag } from './media.js';

/**
 * Where signatures, attestations and SBOMs attached to an artifact live: the local store (its
 * OCI layout keeps referrers as untagged index entries naming their subject) or a registry
 * repository (the referrers API, else the `sha256-<hex>` fallback index tag). Both also hold
 * cosign's older tag-based attachments (`sha256-<hex>.sig` / `.att`).
 *
 * An AttachmentSite is also what the graph copy uses to carry referrers along on push and pull
 * (transfer/copy.ts: `CopyOptions.referrers`).
 */

/** One attached manifest: a referrer (its manifest has a `subject`), or a legacy tag-based one. */
export interface Attached {
  descriptor: Descriptor;
  /** Set for cosign's tag-based attachments: the tag, `sha256-<hex>.sig` or `.att`. */
  tag?: string;
}

export interface AttachmentSite {
  readonly target: Target;
  readonly where: 'local' | 'remote';
  /** Everything attached to `subject`: referrers, then the legacy `.sig` and `.att` tags. */
  list(subject: Descriptor, opts?: { artifactType?: string }): Promise<Attached[]>;
  /**
   * Records an attached manifest whose blobs are already there: a referrer by its subject, a
   * legacy one under its tag, merged with the signatures the tag already holds.
   */
  attach(att: Attached, bytes: Buffer, subject: Descriptor): Promise<Descriptor>;
}

/** What the local store offers (store/local-store.ts), duck-typed to keep sign/ off the store's internals. */
interface LocalAttachments extends Target {
  pushReferrer(desc: Descriptor, bytes: Buffer, subject: Descriptor): Promise<void>;
  referrers(subject: Descriptor, opts?: { artifactType?: string }): Promise<Descriptor[]>;
  attachByTag(desc: Descriptor, bytes: Buffer, subject: Descriptor, tag: string): Promise<void>;
  attachedByTag(subject: Descriptor, tag: string): Promise<Descriptor | undefined>;
}

/** What a registry repository offers (registry/repository.ts). */
interface RemoteAttachments extends Target {
  pushReferrer(desc: Descriptor, bytes: Buffer, subject: Descriptor): Promise<void>;
  referrers(subject: Descriptor, opts?: { artifactType?: string }): Promise<Descriptor[]>;
  pushManifest(desc: Descriptor, bytes: Buffer, ref?: string): Promise<void>;
}

const isLocal = (t: Target): t is LocalAttachments => typeof (t as Partial<LocalAttachments>).attachByTag === 'function';
const isRemote = (t: Target): t is RemoteAttachments =>
  typeof (t as Partial<RemoteAttachments>).pushReferrer === 'function' && typeof (t as Partial<RemoteAttachments>).pushManifest === 'function';

export function attachmentSite(target: Target): AttachmentSite {
  if (isLocal(target)) return new Site(target, 'local');
  if (isRemote(target)) return new Site(target, 'remote');
  throw new KitError('REFERRERS_UNSUPPORTED', 'this target cannot hold signatures or attestations', { exitCode: ExitCode.usage });
}

class Site implements AttachmentSite {
  constructor(
    readonly target: LocalAttachments | RemoteAttachments,
    readonly where: 'local' | 'remote',
  ) {}

  async list(subject: Descriptor, opts: { artifactType?: string } = {}): Promise<Attached[]> {
    parseDigest(subject.digest, 'subject digest');
    const out: Attached[] = (await this.target.referrers(subject, opts)).map((descriptor) => ({ descriptor }));
    // Legacy manifests have no artifactType: a filter by type leaves them out.
    if (opts.artifactType !== undefined) return out;
    for (const kind of ['sig', 'att'] as const) {
      const tag = legacyTag(subject.digest, kind);
      const found = await this.tagged(subject, tag);
      if (found) out.push({ descriptor: found, tag });
    }
    return out;
  }

  async attach(att: Attached, bytes: Buffer, subject: Descriptor): Promise<Descriptor> {
    if (att.tag === undefined) {
      await this.target.pushReferrer(att.descriptor, bytes, subject);
      return att.descriptor;
    }
    let desc = att.descriptor;
    let content = bytes;
    const existing = await this.tagged(subject, att.tag);
    if (existing && existing.digest !== desc.digest) {
      // cosign keeps every signature of a subject in one manifest: add ours to those there.
      const old = await readManifest(this.target, existing, `${att.tag} manifest`);
      const added = parseManifestBytes(bytes, `${att.tag} manifest`);
      const merged = legacyManifest(mergeLayers(old.layers, added.layers));
      if (merged.descriptor.digest === existing.digest) return existing;
      await pushBlob(this.target, merged.config.descriptor, merged.config.bytes);
      desc = merged.descriptor;
      content = merged.bytes;
    }
    if (isLocal(this.target)) await this.target.attachByTag(desc, content, subject, att.tag);
    else await this.target.pushManifest(desc, content, att.tag);
    return desc;
  }

  private async tagged(subject: Descriptor, tag: string): Promise<Descriptor | undefined> {
    if (isLocal(this.target)) return this.target.attachedByTag(subject, tag);
    try {
      return await this.target.resolve(tag);
    } catch (err) {
      if (isKitError(err) && err.code === 'NOT_FOUND') return undefined;
      throw err;
    }
  }
}

// ------------------------------------------------------------------ small content helpers

/** Pushes a small blob unless the target has it. */
export async function pushBlob(target: Target, desc: Descriptor, bytes: Buffer): Promise<void> {
  if (await target.exists(desc)) return;
  await target.push(desc, Readable.from([bytes]));
}

/** A small blob's bytes, refused over `max` and checked against the descriptor's size and digest. */
export async function readVerified(target: Target, desc: Descriptor, what: string, max = MAX_MANIFEST_BYTES): Promise<Buffer> {
  if (!Number.isSafeInteger(desc.size) || desc.size < 0 || desc.size > max) {
    throw new KitError('BLOB_TOO_LARGE', `${what} ${desc.digest} is ${desc.size} bytes, over the ${max}-byte limit`, { hint: 'it was not read' });
  }
  const stream = await target.fetch(desc);
  const chunks: Buffer[] = [];
  let total = 0;
  for await (const chunk of stream as AsyncIterable<Buffer>) {
    total += chunk.length;
    if (total > desc.size) {
      stream.destroy();
      break;
    }
    chunks.push(chunk);
  }
  const bytes = Buffer.concat(chunks);
  if (total !== desc.size) {
    throw new KitError('SIZE_MISMATCH', `${what} ${desc.digest} is ${total > desc.size ? 'longer' : 'shorter'} than its declared ${desc.size} bytes (truncated or altered)`);
  }
  if (sha256(bytes) !== desc.digest) throw new KitError('DIGEST_MISMATCH', `${what} does not match its digest ${desc.digest} (altered)`);
  return bytes;
}

export async function readManifest(target: Target, desc: Descriptor, what: string): Promise<ImageManifest> {
  return parseManifestBytes(await readVerified(target, desc, what), what);
}

export function parseManifestBytes(bytes: Buffer, what: string): ImageManifest {
  let v: unknown;
  try {
    v = JSON.parse(bytes.toString('utf8'));
  } catch {
    throw new KitError('MANIFEST_INVALID', `${what} is not valid JSON`);
  }
  const m = v as Partial<ImageManifest> | null;
  if (typeof m !== 'object' || m === null || !Array.isArray(m.layers) || typeof m.config !== 'object' || m.config === null) {
    throw new KitError('MANIFEST_INVALID', `${what} is not an image manifest (no config or layers)`);
  }
  for (const l of m.layers) {
    if (typeof l !== 'object' || l === null || typeof l.digest !== 'string' || typeof l.mediaType !== 'string' || !Number.isSafeInteger(l.size)) {
      throw new KitError('MANIFEST_INVALID', `${what} has a malformed layer descriptor`);
    }
    parseDigest(l.digest, `layer digest in ${what}`);
  }
  return m as ImageManifest;
}
