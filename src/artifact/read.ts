import { KitError } from '../errors.js';
import { MediaType, type Descriptor, type ImageManifest } from '../oci/descriptor.js';
import { parseJsonBlob, readSmallBlob } from '../oci/read-json.js';
import type { Target } from '../oci/target.js';
import { normalizeKitfilePath, parseKitfile, serializeKitfile } from '../kitfile/load.js';
import type { Kitfile } from '../kitfile/schema.js';
import { kitfileFromKitOpsConfig, type ModelPackConfig } from './configs.js';
import { parseManifest } from './manifest-schema.js';
import {
  KitAnnotation,
  KitOps,
  ModelPack,
  ModelPackAnnotation,
  kitOpsKindToSection,
  parseLayerType,
  type ArtifactFormat,
  type LayerEncoding,
  type Section,
} from './media-types.js';
import { isWithin, kitfileEntries } from './plan.js';

export interface ArtifactLayer {
  descriptor: Descriptor;
  /** Where the layer's content goes, relative to the unpack folder (validated later). */
  path: string;
  encoding: LayerEncoding;
  section: Section;
  /** Name of the Kitfile entry the layer belongs to, when it has one. */
  entryName?: string;
  /** File mode from the ModelPack file metadata annotation (raw layers). */
  mode?: number;
}

/** An artifact's manifest and config, read and verified; no layer content. */
export interface ArtifactHead {
  descriptor: Descriptor;
  manifest: ImageManifest;
  config: unknown;
  /** The exact bytes, so that the local store can keep a parent's manifest and config under their digests. */
  manifestBytes: Buffer;
  configBytes: Buffer;
}

export interface LoadedArtifact extends ArtifactHead {
  format: ArtifactFormat;
  kitfile: Kitfile;
  /** The Kitfile text to restore: as packed when the artifact carries it, else generated. */
  kitfileText: string;
  kitfileGenerated: boolean;
  layers: ArtifactLayer[];
}

/** Resolve a reference on a target and read everything but the layer contents. */
export async function loadArtifact(target: Target, ref: string): Promise<LoadedArtifact> {
  return describeArtifact(await readArtifactHead(target, ref), ref);
}

/** Resolve a reference on a target and read its manifest and config (verified against their digests). */
export async function readArtifactHead(target: Target, ref: string): Promise<ArtifactHead> {
  const descriptor = await target.resolve(ref);
  if (descriptor.mediaType !== MediaType.ImageManifest) {
    // Checked before reading: the bytes of anything else would be fetched (and trusted) as a blob.
    throw new KitError('MANIFEST_INVALID', `the manifest of ${ref} (${descriptor.digest}) has media type ${descriptor.mediaType}, not an OCI image manifest`, {
      hint: 'kit unpacks ModelPack and KitOps artifacts, which are OCI image manifests',
    });
  }
  const manifestBytes = await readSmallBlob(target, descriptor, `manifest of ${ref}`);
  const manifest = parseManifest(parseJsonBlob(manifestBytes, descriptor, `manifest of ${ref}`), `manifest of ${ref}`);
  const configBytes = await readSmallBlob(target, manifest.config, `config of ${ref}`);
  const config = parseJsonBlob(configBytes, manifest.config, `config of ${ref}`);
  return { descriptor, manifest, config, manifestBytes, configBytes };
}

/** The Kitfile and the place of every layer, from an artifact's manifest and config. */
export function describeArtifact(head: ArtifactHead, ref: string): LoadedArtifact {
  const { manifest, config } = head;
  const format = detectFormat(manifest);
  const { kitfile, text, generated } = artifactKitfile(manifest, config, format, ref);
  const layers = manifest.layers.map((l, i) => describeLayer(l, i, format, kitfile, config, ref));
  return { ...head, format, kitfile, kitfileText: text, kitfileGenerated: generated, layers };
}

export function detectFormat(m: ImageManifest): ArtifactFormat {
  if (m.config.mediaType === KitOps.Config || m.artifactType === KitOps.ArtifactType) return 'kitops';
  return 'modelpack';
}

