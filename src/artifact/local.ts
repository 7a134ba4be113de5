import { KitError, ExitCode } from '../errors.js';
import { isDigest, type Digest } from '../oci/digest.js';
import type { Descriptor } from '../oci/descriptor.js';
import { familiarRepository, formatReference, parseReference, parseReferenceWithDefaultTag, repositoryName } from '../oci/reference.js';
import type { LocalStore } from '../store/local-store.js';

/**
 * The local-store operations behind list, tag and remove: they speak in references as users
 * type them and in artifacts, not in index entries.
 */

/** A user's reference in the form the store's index holds (full, normalised, `:latest` added). */
export function storeRef(input: string): string {
  if (isDigest(input)) return input;
  return formatReference(parseReferenceWithDefaultTag(input));
}

export interface ListRow {
  repository: string;
  tag: string;
  reference: string;
  maintainer: string;
  name: string;
  size: number;
  digest: Digest;
  format: string;
}

export async function listArtifacts(store: LocalStore, repoFilter?: string): Promise<ListRow[]> {
  const wanted = repoFilter === undefined ? undefined : repositoryName(parseReference(repoFilter));
  const rows: ListRow[] = [];
  for (const { ref, descriptor } of await store.listTags()) {
    let parsed;
    try {
      parsed = parseReference(ref);
    } catch {
      continue; // an entry written by another tool with a bare tag name; not ours to list
    }
    if (wanted !== undefined && repositoryName(parsed) !== wanted) continue;
    // Imported here: read.js brings the YAML parser, which push and pull (importing storeRef) never need.
    const { loadArtifact } = await import('./read.js');
    const a = await loadArtifact(store, ref);
    const size = a.manifest.layers.reduce((n, l) => n + l.size, a.manifest.config.size + descriptor.size);
    rows.push({
      repository: familiarRepository(parsed),
      tag: parsed.tag ?? '<none>',
      reference: ref,
      maintainer: (a.kitfile.package?.authors ?? []).join(', '),
      name: a.kitfile.package?.name ?? a.kitfile.model?.name ?? '',
      size,
      digest: descriptor.digest,
      format: a.format,
    });
  }
  return rows;
}

export async function tagArtifact(store: LocalStore, src: string, dst: string): Promise<{ source: string; target: string; digest: Digest }> {
  const from = storeRef(src);
  const to = parseReferenceWithDefaultTag(dst);
  if (to.digest !== undefined) {
    throw new KitError('TAG_INVALID', `${dst} names a digest; a tag target needs a tag`, { hint: 'use registry/repo:tag', exitCode: ExitCode.usage });
  }
  const desc = await store.resolve(from);
  const target = formatReference(to);
  await store.tag(desc, target);
  return { source: from, target, digest: desc.digest };
}

export interface RemoveOptions {
  ref?: string;
  /** Without a ref: every artifact. With a ref: every tag of the artifact it names. */
  all: boolean;
  /** Remove an artifact named by digest even when tags point to it. */
  force: boolean;
}

export interface RemoveResult {
  untagged: string[];
  removedBlobs: number;
  freedBytes: number;
}

export async function removeArtifacts(store: LocalStore, opts: RemoveOptions): Promise<RemoveResult> {
  const tags = await store.listTags();
  let victims: Array<{ ref: string; descriptor: Descriptor }>;
  if (opts.ref === undefined) {
    if (!opts.all) throw new KitError('REF_REQUIRED', 'nothing to remove', { hint: 'name a reference, or pass --all to remove every artifact', exitCode: ExitCode.usage });
    victims = tags;
  } else {
    const ref = storeRef(opts.ref);
    const byDigest = isDigest(ref) || ref.includes('@');
    const desc = await store.resolve(ref);
    const sameArtifact = tags.filter((t) => t.descriptor.digest === desc.digest);
    if (opts.all || byDigest) {
      if (byDigest && !opts.all && !opts.force && sameArtifact.length > 1) {
        throw new KitError('ARTIFACT_IN_USE', `${opts.ref} is tagged as ${sameArtifact.map((t) => t.ref).join(', ')}`, {
          hint: 'remove the tags one by one, or pass --force to remove them all',
          exitCode: ExitCode.conflict,
        });
      }
      victims = sameArtifact;
    } else {
      victims = tags.filter((t) => t.ref === ref);
    }
  }
  const untagged: string[] = [];
  for (const v of victims) {
    if (await store.untag(v.ref)) untagged.push(v.ref);
  }
  // Only blobs of the artifacts just untagged are candidates; the store keeps any still referenced.
  const candidates = new Set<Digest>();
  for (const v of victims) {
    candidates.add(v.descriptor.digest);
    // Config, layers and, for an artifact built on another one, the parent's manifest and
    // config kept for it; a manifest we cannot read still has its own blob collected.
    for (const d of await store.blobsOf(v.descriptor).catch(() => new Set<Digest>())) candidates.add(d);
  }
  const gc = await store.removeUnreferenced({ candidates });
  return { untagged, removedBlobs: gc.removed.length, freedBytes: gc.bytes };
}
