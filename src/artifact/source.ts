import { isKitError } from '../errors.js';
import type { BlobSource } from '../oci/fallback-target.js';
import { parseReference, repositoryName } from '../oci/reference.js';
import type { Target } from '../oci/target.js';
import type { OpenParent } from './lineage.js';
import type { RegistrySettings } from '../registry/types.js';
import { storeRef } from './local.js';

/**
 * Where a command reads an artifact from: the local store, a registry (`--remote`), or, for
 * unpack, the local store first and the registry when the store does not have it.
 */
export interface ArtifactSource {
  target: Target;
  /** The reference to resolve on that target. */
  ref: string;
  where: 'local' | 'remote';
}

export async function openSource(input: string, mode: 'local' | 'remote' | 'local-first', settings: RegistrySettings = {}): Promise<ArtifactSource> {
  if (mode !== 'remote') {
    const { LocalStore } = await import('../store/local-store.js');
    const store = await LocalStore.open();
    const ref = storeRef(input);
    if (mode === 'local') return { target: store, ref, where: 'local' };
    try {
      await store.resolve(ref);
      return { target: store, ref, where: 'local' };
    } catch (e) {
      if (!(isKitError(e) && e.code === 'NOT_FOUND')) throw e;
    }
  }
  const { openRepository } = await import('../registry/open.js');
  const { repo, selector } = await openRepository(input, settings);
  return { target: repo, ref: selector, where: 'remote' };
}

/** Opens the parents of an artifact (model.path references) the way openSource opens the artifact. */
export function parentOpener(mode: 'local' | 'remote' | 'local-first', settings: RegistrySettings = {}): OpenParent {
  return (reference) => openSource(reference, mode, settings);
}

/**
 * Where the layers an artifact takes from its parents may be read: the local store (when the
 * mode allows it and the artifact is not read from there already), then each parent's
 * repository, nearest parent first.
 */
export function parentBlobSources(references: string[], mode: 'local' | 'remote' | 'local-first', settings: RegistrySettings = {}, opts: { withStore?: boolean } = {}): BlobSource[] {
  const sources: BlobSource[] = [];
  if (mode !== 'remote' && opts.withStore !== false) {
    sources.push({ name: 'the local store', open: async () => (await import('../store/local-store.js')).LocalStore.open() });
  }
  if (mode !== 'local') {
    for (const reference of references) {
      sources.push({ name: repositoryName(parseReference(reference)), open: async () => (await (await import('../registry/open.js')).openRepository(reference, settings)).repo });
    }
  }
  return sources;
}