function artifactKitfile(m: ImageManifest, config: unknown, format: ArtifactFormat, ref: string): { kitfile: Kitfile; text: string; generated: boolean } {
  const annotated = m.annotations?.[KitAnnotation.Kitfile] ?? m.annotations?.[KitAnnotation.LegacyKitfile];
  if (annotated !== undefined) {
    // YAML is a superset of JSON, so this reads both our YAML text and KitOps' JSON.
    return { kitfile: parseKitfile(annotated, `Kitfile in ${ref}`), text: annotated, generated: false };
  }
  if (format === 'kitops') {
    const json = JSON.stringify(kitfileFromKitOpsConfig(config));
    const kitfile = parseKitfile(json, `Kitfile in the config of ${ref}`);
    return { kitfile, text: serializeKitfile(kitfile), generated: false };
  }
  const kitfile = kitfileFromModelPack(m, config);
  return { kitfile, text: serializeKitfile(kitfile), generated: true };
}

function filePathOf(l: Descriptor): string | undefined {
  return l.annotations?.[ModelPackAnnotation.FilePath] ?? l.annotations?.[ModelPackAnnotation.LegacyFilePath];
}

/** A Kitfile for a ModelPack artifact made by another tool, from its config and layer annotations. */
export function kitfileFromModelPack(m: ImageManifest, config: unknown): Kitfile {
  const d = (config as Partial<ModelPackConfig> | undefined)?.descriptor ?? {};
  const c = (config as Partial<ModelPackConfig> | undefined)?.config ?? {};
  const k: Kitfile = { manifestVersion: '1.0.0' };
  const pkg: NonNullable<Kitfile['package']> = {};
  if (typeof d.name === 'string') pkg.name = d.name;
  if (typeof d.version === 'string') pkg.version = d.version;
  if (typeof d.description === 'string') pkg.description = d.description;
  if (Array.isArray(d.authors)) pkg.authors = d.authors.filter((a): a is string => typeof a === 'string');
  if (Array.isArray(d.licenses) && typeof d.licenses[0] === 'string') pkg.license = d.licenses.join(' AND ');
  if (Object.keys(pkg).length > 0) k.package = pkg;

  const seen = new Set<string>();
  for (const l of m.layers) {
    const t = parseLayerType(l.mediaType);
    const path = filePathOf(l);
    if (!t || t.format !== 'modelpack' || path === undefined) continue;
    const p = normalizeKitfilePath(path);
    if (seen.has(p)) continue;
    seen.add(p);
    switch (t.kind) {
      case 'weight':
      case 'weight.config':
        if (!k.model) {
          k.model = { path: p };
          if (typeof d.name === 'string') k.model.name = d.name;
          if (typeof c.format === 'string') k.model.format = c.format;
        } else {
          (k.model.parts ??= []).push(t.kind === 'weight.config' ? { path: p, type: 'config' } : { path: p });
        }
        break;
      case 'dataset':
        (k.datasets ??= []).push({ path: p });
        break;
      case 'code':
        (k.code ??= []).push({ path: p });
        break;
      case 'doc':
        (k.docs ??= []).push({ path: p });
        break;
    }
  }
  return k;
}

