/**
 * `kit init`: look at a project folder and write a first Kitfile for it.
 *
 * The generator guesses; the user edits. It aims for a Kitfile that is short (one entry per
 * directory where a directory holds one kind of thing), deterministic (same folder, same text)
 * and valid (parseKitfile accepts it). Classification, in order:
 *  1. top-level directories with a conventional name claim everything inside them:
 *     data/ dataset/ datasets/ -> datasets; src/ lib/ scripts/ notebooks/ -> code;
 *     docs/ doc/ -> docs; prompts/ -> prompts;
 *  2. every other file by name and extension (weights, model config, dataset, docs, prompt,
 *     code; unknown files go to code, as KitOps does);
 *  3. weights become the model: the largest weight unit (a set of shards counts as one) is
 *     `model.path` (its first shard), every other weight file a part; tokenizer and config files
 *     in a directory that holds weights become parts too;
 *  4. remaining files are grouped: a directory whose files are all of one kind becomes one entry;
 *  5. the model's parameters are filled from the files themselves (enrich.ts): safetensors headers
 *     (paramSize, precision), config.json (architecture, model type, dtype, quantization) and the
 *     README's model card (license, base model, pipeline tag, tags).
 */
import { randomBytes } from 'node:crypto';
import type { Dirent } from 'node:fs';
import { link, readdir, rename, stat, unlink, writeFile } from 'node:fs/promises';
import { basename, dirname, join, posix, resolve } from 'node:path';
import { ExitCode, KitError, errnoCode } from '../errors.js';
import { enrichKitfile } from './enrich.js';
import { loadKitignoreMatcher, type KitIgnoreMatcher } from './ignore.js';
import { serializeKitfile } from './load.js';
import { KITFILE_NAMES } from './names.js';
import {
  MANIFEST_VERSION,
  type Kitfile,
  type KitfileCode,
  type KitfileDataset,
  type KitfileDocs,
  type KitfileModel,
  type KitfileModelPart,
  type KitfilePrompt,
} from './schema.js';

export interface InitOptions {
  name?: string;
  description?: string;
  author?: string;
  /** Fill model parameters from safetensors headers, config.json and the model card (default true). */
  enrich?: boolean;
}

// ---- walking ------------------------------------------------------------------------------------

interface ProjectFile {
  /** posix, relative to the project root */
  path: string;
  size: number;
}

/** Directories that are never part of a project's content. Hidden entries are skipped too. */
const SKIP_DIRS = new Set(['node_modules', '__pycache__', '.git', '.venv']);

/**
 * Every file worth packing, sorted by path. Skips hidden entries (dotfiles may hold secrets such
 * as `.env`), tool directories, virtualenvs (any directory with a `pyvenv.cfg`), what .kitignore
 * excludes, and anything but regular files (symlinks to files are followed; symlinked directories
 * are not, so a link cycle cannot trap the walk).
 */
async function walkProject(root: string, ignore: KitIgnoreMatcher): Promise<ProjectFile[]> {
  const files: ProjectFile[] = [];
  const visit = async (rel: string): Promise<void> => {
    const entries: Dirent[] = await readdir(join(root, rel), { withFileTypes: true });
    entries.sort((a, b) => compare(a.name, b.name));
    if (rel !== '' && entries.some((e) => e.name === 'pyvenv.cfg')) return;
    for (const entry of entries) {
      if (entry.name.startsWith('.') || SKIP_DIRS.has(entry.name)) continue;
      const childRel = rel === '' ? entry.name : `${rel}/${entry.name}`;
      if (entry.isDirectory()) {
        if (!ignore.ignoresWholeDirectory(childRel)) await visit(childRel);
        continue;
      }
      if (ignore.ignores(childRel)) continue;
      const size = await regularFileSize(join(root, childRel), entry);
      if (size !== undefined) files.push({ path: childRel, size });
    }
  };
  await visit('');
  return files;
}

async function regularFileSize(abs: string, entry: Dirent): Promise<number | undefined> {
  if (!entry.isFile() && !entry.isSymbolicLink()) return undefined;
  try {
    const st = await stat(abs);
    return st.isFile() ? st.size : undefined;
  } catch {
    return undefined; // a dangling symlink
  }
}

/** Byte-order comparison: the same order on every machine, whatever the locale. */
function compare(a: string, b: string): number {
  return a < b ? -1 : a > b ? 1 : 0;
}

// ---- classifying ------------------------------------------------------------------------------

type Kind = 'weights' | 'modelMeta' | 'dataset' | 'docs' | 'prompt' | 'code';

const CLAIMING_DIRS: Record<string, Exclude<Kind, 'weights' | 'modelMeta'>> = {
  data: 'dataset',
  dataset: 'dataset',
  datasets: 'dataset',
  src: 'code',
  lib: 'code',
  scripts: 'code',
  notebooks: 'code',
  docs: 'docs',
  doc: 'docs',
  prompts: 'prompt',
};

