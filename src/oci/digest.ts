import { createHash, type Hash } from 'node:crypto';
import { KitError } from '../errors.js';

/** A content digest, always `sha256:<64 lowercase hex>` in this tool. */
export type Digest = `sha256:${string}`;

const DIGEST_RE = /^sha256:[a-f0-9]{64}$/;
/** Any algorithm the OCI grammar allows, for recognising (and then refusing) others. */
const ANY_DIGEST_RE = /^[a-z0-9]+(?:[.+_-][a-z0-9]+)*:[a-zA-Z0-9=_-]+$/;

export function isDigest(s: string): s is Digest {
  return DIGEST_RE.test(s);
}

/** Parse untrusted text as a digest; refuses anything but well-formed sha256. */
export function parseDigest(s: string, context = 'digest'): Digest {
  if (isDigest(s)) return s;
  if (ANY_DIGEST_RE.test(s)) {
    throw new KitError('DIGEST_UNSUPPORTED', `${context} ${JSON.stringify(s)} uses an unsupported algorithm`, {
      hint: 'kit supports sha256 digests only',
    });
  }
  throw new KitError('DIGEST_INVALID', `${context} ${JSON.stringify(s)} is not a valid sha256 digest`);
}

export function digestHex(d: Digest): string {
  return d.slice('sha256:'.length);
}

export function sha256(data: string | Uint8Array): Digest {
  return `sha256:${createHash('sha256').update(data).digest('hex')}`;
}

export function newHasher(): Hash {
  return createHash('sha256');
}

export function hasherDigest(h: Hash): Digest {
  return `sha256:${h.digest('hex')}`;
}

/** First 12 hex characters, as `docker images` shows them. */
export function shortDigest(d: string): string {
  const i = d.indexOf(':');
  return d.slice(i + 1, i + 13);
}
