/**
 * Fill a generated Kitfile's model parameters from what the files say about themselves, so the
 * ModelPack config (artifact/configs.ts maps `model.parameters.{architecture,paramSize,precision,
 * quantization}`) describes the model without anyone typing it:
 *
 *  - safetensors headers of the model's main weights (model.path and its sibling shards):
 *    parameter count -> `paramSize` (`7.2B`), dtypes -> `precision` (`bf16`, or `mixed`);
 *  - `config.json` beside the weights (else at the top): `architectures[0]` -> `architecture`,
 *    `model_type` -> `modelType`, `torch_dtype` / `dtype` -> `precision` when the headers said
 *    nothing, `quantization_config` -> `quantization` (and `int<bits>` precision);
 *    a diffusers `model_index.json` gives the pipeline class as `architecture`;
 *  - the README's model card front matter: `license` -> package.license, and `base_model`,
 *    `pipeline_tag`, `library_name`, `tags` as parameters.
 *
 * Everything is best effort: a file that cannot be read or parsed adds nothing and is no error
 * (a project may hold anything under these names). Fields already present are never replaced.
 * Only local files are read; `kit import` adds what the Hub itself says (hf/import.ts).
 */
import type { Dirent } from 'node:fs';
import { open, readdir, stat } from 'node:fs/promises';
import { join, posix } from 'node:path';
import { cardLicense, parseModelCard, type ModelCard } from '../hf/model-card.js';
import { formatParamSize, precisionFromDtypes, readSafetensorsHeader, summarize, type SafetensorsHeader } from '../hf/safetensors.js';
import type { Kitfile } from './schema.js';

/** What enrichment found, for callers that want more than the Kitfile (e.g. the model family). */
export interface EnrichFindings {
  parameters?: number;
  paramSize?: string;
  precision?: string;
  architecture?: string;
  modelType?: string;
  quantization?: string;
  card: ModelCard;
}

const SHARD = /^(.*)-(\d{5})-of-(\d{5})\.([^.]+)$/;
const MAX_JSON_BYTES = 4 * 1024 * 1024;
const MAX_README_BYTES = 1024 * 1024;

/** `config.json` dtype names -> precision words. */
const TORCH_DTYPES: Record<string, string> = {
  bfloat16: 'bf16',
  float16: 'fp16',
  half: 'fp16',
  float32: 'fp32',
  float: 'fp32',
  float64: 'fp64',
  double: 'fp64',
  int8: 'int8',
  uint8: 'uint8',
  float8_e4m3fn: 'fp8',
  float8_e5m2: 'fp8',
};

/** Read at most `max` bytes of a regular file as UTF-8; undefined when absent, not a file or too big. */
async function readSmallText(path: string, max: number): Promise<string | undefined> {
  try {
    const st = await stat(path);
    if (!st.isFile() || st.size > max) return undefined;
    const fh = await open(path, 'r');
    try {
      const buf = Buffer.alloc(st.size);
      const { bytesRead } = await fh.read(buf, 0, st.size, 0);
      return buf.subarray(0, bytesRead).toString('utf8');
    } finally {
      await fh.close();
    }
  } catch {
    return undefined;
  }
}

async function readJsonObject(path: string): Promise<Record<string, unknown> | undefined> {
  const text = await readSmallText(path, MAX_JSON_BYTES);
  if (text === undefined) return undefined;
  try {
    const v: unknown = JSON.parse(text);
    return v && typeof v === 'object' && !Array.isArray(v) ? (v as Record<string, unknown>) : undefined;
  } catch {
    return undefined;
  }
}

function nonEmptyString(v: unknown): string | undefined {
  return typeof v === 'string' && v.trim() !== '' ? v.trim() : undefined;
}

/** The model path and the other shards of the same set (`model-0000k-of-0000n.safetensors`). */
function mainWeightFiles(k: Kitfile): string[] {
  const primary = k.model?.path;
  if (!primary) return [];
  const m = SHARD.exec(posix.basename(primary));
  if (!m) return [primary];
  const dir = posix.dirname(primary);
  const siblings = (k.model?.parts ?? [])
    .map((p) => p.path)
    .filter((p) => {
      if (posix.dirname(p) !== dir) return false;
      const s = SHARD.exec(posix.basename(p));
      return s !== null && s[1] === m[1] && s[3] === m[3] && s[4] === m[4];
    });
  return [primary, ...siblings];
}

async function weightFindings(root: string, k: Kitfile): Promise<{ parameters?: number; precision?: string; format?: string }> {
  const files = mainWeightFiles(k);
  if (files.length === 0 || !files.every((f) => f.toLowerCase().endsWith('.safetensors'))) return {};
  const headers: SafetensorsHeader[] = [];
  for (const f of files) {
    try {
      headers.push(await readSafetensorsHeader(join(root, f)));
    } catch {
      return {}; // one unreadable shard makes any count wrong: say nothing
    }
  }
  const s = summarize(headers);
  const out: { parameters?: number; precision?: string; format?: string } = {};
  if (s.parameters > 0) out.parameters = s.parameters;
  const precision = precisionFromDtypes(s.byDtype);
  if (precision) out.precision = precision;
  const format = headers[0]?.metadata['format'];
  if (format) out.format = format;
  return out;
}

interface ConfigFindings {
  architecture?: string;
  modelType?: string;
  precision?: string;
  quantization?: string;
  quantBits?: number;
}

