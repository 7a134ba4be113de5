import { createReadStream } from 'node:fs';
import { hasherDigest, newHasher, type Digest } from '../oci/digest.js';
import type { Descriptor } from '../oci/descriptor.js';
import type { Section } from '../artifact/media-types.js';
import type { PlannedLayer } from '../artifact/plan.js';

/** One file packed into the artifact, with its own sha256 (not its layer's). */
export interface InputFile {
  /** Relative to the context, posix. */
  path: string;
  sha256: Digest;
  size: number;
  section: Section;
  entryIndex: number;
  /** The layer it is in. */
  layer: Digest;
}

/**
 * The sha256 of every file packed. A raw layer is the file itself, so its digest is reused; the
 * files inside tar layers are read once more (only with `kit pack --provenance`).
 */
export async function hashInputs(layers: Array<{ planned: PlannedLayer; descriptor: Descriptor }>): Promise<InputFile[]> {
  const out: InputFile[] = [];
  for (const { planned, descriptor } of layers) {
    for (const entry of planned.entries) {
      if (entry.type !== 'file') continue;
      const sha256 = planned.encoding === 'raw' ? descriptor.digest : await hashFile(entry.absPath);
      out.push({ path: entry.path, sha256, size: entry.size, section: planned.section, entryIndex: planned.entryIndex, layer: descriptor.digest });
    }
  }
  return out.sort((a, b) => (a.path < b.path ? -1 : a.path > b.path ? 1 : 0));
}

async function hashFile(path: string): Promise<Digest> {
  const h = newHasher();
  for await (const chunk of createReadStream(path, { highWaterMark: 1 << 20 })) h.update(chunk as Buffer);
  return hasherDigest(h);
}
