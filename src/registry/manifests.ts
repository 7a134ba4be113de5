import type { Readable } from 'node:stream';
import { ExitCode, KitError } from '../errors.js';
import { isDigest, parseDigest, sha256, type Digest } from '../oci/digest.js';
import { MAX_MANIFEST_BYTES, MediaType, type Descriptor } from '../oci/descriptor.js';
import { registryError } from './errors.js';
import { MANIFEST_ACCEPT, manifestAcceptFor, mediaTypeOf } from './accept.js';
import type { RepoContext } from './repository.js';

/**
 * Manifests and indexes: /v2/<name>/manifests/<reference>. Everything here is small (capped at
 * 4 MiB), so it is read whole, hashed and checked before anyone uses it.
 */

const TAG = /^[\w][\w.-]{0,127}$/;

/** A reference inside a repository: a digest or a tag. Validated, because it becomes a URL path. */
export type ManifestRef = { kind: 'digest'; digest: Digest; text: string } | { kind: 'tag'; tag: string; text: string };

export function parseManifestRef(ref: string): ManifestRef {
  if (ref.includes(':')) {
    // Anything with a colon can only be a digest (tags have none): parse it strictly.
    const digest = parseDigest(ref, 'reference');
    return { kind: 'digest', digest, text: digest };
  }
  if (!TAG.test(ref)) {
    throw new KitError('REFERENCE_INVALID', `invalid tag ${JSON.stringify(ref)}`, {
      hint: 'a tag is 1 to 128 characters of [A-Za-z0-9_.-], not starting with . or -',
      exitCode: ExitCode.usage,
    });
  }
  return { kind: 'tag', tag: ref, text: ref };
}

/** `registry/repo:tag` or `registry/repo@sha256:...`, for messages. */
export function displayRef(ctx: RepoContext, ref: string): string {
  return ref.includes(':') ? `${ctx.display}@${ref}` : `${ctx.display}:${ref}`;
}

/**
 * Tag or digest -> descriptor, by HEAD. Some registries (and some proxies in front of them)
 * omit Docker-Content-Digest or Content-Length on HEAD; then the manifest is fetched and hashed.
 */
export async function resolveManifest(ctx: RepoContext, ref: string): Promise<Descriptor> {
  const parsed = parseManifestRef(ref);
  const res = await ctx.client.request({
    method: 'HEAD',
    url: ctx.path('manifests', parsed.text),
    headers: { accept: MANIFEST_ACCEPT },
    scopes: ctx.scopes.pull,
  });
  await res.dump();
  if (res.status === 404) throw manifestNotFound(ctx, parsed.text);
  if (res.status !== 200) throw await registryError(res, 'resolve', displayRef(ctx, parsed.text));

  const headerDigest = res.headers['docker-content-digest'];
  const mediaType = mediaTypeOf(res.headers['content-type']);
  const size = parseLength(res.headers['content-length']);
  const digest = headerDigest !== undefined && isDigest(headerDigest) ? headerDigest : undefined;
  const digestOk = digest !== undefined && (parsed.kind === 'tag' || digest === parsed.digest);
  if (digestOk && mediaType !== undefined && mediaType !== 'application/octet-stream' && size !== undefined) {
    return { mediaType, digest, size };
  }
  // Not enough from HEAD (or a digest other than the one asked for): read the manifest itself.
  const got = await getManifest(ctx, parsed);
  if (got === undefined) throw manifestNotFound(ctx, parsed.text);
  return got.descriptor;
}

export interface FetchedManifest {
  bytes: Buffer;
  descriptor: Descriptor;
}

/**
 * GET a manifest by tag or digest, capped at 4 MiB. The descriptor is computed from the bytes:
 * its digest is the hash of what arrived (by digest: must equal the one asked for; by tag: must
 * equal Docker-Content-Digest when the registry sent one). undefined when the registry says 404.
 */
