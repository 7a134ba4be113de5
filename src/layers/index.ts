/**
 * layers/: deterministic tar and raw layers (written with their digests in one pass),
 * compression, and safe extraction of untrusted layers.
 */
export { compressor, decompressor, type Compression } from './compression.js';
export { writeTarLayer, writeRawLayer, type TarEntry, type LayerResult, type TarLayerOptions } from './tar-writer.js';
export {
  extractTarLayer,
  writeRawFile,
  DEFAULT_MAX_LAYER_BYTES,
  type ExistingPolicy,
  type ExtractOptions,
  type ExtractResult,
} from './extract.js';
export { safeJoin, normalizeLayerPath } from './paths.js';
