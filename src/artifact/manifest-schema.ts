import { z } from 'zod';
import { KitError } from '../errors.js';
import { isDigest, type Digest } from '../oci/digest.js';
import { MediaType, type ImageManifest } from '../oci/descriptor.js';

/** The most layers kit accepts in one artifact; far above any real model, far below a DoS. */
export const MAX_LAYERS = 10_000;

const digest = z.string().refine(isDigest, 'not a sha256 digest').transform((s) => s as Digest);
const descriptor = z
  .object({
    mediaType: z.string().min(1).max(255),
    digest,
    size: z.number().int().nonnegative().max(Number.MAX_SAFE_INTEGER),
    annotations: z.record(z.string()).optional(),
    artifactType: z.string().optional(),
    urls: z.array(z.string()).optional(),
    data: z.string().optional(),
  })
  .passthrough();

const manifest = z
  .object({
    schemaVersion: z.literal(2),
    mediaType: z.literal(MediaType.ImageManifest),
    artifactType: z.string().optional(),
    config: descriptor,
    layers: z.array(descriptor).max(MAX_LAYERS),
    subject: descriptor.optional(),
    annotations: z.record(z.string()).optional(),
  })
  .passthrough();

/** Validate an untrusted manifest's shape; one line naming the first problem. */
export function parseManifest(value: unknown, what: string): ImageManifest {
  const r = manifest.safeParse(value);
  if (!r.success) {
    const issue = r.error.issues[0]!;
    throw new KitError('MANIFEST_INVALID', `${what} is not a valid OCI image manifest: ${issue.path.join('.') || '(root)'}: ${issue.message}`, {
      hint: 'the artifact is malformed; it was not unpacked',
    });
  }
  return r.data as ImageManifest;
}

/** The manifest when `value` is a valid OCI image manifest, else undefined (for callers that only look). */
export function manifestOrUndefined(value: unknown): ImageManifest | undefined {
  const r = manifest.safeParse(value);
  return r.success ? (r.data as ImageManifest) : undefined;
}
