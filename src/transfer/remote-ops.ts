import { formatReference, parseReference, parseReferenceWithDefaultTag, repositoryName } from '../oci/reference.js';
import type { Descriptor } from '../oci/descriptor.js';
import type { Digest } from '../oci/digest.js';
import { KitError } from '../errors.js';
import type { LocalStore } from '../store/local-store.js';
import { FileUploadSessions } from '../store/upload-sessions.js';
import type { RegistrySettings } from '../registry/types.js';
import { openRepository } from '../registry/open.js';
import type { Target } from '../oci/target.js';
import { attachmentSite } from '../sign/attachments.js';
import { copy, type CopyEvent, type CopyOptions, type CopyResult } from './copy.js';
import { parentMounts, recordedParents, withParentBlobs } from './parent-blobs.js';
import type { PulledParent } from './pull-parents.js';

/** push, pull and remote tag: each one graph copy between two targets. */

export interface TransferOptions {
  settings?: RegistrySettings;
  concurrency?: number;
  onEvent?: (e: CopyEvent) => void;
  /** Supply chain: copy signatures, attestations and SBOMs attached to the artifact (default true). */
  referrers?: boolean;
  /**
   * Supply chain (`kit pull --verify-key`): called with the source and the resolved manifest
   * before anything is written; throwing refuses the artifact. The copy then goes by digest.
   */
  verify?: (source: Target, subject: Descriptor) => Promise<void>;
  /** Pull: large blobs in ranges over several connections (`kit pull --parallel-ranges`; see copy.ts). */
  parallelRanges?: boolean;
}

export interface TransferSummary {
  source: string;
  destination: string;
  digest: string;
  blobs: number;
  copied: number;
  skipped: number;
  mounted: number;
  bytes: number;
  /** Attached manifests (signatures, attestations, SBOMs) copied along. */
  referrers?: number;
}

function summary(source: string, destination: string, r: CopyResult): TransferSummary {
  return { source, destination, digest: r.descriptor.digest, blobs: r.blobs, copied: r.copied, skipped: r.skipped, mounted: r.mounted, bytes: r.bytes, ...(r.referrers !== undefined ? { referrers: r.referrers } : {}) };
}

/** Supply chain: the copy option that carries referrers from `src` to `dst`, unless turned off. */
function referrersOption(src: Target, dst: Target, opts: TransferOptions): Pick<CopyOptions, 'referrers'> {
  return opts.referrers === false ? {} : { referrers: { from: attachmentSite(src), to: attachmentSite(dst) } };
}

/** Local tags in other repositories of the same registry: where the registry may already hold our blobs. */
async function mountCandidates(store: LocalStore, registry: string, exceptRepo: string): Promise<string[]> {
  const repos = new Set<string>();
  for (const { ref } of await store.listTags()) {
    try {
      const r = parseReference(ref);
      if (r.registry === registry && r.repository !== exceptRepo) repos.add(r.repository);
    } catch {
      // not a reference of ours
    }
  }
  return [...repos].slice(0, 5);
}

/** `kit push SRC [DEST]`: local artifact -> registry. */
export async function pushArtifact(store: LocalStore, source: string, dest: string | undefined, opts: TransferOptions = {}): Promise<TransferSummary & { parents?: string[] }> {
  const localRef = formatReference(parseReferenceWithDefaultTag(source));
  // Chunked upload sessions are kept in the store, so a push killed half-way continues on the next run.
  const { repo, ref } = await openRepository(dest ?? source, opts.settings, { repository: { upload: { sessions: FileUploadSessions.forStore(store.root) } } });
  const target = ref.tag ?? undefined;
  // Built on another artifact: its layers come from the parents' repositories (mounted first).
  const parents = await recordedParents(store, await store.resolve(localRef));
  const mountFrom = [...parentMounts(parents, ref), ...(await mountCandidates(store, ref.registry, ref.repository))];
  const r = await copy(withParentBlobs(store, parents, opts.settings, localRef), repo, localRef, target, {
    ...(opts.concurrency ? { concurrency: opts.concurrency } : {}),
    ...(opts.onEvent ? { onEvent: opts.onEvent } : {}),
    mountFrom: [...new Set(mountFrom)],
    ...referrersOption(store, repo, opts),
  });
  return { ...summary(localRef, formatReference(ref), r), ...(parents.length > 0 ? { parents } : {}) };
}

