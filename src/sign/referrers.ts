import type { Digest } from '../oci/digest.js';
import { Annotation } from '../oci/descriptor.js';
import type { AttachmentSite } from './attachments.js';
import { Cosign, Documents, InToto, Sigstore } from './media.js';

/** `kit referrers`: what is attached to an artifact, in the store or in its registry. */

export interface ReferrerRow {
  digest: Digest;
  mediaType: string;
  size: number;
  artifactType?: string;
  /** signature, attestation, provenance, sbom or other. */
  kind: string;
  predicateType?: string;
  created?: string;
  /** cosign's legacy tag (`sha256-<hex>.sig` / `.att`) for tag-based attachments. */
  tag?: string;
  annotations?: Record<string, string>;
}

export interface ReferrersListing {
  reference: string;
  digest: Digest;
  where: 'local' | 'remote';
  referrers: ReferrerRow[];
}

export async function listAttached(site: AttachmentSite, ref: string, opts: { artifactType?: string } = {}): Promise<ReferrersListing> {
  const subject = await site.target.resolve(ref);
  const rows: ReferrerRow[] = [];
  for (const { descriptor: d, tag } of await site.list(subject, opts)) {
    const a = d.annotations ?? {};
    const predicateType = a[Sigstore.AnnotationPredicateType] ?? a[InToto.AnnotationPredicateType];
    const row: ReferrerRow = { digest: d.digest, mediaType: d.mediaType, size: d.size, kind: kindOf(d.artifactType, predicateType, tag) };
    if (d.artifactType !== undefined) row.artifactType = d.artifactType;
    if (predicateType !== undefined) row.predicateType = predicateType;
    if (a[Annotation.Created] !== undefined) row.created = a[Annotation.Created];
    if (tag !== undefined) row.tag = tag;
    const shown = Object.fromEntries(Object.entries(a).filter(([k]) => !k.startsWith('ml.kitops.kit.')));
    if (Object.keys(shown).length > 0) row.annotations = shown;
    rows.push(row);
  }
  return { reference: ref, digest: subject.digest, where: site.where, referrers: rows };
}

function kindOf(artifactType: string | undefined, predicateType: string | undefined, tag: string | undefined): string {
  if (tag?.endsWith('.sig')) return 'signature';
  if (tag?.endsWith('.att')) return 'attestation';
  if (artifactType?.startsWith('application/vnd.dev.sigstore.bundle')) return predicateType === Cosign.SignPredicate ? 'signature' : 'attestation';
  if (artifactType === InToto.PayloadType) return predicateType?.startsWith('https://slsa.dev/provenance') ? 'provenance' : 'statement';
  if (artifactType === Documents.CycloneDx || artifactType === 'application/spdx+json') return 'sbom';
  return 'other';
}
