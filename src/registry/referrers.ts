import { ExitCode, KitError } from '../errors.js';
import { digestHex, isDigest, parseDigest, sha256, type Digest } from '../oci/digest.js';
import { MAX_MANIFEST_BYTES, MediaType, isManifestMediaType, type Descriptor, type ImageIndex } from '../oci/descriptor.js';
import { getManifest, putManifest, readCapped, type ManifestRef } from './manifests.js';
import type { RepoContext } from './repository.js';
import { followPages } from './tags.js';

/**
 * Referrers (OCI distribution 1.1): manifests whose `subject` points at a given manifest
 * (signatures, SBOMs, attestations). A registry with the referrers API answers
 * GET /v2/<name>/referrers/<digest> with an index of them. One without it (distribution 2.8,
 * GHCR) answers 404; then the spec's fallback applies: an index kept under the tag
 * `sha256-<hex of the subject digest>`, which writers update themselves (read-modify-write)
 * whenever the registry did not acknowledge the subject with an `OCI-Subject` header.
 */

/** The fallback tag of a subject: `sha256-<hex>`. */
export function referrersTag(subject: Digest): string {
  return `sha256-${digestHex(subject)}`;
}

export async function listReferrers(ctx: RepoContext, subject: Descriptor, opts: { artifactType?: string; maxPages?: number } = {}): Promise<Descriptor[]> {
  const digest = parseDigest(subject.digest, 'subject digest');
  const viaApi = await listViaApi(ctx, digest, opts);
  const all = viaApi ?? (await readFallbackIndex(ctx, digest))?.index.manifests ?? [];
  // Filtered here too: a registry may ignore ?artifactType= (it says so in OCI-Filters-Applied,
  // but filtering twice is harmless and simpler than trusting it).
  return opts.artifactType === undefined ? all : all.filter((d) => d.artifactType === opts.artifactType);
}

/** The referrers API's answer, or undefined when the registry has no referrers API (404). */
async function listViaApi(ctx: RepoContext, digest: Digest, opts: { artifactType?: string; maxPages?: number }): Promise<Descriptor[] | undefined> {
  let url = ctx.path('referrers', digest);
  if (opts.artifactType !== undefined) url += `?artifactType=${encodeURIComponent(opts.artifactType)}`;
  const found: Descriptor[] = [];
  const what = `referrers of ${ctx.display}@${digest}`;
  for await (const res of followPages(ctx, url, { what, maxPages: opts.maxPages, accept: MediaType.ImageIndex, notFoundOk: true })) {
    if (res.status === 404) {
      await res.dump();
      return undefined;
    }
    const doc = parseIndex(await readCapped(res.body, MAX_MANIFEST_BYTES, what), what);
    found.push(...doc.manifests);
  }
  return found;
}

/** The fallback index and its descriptor, or undefined when the tag does not exist. */
async function readFallbackIndex(ctx: RepoContext, subject: Digest): Promise<{ index: ImageIndex; raw: Record<string, unknown> } | undefined> {
  const tag = referrersTag(subject);
  const ref: ManifestRef = { kind: 'tag', tag, text: tag };
  const got = await getManifest(ctx, ref, MediaType.ImageIndex);
  if (got === undefined) return undefined;
  const what = `referrers index ${ctx.display}:${tag}`;
  const raw = parseObject(got.bytes, what);
  return { index: parseIndex(got.bytes, what), raw };
}

/**
 * Pushes a manifest that has a `subject` and makes sure it can be found as a referrer: when the
 * registry does not answer with OCI-Subject, the fallback index tag is updated. Concurrent
 * writers of the same fallback tag can overwrite each other's update, so the result is read
 * back and the update retried when this referrer went missing.
 */
export async function pushReferrer(ctx: RepoContext, desc: Descriptor, bytes: Buffer, subject: Descriptor): Promise<void> {
  const subjectDigest = parseDigest(subject.digest, 'subject digest');
  const manifest = parseObject(bytes, `referrer ${desc.digest}`);
  const declared = (manifest.subject as { digest?: unknown } | undefined)?.digest;
  if (declared !== subjectDigest) {
    throw new KitError('REFERRER_INVALID', `manifest ${desc.digest} does not name ${subjectDigest} as its subject`, {
      hint: 'a referrer must carry a "subject" descriptor of the manifest it refers to',
    });
  }
  const put = await putManifest(ctx, desc, bytes);
  if (put.ociSubject !== undefined) return; // the registry indexes referrers itself
  await addToFallbackIndex(ctx, subjectDigest, referrerDescriptor(desc, manifest));
}

