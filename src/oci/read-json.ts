import { KitError } from '../errors.js';
import { sha256 } from './digest.js';
import { MAX_MANIFEST_BYTES, type Descriptor } from './descriptor.js';
import type { Target } from './target.js';

/**
 * Read a small blob (manifest, config) whole from any target: refuses content over the cap
 * before reading it, and content whose size or digest differs from the descriptor.
 */
export async function readSmallBlob(target: Target, desc: Descriptor, what: string, maxBytes = MAX_MANIFEST_BYTES): Promise<Buffer> {
  if (desc.size > maxBytes) {
    throw new KitError('BLOB_TOO_LARGE', `${what} ${desc.digest} is ${desc.size} bytes, over the ${maxBytes}-byte limit`, {
      hint: 'the artifact is malformed or hostile; it was not read',
    });
  }
  const stream = await target.fetch(desc);
  const chunks: Buffer[] = [];
  let total = 0;
  for await (const chunk of stream as AsyncIterable<Buffer>) {
    total += chunk.length;
    if (total > desc.size) {
      stream.destroy();
      throw new KitError('SIZE_MISMATCH', `${what} ${desc.digest} is longer than its declared ${desc.size} bytes`);
    }
    chunks.push(chunk);
  }
  const buf = Buffer.concat(chunks);
  if (buf.length !== desc.size) throw new KitError('SIZE_MISMATCH', `${what} ${desc.digest} is ${buf.length} bytes, expected ${desc.size}`);
  if (sha256(buf) !== desc.digest) throw new KitError('DIGEST_MISMATCH', `${what} does not match its digest ${desc.digest}`);
  return buf;
}

export function parseJsonBlob<T = unknown>(bytes: Buffer, desc: Descriptor, what: string): T {
  try {
    return JSON.parse(bytes.toString('utf8')) as T;
  } catch (e) {
    throw new KitError('JSON_INVALID', `${what} ${desc.digest} is not valid JSON: ${(e as Error).message}`);
  }
}

/** readSmallBlob, parsed as JSON. */
export async function readJsonBlob<T = unknown>(target: Target, desc: Descriptor, what: string, maxBytes = MAX_MANIFEST_BYTES): Promise<T> {
  return parseJsonBlob<T>(await readSmallBlob(target, desc, what, maxBytes), desc, what);
}
