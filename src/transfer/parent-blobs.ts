/**
 * Pushing an artifact built on another one (model.path naming it): the parent's layers it lists
 * may be absent locally (`kit pack` never downloads them). They are mounted from the parents'
 * repositories when the destination is on the same registry, else read from there and uploaded.
 */
import { KitAnnotation } from '../artifact/media-types.js';
import { parentBlobSources } from '../artifact/source.js';
import type { Descriptor, ImageManifest } from '../oci/descriptor.js';
import { FallbackTarget } from '../oci/fallback-target.js';
import { isPinnedReference, parseReference, type Reference } from '../oci/reference.js';
import type { Target } from '../oci/target.js';
import type { RegistrySettings } from '../registry/types.js';
import { MAX_PARENT_LINKS } from '../store/graph.js';
import type { LocalStore } from '../store/local-store.js';

/**
 * The parents a stored artifact records (KitAnnotation.Parent), nearest first, read from the
 * store alone: the store keeps the manifest of every recorded parent with the child.
 */
export async function recordedParents(store: LocalStore, desc: Descriptor): Promise<string[]> {
  const parents: string[] = [];
  let current: Descriptor | undefined = desc;
  while (current && parents.length < MAX_PARENT_LINKS) {
    const manifest: ImageManifest | undefined = await store.readJson<ImageManifest>(current).catch(() => undefined);
    const parent: string | undefined = manifest?.annotations?.[KitAnnotation.Parent];
    if (parent === undefined || !isPinnedReference(parent)) break;
    parents.push(parent);
    current = await store.resolve(parent.slice(parent.lastIndexOf('@') + 1)).catch(() => undefined);
  }
  return parents;
}

/** `source`, reading the blobs it lacks from the parents' repositories. */
export function withParentBlobs(source: Target, parents: string[], settings: RegistrySettings | undefined, what: string): Target {
  if (parents.length === 0) return source;
  return new FallbackTarget(source, parentBlobSources(parents, 'remote', settings), what);
}

/** The parents' repositories on the destination's registry: where the registry can mount the layers from. */
export function parentMounts(parents: string[], dest: Reference): string[] {
  const repos: string[] = [];
  for (const p of parents) {
    const r = parseReference(p);
    if (r.registry === dest.registry && r.repository !== dest.repository && !repos.includes(r.repository)) repos.push(r.repository);
  }
  return repos;
}
