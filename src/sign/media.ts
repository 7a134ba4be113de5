import { ExitCode, KitError } from '../errors.js';

/**
 * Names from the formats kit signs and attests in: the sigstore bundle (protobuf-specs, v0.3),
 * DSSE, in-toto Statement v1, cosign's bundle-as-referrer layout (cosign specs/BUNDLE_SPEC.md)
 * and cosign's older tag-based signatures and attestations (specs/SIGNATURE_SPEC.md).
 */

export const Sigstore = {
  BundleV03: 'application/vnd.dev.sigstore.bundle.v0.3+json',
  /** Manifest annotations cosign puts on a bundle referrer. */
  AnnotationContent: 'dev.sigstore.bundle.content',
  AnnotationPredicateType: 'dev.sigstore.bundle.predicateType',
} as const;

export const InToto = {
  PayloadType: 'application/vnd.in-toto+json',
  StatementV1: 'https://in-toto.io/Statement/v1',
  /** Older statements (cosign's legacy attestations) are read too. */
  StatementV01: 'https://in-toto.io/Statement/v0.1',
  /** Layer/manifest annotation of an unsigned statement kept as a referrer (as BuildKit does). */
  AnnotationPredicateType: 'in-toto.io/predicate-type',
} as const;

export const Cosign = {
  SimpleSigning: 'application/vnd.dev.cosign.simplesigning.v1+json',
  SignatureAnnotation: 'dev.cosignproject.cosign/signature',
  SimpleSigningType: 'cosign container image signature',
  DsseEnvelope: 'application/vnd.dsse.envelope.v1+json',
  /** The annotation cosign's legacy attestations carry their predicate type in. */
  PredicateTypeAnnotation: 'predicateType',
  /** The predicate type of an image signature in the bundle format (cosign v3). */
  SignPredicate: 'https://sigstore.dev/cosign/sign/v1',
} as const;

/** SBOM / provenance documents kit attaches unsigned at pack time. */
export const Documents = {
  CycloneDx: 'application/vnd.cyclonedx+json',
} as const;

/** The OCI empty descriptor's content: `{}`. */
export const EMPTY_JSON = Buffer.from('{}', 'utf8');

/** `--type` names cosign knows (cosign attest --type), and their predicate type URIs. */
export const PREDICATE_TYPES: Record<string, string> = {
  slsaprovenance: 'https://slsa.dev/provenance/v0.2',
  slsaprovenance02: 'https://slsa.dev/provenance/v0.2',
  slsaprovenance1: 'https://slsa.dev/provenance/v1',
  spdx: 'https://spdx.dev/Document',
  spdxjson: 'https://spdx.dev/Document',
  cyclonedx: 'https://cyclonedx.org/bom',
  vuln: 'https://cosign.sigstore.dev/attestation/vuln/v1',
  openvex: 'https://openvex.dev/ns',
  custom: 'https://cosign.sigstore.dev/attestation/v1',
};

/** `--type` value -> predicate type URI: a known name, or a URI given as it is. */
export function predicateTypeOf(type: string): string {
  const known = PREDICATE_TYPES[type];
  if (known !== undefined) return known;
  if (/^[a-z][a-z0-9+.-]*:\S+$/i.test(type)) return type;
  throw new KitError('PREDICATE_TYPE_INVALID', `unknown predicate type ${JSON.stringify(type)}`, {
    hint: `use one of ${Object.keys(PREDICATE_TYPES).join(', ')}, or a URI`,
    exitCode: ExitCode.usage,
  });
}

/** The legacy tag of a subject: `sha256-<hex>.sig` or `.att`. */
export function legacyTag(subject: string, kind: 'sig' | 'att'): string {
  return `${subject.replace(':', '-')}.${kind}`;
}