function describeLayer(l: Descriptor, i: number, format: ArtifactFormat, kitfile: Kitfile, config: unknown, ref: string): ArtifactLayer {
  const t = parseLayerType(l.mediaType);
  if (!t) {
    throw new KitError('LAYER_TYPE_UNKNOWN', `layer ${i} of ${ref} has media type ${JSON.stringify(l.mediaType)}, which kit does not know`, {
      hint: 'only ModelPack (application/vnd.cncf.model.*) and KitOps ModelKit layers can be unpacked',
    });
  }
  if (t.format === 'kitops') {
    const entry = kitOpsEntryFor(l, config, kitfile, kitOpsKindToSection(t.kind));
    return { descriptor: l, path: entry.path, encoding: t.encoding, section: entry.section, ...(entry.name ? { entryName: entry.name } : {}) };
  }
  const annotated = filePathOf(l);
  if (annotated === undefined) {
    throw new KitError('LAYER_PATH_MISSING', `layer ${i} of ${ref} (${l.mediaType}) has no org.cncf.model.filepath annotation`, {
      hint: 'the artifact does not say where this layer goes; it cannot be unpacked',
    });
  }
  const path = annotated.replace(/\/+$/, '');
  const owner = owningEntry(kitfile, path);
  const layer: ArtifactLayer = { descriptor: l, path, encoding: t.encoding, section: owner?.section ?? roleSection(t.kind) };
  if (owner?.name) layer.entryName = owner.name;
  const mode = fileMode(l);
  if (mode !== undefined) layer.mode = mode;
  return layer;
}

function roleSection(role: string): Section {
  if (role === 'weight') return 'model';
  if (role === 'weight.config') return 'modelpart';
  if (role === 'dataset') return 'datasets';
  if (role === 'code') return 'code';
  return 'docs';
}

function fileMode(l: Descriptor): number | undefined {
  const raw = l.annotations?.[ModelPackAnnotation.FileMetadata] ?? l.annotations?.[ModelPackAnnotation.LegacyFileMetadata];
  if (raw === undefined) return undefined;
  try {
    const m = (JSON.parse(raw) as { mode?: unknown }).mode;
    return typeof m === 'number' && Number.isInteger(m) ? m & 0o777 : undefined;
  } catch {
    return undefined;
  }
}

interface EntryInfo {
  section: Section;
  path: string;
  name?: string;
}

function entryName(k: Kitfile, section: Section, index: number): string | undefined {
  switch (section) {
    case 'model':
      return k.model?.name;
    case 'modelpart':
      return k.model?.parts?.[index]?.name;
    case 'datasets':
      return k.datasets?.[index]?.name;
    case 'prompts':
      return k.prompts?.[index]?.name;
    default:
      return undefined;
  }
}

/** The most specific Kitfile entry whose path holds `path`. */
function owningEntry(k: Kitfile, path: string): EntryInfo | undefined {
  let best: EntryInfo | undefined;
  for (const e of kitfileEntries(k)) {
    if (!isWithin(path, e.path)) continue;
    if (!best || e.path.length > best.path.length) {
      best = { section: e.section, path: e.path };
      const n = entryName(k, e.section, e.entryIndex);
      if (n) best.name = n;
    }
  }
  return best;
}

/** KitOps layers carry no path: the config's layerInfo digests say which entry each is. */
function kitOpsEntryFor(l: Descriptor, config: unknown, kitfile: Kitfile, section: Section): EntryInfo {
  const c = config as Record<string, unknown>;
  const matches = (e: unknown): boolean => (e as { layerInfo?: { digest?: string } } | undefined)?.layerInfo?.digest === l.digest;
  const candidates: Array<[Section, unknown[]]> = [
    ['model', c.model ? [c.model] : []],
    ['modelpart', ((c.model as { parts?: unknown[] } | undefined)?.parts ?? []) as unknown[]],
    ['datasets', (c.datasets ?? []) as unknown[]],
    ['code', (c.code ?? []) as unknown[]],
    ['docs', (c.docs ?? []) as unknown[]],
    ['prompts', (c.prompts ?? []) as unknown[]],
  ];
  for (const [s, list] of candidates) {
    const idx = list.findIndex(matches);
    if (idx >= 0) {
      const entry = kitfileEntries(kitfile).find((e) => e.section === s && e.entryIndex === idx);
      if (entry) {
        const info: EntryInfo = { section: s, path: entry.path };
        const n = entryName(kitfile, s, idx);
        if (n) info.name = n;
        return info;
      }
    }
  }
  // Older ModelKits without layerInfo: tar entries hold their own paths; extract at the root.
  return { section, path: '.' };
}