/** What a transformers `config.json` (or a diffusers `model_index.json`) says. */
export function configFindings(cfg: Record<string, unknown>): ConfigFindings {
  const out: ConfigFindings = {};
  const archs = cfg['architectures'];
  const arch = Array.isArray(archs) ? nonEmptyString(archs[0]) : undefined;
  if (arch) out.architecture = arch;
  else {
    const pipelineClass = nonEmptyString(cfg['_class_name']);
    if (pipelineClass) out.architecture = pipelineClass;
  }
  const modelType = nonEmptyString(cfg['model_type']);
  if (modelType) out.modelType = modelType;
  const textConfig = cfg['text_config'] && typeof cfg['text_config'] === 'object' ? (cfg['text_config'] as Record<string, unknown>) : {};
  const dtype = nonEmptyString(cfg['torch_dtype']) ?? nonEmptyString(cfg['dtype']) ?? nonEmptyString(textConfig['torch_dtype']) ?? nonEmptyString(textConfig['dtype']);
  const precision = dtype ? TORCH_DTYPES[dtype.toLowerCase().replace(/^torch\./, '')] : undefined;
  if (precision) out.precision = precision;
  const q = cfg['quantization_config'];
  if (q && typeof q === 'object' && !Array.isArray(q)) {
    const qc = q as Record<string, unknown>;
    const method = nonEmptyString(qc['quant_method']);
    let bits = typeof qc['bits'] === 'number' ? qc['bits'] : undefined;
    if (bits === undefined && qc['load_in_4bit'] === true) bits = 4;
    if (bits === undefined && qc['load_in_8bit'] === true) bits = 8;
    if (method) out.quantization = method.toLowerCase();
    if (bits !== undefined && Number.isInteger(bits) && bits > 0 && bits <= 16) out.quantBits = bits;
  }
  return out;
}

/** The README at the top of the project (any case), if there is one. */
async function findReadme(root: string): Promise<string | undefined> {
  let entries: Dirent[];
  try {
    entries = await readdir(root, { withFileTypes: true });
  } catch {
    return undefined;
  }
  const names = entries.filter((e) => e.isFile() || e.isSymbolicLink()).map((e) => e.name);
  return names.find((n) => n === 'README.md') ?? names.find((n) => n.toLowerCase() === 'readme.md');
}

/** safetensors `__metadata__.format` -> framework. */
const FRAMEWORKS: Record<string, string> = { pt: 'pytorch', tf: 'tensorflow', flax: 'flax', mlx: 'mlx', np: 'numpy', paddle: 'paddlepaddle' };

function parametersObject(k: Kitfile): Record<string, unknown> {
  const p = k.model!.parameters;
  if (p && typeof p === 'object' && !Array.isArray(p)) return p as Record<string, unknown>;
  return {};
}

/**
 * Enrich `kitfile` (in place) from the files under `root` and return what was found.
 * `extraCard` stands in for the README's front matter when the README has none (the Hub API
 * gives a repository's card data too).
 */
export async function enrichKitfile(root: string, kitfile: Kitfile, opts: { extraCard?: ModelCard } = {}): Promise<EnrichFindings> {
  const readme = await findReadme(root);
  const readmeText = readme ? await readSmallText(join(root, readme), MAX_README_BYTES) : undefined;
  const fromReadme = readmeText !== undefined ? parseModelCard(readmeText) : {};
  const card: ModelCard = { ...(opts.extraCard ?? {}), ...fromReadme };
  const findings: EnrichFindings = { card };

  const license = cardLicense(card);
  if (license && kitfile.package && kitfile.package.license === undefined && kitfile.model?.license === undefined) kitfile.package.license = license;

  const model = kitfile.model;
  if (!model || !model.path) return findings;

  const weights = await weightFindings(root, kitfile);
  const modelDir = posix.dirname(model.path);
  const cfg = (modelDir !== '.' ? await readJsonObject(join(root, modelDir, 'config.json')) : undefined) ?? (await readJsonObject(join(root, 'config.json'))) ?? (await readJsonObject(join(root, 'model_index.json')));
  const config = cfg ? configFindings(cfg) : {};

  const found: Record<string, unknown> = {};
  if (config.architecture) found['architecture'] = findings.architecture = config.architecture;
  if (weights.parameters !== undefined) {
    findings.parameters = weights.parameters;
    found['paramSize'] = findings.paramSize = formatParamSize(weights.parameters);
  }
  const precision = config.quantBits !== undefined ? `int${config.quantBits}` : (weights.precision ?? config.precision);
  if (precision) found['precision'] = findings.precision = precision;
  if (config.quantization) found['quantization'] = findings.quantization = config.quantization;
  if (config.modelType) found['modelType'] = findings.modelType = config.modelType;
  if (card.baseModel) found['baseModel'] = card.baseModel.length === 1 ? card.baseModel[0] : card.baseModel;
  if (card.pipelineTag) found['pipelineTag'] = card.pipelineTag;
  if (card.libraryName) found['libraryName'] = card.libraryName;
  if (card.tags) found['tags'] = card.tags;

  const params = parametersObject(kitfile);
  const added = Object.fromEntries(Object.entries(found).filter(([key]) => params[key] === undefined));
  if (Object.keys(added).length > 0) model.parameters = { ...params, ...added };
  if (model.framework === undefined && weights.format && FRAMEWORKS[weights.format]) model.framework = FRAMEWORKS[weights.format];
  return findings;
}
