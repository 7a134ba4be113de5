import { isKitError } from '../errors.js';
import type { Target } from '../oci/target.js';
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
