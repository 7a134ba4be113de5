import { KitError } from '../errors.js';
import { sha256, type Digest } from '../oci/digest.js';
import { MediaType, type Descriptor, type ImageManifest } from '../oci/descriptor.js';
import { Cosign } from './media.js';

/**
 * cosign's older, tag-based formats (cosign specs/SIGNATURE_SPEC.md): the signatures of
 * `repo@sha256:<hex>` live in one image manifest tagged `sha256-<hex>.sig`, one layer per
 * signature. A layer is a Simple Signing payload (`application/vnd.dev.cosign.simplesigning.v1+json`)
 * naming the manifest digest, its base64 signature in the `dev.cosignproject.cosign/signature`
 * annotation. Attestations alike under `sha256-<hex>.att`, one DSSE envelope per layer
 * (`application/vnd.dsse.envelope.v1+json`, annotation `predicateType`).
 */

/**
 * The Simple Signing payload, byte for byte as cosign writes it (Go's field order, no spaces,
 * `"optional":null` when there are no annotations).
 */
export function simpleSigningPayload(dockerReference: string, digest: Digest): Buffer {
  const payload = {
    critical: {
      identity: { 'docker-reference': dockerReference },
      image: { 'docker-manifest-digest': digest },
      type: Cosign.SimpleSigningType,
    },
    optional: null,
  };
  return Buffer.from(JSON.stringify(payload), 'utf8');
}

/** The manifest digest a Simple Signing payload names, after checking its shape and type. */
export function parseSimpleSigning(bytes: Uint8Array, what: string): { digest: string; type: string } {
  let v: unknown;
  try {
    v = JSON.parse(Buffer.from(bytes).toString('utf8'));
  } catch {
    throw new KitError('SIGNATURE_INVALID', `${what}: the signed payload is not JSON`);
  }
  const critical = (v as { critical?: { image?: Record<string, unknown>; type?: unknown } } | null)?.critical;
  // cosign's Go reader matches field names case-insensitively; so does this.
  const image = critical?.image;
  const digest = image && Object.entries(image).find(([k]) => k.toLowerCase() === 'docker-manifest-digest')?.[1];
  if (typeof digest !== 'string') throw new KitError('SIGNATURE_INVALID', `${what}: the payload names no docker-manifest-digest`);
  const type = typeof critical?.type === 'string' ? critical.type : '';
  if (type.toLowerCase() !== Cosign.SimpleSigningType) {
    throw new KitError('SIGNATURE_INVALID', `${what}: the payload type is ${JSON.stringify(type)}, not "${Cosign.SimpleSigningType}"`);
  }
  return { digest, type };
}

export interface BuiltManifest {
  descriptor: Descriptor;
  bytes: Buffer;
  config: { descriptor: Descriptor; bytes: Buffer };
}

/**
 * The image manifest holding these signature (or attestation) layers, with the image config
 * cosign gives it (go-containerregistry's empty image with the layers appended).
 */
export function legacyManifest(layers: Descriptor[]): BuiltManifest {
  const zero = '0001-01-01T00:00:00Z';
  const configDoc = {
    architecture: '',
    created: zero,
    history: layers.map(() => ({ created: zero })),
    os: '',
    rootfs: { type: 'layers', diff_ids: layers.map((l) => l.digest) },
    config: {},
  };
  const configBytes = Buffer.from(JSON.stringify(configDoc), 'utf8');
  const config: Descriptor = { mediaType: MediaType.ImageConfig, size: configBytes.length, digest: sha256(configBytes) };
  const manifest: ImageManifest = { schemaVersion: 2, mediaType: MediaType.ImageManifest, config, layers };
  const bytes = Buffer.from(JSON.stringify(manifest), 'utf8');
  return { descriptor: { mediaType: MediaType.ImageManifest, digest: sha256(bytes), size: bytes.length }, bytes, config: { descriptor: config, bytes: configBytes } };
}

/** `existing` then the `added` layers that are not in it (same digest and same annotations). */
export function mergeLayers(existing: Descriptor[], added: Descriptor[]): Descriptor[] {
  const key = (d: Descriptor) => `${d.digest} ${JSON.stringify(Object.entries(d.annotations ?? {}).sort())}`;
  const seen = new Set(existing.map(key));
  return [...existing, ...added.filter((d) => !seen.has(key(d)))];
}
