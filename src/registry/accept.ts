import { MediaType, isIndexMediaType, isManifestMediaType } from '../oci/descriptor.js';

/**
 * Manifest media types kit asks a registry for, best first. Docker v2 types are listed so that
 * registries which store content in the Docker format (or convert on the fly) answer with it
 * instead of a 404 or a schema1 conversion.
 */
export const MANIFEST_MEDIA_TYPES: readonly string[] = [
  MediaType.ImageManifest,
  MediaType.ImageIndex,
  MediaType.DockerManifest,
  MediaType.DockerManifestList,
];

/** The Accept header of every manifest HEAD / GET. */
export const MANIFEST_ACCEPT = MANIFEST_MEDIA_TYPES.join(', ');

/** Accept for one known descriptor: its own media type first, so an exotic one is still served. */
export function manifestAcceptFor(mediaType: string): string {
  if (!mediaType || MANIFEST_MEDIA_TYPES.includes(mediaType)) return MANIFEST_ACCEPT;
  return [mediaType, ...MANIFEST_MEDIA_TYPES].join(', ');
}

/** Whether content of this media type lives under /manifests/ (rather than /blobs/). */
export function isManifestKind(mediaType: string): boolean {
  return isManifestMediaType(mediaType) || isIndexMediaType(mediaType);
}

/** `application/x; charset=utf-8` -> `application/x`; undefined for a missing or empty header. */
export function mediaTypeOf(contentType: string | undefined): string | undefined {
  if (contentType === undefined) return undefined;
  const mt = contentType.split(';')[0]!.trim();
  return mt === '' ? undefined : mt;
}

/** The octet-stream type blob uploads are sent with (distribution refuses any other). */
export const OCTET_STREAM = 'application/octet-stream';
