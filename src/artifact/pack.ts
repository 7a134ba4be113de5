import { createWriteStream, type WriteStream } from 'node:fs';
import { Readable } from 'node:stream';
import { open, rm } from 'node:fs/promises';
import { KitError, ExitCode } from '../errors.js';
import { Annotation, MediaType, type Descriptor, type ImageManifest } from '../oci/descriptor.js';
import type { Digest } from '../oci/digest.js';
import { formatReference, parseReferenceWithDefaultTag } from '../oci/reference.js';
import { isArtifactReference, loadKitfile } from '../kitfile/load.js';
import { loadKitignore } from '../kitfile/ignore.js';
import type { Kitfile } from '../kitfile/schema.js';
import { writeTarLayer, type LayerResult } from '../layers/tar-writer.js';
import type { Compression } from '../layers/compression.js';
import type { LocalStore } from '../store/local-store.js';
import { writeError } from '../store/fs-util.js';
import { buildKitOpsConfig, buildModelPackConfig, rfc3339, type DescriptorExtras, type LayerInfo } from './configs.js';
import { KitAnnotation, KitOps, ModelPack, ModelPackAnnotation, kitOpsLayerType, modelPackLayerType, type ArtifactFormat, type LayerEncoding } from './media-types.js';
import { planLayers, type LayerFormat, type PlannedLayer } from './plan.js';
import { KIT_VERSION } from '../version.js';
import { copyRawLayer } from '../layers/raw-copy.js';
import { WRITE_BUFFER } from '../io/read-ahead.js';
import { retryWhenBlobsVanish } from '../store/blob-race.js';
import { FileDigestCache } from '../store/file-digests.js';
import type { RegistrySettings } from '../registry/types.js';
import type { OpenParent } from './lineage.js';
import { checkNoOverlap, inheritModelConfig, resolvePackParent, type PackParent } from './pack-parent.js';

export interface PackOptions {
  contextDir: string;
  /** -f: a Kitfile path, or '-' for stdin; discovered in contextDir when absent. */
  kitfile?: string;
  /** References as the user typed them. */
  tags: string[];
  format: ArtifactFormat;
  layerFormat: LayerFormat;
  compression: Compression;
  /** Where layers, config and manifest go: the local store, or a staging area for `pack --push`. */
  sink: PackSink;
  onEvent?: (e: PackEvent) => void;
  /**
   * Supply chain hook: called with what was packed once the manifest is written and tagged
   * (`kit pack --provenance` attaches its SLSA provenance and CycloneDX ML-BOM here, see
   * src/supplychain/attach.ts).
   */
  onPacked?: (packed: PackedArtifact) => Promise<void>;
  /**
   * Optional, for importers (`kit import`): extra manifest annotations (e.g.
   * `org.opencontainers.image.source` / `.revision`; kit's own annotations win on a clash) and
   * ModelPack config descriptor fields that have no place in the Kitfile.
   */
  annotations?: Record<string, string>;
  descriptorExtras?: DescriptorExtras;
  /**
   * When model.path names another artifact: where it is looked up (default: the local store,
   * then its registry with `settings`). Only manifests and configs are read.
   */
  openParent?: OpenParent;
  settings?: RegistrySettings;
}

/**
 * What pack writes into. The local store keeps everything; `pack --push` stages instead (raw
 * layers stay the project's own files, only tar layers are built to temporary files) and
 * copies the result to the registry.
 */
export interface PackSink {
  /** Build one layer, hashing it on the way, and keep it; `existed`: it was there already. */
  addLayer(layer: PlannedLayer, compression: Compression | 'raw', mtime: Date, onProgress: (bytes: number) => void): Promise<{ result: LayerResult; existed: boolean }>;
  addJson(value: unknown, mediaType: string): Promise<Descriptor>;
  /**
   * Keep a parent's manifest or config as it is (exact bytes). The local store needs them to
   * accept a child whose parent layers it lacks; a staging sink has no use for them.
   */
  addParentBlob?(desc: Descriptor, bytes: Buffer): Promise<void>;
  /** Tag the finished manifest (a staging sink records the references for the copy). */
  tag(desc: Descriptor, ref: string): Promise<void>;
  /** Called once the artifact is tagged (the store sink saves what it learned). */
  finish?(): Promise<void>;
}

export type PackEvent =
  | { type: 'plan'; layers: number; bytes: number }
  | { type: 'layer-start'; index: number; path: string; bytes: number }
  | { type: 'layer-progress'; index: number; bytes: number }
  | { type: 'layer-done'; index: number; path: string; digest: Digest; size: number; existed: boolean };