const WEIGHT_EXTS = new Set([
  'safetensors', 'gguf', 'ggml', 'ggmf', 'onnx', 'ort', 'pt', 'pth', 'pt2', 'ptl', 'bin', 'ckpt',
  'h5', 'hdf5', 'keras', 'pb', 'tflite', 'lite', 'npz', 'npy', 'pkl', 'pickle', 'joblib', 'mlmodel',
  'mlpackage', 'msgpack', 'engine', 'plan', 'mar', 'llamafile', 'caffemodel', 'pmml', 'coreml',
  'params', 'nemo', 'xgb', 'ubj', 'cbm', 'lgb',
]);

const DATASET_EXTS = new Set([
  'csv', 'tsv', 'parquet', 'jsonl', 'ndjson', 'arrow', 'feather', 'avro', 'orc', 'tfrecord',
  'tfrecords', 'xlsx', 'xls', 'h5ad', 'lance', 'sqlite', 'db',
]);

const DOC_EXTS = new Set(['md', 'markdown', 'rst', 'adoc', 'pdf', 'html', 'htm', 'txt', 'png', 'jpg', 'jpeg', 'gif', 'svg', 'webp']);

const DOC_NAME_PREFIXES = ['readme', 'license', 'licence', 'notice', 'changelog', 'model_card', 'modelcard', 'model-card', 'citation', 'authors', 'contributing'];

/** Instruction files read by agents (KitOps treats these as prompts too). */
const PROMPT_NAMES = new Set(['agents.md', 'claude.md', 'skill.md']);

/** Files that accompany weights and describe how to load them. Value: the part type. */
const MODEL_META: Record<string, 'config' | 'tokenizer'> = {
  'config.json': 'config',
  'generation_config.json': 'config',
  'preprocessor_config.json': 'config',
  'processor_config.json': 'config',
  'adapter_config.json': 'config',
  'chat_template.json': 'config',
  'chat_template.jinja': 'config',
  'params.json': 'config',
  'tokenizer.json': 'tokenizer',
  'tokenizer_config.json': 'tokenizer',
  'special_tokens_map.json': 'tokenizer',
  'added_tokens.json': 'tokenizer',
  'vocab.json': 'tokenizer',
  'vocab.txt': 'tokenizer',
  'merges.txt': 'tokenizer',
  'tokenizer.model': 'tokenizer',
  'spiece.model': 'tokenizer',
  'sentencepiece.bpe.model': 'tokenizer',
};

function modelMetaType(name: string): 'config' | 'tokenizer' | undefined {
  const lower = name.toLowerCase();
  if (MODEL_META[lower]) return MODEL_META[lower];
  if (lower.endsWith('.index.json')) return 'config'; // model.safetensors.index.json: shard map
  if (lower.endsWith('.tiktoken') || lower.startsWith('vocab.')) return 'tokenizer';
  return undefined;
}

function extension(name: string): string {
  const dot = name.lastIndexOf('.');
  return dot <= 0 ? '' : name.slice(dot + 1).toLowerCase();
}

/** The kind of a file judged by its name alone (directory conventions are applied before). */
export function classifyFile(path: string): Kind {
  const name = posix.basename(path);
  const lower = name.toLowerCase();
  const ext = extension(name);
  // Prompts first: `system.prompt.md` must not be taken for documentation.
  if (lower.includes('.prompt') || PROMPT_NAMES.has(lower) || ext === 'prompty') return 'prompt';
  if (modelMetaType(name)) return 'modelMeta';
  if (WEIGHT_EXTS.has(ext)) return 'weights';
  if (DATASET_EXTS.has(ext)) return 'dataset';
  if (/^requirements.*\.txt$/.test(lower)) return 'code';
  if (DOC_NAME_PREFIXES.some((p) => lower.startsWith(p)) || DOC_EXTS.has(ext)) return 'docs';
  return 'code'; // sources, configs, and anything unrecognised
}

// ---- the model --------------------------------------------------------------------------------

/** `model-00001-of-00003.safetensors`, `pytorch_model-00002-of-00002.bin`, `x-00001-of-00002.gguf` */
const SHARD = /^(.*)-(\d{5})-of-(\d{5})\.([^.]+)$/;

interface WeightUnit {
  files: ProjectFile[];
  size: number;
}

/** Shards of one model form one unit; every other weight file is a unit by itself. */
function weightUnits(weights: ProjectFile[]): WeightUnit[] {
  const units = new Map<string, ProjectFile[]>();
  for (const f of weights) {
    const m = SHARD.exec(posix.basename(f.path));
    const key = m ? `${posix.dirname(f.path)}/${m[1]}-of-${m[3]}.${m[4]}` : `file:${f.path}`;
    units.set(key, [...(units.get(key) ?? []), f]);
  }
  return [...units.values()].map((files) => ({
    files: files.sort((a, b) => compare(a.path, b.path)),
    size: files.reduce((n, f) => n + f.size, 0),
  }));
}

