import { KitError } from '../errors.js';
import { sha256, type Digest } from '../oci/digest.js';
import { Annotation, MediaType, type Descriptor, type ImageManifest } from '../oci/descriptor.js';
import { parseReference, repositoryName } from '../oci/reference.js';
import type { Target } from '../oci/target.js';
import type { PackedArtifact } from '../artifact/pack.js';
import { attachmentSite, readManifest, readVerified, type AttachmentSite } from '../sign/attachments.js';
import { statementBytes, statementCovers, statementFor, type InTotoStatement } from '../sign/dsse.js';
import { Documents, EMPTY_JSON, InToto, PREDICATE_TYPES } from '../sign/media.js';
import { attachManifest } from '../sign/sign.js';
import { gitSource } from './git.js';
import { hashInputs } from './inputs.js';
import { buildMlBom, CYCLONEDX_PREDICATE } from './mlbom.js';
import { buildProvenance, SLSA_PROVENANCE_V1 } from './provenance.js';

/**
 * `kit pack --provenance`: the SLSA provenance (as an unsigned in-toto Statement,
 * `application/vnd.in-toto+json`, the way BuildKit attaches its own) and the CycloneDX ML-BOM
 * (`application/vnd.cyclonedx+json`, what SBOM scanners look for among referrers) become
 * referrers of the packed artifact. `kit attest --type slsaprovenance1|cyclonedx --key` signs
 * them later (findGenerated), and push / pull carry them along.
 */

export interface GeneratedDocuments {
  provenance: Digest;
  mlbom: Digest;
}

/** The onPacked hook of `kit pack --provenance`: describes the artifact and attaches both documents in `target`. */
export async function attachSupplyChain(target: Target, packed: PackedArtifact): Promise<GeneratedDocuments> {
  const site = attachmentSite(target);
  const inputs = await hashInputs(packed.layers);
  const git = await gitSource(packed.contextDir);
  const subject = packed.descriptor;
  const created = packed.created.toISOString();
  const name = packed.tags[0] ? repositoryName(parseReference(packed.tags[0])) : '';

  const statement = statementFor({ name, digest: subject.digest }, SLSA_PROVENANCE_V1, buildProvenance(packed, inputs, git));
  const provenance = await attachDocument(site, subject, statementBytes(statement), InToto.PayloadType, {
    [InToto.AnnotationPredicateType]: SLSA_PROVENANCE_V1,
    [Annotation.Created]: created,
  }, 'provenance.intoto.json');
  const bom = Buffer.from(JSON.stringify(buildMlBom(packed, inputs, git)), 'utf8');
  const mlbom = await attachDocument(site, subject, bom, Documents.CycloneDx, { [Annotation.Created]: created }, 'ml-bom.cdx.json');
  return { provenance, mlbom };
}

/** One document as a referrer: empty config, the document as its only layer. */
async function attachDocument(site: AttachmentSite, subject: Descriptor, doc: Buffer, type: string, annotations: Record<string, string>, title: string): Promise<Digest> {
  const layer: Descriptor = { mediaType: type, digest: sha256(doc), size: doc.length, annotations: { [Annotation.Title]: title } };
  const predicate = annotations[InToto.AnnotationPredicateType];
  if (predicate !== undefined) layer.annotations![InToto.AnnotationPredicateType] = predicate;
  const config: Descriptor = { mediaType: MediaType.Empty, digest: sha256(EMPTY_JSON), size: EMPTY_JSON.length };
  const manifest: ImageManifest = {
    schemaVersion: 2,
    mediaType: MediaType.ImageManifest,
    artifactType: type,
    config,
    layers: [layer],
    subject: { mediaType: subject.mediaType, digest: subject.digest, size: subject.size },
    annotations,
  };
  return attachManifest(site, subject, manifest, [
    [config, EMPTY_JSON],
    [layer, doc],
  ]);
}

/**
 * The predicate of a document generated at pack time and attached to `subject`, for `kit attest`
 * without `--predicate`: the SLSA provenance, or the ML-BOM. undefined when there is none.
 */
export async function findGenerated(site: AttachmentSite, subject: Descriptor, predicateType: string): Promise<unknown> {
  const wanted = predicateType === PREDICATE_TYPES['cyclonedx'] ? Documents.CycloneDx : InToto.PayloadType;
  for (const { descriptor } of await site.list(subject, { artifactType: wanted })) {
    if (wanted === InToto.PayloadType && descriptor.annotations?.[InToto.AnnotationPredicateType] !== predicateType) continue;
    const manifest = await readManifest(site.target, descriptor, `referrer ${descriptor.digest}`);
    const layer = manifest.layers.find((l) => l.mediaType === wanted);
    if (!layer) continue;
    const doc = parseJson(await readVerified(site.target, layer, `document ${layer.digest}`, 64 * 1024 * 1024), layer.digest);
    if (wanted === Documents.CycloneDx) return doc;
    const statement = doc as InTotoStatement;
    if (statement.predicateType === predicateType && Array.isArray(statement.subject) && statementCovers(statement, subject.digest)) return statement.predicate;
  }
  return undefined;
}

export { SLSA_PROVENANCE_V1, CYCLONEDX_PREDICATE };

function parseJson(bytes: Buffer, digest: string): unknown {
  try {
    return JSON.parse(bytes.toString('utf8'));
  } catch {
    throw new KitError('DOCUMENT_INVALID', `attached document ${digest} is not valid JSON`);
  }
}
