import { createHash, createPrivateKey, createPublicKey, generateKeyPairSync, sign as cryptoSign, verify as cryptoVerify, type KeyObject } from 'node:crypto';
import { readFile } from 'node:fs/promises';
import { ExitCode, KitError, errnoCode } from '../errors.js';
import { decryptWithPassword, encryptWithPassword } from './encrypted.js';

/**
 * Keys in cosign's format: ECDSA P-256 key pairs, the private key PKCS#8 DER encrypted with a
 * password (encrypted.ts) in a PEM block `ENCRYPTED SIGSTORE PRIVATE KEY` (older cosign:
 * `ENCRYPTED COSIGN PRIVATE KEY`), the public key PKIX (SubjectPublicKeyInfo) in `PUBLIC KEY`.
 * Keys cosign made with other algorithms (P-384, P-521, RSA) are read too; plain PKCS#8 / SEC1
 * PEM private keys are accepted as they are.
 */

export const PEM_SIGSTORE_PRIVATE = 'ENCRYPTED SIGSTORE PRIVATE KEY';
export const PEM_COSIGN_PRIVATE = 'ENCRYPTED COSIGN PRIVATE KEY';
export const PEM_PUBLIC = 'PUBLIC KEY';

/** Asked only when the key is encrypted. */
export type PasswordSource = () => Promise<string>;

export interface GeneratedKeyPair {
  privatePem: string;
  publicPem: string;
  publicKey: KeyObject;
}

/** A new ECDSA P-256 key pair, the private key encrypted under `password` (scrypt N=65536 r=8 p=1). */
export async function generateKeyPair(password: string): Promise<GeneratedKeyPair> {
  const { privateKey, publicKey } = generateKeyPairSync('ec', { namedCurve: 'P-256' });
  return { privatePem: await encryptPrivateKey(privateKey, password), publicPem: publicKeyPem(publicKey), publicKey };
}

export async function encryptPrivateKey(key: KeyObject, password: string): Promise<string> {
  const der = key.export({ type: 'pkcs8', format: 'der' });
  try {
    return pemEncode(PEM_SIGSTORE_PRIVATE, await encryptWithPassword(der, password));
  } finally {
    der.fill(0);
  }
}

export function publicKeyPem(key: KeyObject): string {
  return pemEncode(PEM_PUBLIC, key.export({ type: 'spki', format: 'der' }));
}

/** Reads a private key file (encrypted cosign/sigstore PEM, or plain PEM). */
export async function loadPrivateKey(path: string, password: PasswordSource): Promise<KeyObject> {
  return parsePrivateKey(await readKeyFile(path, 'private key'), password, path);
}

export async function parsePrivateKey(text: string, password: PasswordSource, where = 'the private key'): Promise<KeyObject> {
  const block = pemDecode(text, where);
  let key: KeyObject;
  if (block.type === PEM_SIGSTORE_PRIVATE || block.type === PEM_COSIGN_PRIVATE) {
    const der = await decryptWithPassword(block.bytes, await password(), where);
    try {
      key = createPrivateKey({ key: der, format: 'der', type: 'pkcs8' });
    } catch (err) {
      throw keyInvalid(where, `the decrypted key is not PKCS#8 (${(err as Error).message})`);
    } finally {
      der.fill(0);
    }
  } else if (block.type === 'PRIVATE KEY' || block.type === 'EC PRIVATE KEY' || block.type === 'RSA PRIVATE KEY') {
    try {
      key = createPrivateKey(text);
    } catch (err) {
      throw keyInvalid(where, (err as Error).message);
    }
  } else if (block.type === PEM_PUBLIC) {
    throw keyInvalid(where, 'it is a public key; signing needs the private key (cosign.key)');
  } else {
    throw keyInvalid(where, `unsupported PEM type "${block.type}"`);
  }
  signatureHash(key, where); // refuse unsupported algorithms now, not at the first signature
  return key;
}

/** Reads a public key file (PKIX `PUBLIC KEY` PEM, as cosign writes cosign.pub). */
export async function loadPublicKey(path: string): Promise<KeyObject> {
  return parsePublicKey(await readKeyFile(path, 'public key'), path);
}

export function parsePublicKey(text: string, where = 'the public key'): KeyObject {
  const block = pemDecode(text, where);
  if (block.type !== PEM_PUBLIC) {
    throw keyInvalid(where, block.type.includes('PRIVATE') ? 'it is a private key; verification needs the public key (cosign.pub)' : `unsupported PEM type "${block.type}"`);
  }
  let key: KeyObject;
  try {
    key = createPublicKey({ key: block.bytes, format: 'der', type: 'spki' });
  } catch (err) {
    throw keyInvalid(where, (err as Error).message);
  }
  signatureHash(key, where);
  return key;
}