const FALLBACK_ATTEMPTS = 3;

async function addToFallbackIndex(ctx: RepoContext, subject: Digest, entry: Descriptor): Promise<void> {
  const tag = referrersTag(subject);
  for (let attempt = 0; attempt < FALLBACK_ATTEMPTS; attempt++) {
    const current = await readFallbackIndex(ctx, subject);
    if (current?.index.manifests.some((d) => d.digest === entry.digest)) return;
    const next = {
      ...(current?.raw ?? {}),
      schemaVersion: 2,
      mediaType: MediaType.ImageIndex,
      manifests: [...(current?.index.manifests ?? []), entry],
    };
    const bytes = Buffer.from(JSON.stringify(next), 'utf8');
    await putManifest(ctx, { mediaType: MediaType.ImageIndex, digest: sha256(bytes), size: bytes.length }, bytes, tag);
    // Read back: another writer may have replaced the index between our read and our write.
    const after = await readFallbackIndex(ctx, subject);
    if (after?.index.manifests.some((d) => d.digest === entry.digest)) return;
  }
  throw new KitError('REFERRERS_CONFLICT', `could not record referrer ${entry.digest} in ${ctx.display}:${tag}: other writers keep replacing it`, {
    hint: 'push the referrer again when the other pushes are done',
    exitCode: ExitCode.conflict,
  });
}

/**
 * The descriptor of a referrer as the referrers index lists it: its artifactType (or, for an
 * image manifest without one, its config's media type, as the spec says) and its annotations.
 */
function referrerDescriptor(desc: Descriptor, manifest: Record<string, unknown>): Descriptor {
  const entry: Descriptor = { mediaType: desc.mediaType, digest: desc.digest, size: desc.size };
  const configType = (manifest.config as { mediaType?: unknown } | undefined)?.mediaType;
  const artifactType = typeof manifest.artifactType === 'string' ? manifest.artifactType : isManifestMediaType(desc.mediaType) && typeof configType === 'string' ? configType : undefined;
  if (artifactType !== undefined) entry.artifactType = artifactType;
  const annotations = manifest.annotations;
  if (annotations && typeof annotations === 'object' && !Array.isArray(annotations)) {
    const strings = Object.entries(annotations).filter((e): e is [string, string] => typeof e[1] === 'string');
    if (strings.length > 0) entry.annotations = Object.fromEntries(strings);
  }
  return entry;
}

// ------------------------------------------------------------------ parsing (untrusted)

function parseObject(bytes: Buffer, what: string): Record<string, unknown> {
  let v: unknown;
  try {
    v = JSON.parse(bytes.toString('utf8'));
  } catch (err) {
    throw new KitError('REGISTRY_PROTOCOL', `${what} is not valid JSON: ${(err as Error).message}`);
  }
  if (v === null || typeof v !== 'object' || Array.isArray(v)) throw new KitError('REGISTRY_PROTOCOL', `${what} is not a JSON object`);
  return v as Record<string, unknown>;
}

/** An index whose `manifests` are well-formed descriptors; malformed entries are left out. */
function parseIndex(bytes: Buffer, what: string): ImageIndex {
  const doc = parseObject(bytes, what);
  const list = doc.manifests;
  if (list !== undefined && list !== null && !Array.isArray(list)) throw new KitError('REGISTRY_PROTOCOL', `${what}: "manifests" is not a list`);
  const manifests: Descriptor[] = [];
  for (const item of (list ?? []) as unknown[]) {
    const d = toDescriptor(item);
    if (d) manifests.push(d);
  }
  return { schemaVersion: 2, mediaType: MediaType.ImageIndex, manifests };
}

function toDescriptor(v: unknown): Descriptor | undefined {
  if (v === null || typeof v !== 'object') return undefined;
  const o = v as Record<string, unknown>;
  if (typeof o.mediaType !== 'string' || typeof o.digest !== 'string' || !isDigest(o.digest)) return undefined;
  if (typeof o.size !== 'number' || !Number.isSafeInteger(o.size) || o.size < 0) return undefined;
  const d: Descriptor = { mediaType: o.mediaType, digest: o.digest, size: o.size };
  if (typeof o.artifactType === 'string') d.artifactType = o.artifactType;
  if (o.annotations && typeof o.annotations === 'object' && !Array.isArray(o.annotations)) {
    const strings = Object.entries(o.annotations).filter((e): e is [string, string] => typeof e[1] === 'string');
    if (strings.length > 0) d.annotations = Object.fromEntries(strings);
  }
  return d;
}