/** What the onPacked hook is told: enough to describe the artifact and every input of it. */
export interface PackedArtifact {
  descriptor: Descriptor;
  manifest: ImageManifest;
  kitfile: Kitfile;
  /** The Kitfile as read, and where from (`<stdin>` for -f -). */
  kitfileText: string;
  kitfileFile: string;
  contextDir: string;
  created: Date;
  tags: string[];
  format: ArtifactFormat;
  layerFormat: LayerFormat;
  compression: Compression;
  layers: Array<{ planned: PlannedLayer; descriptor: Descriptor }>;
  /** The artifact model.path names, when it builds on one (its layers come first in the manifest). */
  parent?: { reference: string; pinned: string; digest: Digest; layers: Descriptor[] };
}

export interface PackResult {
  digest: Digest;
  size: number;
  mediaType: string;
  tags: string[];
  format: ArtifactFormat;
  /** Every layer of the manifest; `inherited` ones are the parent's, listed but not copied. */
  layers: Array<{ path: string; mediaType: string; digest: Digest; size: number; inherited?: true }>;
  /** The artifact model.path names, and the ones it builds on in turn (nearest first). */
  parent?: { reference: string; pinned: string; digest: Digest; layers: number; bytes: number; ancestors: string[] };
}

/** The time recorded in the artifact: SOURCE_DATE_EPOCH when set (reproducible builds), else now. */
export function buildTime(env: NodeJS.ProcessEnv = process.env): Date {
  const raw = env.SOURCE_DATE_EPOCH;
  if (raw === undefined || raw === '') return new Date();
  if (!/^\d{1,12}$/.test(raw)) {
    throw new KitError('SOURCE_DATE_EPOCH_INVALID', `SOURCE_DATE_EPOCH=${JSON.stringify(raw)} is not a whole number of seconds`, {
      hint: 'set it to a Unix time, e.g. SOURCE_DATE_EPOCH=$(git log -1 --format=%ct)',
      exitCode: ExitCode.usage,
    });
  }
  return new Date(Number(raw) * 1000);
}

/** File times inside tar layers: fixed, so that unchanged content gives an unchanged layer. */
function layerTime(env: NodeJS.ProcessEnv = process.env): Date {
  return env.SOURCE_DATE_EPOCH ? buildTime(env) : new Date(0);
}

