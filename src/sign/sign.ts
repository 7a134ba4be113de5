import type { KeyObject } from 'node:crypto';
import { sha256, digestHex, type Digest } from '../oci/digest.js';
import { MediaType, Annotation, type Descriptor, type ImageManifest } from '../oci/descriptor.js';
import { pushBlob, type AttachmentSite } from './attachments.js';
import { buildBundle, bundleBytes } from './bundle.js';
import { signEnvelope, statementBytes, statementFor, type InTotoStatement } from './dsse.js';
import { signBytes } from './keys.js';
import { legacyManifest, simpleSigningPayload } from './legacy.js';
import { Cosign, EMPTY_JSON, InToto, Sigstore, legacyTag } from './media.js';
import { resolveSubject } from './open.js';

/**
 * `kit sign`: a signature over the manifest digest, attached to the artifact where it is (local
 * store or registry). Default: a sigstore bundle v0.3 holding a DSSE envelope over an in-toto
 * Statement (subject = the manifest digest, predicateType https://sigstore.dev/cosign/sign/v1),
 * as an OCI referrer (cosign specs/BUNDLE_SPEC.md). `legacy`: cosign's Simple Signing layer in
 * the `sha256-<hex>.sig` manifest.
 */

export interface SignOptions {
  key: KeyObject;
  /** cosign's older `.sig` tag format instead of a bundle referrer. */
  legacy?: boolean;
  /** The time recorded in the referrer's annotations (default: now). */
  created?: Date;
}

export interface SignResult {
  /** The signed manifest. */
  subject: Digest;
  name: string;
  format: 'bundle' | 'legacy';
  where: 'local' | 'remote';
  /** The manifest holding the signature (the referrer, or the `.sig` manifest as it was pushed). */
  signature: Digest;
  tag?: string;
}

export async function signArtifact(site: AttachmentSite, ref: string, name: string, opts: SignOptions): Promise<SignResult> {
  const { descriptor: subject } = await resolveSubject(site, ref);
  const base = { subject: subject.digest, name, where: site.where };
  if (opts.legacy) {
    const payload = simpleSigningPayload(name, subject.digest);
    const layer: Descriptor = {
      mediaType: Cosign.SimpleSigning,
      size: payload.length,
      digest: sha256(payload),
      annotations: { [Cosign.SignatureAnnotation]: signBytes(opts.key, payload).toString('base64') },
    };
    const tag = legacyTag(subject.digest, 'sig');
    const signature = await attachLegacy(site, subject, tag, layer, payload);
    return { ...base, format: 'legacy', signature, tag };
  }
  const statement = statementFor({ name, digest: subject.digest }, Cosign.SignPredicate, {});
  const signature = await attachStatementBundle(site, subject, statement, opts.key, opts.created);
  return { ...base, format: 'bundle', signature };
}

/**
 * Signs `statement` (DSSE over the in-toto payload type), wraps it in a sigstore bundle and
 * attaches it to `subject` as a referrer; the referrer manifest's digest.
 */
export async function attachStatementBundle(site: AttachmentSite, subject: Descriptor, statement: InTotoStatement, key: KeyObject, created = new Date()): Promise<Digest> {
  const envelope = signEnvelope(key, InToto.PayloadType, statementBytes(statement));
  const bundle = bundleBytes(buildBundle(key, envelope));
  const bundleDigest = sha256(bundle);
  const layer: Descriptor = {
    mediaType: Sigstore.BundleV03,
    digest: bundleDigest,
    size: bundle.length,
    annotations: { [Annotation.Title]: `sha256-${digestHex(bundleDigest)}.sigstore.json` },
  };
  const config: Descriptor = { mediaType: MediaType.Empty, digest: sha256(EMPTY_JSON), size: EMPTY_JSON.length };
  const manifest: ImageManifest = {
    schemaVersion: 2,
    mediaType: MediaType.ImageManifest,
    artifactType: Sigstore.BundleV03,
    config,
    layers: [layer],
    subject: { mediaType: subject.mediaType, digest: subject.digest, size: subject.size },
    annotations: {
      [Sigstore.AnnotationContent]: 'dsse-envelope',
      [Sigstore.AnnotationPredicateType]: statement.predicateType,
      [Annotation.Created]: created.toISOString(),
    },
  };
  return attachManifest(site, subject, manifest, [
    [config, EMPTY_JSON],
    [layer, bundle],
  ]);
}

/** Pushes the blobs, then the manifest as a referrer of `subject`; its digest. */
export async function attachManifest(site: AttachmentSite, subject: Descriptor, manifest: ImageManifest, blobs: Array<[Descriptor, Buffer]>): Promise<Digest> {
  for (const [d, b] of blobs) await pushBlob(site.target, d, b);
  const bytes = Buffer.from(JSON.stringify(manifest), 'utf8');
  const descriptor: Descriptor = { mediaType: MediaType.ImageManifest, digest: sha256(bytes), size: bytes.length };
  if (manifest.artifactType !== undefined) descriptor.artifactType = manifest.artifactType;
  await site.attach({ descriptor }, bytes, subject);
  return descriptor.digest;
}

/** Adds one layer (a signature or an attestation) to the subject's legacy `.sig` / `.att` manifest. */
export async function attachLegacy(site: AttachmentSite, subject: Descriptor, tag: string, layer: Descriptor, content: Buffer): Promise<Digest> {
  await pushBlob(site.target, layer, content);
  const built = legacyManifest([layer]);
  await pushBlob(site.target, built.config.descriptor, built.config.bytes);
  // attach() merges this manifest's layer into the one already under the tag.
  return (await site.attach({ descriptor: built.descriptor, tag }, built.bytes, subject)).digest;
}
