import { createReadStream } from 'node:fs';
import { lstat, mkdir, readFile, readdir, rename, rm, writeFile } from 'node:fs/promises';
import { dirname, join } from 'node:path';
import { KitError, ExitCode } from '../errors.js';
import type { Descriptor } from '../oci/descriptor.js';
import { hasherDigest, newHasher } from '../oci/digest.js';
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
  /**
   * Supply chain (`kit unpack --verify-key`): called with the source and the resolved manifest
   * before anything is read or written; throwing refuses the artifact. The unpack then goes by
   * that digest, so a tag moved in between changes nothing.
   */
  verify?: (source: Target, subject: Descriptor) => Promise<void>;
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
  let ref = opts.ref;
  if (opts.verify) {
    const subject = await opts.source.resolve(ref);
    await opts.verify(opts.source, subject);
    ref = subject.digest;
  }
  const artifact = await loadArtifact(opts.source, ref);
  const selected = selectLayers(artifact, filters);
  const withKitfile = selectsKitfile(filters);

  // Everything that can be refused is refused before the first byte is written.
  for (const l of selected) safeJoin(opts.dest, l.path);
  // A re-run (after a kill, or of a finished unpack) finds files it wrote before: a raw layer
  // whose file already holds exactly its bytes is done, neither fetched nor written again.
  const done = new Set<ArtifactLayer>();
  for (const l of selected) if (opts.existing !== 'skip' && (await holdsRawLayer(opts.dest, l))) done.add(l);
  const kitfileDone = withKitfile && (await holdsText(join(opts.dest, 'Kitfile'), kitfileContent(artifact.kitfileText)));
  await refuseExisting(opts, selected.filter((l) => !done.has(l)), withKitfile && !kitfileDone);

  await mkdir(opts.dest, { recursive: true });
  const started = Date.now();
  for (const [index, layer] of selected.entries()) {
    opts.onEvent?.({ type: 'layer-start', index, total: selected.length, path: layer.path, bytes: layer.descriptor.size });
    if (done.has(layer)) opts.onEvent?.({ type: 'layer-progress', index, bytes: layer.descriptor.size });
    else await unpackLayer(opts, layer, (bytes) => opts.onEvent?.({ type: 'layer-progress', index, bytes }));
    opts.onEvent?.({ type: 'layer-done', index, path: layer.path });
  }
  if (withKitfile && !kitfileDone) await writeKitfile(opts, artifact.kitfileText);
  await removeStaleTemps(opts.dest, selected, started);
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
/** True when `dest` already holds a raw layer's file with exactly its bytes (hashed only when the size matches). */
async function holdsRawLayer(dest: string, layer: ArtifactLayer): Promise<boolean> {
  if (layer.encoding !== 'raw') return false;
  const path = safeJoin(dest, layer.path);
  const st = await lstat(path).catch(() => undefined);
  if (!st?.isFile() || st.size !== layer.descriptor.size) return false;
  const hasher = newHasher();
  // Large blocks: this may be tens of gigabytes of weights.
  for await (const chunk of createReadStream(path, { highWaterMark: 1024 * 1024 })) hasher.update(chunk as Buffer);
  return hasherDigest(hasher) === layer.descriptor.digest;
}

async function holdsText(path: string, text: string): Promise<boolean> {
  const st = await lstat(path).catch(() => undefined);
  if (!st?.isFile() || st.size !== Buffer.byteLength(text)) return false;
  return (await readFile(path, 'utf8')) === text;
}

const kitfileContent = (text: string): string => (text.endsWith('\n') ? text : `${text}\n`);

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

/**
 * Temp files an earlier unpack left when it was killed (files are written to a temp name
 * beside their final path, then renamed): `.kit-partial-*` (layers/extract.ts) and
 * `Kitfile.kit-<pid>.tmp`. Only in the folders this artifact's layers occupy, and only those
 * not written to since this unpack started, so a concurrent unpack's are left alone.
 */
async function removeStaleTemps(dest: string, layers: ArtifactLayer[], before: number): Promise<void> {
  const dirs = new Set<string>([dest]);
  const walk = async (dir: string): Promise<void> => {
    const entries = await readdir(dir, { withFileTypes: true }).catch(() => []);
    for (const e of entries) {
      if (e.isDirectory() && !dirs.has(join(dir, e.name))) {
        dirs.add(join(dir, e.name));
        await walk(join(dir, e.name));
      }
    }
  };
  for (const l of layers) {
    const abs = safeJoin(dest, l.path);
    dirs.add(dirname(abs));
    if (l.encoding !== 'raw') {
      dirs.add(abs);
      await walk(abs);
    }
  }
  for (const dir of dirs) {
    const names = await readdir(dir).catch(() => [] as string[]);
    for (const name of names) {
      if (!name.startsWith('.kit-partial-') && !/^Kitfile\.kit-\d+\.tmp$/.test(name)) continue;
      const st = await lstat(join(dir, name)).catch(() => undefined);
      if (st?.isFile() && st.mtimeMs < before) await rm(join(dir, name), { force: true }).catch(() => undefined);
    }
  }
}

async function writeKitfile(opts: UnpackOptions, text: string): Promise<void> {
  const target = join(opts.dest, 'Kitfile');
  if (opts.existing === 'skip' && (await exists(target))) return;
  const tmp = `${target}.kit-${process.pid}.tmp`;
  try {
    await writeFile(tmp, kitfileContent(text), { mode: 0o644 });
    await rename(tmp, target);
  } catch (e) {
    await rm(tmp, { force: true });
    throw e;
  }
}
