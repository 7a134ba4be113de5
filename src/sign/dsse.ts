import type { KeyObject } from 'node:crypto';
import { KitError } from '../errors.js';
import { digestHex, type Digest } from '../oci/digest.js';
import { signBytes, verifyBytes } from './keys.js';
import { InToto } from './media.js';

/**
 * DSSE (Dead Simple Signing Envelope, secure-systems-lab/dsse v1) and the in-toto Statement it
 * carries. The signature covers the pre-authentication encoding (PAE) of the payload type and
 * the payload bytes, never the base64 text, so what is verified is exactly what is parsed.
 */

export interface DsseEnvelope {
  payloadType: string;
  /** base64 of the payload bytes. */
  payload: string;
  signatures: Array<{ sig: string; keyid?: string }>;
}

export interface InTotoSubject {
  name: string;
  digest: Record<string, string>;
}

export interface InTotoStatement {
  _type: string;
  subject: InTotoSubject[];
  predicateType: string;
  predicate: unknown;
}

/** PAE(type, body) = "DSSEv1" SP LEN(type) SP type SP LEN(body) SP body, lengths in bytes, decimal. */
export function preAuthEncoding(payloadType: string, payload: Uint8Array): Buffer {
  const type = Buffer.from(payloadType, 'utf8');
  return Buffer.concat([Buffer.from(`DSSEv1 ${type.length} `, 'utf8'), type, Buffer.from(` ${payload.length} `, 'utf8'), payload]);
}

export function signEnvelope(key: KeyObject, payloadType: string, payload: Uint8Array): DsseEnvelope {
  const sig = signBytes(key, preAuthEncoding(payloadType, payload));
  return { payloadType, payload: Buffer.from(payload).toString('base64'), signatures: [{ sig: sig.toString('base64') }] };
}

/** True when one of the envelope's signatures verifies with `key`. */
export function verifyEnvelope(key: KeyObject, env: DsseEnvelope): boolean {
  const pae = preAuthEncoding(env.payloadType, Buffer.from(env.payload, 'base64'));
  return env.signatures.some((s) => verifyBytes(key, pae, Buffer.from(s.sig, 'base64')));
}

/** An in-toto Statement v1 about one OCI artifact. */
export function statementFor(subject: { name: string; digest: Digest }, predicateType: string, predicate: unknown): InTotoStatement {
  return {
    _type: InToto.StatementV1,
    subject: [{ name: subject.name, digest: { sha256: digestHex(subject.digest) } }],
    predicateType,
    predicate,
  };
}

export function statementBytes(s: InTotoStatement): Buffer {
  return Buffer.from(JSON.stringify(s), 'utf8');
}

// ------------------------------------------------------------------ parsing (untrusted)

/** An envelope from parsed JSON; throws SIGNATURE_INVALID saying what is wrong. */
export function parseEnvelope(v: unknown, what: string): DsseEnvelope {
  const e = v as Partial<DsseEnvelope> | null;
  if (typeof e !== 'object' || e === null) throw bad(what, 'the DSSE envelope is not an object');
  if (typeof e.payloadType !== 'string') throw bad(what, 'the DSSE envelope has no payloadType');
  if (typeof e.payload !== 'string' || !isBase64(e.payload)) throw bad(what, 'the DSSE envelope has no base64 payload');
  if (!Array.isArray(e.signatures) || e.signatures.length === 0) throw bad(what, 'the DSSE envelope has no signatures');
  const signatures: DsseEnvelope['signatures'] = [];
  for (const s of e.signatures as unknown[]) {
    const sig = (s as { sig?: unknown } | null)?.sig;
    if (typeof sig !== 'string' || sig === '' || !isBase64(sig)) throw bad(what, 'a DSSE signature is not base64');
    signatures.push({ sig });
  }
  return { payloadType: e.payloadType, payload: e.payload, signatures };
}

/**
 * The statement in a verified envelope, checked for shape: an in-toto Statement (v1 or v0.1)
 * whose subjects carry sha256 digests.
 */
export function parseStatement(env: DsseEnvelope, what: string): InTotoStatement {
  if (env.payloadType !== InToto.PayloadType) throw bad(what, `the payload type is ${JSON.stringify(env.payloadType)}, not ${InToto.PayloadType}`);
  let v: unknown;
  try {
    v = JSON.parse(Buffer.from(env.payload, 'base64').toString('utf8'));
  } catch {
    throw bad(what, 'the signed payload is not JSON');
  }
  const s = v as Partial<InTotoStatement> | null;
  if (typeof s !== 'object' || s === null) throw bad(what, 'the signed payload is not an in-toto statement');
  if (s._type !== InToto.StatementV1 && s._type !== InToto.StatementV01) throw bad(what, `the statement type is ${JSON.stringify(s._type)}, not ${InToto.StatementV1}`);
  if (typeof s.predicateType !== 'string') throw bad(what, 'the statement has no predicateType');
  if (!Array.isArray(s.subject) || s.subject.length === 0) throw bad(what, 'the statement has no subject');
  return s as InTotoStatement;
}

/** Whether a statement names `digest` among its subjects. */
export function statementCovers(s: InTotoStatement, digest: Digest): boolean {
  const hex = digestHex(digest);
  return s.subject.some((sub) => typeof sub === 'object' && sub !== null && (sub.digest as Record<string, unknown> | undefined)?.['sha256'] === hex);
}

/** The sha256 digests a statement names, for messages. */
export function statementDigests(s: InTotoStatement): string[] {
  return s.subject.map((sub) => (sub?.digest as Record<string, unknown> | undefined)?.['sha256']).filter((d): d is string => typeof d === 'string').map((d) => `sha256:${d}`);
}

function isBase64(s: string): boolean {
  return /^[A-Za-z0-9+/]*={0,2}$/.test(s) || /^[A-Za-z0-9_-]*={0,2}$/.test(s);
}

function bad(what: string, why: string): KitError {
  return new KitError('SIGNATURE_INVALID', `${what}: ${why}`);
}
