import type { KeyObject } from 'node:crypto';
import { readFile, stat } from 'node:fs/promises';
import { ExitCode, KitError, errnoCode } from '../errors.js';
import { sha256, type Digest } from '../oci/digest.js';
import type { Descriptor } from '../oci/descriptor.js';
import { findGenerated } from '../supplychain/attach.js';
import type { AttachmentSite } from './attachments.js';
import { signEnvelope, statementBytes, statementFor } from './dsse.js';
import { Cosign, InToto, PREDICATE_TYPES, legacyTag, predicateTypeOf } from './media.js';
import { resolveSubject } from './open.js';
import { attachLegacy, attachStatementBundle } from './sign.js';

/**
 * `kit attest`: an in-toto Statement (subject = the manifest digest, the given predicate)
 * signed as DSSE and attached like a signature: a sigstore bundle referrer, or with `legacy`
 * a layer of cosign's `sha256-<hex>.att` manifest. Without a predicate file, the document
 * `kit pack --provenance` attached (SLSA provenance, ML-BOM) is the predicate.
 */

export interface AttestOptions {
  key: KeyObject;
  /** `--type`: slsaprovenance1, spdxjson, cyclonedx, custom, ... or a predicate type URI. */
  type: string;
  /** The predicate file; absent: the generated document of that type. */
  predicateFile?: string;
  legacy?: boolean;
  created?: Date;
}

export interface AttestResult {
  subject: Digest;
  name: string;
  predicateType: string;
  format: 'bundle' | 'legacy';
  where: 'local' | 'remote';
  attestation: Digest;
  /** Where the predicate came from: the file, or the referrer generated at pack time. */
  predicateSource: string;
  tag?: string;
}

const MAX_PREDICATE_BYTES = 64 * 1024 * 1024;

export async function attestArtifact(site: AttachmentSite, ref: string, name: string, opts: AttestOptions): Promise<AttestResult> {
  const predicateType = predicateTypeOf(opts.type);
  const { descriptor: subject } = await resolveSubject(site, ref);
  const created = opts.created ?? new Date();
  let predicate: unknown;
  let predicateSource: string;
  if (opts.predicateFile !== undefined) {
    predicate = await loadPredicate(opts.predicateFile, predicateType, created);
    predicateSource = opts.predicateFile;
  } else {
    predicate = await findGenerated(site, subject, predicateType);
    if (predicate === undefined) {
      throw new KitError('PREDICATE_REQUIRED', `no --predicate given, and ${ref} has no generated ${opts.type} document attached`, {
        hint: 'pass --predicate FILE, or pack with --provenance (it attaches the SLSA provenance and the CycloneDX ML-BOM)',
        exitCode: ExitCode.usage,
      });
    }
    predicateSource = 'generated at pack time';
  }
  const statement = statementFor({ name, digest: subject.digest }, predicateType, predicate);
  const base = { subject: subject.digest, name, predicateType, where: site.where, predicateSource };
  if (opts.legacy) {
    const tag = legacyTag(subject.digest, 'att');
    const attestation = await attachLegacyAttestation(site, subject, tag, opts.key, statementBytes(statement), predicateType);
    return { ...base, format: 'legacy', attestation, tag };
  }
  const attestation = await attachStatementBundle(site, subject, statement, opts.key, created);
  return { ...base, format: 'bundle', attestation };
}

/** A DSSE envelope as cosign's legacy attestation layer (empty signature annotation, predicateType annotation). */
async function attachLegacyAttestation(site: AttachmentSite, subject: Descriptor, tag: string, key: KeyObject, payload: Buffer, predicateType: string): Promise<Digest> {
  const env = signEnvelope(key, InToto.PayloadType, payload);
  // cosign writes the envelope with an empty keyid on each signature.
  const bytes = Buffer.from(JSON.stringify({ payloadType: env.payloadType, payload: env.payload, signatures: env.signatures.map((s) => ({ keyid: '', sig: s.sig })) }), 'utf8');
  const layer: Descriptor = {
    mediaType: Cosign.DsseEnvelope,
    size: bytes.length,
    digest: sha256(bytes),
    annotations: { [Cosign.SignatureAnnotation]: '', [Cosign.PredicateTypeAnnotation]: predicateType },
  };
  return attachLegacy(site, subject, tag, layer, bytes);
}

/** The predicate from a file: JSON, except `custom`, whose file is any text, wrapped as cosign does. */
export async function loadPredicate(path: string, predicateType: string, created: Date): Promise<unknown> {
  let text: string;
  try {
    const st = await stat(path);
    if (st.size > MAX_PREDICATE_BYTES) throw new KitError('PREDICATE_TOO_LARGE', `predicate ${path} is ${st.size} bytes, over the ${MAX_PREDICATE_BYTES}-byte limit`);
    text = await readFile(path, 'utf8');
  } catch (err) {
    if (err instanceof KitError) throw err;
    if (errnoCode(err) === 'ENOENT') throw new KitError('PREDICATE_NOT_FOUND', `predicate file ${path} does not exist`, { exitCode: ExitCode.notFound });
    throw new KitError('PREDICATE_UNREADABLE', `cannot read predicate ${path}: ${(err as Error).message}`, { cause: err });
  }
  if (predicateType === PREDICATE_TYPES['custom']) return { data: text, timestamp: created.toISOString() };
  try {
    return JSON.parse(text) as unknown;
  } catch (err) {
    throw new KitError('PREDICATE_INVALID', `predicate ${path} is not valid JSON: ${(err as Error).message}`, {
      hint: 'use --type custom for a predicate that is not JSON',
      exitCode: ExitCode.usage,
    });
  }
}