function weightPartType(path: string): string {
  const lower = posix.basename(path).toLowerCase();
  if (lower.startsWith('adapter_model') || lower.includes('lora')) return 'adapter';
  if (lower.includes('mmproj') || lower.includes('projector')) return 'projector';
  return 'weights';
}

const FORMATS: Record<string, string> = {
  safetensors: 'safetensors',
  gguf: 'gguf',
  ggml: 'ggml',
  onnx: 'onnx',
  pt: 'pytorch',
  pth: 'pytorch',
  pt2: 'pytorch',
  keras: 'keras',
  h5: 'hdf5',
  hdf5: 'hdf5',
  tflite: 'tflite',
  pb: 'tensorflow',
  mlmodel: 'coreml',
  pkl: 'pickle',
  joblib: 'joblib',
  npz: 'numpy',
  npy: 'numpy',
};

function buildModel(name: string, weights: ProjectFile[], meta: ProjectFile[]): KitfileModel {
  // The biggest unit is the model; on equal size the first path wins, for determinism.
  const units = weightUnits(weights).sort((a, b) => b.size - a.size || compare(a.files[0]!.path, b.files[0]!.path));
  const [main, ...others] = units;
  const primary = main!.files[0]!;
  const parts: KitfileModelPart[] = [
    ...main!.files.slice(1).map((f) => ({ path: f.path, type: 'weights' })),
    ...others.flatMap((u) => u.files.map((f) => ({ path: f.path, type: weightPartType(f.path) }))),
    ...meta.map((f) => ({ path: f.path, type: modelMetaType(posix.basename(f.path))! })),
  ].sort((a, b) => compare(a.path, b.path));

  const model: KitfileModel = { name, path: primary.path };
  const format = FORMATS[extension(primary.path)];
  if (format) model.format = format;
  if (parts.length > 0) model.parts = parts;
  return model;
}

// ---- grouping ---------------------------------------------------------------------------------

type EntryKind = Exclude<Kind, 'weights' | 'modelMeta'>;

/** Each ancestor directory of `path`, shallowest first (`a/b/c.txt` -> `a`, `a/b`). */
function ancestors(path: string): string[] {
  const segs = path.split('/').slice(0, -1);
  return segs.map((_, i) => segs.slice(0, i + 1).join('/'));
}

/**
 * Entry paths for the files that are not part of the model: for each file, its shallowest
 * directory holding only files of that kind, or the file itself.
 */
function groupEntries(files: Array<{ path: string; kind: Kind }>): Map<EntryKind, string[]> {
  const kindsUnder = new Map<string, Set<Kind>>();
  for (const f of files) {
    for (const dir of ancestors(f.path)) {
      const set = kindsUnder.get(dir) ?? new Set<Kind>();
      set.add(f.kind);
      kindsUnder.set(dir, set);
    }
  }
  const out = new Map<EntryKind, Set<string>>();
  for (const f of files) {
    if (f.kind === 'weights' || f.kind === 'modelMeta') continue;
    const dir = ancestors(f.path).find((d) => kindsUnder.get(d)!.size === 1);
    const set = out.get(f.kind) ?? new Set<string>();
    set.add(dir ?? f.path);
    out.set(f.kind, set);
  }
  return new Map([...out].map(([k, v]) => [k, [...v].sort(compare)]));
}

// ---- the generator ----------------------------------------------------------------------------

/** A package name from a folder name: lowercase letters, digits, `.`, `_`, `-`. */
export function sanitizePackageName(raw: string): string {
  const name = raw
    .toLowerCase()
    .replace(/[^a-z0-9._-]+/g, '-')
    .replace(/-{2,}/g, '-')
    .replace(/^[._-]+|[._-]+$/g, '');
  return name === '' ? 'model' : name;
}

