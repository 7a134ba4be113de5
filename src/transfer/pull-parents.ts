/**
 * `kit pull` of an artifact built on others (model.path naming another artifact). The chain of
 * parents is read from the registry (manifests and configs only) and checked, a loop or a chain
 * over the limit refused, before any layer moves. Then, the oldest first:
 *  - a parent the child records (KitAnnotation.Parent, written by kit) is kept as its manifest
 *    and config: the child lists its model layers and brings them itself;
 *  - a parent only the Kitfile names (a ModelKit made by KitOps holds none of its layers) is
 *    pulled whole and tagged with that reference, as KitOps does, so that it unpacks offline.
 */
import { Readable } from 'node:stream';
import { parentLink, resolveAncestors, type Ancestor } from '../artifact/lineage.js';
import { KitAnnotation, KitOps } from '../artifact/media-types.js';
import { manifestOrUndefined } from '../artifact/manifest-schema.js';
import { parentOpener } from '../artifact/source.js';
import type { Descriptor } from '../oci/descriptor.js';
import { formatReference, parseReferenceWithDefaultTag } from '../oci/reference.js';
import { parseJsonBlob, readJsonBlob, readSmallBlob } from '../oci/read-json.js';
import type { Target } from '../oci/target.js';
import type { RegistrySettings } from '../registry/types.js';
import type { LocalStore } from '../store/local-store.js';
import { copy, type CopyOptions } from './copy.js';

export interface PulledParent {
  reference: string;
  digest: string;
  /** `metadata`: its manifest and config (the child holds its layers); `artifact`: all of it, tagged. */
  kept: 'metadata' | 'artifact';
}

/** The parents of `subject` (in `repo`), nearest first; [] for an artifact that names none or that is not one kit reads (the copy then reports what is wrong with it). */
export async function parentsToPull(repo: Target, subject: Descriptor, name: string, settings: RegistrySettings | undefined): Promise<Ancestor[]> {
  const head = await childHead(repo, subject, name);
  const link = head && parentLink(head, name);
  if (!link) return [];
  return resolveAncestors({ name, digest: subject.digest, link }, parentOpener('remote', settings));
}

/** Stores the parents, oldest first, so that each finds its own parent in the store when it is tagged. */
export async function storeParents(store: LocalStore, ancestors: Ancestor[], opts: Pick<CopyOptions, 'concurrency' | 'onEvent'>): Promise<PulledParent[]> {
  const kept: PulledParent[] = [];
  for (const a of [...ancestors].reverse()) {
    const digest = a.head.descriptor.digest;
    if (a.via === 'annotation') {
      await store.push(a.head.manifest.config, Readable.from([a.head.configBytes]));
      await store.push(a.head.descriptor, Readable.from([a.head.manifestBytes]));
      kept.push({ reference: a.reference, digest, kept: 'metadata' });
    } else {
      await copy(a.target, store, digest, formatReference(parseReferenceWithDefaultTag(a.reference)), opts);
      kept.push({ reference: a.reference, digest, kept: 'artifact' });
    }
  }
  return kept.reverse();
}

/**
 * What parentLink needs of the child: the manifest, and the config only for a KitOps ModelKit
 * without kit's annotations (its Kitfile is the config). Anything unreadable: undefined.
 */
async function childHead(repo: Target, subject: Descriptor, name: string): Promise<{ manifest: NonNullable<ReturnType<typeof manifestOrUndefined>>; config: unknown } | undefined> {
  try {
    const manifest = manifestOrUndefined(parseJsonBlob(await readSmallBlob(repo, subject, `manifest of ${name}`), subject, `manifest of ${name}`));
    if (!manifest) return undefined;
    const annotated = manifest.annotations?.[KitAnnotation.Parent] !== undefined || manifest.annotations?.[KitAnnotation.Kitfile] !== undefined;
    const config = !annotated && manifest.config.mediaType === KitOps.Config ? await readJsonBlob(repo, manifest.config, `config of ${name}`) : {};
    return { manifest, config };
  } catch {
    return undefined;
  }
}
