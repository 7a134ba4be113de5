import { formatReference, parseReference, parseReferenceWithDefaultTag, repositoryName } from '../oci/reference.js';
import type { Descriptor } from '../oci/descriptor.js';
import type { LocalStore } from '../store/local-store.js';
import type { RegistrySettings } from '../registry/types.js';
import { openRepository } from '../registry/open.js';
import { copy, type CopyEvent, type CopyResult } from './copy.js';

/** push, pull and remote tag: each one graph copy between two targets. */

export interface TransferOptions {
  settings?: RegistrySettings;
  concurrency?: number;
  onEvent?: (e: CopyEvent) => void;
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
}

function summary(source: string, destination: string, r: CopyResult): TransferSummary {
  return { source, destination, digest: r.descriptor.digest, blobs: r.blobs, copied: r.copied, skipped: r.skipped, mounted: r.mounted, bytes: r.bytes };
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
export async function pushArtifact(store: LocalStore, source: string, dest: string | undefined, opts: TransferOptions = {}): Promise<TransferSummary> {
  const localRef = formatReference(parseReferenceWithDefaultTag(source));
  const { repo, ref } = await openRepository(dest ?? source, opts.settings);
  const target = ref.tag ?? undefined;
  const r = await copy(store, repo, localRef, target, {
    ...(opts.concurrency ? { concurrency: opts.concurrency } : {}),
    ...(opts.onEvent ? { onEvent: opts.onEvent } : {}),
    mountFrom: await mountCandidates(store, ref.registry, ref.repository),
  });
  return summary(localRef, formatReference(ref), r);
}

/** `kit pull REF`: registry -> local store, tagged with the full reference. */
export async function pullArtifact(store: LocalStore, source: string, opts: TransferOptions = {}): Promise<TransferSummary> {
  const { repo, ref, selector } = await openRepository(source, opts.settings);
  const localRef = formatReference(ref);
  const r = await copy(repo, store, selector, localRef, {
    ...(opts.concurrency ? { concurrency: opts.concurrency } : {}),
    ...(opts.onEvent ? { onEvent: opts.onEvent } : {}),
  });
  return summary(formatReference(ref), localRef, r);
}

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
