import { Readable } from 'node:stream';
import { ExitCode, KitError } from '../errors.js';
import { MAX_MANIFEST_BYTES, type Descriptor } from '../oci/descriptor.js';
import { parseReference } from '../oci/reference.js';
import type { Target } from '../oci/target.js';
import { isManifestKind } from './accept.js';
import { blobExists, fetchBlob, fetchBlobRange } from './blobs.js';
import {
  deleteManifest,
  fetchManifestRaw,
  manifestExists,
  putManifest,
  readCapped,
  resolveManifest,
} from './manifests.js';
import { listReferrers, pushReferrer } from './referrers.js';
import { listTags, tagManifest, type ListOptions } from './tags.js';
import type { RegistryClient } from './types.js';
import { mountBlob, pushBlob, type UploadContent } from './upload.js';
import { MemoryUploadSessions, pushBlobResumable, type ResumableUploadOptions } from './upload-session.js';

/**
 * What the per-concern modules (blobs, manifests, upload, tags, referrers) need to know about
 * the repository they work on. They build distribution-spec requests from it and send them
 * through the client, which adds authentication, retries and the redirect policy.
 */
export interface RepoContext {
  readonly client: RegistryClient;
  /** Repository path inside the registry, e.g. `team/model`. */
  readonly name: string;
  /** `registry/name`, for messages. */
  readonly display: string;
  /** Auth scopes per kind of access (distribution's token servers want `delete` for DELETE). */
  readonly scopes: { pull: string[]; push: string[]; delete: string[] };
  /** `/v2/<name>/<kind>/<ref>`; ref is a validated digest or tag. */
  path(kind: 'manifests' | 'blobs' | 'referrers', ref: string): string;
  path(kind: 'uploads' | 'tags'): string;
  /** Validates another repository name of the same registry (mount sources). */
  checkRepository(name: string): string;
}

export interface RemoteRepositoryOptions {
  /** Upload tuning; `sessions` keeps chunked uploads resumable across runs (default: in memory). */
  upload?: ResumableUploadOptions;
}

/**
 * A repository in an OCI registry as a Target: the same interface as the local store, so push,
 * pull and remote tag are one graph copy between two targets (transfer/copy.ts). Beyond Target
 * it offers what only a registry has: mount, tag listing, deletion and referrers.
 */
export class RemoteRepository implements Target {
  /**
   * Registries refuse a manifest whose blobs they lack (MANIFEST_BLOB_UNKNOWN), so a manifest
   * found here is here whole: copy then skips checking its blobs one by one.
   */
  readonly holdsManifestsWhole = true;

  readonly client: RegistryClient;
  readonly repository: string;
  private readonly ctx: RepoContext;
  private readonly uploadOptions: ResumableUploadOptions;

  constructor(client: RegistryClient, repository: string, opts: RemoteRepositoryOptions = {}) {
    this.client = client;
    this.repository = checkRepositoryName(repository);
    this.uploadOptions = { sessions: new MemoryUploadSessions(), ...opts.upload };
    this.ctx = createContext(client, this.repository);
  }

  /** `registry/repository` */
  get reference(): string {
    return this.ctx.display;
  }

  // ---------------------------------------------------------------- Target

  /** Tag or digest -> manifest descriptor (NOT_FOUND, exit code 3, when the registry has none). */
  resolve(ref: string): Promise<Descriptor> {
    return resolveManifest(this.ctx, ref);
  }

  exists(desc: Descriptor): Promise<boolean> {
    return isManifestKind(desc.mediaType) ? manifestExists(this.ctx, desc) : blobExists(this.ctx, desc);
  }

  /** Raw bytes from `offset` on; the caller verifies them. Manifests are capped at 4 MiB. */
  async fetch(desc: Descriptor, opts: { offset?: number } = {}): Promise<Readable> {
    const offset = opts.offset ?? 0;
    if (!Number.isSafeInteger(offset) || offset < 0) throw new RangeError(`invalid offset ${offset}`);
    if (!isManifestKind(desc.mediaType)) return fetchBlob(this.ctx, desc, offset);
    const bytes = await fetchManifestRaw(this.ctx, desc);
    return Readable.from([bytes.subarray(Math.min(offset, bytes.length))]);
  }

  /** Bytes [start, end) of a blob; undefined when the registry ignores Range (see fetchBlobRange). */
  fetchRange(desc: Descriptor, start: number, end: number): Promise<Readable | undefined> {
    return fetchBlobRange(this.ctx, desc, start, end);
  }

  /**
   * Manifests and indexes: read whole (capped), checked against the descriptor, PUT by digest.
   * Blobs: streamed into an upload session (see upload.ts); the registry checks the digest.
   */
  async push(desc: Descriptor, content: Readable): Promise<void> {
    if (!isManifestKind(desc.mediaType)) return pushBlob(this.ctx, desc, content, this.uploadOptions);
    const bytes = await readCapped(content, MAX_MANIFEST_BYTES, `manifest ${desc.digest}`);
    await putManifest(this.ctx, desc, bytes);
  }

