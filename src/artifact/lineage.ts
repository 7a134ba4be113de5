/**
 * Artifacts that build on other artifacts: a Kitfile whose model.path is an artifact reference
 * (`registry/repo:tag`) makes a child of that artifact. This module finds an artifact's parent
 * and follows the chain of parents, reading manifests and configs only, never layers.
 *
 * A parent is named in one of two ways:
 *  - `annotation`: kit records the parent, pinned by digest, in the child's manifest
 *    (KitAnnotation.Parent), and the child's manifest lists the parent's model layers;
 *  - `kitfile`: only the Kitfile's model.path names it (a ModelKit made by KitOps, which holds
 *    none of the parent's layers; a tag there is followed as it is now).
 *
 * The chain is at most MAX_PARENTS long, as in KitOps, and a loop (possible through tags:
 * a:1 -> b:1 -> a:1) is refused with the chain it went round.
 */
import { KitError, isKitError } from '../errors.js';
import type { Descriptor } from '../oci/descriptor.js';
import { parseReference, isPinnedReference } from '../oci/reference.js';
import type { Target } from '../oci/target.js';
import { isArtifactReference, parseKitfile } from '../kitfile/load.js';
import { KitAnnotation, KitOps, isModelLayerType } from './media-types.js';
import { readArtifactHead, type ArtifactHead } from './read.js';

/** The most parents kit follows from one artifact (KitOps' MaxModelRefChain). */
export const MAX_PARENTS = 10;

export interface ParentLink {
  /** `registry/repo@sha256:...` from the annotation, or model.path as written in the Kitfile. */
  reference: string;
  via: 'annotation' | 'kitfile';
}

/** One artifact of the chain above a child, nearest first. */
export interface Ancestor extends ParentLink {
  head: ArtifactHead;
  target: Target;
  /** The reference to resolve on `target`. */
  ref: string;
  where: 'local' | 'remote';
}

/** Where the artifact a reference names is read from (see artifact/source.ts: local store first, or the registry). */
export type OpenParent = (reference: string) => Promise<{ target: Target; ref: string; where: 'local' | 'remote' }>;

/** The parent an artifact names, if any. */
export function parentLink(head: Pick<ArtifactHead, 'manifest' | 'config'>, name: string): ParentLink | undefined {
  const recorded = head.manifest.annotations?.[KitAnnotation.Parent];
  if (recorded !== undefined) {
    if (!isPinnedReference(recorded)) {
      throw new KitError('PARENT_INVALID', `${name} records its parent as ${JSON.stringify(recorded.slice(0, 200))}, which is not a registry/repository@sha256:... reference`, {
        hint: 'the artifact is malformed; pack it again',
      });
    }
    return { reference: recorded, via: 'annotation' };
  }
  const path = kitfileModelPath(head);
  return path !== undefined && isArtifactReference(path) ? { reference: path, via: 'kitfile' } : undefined;
}

/**
 * model.path of the artifact's Kitfile (the manifest annotation, else a KitOps config), read
 * leniently: an artifact whose Kitfile cannot be read simply names no parent here; reading it
 * for real (unpack, info) reports the problem.
 */
function kitfileModelPath(head: Pick<ArtifactHead, 'manifest' | 'config'>): string | undefined {
  const text = head.manifest.annotations?.[KitAnnotation.Kitfile] ?? head.manifest.annotations?.[KitAnnotation.LegacyKitfile];
  if (text !== undefined) {
    try {
      return parseKitfile(text, 'Kitfile').model?.path;
    } catch {
      return undefined;
    }
  }
  if (head.manifest.config.mediaType === KitOps.Config) {
    const path = (head.config as { model?: { path?: unknown } } | null)?.model?.path;
    return typeof path === 'string' ? path : undefined;
  }
  return undefined;
}

/**
 * Follows the chain of parents from `child` (its name for messages, its manifest digest when it
 * has one yet, and the parent it names), nearest first. Refuses a loop and a chain of more than
 * MAX_PARENTS, naming the chain.
 */
export async function resolveAncestors(child: { name: string; digest?: string; link: ParentLink | undefined }, open: OpenParent): Promise<Ancestor[]> {
  const chain = [child.name];
  const seen = new Map<string, number>();
  if (child.digest !== undefined) seen.set(child.digest, 0);
  const ancestors: Ancestor[] = [];
  for (let link = child.link; link !== undefined; ) {
    if (ancestors.length === MAX_PARENTS) {
      throw new KitError('PARENT_CHAIN_TOO_DEEP', `${child.name} builds on more than ${MAX_PARENTS} artifacts in a chain: ${[...chain, link.reference].join(' -> ')}`, {
        hint: `kit follows at most ${MAX_PARENTS} parents; pack one artifact of the chain with its model files instead of a model.path reference`,
      });
    }
    const builder = chain[chain.length - 1]!;
    const { head, opened } = await readParent(link, builder, open);
    chain.push(link.reference);
    const first = seen.get(head.descriptor.digest);
    if (first !== undefined) {
      const from = first > 0 ? ` (reached from ${child.name})` : '';
      throw new KitError('PARENT_LOOP', `artifacts build on one another in a loop: ${chain.slice(first).join(' -> ')}${from}`, {
        hint: 'change model.path in the Kitfile of one of them, so that the chain ends at an artifact with model files of its own',
      });
    }
    seen.set(head.descriptor.digest, chain.length - 1);
    ancestors.push({ ...link, head, ...opened });
    link = parentLink(head, link.reference);
  }
  return ancestors;
}

async function readParent(link: ParentLink, builder: string, open: OpenParent): Promise<{ head: ArtifactHead; opened: Awaited<ReturnType<OpenParent>> }> {
  try {
    const opened = await open(link.reference);
    const head = await readArtifactHead(opened.target, opened.ref);
    return { head, opened };
  } catch (err) {
    if (!isKitError(err)) throw err;
    const notFound = err.code === 'NOT_FOUND';
    throw new KitError(notFound ? 'PARENT_NOT_FOUND' : err.code, `${builder} builds on ${link.reference}, which ${notFound ? 'cannot be found' : 'cannot be read'}: ${err.message}`, {
      hint: notFound ? 'push or pull the parent artifact first, or fix model.path in the Kitfile' : err.hint ?? 'check the reference and your access to its registry',
      exitCode: err.exitCode,
      cause: err,
    });
  }
}

/** A model layer a child takes from its parents, with the ancestor that lists it (nearest first). */
export interface InheritedLayer {
  descriptor: Descriptor;
  ancestor: Ancestor;
  /** Its index in that ancestor's manifest. */
  index: number;
}

/**
 * The model layers a child of `ancestors[0]` inherits: the parent's, then those of older
 * ancestors the parent does not list itself (a KitOps-made parent holds none of its own
 * parent's), each once, in manifest order.
 */
export function inheritedModelLayers(ancestors: Ancestor[]): InheritedLayer[] {
  const out: InheritedLayer[] = [];
  const seen = new Set<string>();
  for (const ancestor of ancestors) {
    ancestor.head.manifest.layers.forEach((descriptor, index) => {
      if (!isModelLayerType(descriptor.mediaType) || seen.has(descriptor.digest)) return;
      seen.add(descriptor.digest);
      out.push({ descriptor, ancestor, index });
    });
  }
  return out;
}

/** The registry/repository of a reference, for mounts and messages. */
export function referenceRepository(reference: string): { registry: string; repository: string } {
  const r = parseReference(reference);
  return { registry: r.registry, repository: r.repository };
}
