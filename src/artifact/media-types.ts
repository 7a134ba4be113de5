/**
 * Media types and annotation keys of the two artifact formats kit writes and reads.
 * ModelPack: CNCF model-spec v1 (specs-go/v1/mediatype.go, annotations.go).
 * KitOps: the ModelKit format (pkg/artifact/constants.go in KitOps).
 */

export type ArtifactFormat = 'modelpack' | 'kitops';
export type LayerEncoding = 'raw' | 'tar' | 'tar+gzip' | 'tar+zstd';
/** What a ModelPack layer holds. */
export type ModelPackRole = 'weight' | 'weight.config' | 'dataset' | 'code' | 'doc';
/** The Kitfile section a layer comes from. */
export type Section = 'model' | 'modelpart' | 'datasets' | 'code' | 'docs' | 'prompts';

export const ModelPack = {
  ArtifactType: 'application/vnd.cncf.model.manifest.v1+json',
  Config: 'application/vnd.cncf.model.config.v1+json',
  LayerPrefix: 'application/vnd.cncf.model.',
  /** The earlier, pre-CNCF names, still read. */
  LegacyArtifactType: 'application/vnd.cnai.model.manifest.v1+json',
  LegacyConfig: 'application/vnd.cnai.model.config.v1+json',
  LegacyLayerPrefix: 'application/vnd.cnai.model.',
} as const;

export const ModelPackAnnotation = {
  FilePath: 'org.cncf.model.filepath',
  FileMetadata: 'org.cncf.model.file.metadata+json',
  LegacyFilePath: 'org.cnai.model.filepath',
  LegacyFileMetadata: 'org.cnai.model.file.metadata+json',
} as const;

export const KitOps = {
  ArtifactType: 'application/vnd.kitops.modelkit.manifest.v1+json',
  Config: 'application/vnd.kitops.modelkit.config.v1+json',
  LayerPrefix: 'application/vnd.kitops.modelkit.',
} as const;

export const KitAnnotation = {
  /** The Kitfile (as JSON) on a ModelPack manifest, so unpack restores it (KitOps' key). */
  Kitfile: 'ml.kitops.modelkit.kitfile',
  LegacyKitfile: 'org.kitops.modelkit.kitfile',
  /** The tool and version that made the artifact. */
  CliVersion: 'ml.kitops.modelkit.cli-version',
  /**
   * On an artifact whose Kitfile's model.path names another artifact: that parent, pinned by
   * digest (`registry/repository@sha256:...`). The manifest lists the parent's model layers; the
   * local store reads this to know that those layers may live only in the parent's registry.
   */
  Parent: 'ml.kitops.modelkit.parent',
} as const;

/** True for the layer media types that hold a model: ModelPack weights and their configuration, KitOps model and model parts. */
export function isModelLayerType(mediaType: string): boolean {
  const t = parseLayerType(mediaType);
  if (!t) return false;
  return t.format === 'modelpack' ? t.kind === 'weight' || t.kind === 'weight.config' : t.kind === 'model' || t.kind === 'modelpart';
}

export function modelPackLayerType(role: ModelPackRole, encoding: LayerEncoding): string {
  return `${ModelPack.LayerPrefix}${role}.v1.${encoding}`;
}

const KITOPS_KIND: Record<Section, string> = {
  model: 'model',
  modelpart: 'modelpart',
  datasets: 'dataset',
  code: 'code',
  docs: 'docs',
  prompts: 'prompts',
};

export function kitOpsLayerType(section: Section, encoding: Exclude<LayerEncoding, 'raw'>): string {
  return `${KitOps.LayerPrefix}${KITOPS_KIND[section]}.v1.${encoding}`;
}

export interface ParsedLayerType {
  format: ArtifactFormat;
  /** ModelPack role, or KitOps section. */
  kind: string;
  encoding: LayerEncoding;
}

/** Recognise a layer media type of either format (and the legacy cnai names). */
export function parseLayerType(mediaType: string): ParsedLayerType | undefined {
  const mp = /^application\/vnd\.(?:cncf|cnai)\.model\.(weight\.config|weight|dataset|code|doc)\.v1\.(raw|tar|tar\+gzip|tar\+zstd)$/.exec(mediaType);
  if (mp) return { format: 'modelpack', kind: mp[1]!, encoding: mp[2] as LayerEncoding };
  const ko = /^application\/vnd\.kitops\.modelkit\.(model|modelpart|dataset|code|docs|prompts)\.v1\.(tar|tar\+gzip|tar\+zstd)$/.exec(mediaType);
  if (ko) return { format: 'kitops', kind: ko[1]!, encoding: ko[2] as LayerEncoding };
  return undefined;
}

export function kitOpsKindToSection(kind: string): Section {
  switch (kind) {
    case 'dataset':
      return 'datasets';
    case 'model':
    case 'modelpart':
    case 'code':
    case 'docs':
    case 'prompts':
      return kind;
    default:
      throw new Error(`unknown KitOps layer kind ${kind}`);
  }
}

export function encodingCompression(encoding: LayerEncoding): 'none' | 'gzip' | 'zstd' {
  if (encoding === 'tar+gzip') return 'gzip';
  if (encoding === 'tar+zstd') return 'zstd';
  return 'none';
}