/** `kit pull REF`: registry -> local store, tagged with the full reference. */
export async function pullArtifact(store: LocalStore, source: string, opts: TransferOptions = {}): Promise<TransferSummary & { parents?: PulledParent[] }> {
  const { repo, ref, selector } = await openRepository(source, opts.settings);
  const localRef = formatReference(ref);
  let from = selector;
  // Verified before the first byte is written, then copied by that digest: a tag moved in between changes nothing.
  const subject = await repo.resolve(selector);
  if (opts.verify) {
    await opts.verify(repo, subject);
    from = subject.digest;
  }
  // Built on other artifacts: the chain is read and checked before any layer moves, and the
  // parents are in the store before the child is tagged (the store needs them to accept it).
  // Imported here: following parents reads Kitfiles (the YAML parser), which push never needs.
  const { parentsToPull, storeParents } = await import('./pull-parents.js');
  const ancestors = await parentsToPull(repo, subject, localRef, opts.settings);
  const parents = ancestors.length > 0 ? await storeParents(store, ancestors, { ...(opts.concurrency ? { concurrency: opts.concurrency } : {}), ...(opts.onEvent ? { onEvent: opts.onEvent } : {}) }) : [];
  const added: Digest[] = [];
  try {
    const r = await copy(repo, store, from, localRef, {
      ...(opts.concurrency ? { concurrency: opts.concurrency } : {}),
      ...(opts.parallelRanges ? { parallelRanges: true } : {}),
      onEvent: (e) => {
        if (e.type === 'blob-done' && e.how === 'copied') added.push(e.digest as Digest);
        opts.onEvent?.(e);
      },
      ...referrersOption(repo, store, opts),
    });
    return { ...summary(formatReference(ref), localRef, r), ...(parents.length > 0 ? { parents } : {}) };
  } catch (err) {
    // A refused artifact leaves the store as it was: the blobs this pull added, and that
    // nothing else uses, go again. (After an interruption they stay, for the next attempt.)
    if (added.length > 0 && err instanceof KitError && PULL_REFUSALS.has(err.code)) {
      await store.removeUnreferenced({ candidates: added }).catch(() => undefined);
    }
    throw err;
  }
}

/**
 * Failures that mean "this artifact is refused" (its content or shape is wrong), as opposed to
 * an interruption (network, registry down), after which the blobs already here are kept.
 */
const PULL_REFUSALS = new Set([
  'DIGEST_MISMATCH', 'SIZE_MISMATCH', 'MANIFEST_INVALID', 'MANIFEST_TOO_LARGE', 'BLOB_TOO_LARGE', 'JSON_INVALID',
  'RANGE_INVALID', 'ARTIFACT_TOO_DEEP', 'DESCRIPTOR_INVALID', 'INSECURE_REDIRECT', 'REGISTRY_PROTOCOL',
]);

/** `kit tag --remote SRC DST`: registry -> registry, mounting blobs when both are on one registry. */
export async function tagRemote(source: string, dest: string, opts: TransferOptions = {}): Promise<TransferSummary> {
  const from = await openRepository(source, opts.settings);
  const to = await openRepository(dest, opts.settings);
  const sameRegistry = from.ref.registry === to.ref.registry;
  const r = await copy(from.repo, to.repo, from.selector, to.ref.tag, {
    ...(opts.concurrency ? { concurrency: opts.concurrency } : {}),
    ...(opts.onEvent ? { onEvent: opts.onEvent } : {}),
    ...(sameRegistry && from.ref.repository !== to.ref.repository ? { mountFrom: [from.ref.repository] } : {}),
  });
  return summary(formatReference(from.ref), formatReference(to.ref), r);
}

export interface RemoteTag {
  reference: string;
  tag: string;
  digest: string;
  mediaType: string;
  artifactType?: string;
}

/** `kit list --remote REPO`: the tags of a repository with what each points to. */
export async function listRemote(repository: string, settings: RegistrySettings = {}): Promise<RemoteTag[]> {
  const { repo, ref } = await openRepository(repository, settings, { requireSelector: false });
  const tags = await repo.listTags();
  const out: RemoteTag[] = [];
  for (const tag of tags.sort()) {
    const d: Descriptor = await repo.resolve(tag);
    out.push({ reference: `${repositoryName(ref)}:${tag}`, tag, digest: d.digest, mediaType: d.mediaType, ...(d.artifactType ? { artifactType: d.artifactType } : {}) });
  }
  return out;
}

/** `kit remove --remote REF`: deletes the manifest a tag or digest names. */
export async function removeRemote(reference: string, settings: RegistrySettings = {}): Promise<{ reference: string; digest: string }> {
  const { repo, ref, selector } = await openRepository(reference, settings);
  const desc = await repo.resolve(selector);
  await repo.deleteManifest(desc);
  return { reference: formatReference(ref), digest: desc.digest };
}