export async function pack(opts: PackOptions): Promise<PackResult> {
  if (opts.tags.length === 0) {
    throw new KitError('TAG_REQUIRED', 'no tag given for the artifact', { hint: 'pass -t registry/repo:tag', exitCode: ExitCode.usage });
  }
  const refs = opts.tags.map((t) => formatReference(parseReferenceWithDefaultTag(t)));
  const created = buildTime();
  const mtime = layerTime();
  const { kitfile, text, file: kitfileFile } = await loadKitfile({ contextDir: opts.contextDir, ...(opts.kitfile !== undefined ? { file: opts.kitfile } : {}) });
  const ignore = await loadKitignore(opts.contextDir);
  const parent = await packParent(opts, kitfile, refs[0]!);
  const plan = await planLayers({ contextDir: opts.contextDir, kitfile, ignore, format: opts.format, layerFormat: opts.layerFormat, ...(parent ? { exclude: parent.paths } : {}) });
  if (parent) checkNoOverlap(parent, plan);
  if (plan.length === 0 && !parent) {
    throw new KitError('NOTHING_TO_PACK', 'the Kitfile names no files to pack', { hint: 'add a model, datasets, code, docs or prompts entry' });
  }
  opts.onEvent?.({ type: 'plan', layers: plan.length, bytes: plan.reduce((n, l) => n + l.contentSize, 0) });

  const { built, own, manifest, desc, tagged } = await retryWhenBlobsVanish(async () => {
    const built: Array<{ layer: PlannedLayer; result: LayerResult; mediaType: string }> = [];
    for (const [index, layer] of plan.entries()) {
      const encoding = layerEncoding(layer, opts.compression);
      const mediaType = opts.format === 'kitops' ? kitOpsLayerType(layer.section, encoding === 'raw' ? 'tar' : encoding) : modelPackLayerType(layer.role, encoding);
      opts.onEvent?.({ type: 'layer-start', index, path: layer.path, bytes: layer.contentSize });
      const result = await opts.sink.addLayer(layer, encoding === 'raw' ? 'raw' : opts.compression, mtime, (bytes) => opts.onEvent?.({ type: 'layer-progress', index, bytes }));
      built.push({ layer, result: result.result, mediaType });
      opts.onEvent?.({ type: 'layer-done', index, path: layer.path, digest: result.result.digest, size: result.result.size, existed: result.existed });
    }

    const own: Descriptor[] = built.map(({ layer, result, mediaType }) => {
      const d: Descriptor = { mediaType, digest: result.digest, size: result.size };
      if (opts.format === 'modelpack') d.annotations = layerAnnotations(layer, result, mtime);
      return d;
    });
    // The parent's model comes first, as a model entry does; its manifest and config are kept
    // (by a store sink) before the child is tagged, which needs them.
    const layers = [...(parent?.layers ?? []), ...own];
    for (const m of parent?.metadata ?? []) await opts.sink.addParentBlob?.(m.descriptor, m.bytes);
    const config = await writeConfig(opts, kitfile, built, created, parent);
    const manifest: ImageManifest = {
      schemaVersion: 2,
      mediaType: MediaType.ImageManifest,
      artifactType: opts.format === 'kitops' ? KitOps.ArtifactType : ModelPack.ArtifactType,
      config,
      layers,
      annotations: {
        ...opts.annotations,
        [Annotation.Created]: rfc3339(created),
        [KitAnnotation.Kitfile]: text,
        [KitAnnotation.CliVersion]: KIT_VERSION,
        ...(parent ? { [KitAnnotation.Parent]: parent.pinned } : {}),
      },
    };
    const desc = await opts.sink.addJson(manifest, MediaType.ImageManifest);
    const tagged: Descriptor = { ...desc, artifactType: manifest.artifactType! };
    for (const ref of refs) await opts.sink.tag(tagged, ref);
    await opts.sink.finish?.();
    return { built, own, manifest, desc, tagged };
  });
  await opts.onPacked?.({
    descriptor: tagged,
    manifest,
    kitfile,
    kitfileText: text,
    kitfileFile,
    contextDir: opts.contextDir,
    created,
    tags: refs,
    format: opts.format,
    layerFormat: opts.layerFormat,
    compression: opts.compression,
    layers: built.map((b, i) => ({ planned: b.layer, descriptor: own[i]! })),
    ...(parent ? { parent: { reference: parent.reference, pinned: parent.pinned, digest: parent.digest, layers: parent.layers } } : {}),
  });
  const inherited = (parent?.layers ?? []).map((l, i) => ({ path: parent!.layerPaths[i]!, mediaType: l.mediaType, digest: l.digest, size: l.size, inherited: true as const }));
  return {
    digest: desc.digest,
    size: desc.size,
    mediaType: desc.mediaType,
    tags: refs,
    format: opts.format,
    layers: [...inherited, ...own.map((l, i) => ({ path: built[i]!.layer.path, mediaType: l.mediaType, digest: l.digest, size: l.size }))],
    ...(parent
      ? {
          parent: {
            reference: parent.reference,
            pinned: parent.pinned,
            digest: parent.digest,
            layers: parent.layers.length,
            bytes: parent.layers.reduce((n, l) => n + l.size, 0),
            ancestors: parent.ancestors.map((a) => a.reference),
          },
        }
      : {}),
  };
}

/** The artifact model.path names, resolved (with its own parents), or undefined for a model of local files. */
async function packParent(opts: PackOptions, kitfile: Kitfile, childName: string): Promise<PackParent | undefined> {
  const path = kitfile.model?.path;
  if (path === undefined || !isArtifactReference(path)) return undefined;
  const open = opts.openParent ?? (await import('./source.js')).parentOpener('local-first', opts.settings);
  return resolvePackParent(path, { contextDir: opts.contextDir, format: opts.format, childName, open });
}

function layerEncoding(layer: PlannedLayer, compression: Compression): LayerEncoding {
  if (layer.encoding === 'raw') return 'raw';
  if (compression === 'gzip' || compression === 'gzip-fastest') return 'tar+gzip';
  if (compression === 'zstd') return 'tar+zstd';
  return 'tar';
}

/** The local store as a pack sink: layers go through its ingest area, hashed on the way. */
export class StoreSink implements PackSink {
  /** Raw layers taken from the digest cache: files unchanged since they were last packed, not read again. */
  unchangedFiles = 0;
  private digests: Promise<FileDigestCache> | undefined;

  constructor(private readonly store: LocalStore) {}

