import type { Descriptor } from '../oci/descriptor.js';
import type { RegistrySettings } from '../registry/types.js';
import { loadArtifact, type LoadedArtifact } from './read.js';
import { openSource } from './source.js';

/**
 * `kit diff A B`: what two artifacts share and what differs, by layer digest, and what a pull
 * of B costs someone who already has A — the question to answer before moving 100 GB.
 */

export interface DiffLayer {
  path: string;
  digest: string;
  size: number;
  mediaType: string;
}

export interface ArtifactDiff {
  a: { reference: string; digest: string; where: 'local' | 'remote' };
  b: { reference: string; digest: string; where: 'local' | 'remote' };
  identical: boolean;
  sameConfig: boolean;
  shared: DiffLayer[];
  onlyInA: DiffLayer[];
  onlyInB: DiffLayer[];
  /** Bytes a pull of B transfers for someone who has A: B's blobs (manifest, config, layers) that A lacks. */
  transferBytesForB: number;
  /** B's total size, for scale. */
  totalBytesB: number;
}

/** `local://REF` reads the store, `remote://REF` the registry, a bare REF the store first. */
export function sourceMode(input: string): { ref: string; mode: 'local' | 'remote' | 'local-first' } {
  if (input.startsWith('local://')) return { ref: input.slice('local://'.length), mode: 'local' };
  if (input.startsWith('remote://')) return { ref: input.slice('remote://'.length), mode: 'remote' };
  return { ref: input, mode: 'local-first' };
}

export async function diffReferences(a: string, b: string, settings: RegistrySettings = {}): Promise<ArtifactDiff> {
  // Both at once, but a failure is reported for A before B, whichever settles first.
  const [ra, rb] = await Promise.allSettled([load(a, settings), load(b, settings)]);
  if (ra.status === 'rejected') throw ra.reason;
  if (rb.status === 'rejected') throw rb.reason;
  const [la, lb] = [ra.value, rb.value];
  return { ...compareArtifacts(la.artifact, lb.artifact), a: la.info, b: lb.info };
}

async function load(input: string, settings: RegistrySettings) {
  const { ref, mode } = sourceMode(input);
  const src = await openSource(ref, mode, settings);
  const artifact = await loadArtifact(src.target, src.ref);
  return { artifact, info: { reference: ref, digest: artifact.descriptor.digest, where: src.where } };
}

function layerList(a: LoadedArtifact): DiffLayer[] {
  return a.layers.map((l) => ({ path: l.path, digest: l.descriptor.digest, size: l.descriptor.size, mediaType: l.descriptor.mediaType }));
}

function blobs(a: LoadedArtifact): Descriptor[] {
  return [a.descriptor, a.manifest.config, ...a.manifest.layers];
}

export function compareArtifacts(a: LoadedArtifact, b: LoadedArtifact): Omit<ArtifactDiff, 'a' | 'b'> {
  const aDigests = new Set(blobs(a).map((d) => d.digest));
  const bLayerDigests = new Set<string>(b.manifest.layers.map((l) => l.digest));
  const aLayerDigests = new Set<string>(a.manifest.layers.map((l) => l.digest));
  const seen = new Set<string>();
  const transferBytesForB = blobs(b)
    .filter((d) => !aDigests.has(d.digest) && !seen.has(d.digest) && (seen.add(d.digest), true))
    .reduce((n, d) => n + d.size, 0);
  return {
    identical: a.descriptor.digest === b.descriptor.digest,
    sameConfig: a.manifest.config.digest === b.manifest.config.digest,
    shared: layerList(b).filter((l) => aLayerDigests.has(l.digest)),
    onlyInA: layerList(a).filter((l) => !bLayerDigests.has(l.digest)),
    onlyInB: layerList(b).filter((l) => !aLayerDigests.has(l.digest)),
    transferBytesForB,
    totalBytesB: blobs(b).reduce((n, d) => n + d.size, 0),
  };
}
