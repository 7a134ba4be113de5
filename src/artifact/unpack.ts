import { lstat, mkdir, rename, rm, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { KitError, ExitCode } from '../errors.js';
import type { Target } from '../oci/target.js';
import { VerifyingStream } from '../oci/verify.js';
import { extractTarLayer, safeJoin, writeRawFile, type ExistingPolicy } from '../layers/extract.js';
import { encodingCompression } from './media-types.js';
import { loadArtifact, type ArtifactLayer, type LoadedArtifact } from './read.js';
import { parseFilters, selectsKitfile, selectsLayer } from './filter.js';
import { isWithin, kitfileEntries } from './plan.js';

export interface UnpackOptions {
  source: Target;
  ref: string;
  /** Folder to restore into; created when missing. */
  dest: string;
  filters: string[];
  existing: ExistingPolicy;
  onEvent?: (e: UnpackEvent) => void;
}

export type UnpackEvent =
  | { type: 'layer-start'; index: number; total: number; path: string; bytes: number }
  | { type: 'layer-progress'; index: number; bytes: number }
  | { type: 'layer-done'; index: number; path: string };

export interface UnpackResult {
  digest: string;
  dest: string;
  layers: Array<{ path: string; digest: string; size: number }>;
  kitfile: boolean;
}

/** Room for honest compression (text compresses ~10x) but not for a bomb. */
const INFLATE_RATIO = 100;
const INFLATE_SLACK = 64 * 1024 * 1024;

export async function unpack(opts: UnpackOptions): Promise<UnpackResult> {
  const filters = parseFilters(opts.filters);
  const artifact = await loadArtifact(opts.source, opts.ref);
  const selected = selectLayers(artifact, filters);
  const withKitfile = selectsKitfile(filters);

  // Everything that can be refused is refused before the first byte is written.
  for (const l of selected) safeJoin(opts.dest, l.path);
  await refuseExisting(opts, selected, withKitfile);

  await mkdir(opts.dest, { recursive: true });
  for (const [index, layer] of selected.entries()) {
    opts.onEvent?.({ type: 'layer-start', index, total: selected.length, path: layer.path, bytes: layer.descriptor.size });
    await unpackLayer(opts, layer, (bytes) => opts.onEvent?.({ type: 'layer-progress', index, bytes }));
    opts.onEvent?.({ type: 'layer-done', index, path: layer.path });
  }
  if (withKitfile) await writeKitfile(opts, artifact.kitfileText);
  return {
    digest: artifact.descriptor.digest,
    dest: opts.dest,
    layers: selected.map((l) => ({ path: l.path, digest: l.descriptor.digest, size: l.descriptor.size })),
    kitfile: withKitfile,
  };
}

function selectLayers(a: LoadedArtifact, filters: ReturnType<typeof parseFilters>): ArtifactLayer[] {
  const entries = kitfileEntries(a.kitfile);
  return a.layers.filter((l) => {
    const owner = entries.filter((e) => isWithin(l.path, e.path)).sort((x, y) => y.path.length - x.path.length)[0];
    return selectsLayer(filters, l.section, l.entryName, l.path, owner?.path ?? l.path);
  });
}

async function exists(p: string): Promise<boolean> {
  return lstat(p).then(
    () => true,
    () => false,
  );
}

/** With the default policy, files already at a raw layer's path or the Kitfile stop the unpack up front. */
async function refuseExisting(opts: UnpackOptions, layers: ArtifactLayer[], withKitfile: boolean): Promise<void> {
  if (opts.existing !== 'error') return;
  const paths = layers.filter((l) => l.encoding === 'raw').map((l) => l.path);
  if (withKitfile) paths.push('Kitfile');
  for (const p of paths) {
    if (await exists(safeJoin(opts.dest, p))) {
      throw new KitError('FILE_EXISTS', `${join(opts.dest, p)} already exists`, {
        hint: 'pass --overwrite to replace existing files or --ignore-existing to keep them',
        exitCode: ExitCode.conflict,
      });
    }
  }
}

async function unpackLayer(opts: UnpackOptions, layer: ArtifactLayer, onProgress: (bytes: number) => void): Promise<void> {
  const d = layer.descriptor;
  const source = await opts.source.fetch(d);
  const verified = new VerifyingStream({ digest: d.digest, size: d.size }, `layer ${layer.path} (${d.digest})`);
  const input = source.pipe(verified);
  source.on('error', (e) => verified.destroy(e));
  if (layer.encoding === 'raw') {
    await writeRawFile(input, layer.path, { dest: opts.dest, existing: opts.existing, ...(layer.mode !== undefined ? { mode: layer.mode } : {}), onProgress });
    return;
  }
  const compression = encodingCompression(layer.encoding);
  const maxBytes = compression === 'none' ? d.size : d.size * INFLATE_RATIO + INFLATE_SLACK;
  await extractTarLayer(input, { dest: opts.dest, existing: opts.existing, compression, maxBytes, onProgress });
}

async function writeKitfile(opts: UnpackOptions, text: string): Promise<void> {
  const target = join(opts.dest, 'Kitfile');
  if (opts.existing === 'skip' && (await exists(target))) return;
  const tmp = `${target}.kit-${process.pid}.tmp`;
  try {
    await writeFile(tmp, text.endsWith('\n') ? text : `${text}\n`, { mode: 0o644 });
    await rename(tmp, target);
  } catch (e) {
    await rm(tmp, { force: true });
    throw e;
  }
}