/** The public half of a private key. */
export function publicOf(key: KeyObject): KeyObject {
  return key.type === 'public' ? key : createPublicKey(key);
}

/**
 * The key hint of a sigstore bundle's `verificationMaterial.publicKey`: base64 of the SHA-256 of
 * the key's PKIX DER encoding (what sigstore-go and cosign put there).
 */
export function keyHint(key: KeyObject): string {
  return createHash('sha256').update(publicOf(key).export({ type: 'spki', format: 'der' })).digest('base64');
}

/**
 * The hash a signature with this key uses, as sigstore's defaults have it: ECDSA P-256 SHA-256,
 * P-384 SHA-384, P-521 SHA-512, RSA (PKCS#1 v1.5) SHA-256. Ed25519 is refused: cosign signs
 * with Ed25519ph there, which Node cannot produce.
 */
export function signatureHash(key: KeyObject, where = 'the key'): 'sha256' | 'sha384' | 'sha512' {
  if (key.asymmetricKeyType === 'ec') {
    switch (key.asymmetricKeyDetails?.namedCurve) {
      case 'prime256v1':
        return 'sha256';
      case 'secp384r1':
        return 'sha384';
      case 'secp521r1':
        return 'sha512';
      default:
        throw keyInvalid(where, `ECDSA curve ${key.asymmetricKeyDetails?.namedCurve ?? 'unknown'} is not supported (P-256, P-384, P-521 are)`);
    }
  }
  if (key.asymmetricKeyType === 'rsa') {
    const bits = key.asymmetricKeyDetails?.modulusLength ?? 0;
    if (bits < 2048 || bits > 4096) throw keyInvalid(where, `RSA keys of ${bits} bits are not supported (2048 to 4096 are)`);
    return 'sha256';
  }
  throw keyInvalid(where, `${key.asymmetricKeyType ?? 'unknown'} keys are not supported (ECDSA and RSA are)`);
}

/** A signature over `data` (ECDSA: ASN.1 DER, as cosign and DSSE have it). */
export function signBytes(key: KeyObject, data: Uint8Array): Buffer {
  return cryptoSign(signatureHash(key), data, key);
}

export function verifyBytes(key: KeyObject, data: Uint8Array, signature: Uint8Array): boolean {
  try {
    return cryptoVerify(signatureHash(key), data, publicOf(key), signature);
  } catch {
    return false; // a malformed signature is a failed one
  }
}

// ------------------------------------------------------------------ PEM

export function pemEncode(type: string, bytes: Uint8Array): string {
  const b64 = Buffer.from(bytes).toString('base64');
  const lines = b64.match(/.{1,64}/g) ?? [];
  return `-----BEGIN ${type}-----\n${lines.join('\n')}\n-----END ${type}-----\n`;
}

export function pemDecode(text: string, where: string): { type: string; bytes: Buffer } {
  const m = /-----BEGIN ([A-Z0-9 ]+)-----\r?\n([\s\S]*?)-----END \1-----/.exec(text);
  if (!m) throw keyInvalid(where, 'it is not a PEM file');
  const body = m[2]!.split(/\r?\n/).filter((l) => l !== '' && !l.includes(':')).join('');
  if (!/^[A-Za-z0-9+/=]*$/.test(body)) throw keyInvalid(where, 'its PEM body is not base64');
  return { type: m[1]!, bytes: Buffer.from(body, 'base64') };
}

async function readKeyFile(path: string, what: string): Promise<string> {
  try {
    const buf = await readFile(path);
    if (buf.length > 64 * 1024) throw keyInvalid(path, `the file is ${buf.length} bytes, too large for a key`);
    return buf.toString('utf8');
  } catch (err) {
    if (err instanceof KitError) throw err;
    if (errnoCode(err) === 'ENOENT') {
      throw new KitError('KEY_NOT_FOUND', `${what} ${path} does not exist`, {
        hint: 'make a key pair with `kit key generate` (or `cosign generate-key-pair`)',
        exitCode: ExitCode.notFound,
      });
    }
    throw new KitError('KEY_UNREADABLE', `cannot read ${what} ${path}: ${(err as Error).message}`, { cause: err });
  }
}

function keyInvalid(where: string, why: string): KitError {
  return new KitError('KEY_INVALID', `cannot use ${where}: ${why}`, {
    hint: 'use a key pair made by `kit key generate` or `cosign generate-key-pair`',
    exitCode: ExitCode.usage,
  });
}