  async addLayer(layer: PlannedLayer, compression: Compression | 'raw', mtime: Date, onProgress: (bytes: number) => void): Promise<{ result: LayerResult; existed: boolean }> {
    if (compression !== 'raw') return buildLayer(this.store, layer, compression, mtime, onProgress);
    const path = layer.entries[0]!.absPath;
    const cache = await (this.digests ??= FileDigestCache.besideStore(this.store.root));
    const { st, known } = await cache.lookup(path);
    // Unchanged since it was hashed, and its blob still here: nothing to read, nothing to write.
    if (known && (await this.store.freshen({ mediaType: 'application/octet-stream', digest: known.digest, size: known.size }))) {
      this.unchangedFiles++;
      onProgress(known.size);
      return { result: { digest: known.digest, size: known.size, diffId: known.digest, uncompressedSize: known.size }, existed: true };
    }
    const built = await buildLayer(this.store, layer, compression, mtime, onProgress);
    cache.remember(path, st, built.result.digest, built.result.size);
    return built;
  }

  async finish(): Promise<void> {
    await (await this.digests)?.save();
  }

  addJson(value: unknown, mediaType: string): Promise<Descriptor> {
    return this.store.writeJson(value, mediaType);
  }

  addParentBlob(desc: Descriptor, bytes: Buffer): Promise<void> {
    return this.store.push(desc, Readable.from([bytes]));
  }

  tag(desc: Descriptor, ref: string): Promise<void> {
    return this.store.tag(desc, ref);
  }
}

/** Write one layer into the store's ingest area, hashing on the way, then commit it. */
async function buildLayer(
  store: LocalStore,
  layer: PlannedLayer,
  compression: Compression | 'raw',
  mtime: Date,
  onProgress: (bytes: number) => void,
): Promise<{ result: LayerResult; existed: boolean }> {
  const tmp = store.ingestPath();
  let out: WriteStream | undefined;
  try {
    // Opened before anything else: a store that cannot be written fails here, as one error,
    // not later as an 'error' event nobody listens to yet (which killed the process).
    const fh = await open(tmp, 'wx').catch((err: unknown) => {
      throw writeError(err, tmp, store.root);
    });
    let result: LayerResult;
    if (compression === 'raw') {
      // The file as it is, copied into the (empty, ours) temp file and hashed on the way.
      await fh.close();
      // Into the store: cold storage, written around the page cache (see copyRawLayer).
      result = await copyRawLayer(layer.entries[0]!.absPath, tmp, { onProgress, direct: true });
    } else {
      out = createWriteStream(tmp, { fd: fh, highWaterMark: WRITE_BUFFER });
      result = await writeTarLayer(layer.entries, { compression, mtime, onProgress }, out);
    }
    const existed = await store.exists({ mediaType: 'application/octet-stream', digest: result.digest, size: result.size });
    await store.commitIngested(tmp, result.digest, result.size);
    return { result, existed };
  } catch (e) {
    out?.destroy(); // closes the file when the source failed before anything was written
    await rm(tmp, { force: true });
    throw e;
  }
}

function layerAnnotations(layer: PlannedLayer, result: LayerResult, mtime: Date): Record<string, string> {
  const single = layer.entries.length === 1 && layer.entries[0]!.type === 'file' ? layer.entries[0]! : undefined;
  const metadata = {
    name: layer.path,
    mode: single ? (single.executable ? 0o755 : 0o644) : 0o755,
    uid: 0,
    gid: 0,
    size: single ? single.size : result.uncompressedSize,
    mtime: rfc3339(mtime),
    typeflag: single ? 48 /* '0' regular file */ : 53 /* '5' directory */,
  };
  return {
    [ModelPackAnnotation.FilePath]: layer.path,
    [ModelPackAnnotation.FileMetadata]: JSON.stringify(metadata),
  };
}

async function writeConfig(
  opts: PackOptions,
  kitfile: Kitfile,
  built: Array<{ layer: PlannedLayer; result: LayerResult }>,
  created: Date,
  parent: PackParent | undefined,
): Promise<Descriptor> {
  if (opts.format === 'kitops') {
    const info = new Map<string, LayerInfo>();
    for (const { layer, result } of built) info.set(`${layer.section}:${layer.entryIndex}`, { digest: result.digest, diffId: result.diffId });
    // model.path stays the reference, as KitOps writes it: KitOps follows it to the parent.
    return opts.sink.addJson(buildKitOpsConfig(kitfile, info), KitOps.Config);
  }
  // diffIds: one per manifest layer, in layer order, the parent's first.
  const cfg = buildModelPackConfig(kitfile, [...(parent?.diffIds ?? []), ...built.map((b) => b.result.diffId)], created, opts.descriptorExtras);
  // The ModelPack config has no field for a parent (no unknown fields allowed): the manifest
  // annotation records it. What the model is (architecture, format, ...) is the parent's.
  if (parent) cfg.config = inheritModelConfig(cfg.config, parent);
  return opts.sink.addJson(cfg, ModelPack.Config);
}
