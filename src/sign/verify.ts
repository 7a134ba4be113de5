import type { KeyObject } from 'node:crypto';
import { ExitCode, KitError, isKitError } from '../errors.js';
import type { Digest } from '../oci/digest.js';
import type { Descriptor } from '../oci/descriptor.js';
import type { Target } from '../oci/target.js';
import { attachmentSite, readManifest, readVerified, type AttachmentSite, type Attached } from './attachments.js';
import { parseBundle } from './bundle.js';
import { parseEnvelope, parseStatement, statementCovers, statementDigests, verifyEnvelope, type DsseEnvelope } from './dsse.js';
import { loadPublicKey, verifyBytes } from './keys.js';
import { parseSimpleSigning } from './legacy.js';
import { Cosign, Sigstore } from './media.js';
import { resolveSubject } from './open.js';

/**
 * `kit verify`: finds what is attached to an artifact (bundle referrers and cosign's legacy
 * `.sig` / `.att` tags), and checks each signature: the signed content must name the manifest
 * digest being verified, and the signature must verify with one of the given public keys over
 * exactly the bytes that were parsed. Succeeds when at least one valid signature (or, with
 * `require`, one valid attestation of that predicate type) is found; otherwise fails with the
 * reason each candidate was refused.
 */

export interface VerifyOptions {
  keys: KeyObject[];
  /** A predicate type to require instead of a signature (an attestation of that type). */
  require?: string;
  /** The reference as the user gave it, for messages (default: `ref`). */
  display?: string;
}

export interface VerifiedItem {
  kind: 'signature' | 'attestation';
  format: 'bundle' | 'legacy';
  /** The manifest that holds it (referrer or `.sig` / `.att` manifest). */
  manifest: Digest;
  /** The blob that holds it (bundle, payload or envelope). */
  blob?: Digest;
  predicateType?: string;
  tag?: string;
  ok: boolean;
  /** Why it was refused (ok: false). */
  reason?: string;
}

export interface VerifyReport {
  reference: string;
  digest: Digest;
  where: 'local' | 'remote';
  ok: boolean;
  /** What the check required: "signature", or the predicate type asked for. */
  required: string;
  verified: VerifiedItem[];
  rejected: VerifiedItem[];
}

/** A failed verification, carrying the report (for `--json`). */
export class VerifyError extends KitError {
  constructor(
    message: string,
    readonly report: VerifyReport,
    hint: string,
  ) {
    super('VERIFY_FAILED', message, { hint, exitCode: ExitCode.failure });
  }
}

/** Bundles and envelopes are small; anything larger is refused unread. */
const MAX_SIGNATURE_BLOB = 16 * 1024 * 1024;

export async function verifyArtifact(site: AttachmentSite, ref: string, opts: VerifyOptions): Promise<VerifyReport> {
  if (opts.keys.length === 0) throw new KitError('KEY_REQUIRED', 'no public key to verify with', { hint: 'pass --key cosign.pub', exitCode: ExitCode.usage });
  // The subject's own bytes are checked against its digest: a manifest altered in the store fails here.
  const { descriptor: subject } = await resolveSubject(site, ref);
  const shown = opts.display ?? ref;
  const items: VerifiedItem[] = [];
  for (const att of await site.list(subject)) items.push(...(await checkAttached(site, att, subject, opts.keys)));
  const required = opts.require ?? 'signature';
  const satisfies = (i: VerifiedItem) => i.ok && (opts.require === undefined ? i.kind === 'signature' : i.predicateType === opts.require);
  const report: VerifyReport = {
    reference: shown,
    digest: subject.digest,
    where: site.where,
    ok: items.some(satisfies),
    required,
    verified: items.filter((i) => i.ok),
    rejected: items.filter((i) => !i.ok),
  };
  if (report.ok) return report;
  const what = opts.require === undefined ? 'signature' : `attestation of type ${opts.require}`;
  if (items.length === 0) {
    throw new VerifyError(`no ${what} found for ${shown} (${subject.digest})`, report, site.where === 'local' ? 'sign it with `kit sign`, or pull it with its referrers (not --no-referrers)' : 'sign it with `kit sign` (or cosign sign)');
  }
  const reasons = report.rejected.map((i) => `  - ${i.format} ${i.kind} ${i.manifest}${i.tag ? ` (${i.tag})` : ''}: ${i.reason}`);
  const others = report.verified.map((i) => `  - ${i.format} ${i.kind} ${i.manifest}: valid, but not what was asked for${i.predicateType ? ` (${i.predicateType})` : ''}`);
  throw new VerifyError(`no valid ${what} for ${shown} (${subject.digest}):\n${[...reasons, ...others].join('\n')}`, report, 'check that the key is the one the artifact was signed with, and that the artifact was not changed after signing');
}