export async function getManifest(ctx: RepoContext, ref: ManifestRef, accept = MANIFEST_ACCEPT): Promise<FetchedManifest | undefined> {
  const res = await ctx.client.request({
    method: 'GET',
    url: ctx.path('manifests', ref.text),
    headers: { accept },
    scopes: ctx.scopes.pull,
  });
  if (res.status === 404) {
    await res.dump();
    return undefined;
  }
  if (res.status !== 200) throw await registryError(res, 'fetch manifest', displayRef(ctx, ref.text));
  const bytes = await readCapped(res.body, MAX_MANIFEST_BYTES, `manifest ${displayRef(ctx, ref.text)}`);
  const digest = sha256(bytes);
  const claimed = res.headers['docker-content-digest'];
  const expected = ref.kind === 'digest' ? ref.digest : claimed !== undefined && isDigest(claimed) ? claimed : undefined;
  if (expected !== undefined && expected !== digest) {
    throw new KitError('DIGEST_MISMATCH', `manifest ${displayRef(ctx, ref.text)} from the registry hashes to ${digest}, not ${expected}`, {
      hint: 'the registry (or something between it and you) altered the manifest; nothing was used',
    });
  }
  const descriptor: Descriptor = { mediaType: manifestMediaType(bytes, mediaTypeOf(res.headers['content-type'])), digest, size: bytes.length };
  const artifactType = artifactTypeOf(bytes);
  if (artifactType !== undefined) descriptor.artifactType = artifactType;
  return { bytes, descriptor };
}

/** The bytes of the manifest a descriptor names, verified against it (size and digest). */
export async function getManifestVerified(ctx: RepoContext, desc: Descriptor): Promise<Buffer> {
  checkManifestSize(ctx, desc);
  const digest = parseDigest(desc.digest, 'manifest digest');
  const got = await getManifest(ctx, { kind: 'digest', digest, text: digest }, manifestAcceptFor(desc.mediaType));
  if (got === undefined) throw manifestNotFound(ctx, digest);
  if (got.bytes.length !== desc.size) {
    throw new KitError('SIZE_MISMATCH', `manifest ${displayRef(ctx, digest)} is ${got.bytes.length} bytes, its descriptor says ${desc.size}`);
  }
  return got.bytes;
}

/** The raw bytes for Target.fetch (the caller verifies them); still capped at 4 MiB. */
export async function fetchManifestRaw(ctx: RepoContext, desc: Descriptor): Promise<Buffer> {
  checkManifestSize(ctx, desc);
  const digest = parseDigest(desc.digest, 'manifest digest');
  const res = await ctx.client.request({
    method: 'GET',
    url: ctx.path('manifests', digest),
    headers: { accept: manifestAcceptFor(desc.mediaType) },
    scopes: ctx.scopes.pull,
  });
  if (res.status === 404) {
    await res.dump();
    throw manifestNotFound(ctx, digest);
  }
  if (res.status !== 200) throw await registryError(res, 'fetch manifest', displayRef(ctx, digest));
  return readCapped(res.body, MAX_MANIFEST_BYTES, `manifest ${displayRef(ctx, digest)}`);
}

export async function manifestExists(ctx: RepoContext, desc: Descriptor): Promise<boolean> {
  const digest = parseDigest(desc.digest, 'manifest digest');
  const res = await ctx.client.request({
    method: 'HEAD',
    url: ctx.path('manifests', digest),
    headers: { accept: manifestAcceptFor(desc.mediaType) },
    scopes: ctx.scopes.pull,
  });
  await res.dump();
  if (res.status === 404) return false;
  if (res.status !== 200) throw await registryError(res, 'check manifest', displayRef(ctx, digest));
  // A different length under the same digest is not the content we mean.
  const size = parseLength(res.headers['content-length']);
  return size === undefined || size === desc.size;
}

export interface PutResult {
  /** The OCI-Subject header: set when the registry indexed the manifest's subject itself. */
  ociSubject?: string;
}

/**
 * PUT a manifest under `ref` (a tag) or its own digest. The bytes are checked against the
 * descriptor first: a registry stores whatever it is given under a tag.
 */
export async function putManifest(ctx: RepoContext, desc: Descriptor, bytes: Buffer, ref?: string): Promise<PutResult> {
  checkManifestSize(ctx, desc);
  const digest = parseDigest(desc.digest, 'manifest digest');
  if (bytes.length !== desc.size || sha256(bytes) !== digest) {
    throw new KitError('DIGEST_MISMATCH', `manifest bytes do not match their descriptor ${digest} (${desc.size} bytes)`, {
      hint: 'this is a bug in the caller: the manifest was changed after its descriptor was computed',
    });
  }
  const target = ref === undefined ? digest : parseManifestRef(ref).text;
  const res = await ctx.client.request({
    method: 'PUT',
    url: ctx.path('manifests', target),
    headers: { 'content-type': desc.mediaType },
    body: bytes,
    scopes: ctx.scopes.push,
  });
  if (res.status !== 201 && res.status !== 200 && res.status !== 204) {
    throw await registryError(res, 'push manifest', displayRef(ctx, target));
  }
  await res.dump();
  const stored = res.headers['docker-content-digest'];
  if (stored !== undefined && isDigest(stored) && stored !== digest) {
    throw new KitError('DIGEST_MISMATCH', `registry stored manifest ${displayRef(ctx, target)} as ${stored}, not ${digest}`, {
      hint: 'the registry rewrote the manifest (it may not support this media type)',
    });
  }
  const result: PutResult = {};
  const subject = res.headers['oci-subject'];
  if (subject !== undefined && subject !== '') result.ociSubject = subject;
  return result;
}

