/**
 * The Kitfile: the YAML manifest that says what a ModelKit holds. The shape follows KitOps'
 * `pkg/artifact/kitfile.go` (manifestVersion 1.0.0), so a Kitfile written for `kit` from KitOps
 * loads here and the other way round.
 *
 * This file holds the shape only: field types, unknown keys, the manifest version and the
 * part-type syntax. Rules that need the whole document (paths inside the context, duplicate
 * paths, "at least one thing to pack") live in validate.ts; positions for error messages are
 * added by load.ts.
 */
import { z } from 'zod';

export interface KitfilePackage {
  name?: string;
  version?: string;
  description?: string;
  license?: string;
  authors?: string[];
}

export interface KitfileModelPart {
  name?: string;
  path: string;
  type?: string;
  license?: string;
}

export interface KitfileModel {
  name?: string;
  /** A path inside the context, or an artifact reference (`registry/repo:tag`) to build on. */
  path?: string;
  framework?: string;
  format?: string;
  version?: string;
  description?: string;
  license?: string;
  /** Any YAML value, kept as written. */
  parameters?: unknown;
  parts?: KitfileModelPart[];
}

export interface KitfileDataset {
  name?: string;
  path: string;
  description?: string;
  license?: string;
  parameters?: unknown;
}

export interface KitfileCode {
  path: string;
  description?: string;
  license?: string;
}

export interface KitfileDocs {
  path: string;
  description?: string;
}

export interface KitfilePrompt {
  name?: string;
  path: string;
  description?: string;
}

export interface Kitfile {
  manifestVersion: string;
  package?: KitfilePackage;
  model?: KitfileModel;
  datasets?: KitfileDataset[];
  code?: KitfileCode[];
  docs?: KitfileDocs[];
  prompts?: KitfilePrompt[];
}

/** The version `kit` writes. */
export const MANIFEST_VERSION = '1.0.0';

/**
 * Versions accepted on read. KitOps' own documentation writes `manifestVersion: 1.0` (a YAML
 * number; load.ts keeps the text as written), and `v1.0.0` appears in the wild.
 */
export const SUPPORTED_MANIFEST_VERSIONS: readonly string[] = ['1.0.0', 'v1.0.0', '1.0'];

/**
 * Model part types.
 *
 * KitOps does not define a closed list: its validator (pkg/lib/kitfile, `ValidateKitfile`) accepts
 * any type matching `^[\w][\w.-]*$` of at most 64 characters, and its docs only give "LoRA
 * weights" as an example. A closed list here would reject Kitfiles (and ModelKits pulled from
 * registries) that KitOps accepts, so `kit` applies the same syntax rule, and `kit init` writes
 * only the well-known values below. The empty string means "untyped", as in KitOps.
 *
 *   weights    more weights of the model (shards, extra weight files)
 *   config     model configuration (config.json, generation_config.json, *.index.json)
 *   tokenizer  tokenizer and vocabulary files
 *   adapter    an adapter to apply on the base model (PEFT adapter_model.*)
 *   lora       LoRA weights
 *   projector  multimodal projector (llama.cpp mmproj)
 *   vision     vision tower / encoder weights
 *   embedding  embedding weights
 *   other      anything else
 */
export const KNOWN_PART_TYPES = [
  '',
  'weights',
  'config',
  'tokenizer',
  'adapter',
  'lora',
  'projector',
  'vision',
  'embedding',
  'other',
] as const;

export const PART_TYPE_PATTERN = /^[\w][\w.-]*$/;
export const PART_TYPE_MAX_LENGTH = 64;

const str = z.string();

const manifestVersionSchema = z.string().refine((v) => SUPPORTED_MANIFEST_VERSIONS.includes(v), (v) => ({
  message: `unsupported version ${JSON.stringify(v)}; use ${MANIFEST_VERSION}`,
}));

const partTypeSchema = z
  .string()
  .max(PART_TYPE_MAX_LENGTH, `is longer than ${PART_TYPE_MAX_LENGTH} characters`)
  .refine((t) => t === '' || PART_TYPE_PATTERN.test(t), {
    message: `must be letters, digits, "_", "." and "-", starting with a letter, digit or "_" (e.g. ${KNOWN_PART_TYPES.filter((t) => t !== '').join(', ')})`,
  });

const packageSchema = z
  .object({
    name: str.optional(),
    version: str.optional(),
    description: str.optional(),
    license: str.optional(),
    authors: z.array(str).optional(),
  })
  .strict();

const modelPartSchema = z
  .object({
    name: str.optional(),
    path: str,
    type: partTypeSchema.optional(),
    license: str.optional(),
  })
  .strict();

const modelSchema = z
  .object({
    name: str.optional(),
    path: str.optional(),
    framework: str.optional(),
    format: str.optional(),
    version: str.optional(),
    description: str.optional(),
    license: str.optional(),
    parameters: z.unknown().optional(),
    parts: z.array(modelPartSchema).optional(),
  })
  .strict();

const datasetSchema = z
  .object({
    name: str.optional(),
    path: str,
    description: str.optional(),
    license: str.optional(),
    parameters: z.unknown().optional(),
  })
  .strict();

const codeSchema = z.object({ path: str, description: str.optional(), license: str.optional() }).strict();
const docsSchema = z.object({ path: str, description: str.optional() }).strict();
const promptSchema = z.object({ name: str.optional(), path: str, description: str.optional() }).strict();

/** The shape of a Kitfile. Path rules and cross-field rules are in validate.ts. */
export const KitfileSchema = z
  .object({
    manifestVersion: manifestVersionSchema,
    package: packageSchema.optional(),
    model: modelSchema.optional(),
    datasets: z.array(datasetSchema).optional(),
    code: z.array(codeSchema).optional(),
    docs: z.array(docsSchema).optional(),
    prompts: z.array(promptSchema).optional(),
  })
  .strict();

/** Top-level keys in the order `kit` writes them. */
export const KITFILE_SECTIONS = ['manifestVersion', 'package', 'model', 'code', 'datasets', 'docs', 'prompts'] as const;

// Compile-time guard: the schema and the hand-written interfaces must describe the same thing.
type Same<A, B> = [A] extends [B] ? ([B] extends [A] ? true : false) : false;
const schemaMatchesInterface: Same<z.infer<typeof KitfileSchema>, Kitfile> = true;
void schemaMatchesInterface;
