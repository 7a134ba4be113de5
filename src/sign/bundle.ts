import type { KeyObject } from 'node:crypto';
import { KitError } from '../errors.js';
import { keyHint } from './keys.js';
import { parseEnvelope, type DsseEnvelope } from './dsse.js';
import { Sigstore } from './media.js';

/**
 * The sigstore bundle v0.3 (protobuf-specs `dev.sigstore.bundle.v1.Bundle`, JSON form) as kit
 * writes it for a key-based signature: the public key named by its hint, no transparency-log
 * entry and no timestamp (kit works offline; `cosign verify --insecure-ignore-tlog` and
 * @sigstore/verify with thresholds 0 accept that), and a DSSE envelope as content.
 */

export interface SigstoreBundle {
  mediaType: string;
  verificationMaterial: {
    publicKey?: { hint: string };
    certificate?: unknown;
    x509CertificateChain?: unknown;
    tlogEntries: unknown[];
    timestampVerificationData?: { rfc3161Timestamps: unknown[] };
  };
  dsseEnvelope?: DsseEnvelope;
  messageSignature?: unknown;
}

export function buildBundle(key: KeyObject, envelope: DsseEnvelope): SigstoreBundle {
  return {
    mediaType: Sigstore.BundleV03,
    verificationMaterial: {
      publicKey: { hint: keyHint(key) },
      tlogEntries: [],
      timestampVerificationData: { rfc3161Timestamps: [] },
    },
    dsseEnvelope: envelope,
  };
}

export function bundleBytes(b: SigstoreBundle): Buffer {
  return Buffer.from(JSON.stringify(b), 'utf8');
}

const BUNDLE_TYPE = /^application\/vnd\.dev\.sigstore\.bundle(\.v0\.[123]\+json|\+json;version=0\.[123])$/;

/** A bundle from untrusted bytes, with its DSSE envelope; throws SIGNATURE_INVALID with the reason. */
export function parseBundle(bytes: Uint8Array, what: string): { bundle: SigstoreBundle; envelope: DsseEnvelope } {
  let v: unknown;
  try {
    v = JSON.parse(Buffer.from(bytes).toString('utf8'));
  } catch (err) {
    throw bad(what, `the bundle is not valid JSON (truncated or damaged: ${(err as Error).message})`);
  }
  const b = v as Partial<SigstoreBundle> | null;
  if (typeof b !== 'object' || b === null || Array.isArray(b)) throw bad(what, 'the bundle is not a JSON object');
  if (typeof b.mediaType !== 'string' || !BUNDLE_TYPE.test(b.mediaType)) throw bad(what, `unsupported bundle media type ${JSON.stringify(b.mediaType)}`);
  const vm = b.verificationMaterial;
  if (typeof vm !== 'object' || vm === null) throw bad(what, 'the bundle has no verificationMaterial');
  if (b.dsseEnvelope === undefined) {
    throw bad(what, b.messageSignature !== undefined ? 'the bundle holds a message signature, not a DSSE envelope (kit verifies DSSE bundles)' : 'the bundle has no DSSE envelope');
  }
  if (vm.publicKey === undefined) {
    throw bad(what, vm.certificate !== undefined || vm.x509CertificateChain !== undefined ? 'the bundle is signed with a certificate (keyless); kit verifies key-based signatures' : 'the bundle names no public key');
  }
  return { bundle: b as SigstoreBundle, envelope: parseEnvelope(b.dsseEnvelope, what) };
}

function bad(what: string, why: string): KitError {
  return new KitError('SIGNATURE_INVALID', `${what}: ${why}`);
}
