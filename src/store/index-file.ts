import { readFile } from 'node:fs/promises';
import { KitError } from '../errors.js';
import { isDigest } from '../oci/digest.js';
import { MediaType, type ImageIndex } from '../oci/descriptor.js';

export function emptyIndex(): ImageIndex {
  return { schemaVersion: 2, mediaType: MediaType.ImageIndex, manifests: [] };
}

/**
 * index.json is written indented (2 spaces, trailing newline): it is not content addressed,
 * so its bytes matter to no digest, and people do read and diff it.
 */
export function serializeIndex(index: ImageIndex): string {
  return `${JSON.stringify(index, null, 2)}\n`;
}

/** Reads and checks index.json; a missing or malformed one is STORE_CORRUPT. */
export async function readIndexFile(path: string): Promise<ImageIndex> {
  let text: string;
  try {
    text = await readFile(path, 'utf8');
  } catch (err) {
    throw corrupt(path, `cannot be read (${(err as Error).message})`, err);
  }
  let value: unknown;
  try {
    value = JSON.parse(text);
  } catch (err) {
    throw corrupt(path, `is not valid JSON (${(err as Error).message})`, err);
  }
  const problem = indexProblem(value);
  if (problem) throw corrupt(path, problem);
  return value as ImageIndex;
}

/** What is wrong with a parsed index.json, or undefined. Unknown fields are kept, not refused. */
function indexProblem(value: unknown): string | undefined {
  if (!isObject(value)) return 'is not a JSON object';
  if (value['schemaVersion'] !== 2) return 'has no schemaVersion 2';
  const manifests = value['manifests'];
  if (!Array.isArray(manifests)) return 'has no manifests array';
  for (const [i, entry] of manifests.entries()) {
    const why = descriptorProblem(entry);
    if (why) return `has an invalid manifests[${i}]: ${why}`;
  }
  return undefined;
}

function descriptorProblem(d: unknown): string | undefined {
  if (!isObject(d)) return 'not an object';
  if (typeof d['mediaType'] !== 'string') return 'no mediaType';
  if (typeof d['digest'] !== 'string' || !isDigest(d['digest'])) return `digest ${JSON.stringify(d['digest'])} is not sha256`;
  if (!Number.isSafeInteger(d['size']) || (d['size'] as number) < 0) return 'size is not a non-negative integer';
  const ann = d['annotations'];
  if (ann !== undefined && (!isObject(ann) || Object.values(ann).some((v) => typeof v !== 'string'))) {
    return 'annotations are not a string map';
  }
  return undefined;
}

function isObject(v: unknown): v is Record<string, unknown> {
  return typeof v === 'object' && v !== null && !Array.isArray(v);
}

function corrupt(path: string, why: string, cause?: unknown): KitError {
  return new KitError('STORE_CORRUPT', `the store index ${path} ${why}`, {
    hint: 'restore index.json from a backup or fix it by hand (blobs are untouched); or set KIT_HOME to use another store',
    cause,
  });
}

