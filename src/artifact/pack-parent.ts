/**
 * `kit pack` of a Kitfile whose model.path names another artifact: the parent is found (local
 * store first, then its registry), its chain of parents followed, and its model layers taken
 * over by descriptor (digest, size, media type, annotations): never downloaded, and mounted
 * across repositories on push.
 */
import { lstat } from 'node:fs/promises';
import { join } from 'node:path';
import { ExitCode, KitError } from '../errors.js';
import { isDigest, type Digest } from '../oci/digest.js';
import type { Descriptor } from '../oci/descriptor.js';
import { parseReference, repositoryName } from '../oci/reference.js';
import type { ModelPackConfig } from './configs.js';
import { inheritedModelLayers, resolveAncestors, type Ancestor, type OpenParent } from './lineage.js';
import { parseLayerType, type ArtifactFormat } from './media-types.js';
import type { PlannedLayer } from './plan.js';
import { describeArtifact, type ArtifactHead } from './read.js';

export interface PackParent {
  /** model.path as written. */
  reference: string;
  /** `registry/repo@sha256:...`: what the child's manifest records (KitAnnotation.Parent). */
  pinned: string;
  digest: Digest;
  /** Nearest first; the parent is ancestors[0]. */
  ancestors: Ancestor[];
  /** The model layers the child lists first, exactly as the parents list them. */
  layers: Descriptor[];
  /** Their uncompressed digests, for a ModelPack config's modelfs.diffIds (same order). */
  diffIds: Digest[];
  /** Where each of those layers unpacks to (same order; `.` for a KitOps tar of the whole context). */
  layerPaths: string[];
  /** The paths among those: the child's own entries leave them out. */
  paths: string[];
  /** Manifest and config of every ancestor: the local store keeps them so that it knows where the layers it lacks live. */
  metadata: Array<{ descriptor: Descriptor; bytes: Buffer }>;
  /** The parent's ModelPack model config (architecture, format, ...), for a child whose Kitfile says nothing of it. */
  modelConfig?: ModelPackConfig['config'];
}

export async function resolvePackParent(reference: string, opts: { contextDir: string; format: ArtifactFormat; childName: string; open: OpenParent }): Promise<PackParent> {
  // The rule that makes model.path a reference (kitfile/paths.ts) does not look at the disk;
  // a file of that name in the project would make the Kitfile mean two things.
  if (await lstat(join(opts.contextDir, reference)).then(() => true, () => false)) {
    throw new KitError('MODEL_PATH_AMBIGUOUS', `model.path ${JSON.stringify(reference)} names an artifact, but ${join(opts.contextDir, reference)} exists too`, {
      hint: 'rename that file or folder (a model.path with a registry host and a :tag or @sha256: digest always names an artifact)',
      exitCode: ExitCode.usage,
    });
  }
  const ancestors = await resolveAncestors({ name: opts.childName, link: { reference, via: 'kitfile' } }, opts.open);
  const parent = ancestors[0]!;
  const inherited = inheritedModelLayers(ancestors);
  if (inherited.length === 0) {
    throw new KitError('PARENT_HAS_NO_MODEL', `model.path names ${reference}, which has no model layers to build on`, {
      hint: 'name an artifact that holds a model, or put the model files in the project and give their path',
    });
  }
  for (const { descriptor, ancestor } of inherited) {
    const format = parseLayerType(descriptor.mediaType)?.format;
    if (format !== opts.format) {
      throw new KitError('PARENT_FORMAT_MISMATCH', `model.path names ${reference}, whose model (in ${ancestor.reference}) is made of ${format === 'kitops' ? 'KitOps ModelKit' : 'ModelPack'} layers; a ${opts.format} artifact cannot list them`, {
        hint: `pack with --format ${format ?? 'modelpack'}`,
        exitCode: ExitCode.usage,
      });
    }
  }
  const described = new Map(ancestors.map((a) => [a, describeArtifact(a.head, a.reference)]));
  const parentConfig = parent.head.config as Partial<ModelPackConfig> | undefined;
  const layerPaths = inherited.map((l) => described.get(l.ancestor)!.layers[l.index]!.path);
  return {
    reference,
    pinned: `${repositoryName(parseReference(reference))}@${parent.head.descriptor.digest}`,
    digest: parent.head.descriptor.digest,
    ancestors,
    layers: inherited.map((l) => ({ ...l.descriptor })),
    diffIds: opts.format === 'modelpack' ? inherited.map((l) => diffIdOf(l.ancestor.head, l.index, l.descriptor, l.ancestor.reference)) : [],
    layerPaths,
    paths: layerPaths.filter((p) => p !== '.'),
    metadata: ancestors.flatMap((a) => [
      { descriptor: a.head.descriptor, bytes: a.head.manifestBytes },
      { descriptor: a.head.manifest.config, bytes: a.head.configBytes },
    ]),
    ...(parentConfig?.config && typeof parentConfig.config === 'object' ? { modelConfig: parentConfig.config } : {}),
  };
}

/**
 * A layer's uncompressed digest: its own digest when it is not compressed, else what the
 * parent's config says (ModelPack diffIds by position, KitOps layerInfo by digest).
 */
function diffIdOf(head: ArtifactHead, index: number, desc: Descriptor, reference: string): Digest {
  const encoding = parseLayerType(desc.mediaType)?.encoding;
  if (encoding === 'raw' || encoding === 'tar') return desc.digest;
  const listed = (head.config as { modelfs?: { diffIds?: unknown[] } } | undefined)?.modelfs?.diffIds?.[index];
  if (typeof listed === 'string' && isDigest(listed)) return listed;
  throw new KitError('PARENT_INVALID', `layer ${index} of ${reference} (${desc.digest}) is compressed and its config gives no uncompressed digest (modelfs.diffIds)`, {
    hint: 'the parent artifact is incomplete; repack it with kit, or build on another one',
  });
}

/** One clear error when a file of the child would land where a file of its parent does. */
export function checkNoOverlap(parent: PackParent, plan: PlannedLayer[]): void {
  const taken = new Set(parent.paths);
  for (const layer of plan) {
    if (!taken.has(layer.path)) continue;
    throw new KitError('PATH_IN_PARENT', `${layer.path} is also a file of ${parent.reference}, which this Kitfile's model builds on`, {
      hint: `rename it in the project, or leave it out: unpacking restores the parent's ${layer.path}`,
    });
  }
}

/** The parent's model settings where the child's ModelPack config has none of its own. */
export function inheritModelConfig(own: ModelPackConfig['config'], parent: PackParent): ModelPackConfig['config'] {
  const merged: ModelPackConfig['config'] = { ...own };
  const from = parent.modelConfig ?? {};
  for (const key of ['architecture', 'format', 'paramSize', 'precision', 'quantization'] as const) {
    const v = from[key];
    if (merged[key] === undefined && typeof v === 'string' && v !== '') merged[key] = v;
  }
  return merged;
}
