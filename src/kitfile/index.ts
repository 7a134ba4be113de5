/** The Kitfile module: schema, loading with positioned errors, .kitignore, and `kit init`. */
export {
  KitfileSchema,
  KNOWN_PART_TYPES,
  MANIFEST_VERSION,
  PART_TYPE_MAX_LENGTH,
  PART_TYPE_PATTERN,
  SUPPORTED_MANIFEST_VERSIONS,
  type Kitfile,
  type KitfileCode,
  type KitfileDataset,
  type KitfileDocs,
  type KitfileModel,
  type KitfileModelPart,
  type KitfilePackage,
  type KitfilePrompt,
} from './schema.js';
export {
  KitfileError,
  formatProblems,
  isArtifactReference,
  loadKitfile,
  normalizeKitfilePath,
  parseKitfile,
  serializeKitfile,
  type KitfileProblem,
  type LoadedKitfile,
} from './load.js';
export { validateKitfileValue, type KitfileIssue } from './validate.js';
export { createKitIgnore, loadKitignore, type KitIgnore } from './ignore.js';
export { generateKitfile, writeKitfile, type InitOptions } from './init.js';
export { KITFILE_NAMES, KITIGNORE_NAME, MAX_KITFILE_BYTES } from './names.js';
