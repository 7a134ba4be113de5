import { KitError } from '../errors.js';
import { isDigest, type Digest } from '../oci/digest.js';
import { KitAnnotation } from '../artifact/media-types.js';
import { isIndexMediaType, isManifestMediaType, type Descriptor } from '../oci/descriptor.js';

/** A descriptor met while walking, with what it is to its parent (for messages). */
export interface GraphNode {
  desc: Descriptor;
  role: string;
  kind?: 'config' | 'layer' | 'manifest';
  /**
   * May be absent from the store: a layer an artifact takes from the artifact it builds on
   * (model.path naming another artifact), which lives in that parent's registry.
   */
  optional?: boolean;
  /** For the manifest of a parent: how many parent links away from the tagged artifact it is. */
  ancestorDepth?: number;
}

/** Parent links followed from one artifact (artifact/lineage.ts MAX_PARENTS: the same limit). */
export const MAX_PARENT_LINKS = 10;

/**
 * The parent a manifest records (KitAnnotation.Parent, `registry/repo@sha256:...`): the digest of
 * its manifest, or undefined when it records none (or something that is not a digest).
 */
export function parentDigestOf(json: unknown): Digest | undefined {
  const value = (json as { annotations?: Record<string, unknown> } | null)?.annotations?.[KitAnnotation.Parent];
  if (typeof value !== 'string') return undefined;
  const digest = value.slice(value.lastIndexOf('@') + 1);
  return isDigest(digest) ? digest : undefined;
}

/** True for media types whose blobs point at other blobs. */
export function hasChildren(mediaType: string): boolean {
  return isManifestMediaType(mediaType) || isIndexMediaType(mediaType);
}

/**
 * The blobs a manifest or index points at: config and layers of an image manifest, child
 * manifests of an index. `subject` is deliberately not followed: a referrer points at its
 * subject, and keeping the subject alive is not the referrer's job.
 */
export function childrenOf(parent: Descriptor, json: unknown): GraphNode[] {
  const where = `${parent.mediaType} ${parent.digest}`;
  if (typeof json !== 'object' || json === null) throw invalid(where, 'is not a JSON object');
  const doc = json as Record<string, unknown>;
  if (isIndexMediaType(parent.mediaType)) {
    return descriptorList(doc['manifests'], where, 'manifests').map((desc) => ({
      desc,
      role: `manifest ${desc.digest} of index ${parent.digest}`,
      kind: 'manifest' as const,
    }));
  }
  const config = checkDescriptor(doc['config'], where, 'config');
  const layers = descriptorList(doc['layers'], where, 'layers');
  return [
    { desc: config, role: `config ${config.digest} of manifest ${parent.digest}`, kind: 'config' as const },
    ...layers.map((desc) => ({ desc, role: `layer ${desc.digest} of manifest ${parent.digest}`, kind: 'layer' as const })),
  ];
}

function descriptorList(value: unknown, where: string, field: string): Descriptor[] {
  if (!Array.isArray(value)) throw invalid(where, `has no ${field} array`);
  return value.map((d, i) => checkDescriptor(d, where, `${field}[${i}]`));
}

/** Child descriptors come from blobs, i.e. from anywhere: check what is used to build paths. */
function checkDescriptor(value: unknown, where: string, field: string): Descriptor {
  const d = value as Partial<Descriptor> | null;
  if (typeof d !== 'object' || d === null) throw invalid(where, `has no ${field} descriptor`);
  if (typeof d.mediaType !== 'string') throw invalid(where, `${field} has no mediaType`);
  if (typeof d.digest !== 'string' || !isDigest(d.digest)) throw invalid(where, `${field} has no sha256 digest`);
  if (!Number.isSafeInteger(d.size) || (d.size as number) < 0) throw invalid(where, `${field} has an invalid size`);
  return d as Descriptor;
}

function invalid(where: string, why: string): KitError {
  return new KitError('MANIFEST_INVALID', `${where} ${why}`, {
    hint: 'the manifest in the local store is malformed; remove the tag and pull or pack it again',
  });
}
