import { KitError, ExitCode } from '../errors.js';
import { parseReference, type Reference } from '../oci/reference.js';
import type { RegistrySettings } from './types.js';
import { createRegistryClient } from './client.js';
import { findCredential } from './credentials/index.js';
import { RemoteRepository, type RemoteRepositoryOptions } from './repository.js';

/** A remote repository ready to use, and the reference that named it. */
export interface OpenedRepository {
  repo: RemoteRepository;
  ref: Reference;
  /** The tag or digest within the repository (tag defaults to latest). */
  selector: string;
}

export async function openRepository(
  input: string,
  settings: RegistrySettings = {},
  opts: { requireSelector?: boolean; repository?: RemoteRepositoryOptions } = {},
): Promise<OpenedRepository> {
  const ref = parseReference(input);
  if (opts.requireSelector === false && ref.tag === undefined && ref.digest === undefined) {
    const client = await createRegistryClient(ref.registry, { settings, credentials: findCredential });
    return { repo: new RemoteRepository(client, ref.repository, opts.repository), ref, selector: '' };
  }
  const selector = ref.digest ?? ref.tag ?? 'latest';
  if (ref.tag === undefined && ref.digest === undefined) ref.tag = 'latest';
  const client = await createRegistryClient(ref.registry, { settings, credentials: findCredential });
  return { repo: new RemoteRepository(client, ref.repository, opts.repository), ref, selector };
}

export function requireTag(ref: Reference, input: string): string {
  if (ref.tag === undefined) {
    throw new KitError('TAG_REQUIRED', `${input} has no tag`, { hint: 'name a tag, e.g. registry.example.com/team/model:1.0', exitCode: ExitCode.usage });
  }
  return ref.tag;
}