  /** pushResumable takes transient-buffer iterables (io/direct-read.ts) as well as streams. */
  readonly takesIterables = true;

  /**
   * A blob from a source that can be read again from any offset (`open(offset)`): big blobs go
   * in chunks through an upload session that survives failures and, with a session store, runs
   * (upload-session.ts). The graph copy uses this whenever the destination is a registry.
   */
  pushResumable(desc: Descriptor, open: (offset: number) => Promise<UploadContent>): Promise<{ resumedFrom: number }> {
    if (isManifestKind(desc.mediaType)) {
      // A manifest is read whole: transient buffers are copied as they come.
      const stream = (s: UploadContent): Readable => (s instanceof Readable ? s : Readable.from((async function* () { for await (const b of s) yield Buffer.from(b); })()));
      return open(0).then((s) => this.push(desc, stream(s))).then(() => ({ resumedFrom: 0 }));
    }
    return pushBlobResumable(this.ctx, desc, open, this.uploadOptions);
  }

  /** Tags a manifest already in this repository (its bytes are fetched and PUT under the tag). */
  tag(desc: Descriptor, ref: string): Promise<void> {
    return tagManifest(this.ctx, desc, ref);
  }

  // ---------------------------------------------------------------- registry-only

  /** Cross-repository blob mount; false when the registry would rather receive an upload. */
  mount(desc: Descriptor, fromRepository: string): Promise<boolean> {
    return mountBlob(this.ctx, desc, fromRepository);
  }

  /** PUT manifest bytes under `ref` (a tag) or, without one, under their digest. */
  async pushManifest(desc: Descriptor, bytes: Buffer, ref?: string): Promise<void> {
    await putManifest(this.ctx, desc, bytes, ref);
  }

  listTags(opts: ListOptions = {}): Promise<string[]> {
    return listTags(this.ctx, opts);
  }

  /** DELETE by digest (every tag pointing at it goes too). DELETE_UNSUPPORTED when the registry forbids it. */
  deleteManifest(desc: Descriptor): Promise<void> {
    return deleteManifest(this.ctx, desc);
  }

  /** Manifests whose subject is `subject`: the referrers API, or the `sha256-<hex>` tag fallback. */
  referrers(subject: Descriptor, opts: { artifactType?: string } = {}): Promise<Descriptor[]> {
    return listReferrers(this.ctx, subject, opts);
  }

  /** Pushes a manifest carrying a `subject`, keeping the fallback index current when needed. */
  pushReferrer(desc: Descriptor, bytes: Buffer, subject: Descriptor): Promise<void> {
    return pushReferrer(this.ctx, desc, bytes, subject);
  }
}

/** Tag or digest characters only. */
const SAFE_REF = /^[\w][\w.:-]{0,199}$/;

function createContext(client: RegistryClient, name: string): RepoContext {
  const base = `/v2/${name}`;
  return {
    client,
    name,
    display: `${client.registry}/${name}`,
    scopes: {
      pull: [`repository:${name}:pull`],
      push: [`repository:${name}:pull,push`],
      // distribution asks for the `delete` action on DELETE; pull comes along for the HEADs around it.
      delete: [`repository:${name}:delete,pull`],
    },
    path(kind: 'manifests' | 'blobs' | 'referrers' | 'uploads' | 'tags', ref?: string): string {
      switch (kind) {
        case 'uploads':
          return `${base}/blobs/uploads/`;
        case 'tags':
          return `${base}/tags/list`;
        default:
          // Callers validate refs (digest or tag grammar). Checked again here because this is
          // where a ref becomes a URL path; not percent-encoded, since `sha256%3A...` is not
          // understood by every registry.
          if (ref === undefined || !SAFE_REF.test(ref)) throw new KitError('REFERENCE_INVALID', `invalid reference ${JSON.stringify(ref)}`);
          return `${base}/${kind}/${ref}`;
      }
    },
    checkRepository: checkRepositoryName,
  } as RepoContext;
}

/**
 * A repository path (`team/model`) by the reference grammar: it becomes part of every URL, so
 * nothing else (no `..`, no `?`, no upper case) may pass.
 */
function checkRepositoryName(name: string): string {
  let ok = false;
  try {
    const r = parseReference(`localhost/${name}`);
    ok = r.registry === 'localhost' && r.repository === name && r.tag === undefined && r.digest === undefined;
  } catch {
    ok = false;
  }
  if (!ok) {
    throw new KitError('REFERENCE_INVALID', `invalid repository name ${JSON.stringify(name)}`, {
      hint: 'lowercase letters, digits and separators (. _ __ -), components joined by /, e.g. team/model',
      exitCode: ExitCode.usage,
    });
  }
  return name;
}