async function checkAttached(site: AttachmentSite, att: Attached, subject: Descriptor, keys: KeyObject[]): Promise<VerifiedItem[]> {
  const legacyKind = att.tag?.endsWith('.sig') ? 'signature' : att.tag?.endsWith('.att') ? 'attestation' : undefined;
  const isBundle = att.descriptor.artifactType === Sigstore.BundleV03 || att.descriptor.artifactType?.startsWith('application/vnd.dev.sigstore.bundle') === true;
  if (legacyKind === undefined && !isBundle) return []; // an SBOM or an unsigned document: nothing to verify
  const base = { manifest: att.descriptor.digest, format: (legacyKind ? 'legacy' : 'bundle') as 'legacy' | 'bundle', ...(att.tag ? { tag: att.tag } : {}) };
  let manifest;
  try {
    manifest = await readManifest(site.target, att.descriptor, `${base.format} manifest ${att.descriptor.digest}`);
  } catch (err) {
    return [{ ...base, kind: legacyKind ?? 'signature', ok: false, reason: reasonOf(err) }];
  }
  if (legacyKind === undefined) {
    const declared = manifest.subject?.digest;
    if (declared !== subject.digest) {
      return [{ ...base, kind: 'signature', ok: false, reason: `the referrer's subject is ${declared ?? 'missing'}, not ${subject.digest}` }];
    }
    const layer = manifest.layers.find((l) => l.mediaType.startsWith('application/vnd.dev.sigstore.bundle'));
    if (!layer) return [{ ...base, kind: 'signature', ok: false, reason: 'the referrer holds no sigstore bundle layer' }];
    return [await checkBundle(site, layer, subject, keys, base)];
  }
  const out: VerifiedItem[] = [];
  for (const layer of manifest.layers) {
    if (legacyKind === 'signature' && layer.mediaType === Cosign.SimpleSigning) out.push(await checkSimpleSigning(site, layer, subject, keys, base));
    if (legacyKind === 'attestation' && layer.mediaType === Cosign.DsseEnvelope) out.push(await checkLegacyAttestation(site, layer, subject, keys, base));
  }
  if (out.length === 0) out.push({ ...base, kind: legacyKind, ok: false, reason: `the ${att.tag} manifest holds no ${legacyKind} layers` });
  return out;
}

type Base = Pick<VerifiedItem, 'manifest' | 'format' | 'tag'>;

async function checkBundle(site: AttachmentSite, layer: Descriptor, subject: Descriptor, keys: KeyObject[], base: Base): Promise<VerifiedItem> {
  const at = { ...base, blob: layer.digest };
  try {
    const bytes = await readVerified(site.target, layer, `bundle ${layer.digest}`, MAX_SIGNATURE_BLOB);
    const { envelope } = parseBundle(bytes, `bundle ${layer.digest}`);
    return checkEnvelope(envelope, subject, keys, at, `bundle ${layer.digest}`);
  } catch (err) {
    return { ...at, kind: 'signature', ok: false, reason: reasonOf(err) };
  }
}

async function checkLegacyAttestation(site: AttachmentSite, layer: Descriptor, subject: Descriptor, keys: KeyObject[], base: Base): Promise<VerifiedItem> {
  const at = { ...base, blob: layer.digest };
  const annotated = layer.annotations?.[Cosign.PredicateTypeAnnotation];
  try {
    const bytes = await readVerified(site.target, layer, `attestation ${layer.digest}`, MAX_SIGNATURE_BLOB);
    let v: unknown;
    try {
      v = JSON.parse(bytes.toString('utf8'));
    } catch {
      throw new KitError('SIGNATURE_INVALID', 'the DSSE envelope is not valid JSON (truncated or damaged)');
    }
    return checkEnvelope(parseEnvelope(v, `attestation ${layer.digest}`), subject, keys, at, `attestation ${layer.digest}`);
  } catch (err) {
    return { ...at, kind: 'attestation', ...(annotated ? { predicateType: annotated } : {}), ok: false, reason: reasonOf(err) };
  }
}

/** Signature first (over the exact payload bytes), then what the payload says. */
function checkEnvelope(envelope: DsseEnvelope, subject: Descriptor, keys: KeyObject[], at: Base & { blob: Digest }, what: string): VerifiedItem {
  if (!keys.some((k) => verifyEnvelope(k, envelope))) {
    return { ...at, kind: 'signature', ok: false, reason: 'the signature does not verify with the given key (signed with another key, or altered)' };
  }
  const statement = parseStatement(envelope, what);
  const kind = statement.predicateType === Cosign.SignPredicate ? 'signature' : 'attestation';
  if (!statementCovers(statement, subject.digest)) {
    return { ...at, kind, predicateType: statement.predicateType, ok: false, reason: `it is for ${statementDigests(statement).join(', ') || 'no sha256 digest'}, not ${subject.digest}` };
  }
  return { ...at, kind, predicateType: statement.predicateType, ok: true };
}

async function checkSimpleSigning(site: AttachmentSite, layer: Descriptor, subject: Descriptor, keys: KeyObject[], base: Base): Promise<VerifiedItem> {
  const at = { ...base, blob: layer.digest, kind: 'signature' as const };
  try {
    const signature = layer.annotations?.[Cosign.SignatureAnnotation];
    if (!signature) return { ...at, ok: false, reason: `the layer has no ${Cosign.SignatureAnnotation} annotation` };
    const payload = await readVerified(site.target, layer, `signature payload ${layer.digest}`, MAX_SIGNATURE_BLOB);
    if (!keys.some((k) => verifyBytes(k, payload, Buffer.from(signature, 'base64')))) {
      return { ...at, ok: false, reason: 'the signature does not verify with the given key (signed with another key, or altered)' };
    }
    const { digest } = parseSimpleSigning(payload, `signature payload ${layer.digest}`);
    if (digest !== subject.digest) return { ...at, ok: false, reason: `it is for ${digest}, not ${subject.digest}` };
    return { ...at, ok: true };
  } catch (err) {
    return { ...at, ok: false, reason: reasonOf(err) };
  }
}

function reasonOf(err: unknown): string {
  if (isKitError(err)) return err.message;
  return (err as Error)?.message ?? String(err);
}

/**
 * The `--verify-key` check of `kit pull` and `kit unpack`: loads the public keys, and refuses
 * (VERIFY_FAILED) an artifact that carries no valid signature for one of them.
 */
export async function signatureGate(keyFiles: string[], display?: string): Promise<(source: Target, subject: Descriptor) => Promise<void>> {
  const keys = await Promise.all(keyFiles.map((f) => loadPublicKey(f)));
  return async (source, subject) => {
    await verifyArtifact(attachmentSite(source), subject.digest, { keys, ...(display !== undefined ? { display } : {}) });
  };
}