/** Generate a Kitfile for the project in `dir` (see the top of this file for the rules). */
export async function generateKitfile(dir: string, opts: InitOptions = {}): Promise<Kitfile> {
  const root = resolve(dir);
  const ignore = await loadKitignoreMatcher(root);
  const files = await walkProject(root, ignore);
  if (files.length === 0) {
    throw new KitError('KITFILE_INIT_EMPTY', `nothing to pack in ${dir}: no files found (after .kitignore)`, {
      hint: 'run `kit init` in the folder that holds the model, data or code',
      exitCode: ExitCode.usage,
    });
  }

  const name = opts.name ?? sanitizePackageName(basename(root));
  const kitfile: Kitfile = { manifestVersion: MANIFEST_VERSION };
  const pkg: NonNullable<Kitfile['package']> = { name };
  if (opts.description !== undefined) pkg.description = opts.description;
  if (opts.author !== undefined) pkg.authors = [opts.author];
  kitfile.package = pkg;

  // 1. conventional top-level directories
  const claimed = new Map<EntryKind, Set<string>>();
  const rest: ProjectFile[] = [];
  for (const f of files) {
    const top = f.path.includes('/') ? f.path.slice(0, f.path.indexOf('/')) : undefined;
    const kind = top !== undefined ? CLAIMING_DIRS[top.toLowerCase()] : undefined;
    if (kind) claimed.set(kind, (claimed.get(kind) ?? new Set()).add(top!));
    else rest.push(f);
  }

  // 2. by name; 3. the model
  const classified = rest.map((f) => ({ ...f, kind: classifyFile(f.path) }));
  const weights = classified.filter((f) => f.kind === 'weights');
  const weightDirs = new Set(weights.map((f) => posix.dirname(f.path)));
  for (const f of classified) {
    // Tokenizer and config files only belong to the model when they sit next to weights.
    if (f.kind === 'modelMeta' && !weightDirs.has(posix.dirname(f.path))) f.kind = 'code';
  }
  if (weights.length > 0) {
    const meta = classified.filter((f) => f.kind === 'modelMeta');
    kitfile.model = buildModel(name, weights, meta);
  }

  // 4. everything else, grouped by directory
  const grouped = groupEntries(classified);
  const paths = (kind: EntryKind): string[] =>
    [...new Set([...(claimed.get(kind) ?? []), ...(grouped.get(kind) ?? [])])].sort(compare);

  const code: KitfileCode[] = paths('code').map((path) => ({ path }));
  const datasets: KitfileDataset[] = paths('dataset').map((path) => ({ name: datasetName(path), path }));
  const docs: KitfileDocs[] = paths('docs').map((path) => ({ path }));
  const prompts: KitfilePrompt[] = paths('prompt').map((path) => ({ path }));
  if (code.length > 0) kitfile.code = code;
  if (datasets.length > 0) kitfile.datasets = datasets;
  if (docs.length > 0) kitfile.docs = docs;
  if (prompts.length > 0) kitfile.prompts = prompts;

  // 5. what the files say about the model
  if (opts.enrich !== false) await enrichKitfile(root, kitfile);
  return kitfile;
}

/** `data/train.csv` -> `train`; `datasets` -> `datasets` */
function datasetName(path: string): string {
  const base = posix.basename(path);
  const dot = base.indexOf('.');
  return dot > 0 ? base.slice(0, dot) : base;
}

// ---- writing ----------------------------------------------------------------------------------

/**
 * Write `kitfile` into `dir` and return the path written. An existing Kitfile (any of its
 * names) is kept unless `force`; with `force` the existing file is replaced under its own name,
 * so discovery keeps finding the new content. The write is atomic: a temporary file in the same
 * directory, then rename (or, without `force`, link, which fails if the name was taken
 * meanwhile instead of overwriting it).
 */
export async function writeKitfile(dir: string, kitfile: Kitfile, opts: { force?: boolean } = {}): Promise<string> {
  const existing = await findExistingKitfile(dir);
  if (existing && !opts.force) throw kitfileExists(existing);
  const target = existing ?? join(dir, KITFILE_NAMES[0]);

  const tmp = join(dir, `.${basename(target)}.${process.pid}.${randomBytes(6).toString('hex')}.tmp`);
  await writeFile(tmp, serializeKitfile(kitfile), { mode: 0o644, flag: 'wx' });
  try {
    if (opts.force) await rename(tmp, target);
    else await linkNoClobber(tmp, target);
  } finally {
    await unlink(tmp).catch(() => undefined); // gone after rename; the spare name after link
  }
  return target;
}

async function linkNoClobber(tmp: string, target: string): Promise<void> {
  try {
    await link(tmp, target);
  } catch (err) {
    if (errnoCode(err) === 'EEXIST') throw kitfileExists(target);
    // Some filesystems have no hard links; fall back to rename after checking once more.
    if (await findExistingKitfile(dirname(target))) throw kitfileExists(target);
    await rename(tmp, target);
  }
}

async function findExistingKitfile(dir: string): Promise<string | undefined> {
  for (const name of KITFILE_NAMES) {
    const candidate = join(dir, name);
    try {
      await stat(candidate);
      return candidate;
    } catch (err) {
      if (errnoCode(err) !== 'ENOENT') throw err;
    }
  }
  return undefined;
}

function kitfileExists(path: string): KitError {
  return new KitError('KITFILE_EXISTS', `${path} already exists`, {
    hint: 'pass --force to overwrite it',
    exitCode: ExitCode.conflict,
  });
}
