import { Readable } from 'node:stream';
import { sha256, type Digest } from '../../../src/oci/digest.js';
import { MediaType, type Descriptor, type ImageManifest } from '../../../src/oci/descriptor.js';
import type { LocalStore } from '../../../src/store/local-store.js';

/** Shared by the store tests and the concurrency worker script (so not a *.test file). */

export const ARTIFACT_TYPE = 'application/vnd.cncf.model.manifest.v1+json';
export const LAYER_TYPE = 'application/vnd.cncf.model.weight.v1.raw';

export function descOf(bytes: Buffer, mediaType = LAYER_TYPE): Descriptor & { digest: Digest } {
  return { mediaType, digest: sha256(bytes), size: bytes.length };
}

export async function pushBytes(store: LocalStore, bytes: Buffer, mediaType = LAYER_TYPE): Promise<Descriptor> {
  const desc = descOf(bytes, mediaType);
  await store.push(desc, Readable.from([bytes]));
  return desc;
}

/** Stores layers, a config and a manifest; returns the manifest descriptor and its parts. */
export async function makeArtifact(
  store: LocalStore,
  layerContents: string[],
  configValue: unknown = { name: 'model' },
): Promise<{ manifest: Descriptor; config: Descriptor; layers: Descriptor[] }> {
  const layers: Descriptor[] = [];
  for (const content of layerContents) layers.push(await pushBytes(store, Buffer.from(content)));
  const config = await store.writeJson(configValue, 'application/vnd.cncf.model.config.v1+json');
  const doc: ImageManifest = {
    schemaVersion: 2,
    mediaType: MediaType.ImageManifest,
    artifactType: ARTIFACT_TYPE,
    config,
    layers,
  };
  const manifest = await store.writeJson(doc, MediaType.ImageManifest);
  return { manifest, config, layers };
}
