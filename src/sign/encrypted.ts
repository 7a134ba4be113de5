import { randomBytes, scrypt as scryptCb } from 'node:crypto';
import nacl from 'tweetnacl';
import { KitError } from '../errors.js';

/**
 * Password-based encryption in the format cosign stores its private keys in (sigstore's
 * `pkg/encrypted`, from go-securesystemslib): a JSON document
 *
 *   {"kdf":{"name":"scrypt","params":{"N":65536,"r":8,"p":1},"salt":"<32 bytes, base64>"},
 *    "cipher":{"name":"nacl/secretbox","nonce":"<24 bytes, base64>"},
 *    "ciphertext":"<base64>"}
 *
 * The key is scrypt(password, salt, N, r, p, 32 bytes); the ciphertext is NaCl secretbox
 * (XSalsa20-Poly1305) of the plaintext under that key and the nonce. Node has scrypt but not
 * XSalsa20-Poly1305, which comes from tweetnacl.
 */

export interface ScryptParams {
  N: number;
  r: number;
  p: number;
}

/** What kit writes: the "standard" strength of go-securesystemslib, what current cosign writes. */
export const SCRYPT_STANDARD: ScryptParams = { N: 65536, r: 8, p: 1 };

/**
 * What kit reads. A document names its own parameters, so an attacker could otherwise make a
 * reader spend unbounded memory and time: only the strengths the Go library writes are accepted
 * (legacy N=32768 from older cosign, standard 65536, OWASP 131072; r=8, p=1 always).
 */
const ACCEPTED_N = new Set([32768, 65536, 131072]);

const SALT_BYTES = 32;
const KEY_BYTES = 32;

export interface EncryptedDocument {
  kdf: { name: 'scrypt'; params: ScryptParams; salt: string };
  cipher: { name: 'nacl/secretbox'; nonce: string };
  ciphertext: string;
}

function deriveKey(password: Uint8Array, salt: Uint8Array, params: ScryptParams): Promise<Buffer> {
  // scrypt needs 128 * N * r bytes (64 MiB at N=65536): Node's default cap is 32 MiB.
  const maxmem = 128 * params.N * params.r * 2 + 1024 * 1024;
  return new Promise((resolve, reject) => {
    scryptCb(password, salt, KEY_BYTES, { N: params.N, r: params.r, p: params.p, maxmem }, (err, key) => (err ? reject(err) : resolve(key)));
  });
}

/** Encrypts `plaintext` under `password`; the JSON document, as bytes (what goes inside the PEM). */
export async function encryptWithPassword(plaintext: Uint8Array, password: string, params: ScryptParams = SCRYPT_STANDARD): Promise<Buffer> {
  const salt = randomBytes(SALT_BYTES);
  const nonce = randomBytes(nacl.secretbox.nonceLength);
  const key = await deriveKey(Buffer.from(password, 'utf8'), salt, params);
  const sealed = nacl.secretbox(plaintext, nonce, key);
  key.fill(0);
  const doc: EncryptedDocument = {
    kdf: { name: 'scrypt', params: { N: params.N, r: params.r, p: params.p }, salt: salt.toString('base64') },
    cipher: { name: 'nacl/secretbox', nonce: nonce.toString('base64') },
    ciphertext: Buffer.from(sealed).toString('base64'),
  };
  return Buffer.from(JSON.stringify(doc), 'utf8');
}

/** Decrypts a document made by `encryptWithPassword` or by cosign; a wrong password is KEY_PASSWORD_WRONG. */
export async function decryptWithPassword(document: Uint8Array, password: string, what = 'the private key'): Promise<Buffer> {
  const doc = parseDocument(document, what);
  const salt = Buffer.from(doc.kdf.salt, 'base64');
  const nonce = Buffer.from(doc.cipher.nonce, 'base64');
  if (nonce.length !== nacl.secretbox.nonceLength) throw invalid(what, `its nonce is ${nonce.length} bytes, not ${nacl.secretbox.nonceLength}`);
  const key = await deriveKey(Buffer.from(password, 'utf8'), salt, doc.kdf.params);
  const opened = nacl.secretbox.open(Buffer.from(doc.ciphertext, 'base64'), nonce, key);
  key.fill(0);
  if (opened === null) {
    throw new KitError('KEY_PASSWORD_WRONG', `cannot decrypt ${what}: wrong password (or the file is damaged)`, {
      hint: 'set KIT_PASSWORD (or COSIGN_PASSWORD) to the password the key was made with',
    });
  }
  return Buffer.from(opened);
}

function parseDocument(bytes: Uint8Array, what: string): EncryptedDocument {
  let v: unknown;
  try {
    v = JSON.parse(Buffer.from(bytes).toString('utf8'));
  } catch {
    throw invalid(what, 'its content is not the encrypted-key JSON document');
  }
  const d = v as Partial<EncryptedDocument> | null;
  const kdf = d?.kdf;
  const cipher = d?.cipher;
  if (!kdf || kdf.name !== 'scrypt') throw invalid(what, `unknown key derivation ${JSON.stringify(kdf?.name)}`);
  if (!cipher || cipher.name !== 'nacl/secretbox') throw invalid(what, `unknown cipher ${JSON.stringify(cipher?.name)}`);
  const p = kdf.params;
  if (!p || !ACCEPTED_N.has(p.N) || p.r !== 8 || p.p !== 1) {
    throw invalid(what, `unsupported scrypt parameters ${JSON.stringify(p)} (accepted: N of 32768, 65536 or 131072 with r=8, p=1)`);
  }
  if (typeof kdf.salt !== 'string' || typeof cipher.nonce !== 'string' || typeof d?.ciphertext !== 'string') {
    throw invalid(what, 'salt, nonce or ciphertext is missing');
  }
  return d as EncryptedDocument;
}

function invalid(what: string, why: string): KitError {
  return new KitError('KEY_INVALID', `cannot read ${what}: ${why}`, {
    hint: 'use a key made by `kit key generate` or `cosign generate-key-pair`',
  });
}
