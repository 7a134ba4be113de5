import type { Digest } from './digest.js';

/** OCI content descriptor (image-spec v1.1 descriptor.md). */
export interface Descriptor {
  mediaType: string;
  digest: Digest;
  size: number;
  annotations?: Record<string, string>;
  artifactType?: string;
  urls?: string[];
  data?: string;
}

/** OCI image manifest (image-spec v1.1 manifest.md). */
export interface ImageManifest {
  schemaVersion: 2;
  mediaType: typeof MediaType.ImageManifest;
  artifactType?: string;
  config: Descriptor;
  layers: Descriptor[];
  subject?: Descriptor;
  annotations?: Record<string, string>;
}

/** OCI image index, also the shape of an image layout's index.json. */
export interface ImageIndex {
  schemaVersion: 2;
  mediaType?: typeof MediaType.ImageIndex;
  artifactType?: string;
  manifests: Descriptor[];
  subject?: Descriptor;
  annotations?: Record<string, string>;
}

export const MediaType = {
  ImageManifest: 'application/vnd.oci.image.manifest.v1+json',
  ImageIndex: 'application/vnd.oci.image.index.v1+json',
  ImageConfig: 'application/vnd.oci.image.config.v1+json',
  Empty: 'application/vnd.oci.empty.v1+json',
  DockerManifest: 'application/vnd.docker.distribution.manifest.v2+json',
  DockerManifestList: 'application/vnd.docker.distribution.manifest.list.v2+json',
} as const;

export const Annotation = {
  RefName: 'org.opencontainers.image.ref.name',
  Created: 'org.opencontainers.image.created',
  Title: 'org.opencontainers.image.title',
  Source: 'org.opencontainers.image.source',
  Revision: 'org.opencontainers.image.revision',
  Version: 'org.opencontainers.image.version',
  Description: 'org.opencontainers.image.description',
  Authors: 'org.opencontainers.image.authors',
  Licenses: 'org.opencontainers.image.licenses',
} as const;

/** The largest manifest kit reads or writes (what distribution and most registries accept). */
export const MAX_MANIFEST_BYTES = 4 * 1024 * 1024;

export function isManifestMediaType(mt: string): boolean {
  return mt === MediaType.ImageManifest || mt === MediaType.DockerManifest;
}

export function isIndexMediaType(mt: string): boolean {
  return mt === MediaType.ImageIndex || mt === MediaType.DockerManifestList;
}
