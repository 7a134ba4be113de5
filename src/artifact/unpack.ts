import { lstat, mkdir, readFile, readdir, rename, rm, writeFile } from 'node:fs/promises';
import { dirname, join } from 'node:path';
import { KitError, ExitCode } from '../errors.js';
import type { Descriptor } from '../oci/descriptor.js';
import { hasherDigest, newHasher } from '../oci/digest.js';
import { hashFileInto } from '../io/read-ahead.js';
import type { Target } from '../oci/target.js';
import { VerifyingStream } from '../oci/verify.js';
import { copyRawFile, extractTarLayer, safeJoin, writeRawFile, type ExistingPolicy } from '../layers/extract.js';
import { encodingCompression } from './media-types.js';
import { FallbackTarget, type BlobSource } from '../oci/fallback-target.js';
import { describeArtifact, loadArtifact, type ArtifactLayer, type LoadedArtifact } from './read.js';
import { inheritedModelLayers, parentLink, resolveAncestors, type Ancestor, type OpenParent } from './lineage.js';
import { isModelLayerType } from './media-types.js';
import { parseFilters, selectsKitfile, selectsLayer } from './filter.js';
import { isWithin, kitfileEntries } from './plan.js';

export interface UnpackOptions {
  source: Target;
  ref: string;
  /** The artifact as the user named it, for messages (default: `ref`). */
  name?: string;
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
  /**
   * Re-hash the local store's blobs while restoring them (`--verify-blobs`). Off by default:
   * the store verified every blob when it stored it and keeps it read-only; `kit store verify`
   * checks a whole store. Content from a registry is always verified.
   */
  rehashStoredBlobs?: boolean;
  /**
   * Follows model.path references (artifacts built on other artifacts): where the parents'
   * manifests and configs are read, and where the layers taken from them are fetched when
   * `source` lacks them. The parent's model files are restored with the artifact's own.
   */
  parents?: { open: OpenParent; blobSources: (references: string[]) => BlobSource[]; hint?: string };
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

/** Raw layers restored from the local store at once. */
const PARALLEL_COPIES = 3;

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
  const ancestors = opts.parents
    ? await resolveAncestors({ name: opts.name ?? opts.ref, digest: artifact.descriptor.digest, link: parentLink(artifact, opts.name ?? opts.ref) }, opts.parents.open)
    : [];
  const blobs = ancestors.length > 0 ? new FallbackTarget(opts.source, opts.parents!.blobSources(ancestors.map((a) => a.reference)), opts.name ?? opts.ref, opts.parents!.hint) : opts.source;
  const selected = selectLayers(artifact, withInheritedLayers(artifact, ancestors), filters);
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
  // Raw layers from this machine's store are kernel copies of distinct files: a few at once
  // keep the disk busy (measured on 1 GiB in five files, cold: 1.14-1.52 s one at a time,
  // 0.79-1.16 s all at once). Any other layer waits for them and runs alone, in order.
  const copies = new Set<Promise<void>>();
  let failed: { err: unknown } | undefined;
  const settle = async (): Promise<void> => {
    await Promise.all(copies);
    if (failed) throw failed.err;
  };
  for (const [index, layer] of selected.entries()) {
    const restore = async (): Promise<void> => {
      opts.onEvent?.({ type: 'layer-start', index, total: selected.length, path: layer.path, bytes: layer.descriptor.size });
      if (done.has(layer)) opts.onEvent?.({ type: 'layer-progress', index, bytes: layer.descriptor.size });
      else await unpackLayer(opts, blobs, layer, (bytes) => opts.onEvent?.({ type: 'layer-progress', index, bytes }));
      opts.onEvent?.({ type: 'layer-done', index, path: layer.path });
    };
    if (!(layer.encoding === 'raw' && hasLocalBlobs(blobs))) {
      await settle();
      await restore();
      continue;
    }
    const copy: Promise<void> = restore()
      .catch((err: unknown) => {
        failed ??= { err };
      })
      .finally(() => copies.delete(copy));
    copies.add(copy);
    if (copies.size >= PARALLEL_COPIES) await Promise.race(copies);
    if (failed) break;
  }
  await settle();
  if (withKitfile && !kitfileDone) await writeKitfile(opts, artifact.kitfileText);
  await removeStaleTemps(opts.dest, selected, started);
  return {
    digest: artifact.descriptor.digest,
    dest: opts.dest,
    layers: selected.map((l) => ({ path: l.path, digest: l.descriptor.digest, size: l.descriptor.size })),
    kitfile: withKitfile,
  };
}

function selectLayers(a: LoadedArtifact, layers: ArtifactLayer[], filters: ReturnType<typeof parseFilters>): ArtifactLayer[] {
  const entries = kitfileEntries(a.kitfile);
  return layers.filter((l) => {
    const owner = entries.filter((e) => isWithin(l.path, e.path)).sort((x, y) => y.path.length - x.path.length)[0];
    return selectsLayer(filters, l.section, l.entryName, l.path, owner?.path ?? l.path);
  });
}

/**
 * The layers to restore for an artifact built on others: its own, each model layer placed as
 * the ancestor that packed it describes it (a KitOps layer's path is in that ancestor's config
 * only), then the ancestors' model layers it does not list (a ModelKit made by KitOps holds none
 * of its parent's; kit lists them all).
 */
function withInheritedLayers(a: LoadedArtifact, ancestors: Ancestor[]): ArtifactLayer[] {
  if (ancestors.length === 0) return a.layers;
  const origin = new Map<string, ArtifactLayer>();
  for (const ancestor of [...ancestors].reverse()) {
    for (const l of describeArtifact(ancestor.head, ancestor.reference).layers) if (!origin.has(l.descriptor.digest)) origin.set(l.descriptor.digest, l);
  }
  const own = a.layers.map((l) => {
    const o = isModelLayerType(l.descriptor.mediaType) ? origin.get(l.descriptor.digest) : undefined;
    return o ? { ...o, descriptor: l.descriptor } : l;
  });
  const listed = new Set(a.layers.map((l) => l.descriptor.digest));
  const missing = inheritedModelLayers(ancestors).filter((l) => !listed.has(l.descriptor.digest)).map((l) => origin.get(l.descriptor.digest)!);
  return [...missing, ...own];
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
  // Large blocks, several in flight: this may be tens of gigabytes of weights.
  await hashFileInto(hasher, path);
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

async function unpackLayer(opts: UnpackOptions, blobs: Target, layer: ArtifactLayer, onProgress: (bytes: number) => void): Promise<void> {
  const d = layer.descriptor;
  if (layer.encoding === 'raw' && hasLocalBlobs(blobs)) {
    // A blob of this machine's store: the kernel copies it (see copyRawFile for what is checked).
    const path = await blobs.localBlobPath(d);
    if (path) {
      await copyRawFile({ path, digest: d.digest, size: d.size }, layer.path, { dest: opts.dest, existing: opts.existing, ...(layer.mode !== undefined ? { mode: layer.mode } : {}), rehash: opts.rehashStoredBlobs === true, onProgress });
      return;
    }
  }
  const source = await blobs.fetch(d);
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

interface LocalBlobs extends Target {
  localBlobPath(desc: Descriptor): Promise<string | undefined>;
}
const hasLocalBlobs = (t: Target): t is LocalBlobs => typeof (t as Partial<LocalBlobs>).localBlobPath === 'function';

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
