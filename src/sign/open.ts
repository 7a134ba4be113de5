import { openSource } from '../artifact/source.js';
import { isDigest } from '../oci/digest.js';
import type { Descriptor } from '../oci/descriptor.js';
import { parseReference, repositoryName } from '../oci/reference.js';
import type { RegistrySettings } from '../registry/types.js';
import { attachmentSite, readVerified, type AttachmentSite } from './attachments.js';

/** The artifact a sign, attest, verify or referrers command works on, and where. */
export interface OpenedSubject {
  site: AttachmentSite;
  /** The reference to resolve on the site's target. */
  ref: string;
  /** `registry/repository` (the statement subject's name, cosign's docker-reference); '' for a bare digest. */
  name: string;
  where: 'local' | 'remote';
}

/**
 * Opens the artifact `input` names: in the local store (`local`), its registry (`remote`), or
 * the store when it has it and else the registry (`local-first`, the default of the commands).
 */
export async function openSubject(input: string, mode: 'local' | 'remote' | 'local-first', settings: RegistrySettings = {}): Promise<OpenedSubject> {
  const src = await openSource(input, mode, settings);
  let name = '';
  if (!isDigest(input)) {
    try {
      name = repositoryName(parseReference(input));
    } catch {
      name = '';
    }
  }
  return { site: attachmentSite(src.target), ref: src.ref, name, where: src.where };
}

/** The subject's descriptor and its manifest bytes, read and checked against the digest. */
export async function resolveSubject(site: AttachmentSite, ref: string): Promise<{ descriptor: Descriptor; bytes: Buffer }> {
  const resolved = await site.target.resolve(ref);
  const descriptor: Descriptor = { mediaType: resolved.mediaType, digest: resolved.digest, size: resolved.size };
  if (resolved.artifactType !== undefined) descriptor.artifactType = resolved.artifactType;
  const bytes = await readVerified(site.target, descriptor, `manifest of ${ref}`);
  return { descriptor, bytes };
}