export async function deleteManifest(ctx: RepoContext, desc: Descriptor): Promise<void> {
  const digest = parseDigest(desc.digest, 'manifest digest');
  const res = await ctx.client.request({
    method: 'DELETE',
    url: ctx.path('manifests', digest),
    scopes: ctx.scopes.delete,
  });
  if (res.status === 202 || res.status === 200 || res.status === 204) {
    await res.dump();
    return;
  }
  if (res.status === 404) {
    await res.dump();
    throw manifestNotFound(ctx, digest);
  }
  if (res.status === 405) {
    await res.dump();
    throw new KitError('DELETE_UNSUPPORTED', `${ctx.client.registry} does not allow deleting manifests (${displayRef(ctx, digest)})`, {
      hint: 'the registry must enable deletes (distribution: storage.delete.enabled: true); some registries never allow it',
    });
  }
  throw await registryError(res, 'delete', displayRef(ctx, digest));
}

// ------------------------------------------------------------------ helpers

/** Reads a whole body, refusing more than `max` bytes (the stream is destroyed at once). */
export async function readCapped(body: Readable, max: number, what: string): Promise<Buffer> {
  const chunks: Buffer[] = [];
  let total = 0;
  for await (const chunk of body as AsyncIterable<Buffer>) {
    total += chunk.length;
    if (total > max) {
      body.destroy();
      throw new KitError('BLOB_TOO_LARGE', `${what} is larger than the ${max}-byte limit`, {
        hint: 'the registry sent more than a manifest may hold; nothing was used',
      });
    }
    chunks.push(chunk);
  }
  return Buffer.concat(chunks, total);
}

function checkManifestSize(ctx: RepoContext, desc: Descriptor): void {
  if (!Number.isSafeInteger(desc.size) || desc.size < 0) {
    throw new KitError('DESCRIPTOR_INVALID', `descriptor size ${String(desc.size)} is not a non-negative integer`);
  }
  if (desc.size > MAX_MANIFEST_BYTES) {
    throw new KitError('BLOB_TOO_LARGE', `manifest ${displayRef(ctx, desc.digest)} is ${desc.size} bytes, over the ${MAX_MANIFEST_BYTES}-byte limit`, {
      hint: 'the artifact is malformed or hostile; it was not read',
    });
  }
}

export function manifestNotFound(ctx: RepoContext, ref: string): KitError {
  return new KitError('NOT_FOUND', `${displayRef(ctx, ref)} was not found`, {
    hint: `check the name and tag; \`kit list ${ctx.display}\` shows the tags`,
    exitCode: ExitCode.notFound,
  });
}

function parseLength(v: string | undefined): number | undefined {
  if (v === undefined || !/^\d+$/.test(v)) return undefined;
  const n = Number(v);
  return Number.isSafeInteger(n) ? n : undefined;
}

/** The media type of manifest bytes: the Content-Type when it names one, else the document's own field, else its shape. */
function manifestMediaType(bytes: Buffer, contentType: string | undefined): string {
  if (contentType !== undefined && contentType !== 'application/octet-stream' && contentType !== 'application/json') return contentType;
  const doc = parseObject(bytes);
  if (typeof doc?.mediaType === 'string') return doc.mediaType;
  if (Array.isArray(doc?.manifests)) return MediaType.ImageIndex;
  return MediaType.ImageManifest;
}

function artifactTypeOf(bytes: Buffer): string | undefined {
  const at = parseObject(bytes)?.artifactType;
  return typeof at === 'string' ? at : undefined;
}

function parseObject(bytes: Buffer): Record<string, unknown> | undefined {
  try {
    const v: unknown = JSON.parse(bytes.toString('utf8'));
    return v !== null && typeof v === 'object' && !Array.isArray(v) ? (v as Record<string, unknown>) : undefined;
  } catch {
    return undefined;
  }
}
