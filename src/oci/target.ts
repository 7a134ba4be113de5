import type { Readable } from 'node:stream';
import type { Descriptor } from './descriptor.js';

/**
 * Anything that holds content: the local store and a remote repository alike. push, pull,
 * cross-repository tag and `pack --push` are all one graph copy between two targets
 * (see transfer/copy.ts).
 */
export interface Target {
  /** Tag or digest -> manifest descriptor. Throws KitError NOT_FOUND when unknown. */
  resolve(ref: string): Promise<Descriptor>;
  exists(desc: Descriptor): Promise<boolean>;
  /** The raw bytes of a blob or manifest; the caller verifies them. */
  fetch(desc: Descriptor, opts?: { offset?: number }): Promise<Readable>;
  /** Stores content, verifying size and digest; a mismatch leaves nothing behind. */
  push(desc: Descriptor, content: Readable): Promise<void>;
  tag(desc: Descriptor, ref: string): Promise<void>;
}
