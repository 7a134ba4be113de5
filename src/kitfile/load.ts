/**
 * Reading a Kitfile: find it, read it safely, parse the YAML, validate, and report every problem
 * with the line:column of the node it concerns.
 *
 * A Kitfile may come from anywhere (a cloned repository, a pipe), so reading is defensive: size
 * capped before parsing, no FIFOs or devices, alias expansion capped, nesting depth capped.
 */
import { stat } from 'node:fs/promises';
import { join } from 'node:path';
import {
  LineCounter,
  isAlias,
  isMap,
  isScalar,
  isSeq,
  parseDocument,
  stringify,
  visit,
  type Document,
} from 'yaml';
import { ExitCode, KitError, errnoCode } from '../errors.js';
import { readSmallRegularFile, unreadable } from './io.js';
import { KITFILE_NAMES, MAX_KITFILE_BYTES } from './names.js';
import { KITFILE_SECTIONS, type Kitfile } from './schema.js';
import { formatFieldPath, validateKitfileValue, type FieldPath } from './validate.js';

export { normalizeKitfilePath, isArtifactReference } from './paths.js';

/** More alias expansions than this is refused (a "billion laughs" document expands exponentially). */
export const MAX_ALIAS_COUNT = 100;
/** Collections nested deeper than this are refused; real Kitfiles use fewer than ten levels. */
export const MAX_NESTING_DEPTH = 64;

export interface KitfileProblem {
  file: string;
  line: number;
  column: number;
  /** Where in the Kitfile, e.g. `datasets[1].path`; empty for the document as a whole. */
  field: string;
  message: string;
}

/**
 * A Kitfile that cannot be used. `message` is one summary line; `problems` lists everything
 * found, sorted by position. Print them with formatProblems().
 */
export class KitfileError extends KitError {
  readonly problems: KitfileProblem[];

  constructor(file: string, problems: KitfileProblem[]) {
    const n = problems.length;
    super('KITFILE_INVALID', `${file} has ${n} problem${n === 1 ? '' : 's'}`, { exitCode: ExitCode.failure });
    this.name = 'KitfileError';
    this.problems = sortProblems(problems);
  }
}

function sortProblems(problems: KitfileProblem[]): KitfileProblem[] {
  return [...problems].sort(
    (a, b) => a.line - b.line || a.column - b.column || a.field.localeCompare(b.field) || a.message.localeCompare(b.message),
  );
}

/** One line per problem, `<file>:<line>:<col>: <field>: <message>` (no field part when empty). */
export function formatProblems(problems: KitfileProblem[]): string[] {
  return sortProblems(problems).map(
    (p) => `${p.file}:${p.line}:${p.column}: ${p.field === '' ? '' : `${p.field}: `}${p.message}`,
  );
}

// ---- parsing -----------------------------------------------------------------------------------

/** Parse and validate Kitfile text. Throws KitfileError listing every problem found. */
export function parseKitfile(text: string, file: string): Kitfile {
  const bytes = Buffer.byteLength(text, 'utf8');
  if (bytes > MAX_KITFILE_BYTES) throw tooLarge(file, bytes);

  const src = new YamlSource(text, file);
  // The YAML parser slows to seconds on megabytes of `[[[[`; refuse such text before parsing.
  const deepAt = flowNestingOverflow(text, MAX_NESTING_DEPTH);
  if (deepAt !== undefined) throw new KitfileError(file, [src.problemAt(deepAt, '', nestingMessage())]);

  const doc = parseDocument(text, {
    lineCounter: src.lineCounter,
    uniqueKeys: true,
    prettyErrors: false, // we add positions ourselves; prettifying huge inputs is costly
    logLevel: 'error', // no process warnings from the library
  });
  src.doc = doc;

  const problems = src.yamlErrors();
  // Duplicate keys leave a usable document: keep validating so all problems come out at once.
  // Any other YAML error means the structure is unreliable, and checks on it would mislead.
  if (doc.errors.some((e) => e.code !== 'DUPLICATE_KEY')) throw new KitfileError(file, problems);

  const structural = src.prepareTree();
  if (structural.length > 0) throw new KitfileError(file, [...problems, ...structural]);

  let value: unknown;
  try {
    value = doc.toJS({ maxAliasCount: MAX_ALIAS_COUNT });
  } catch (err) {
    if (!(err instanceof ReferenceError)) throw err;
    throw new KitfileError(file, [...problems, src.aliasProblem(err)]);
  }

  const { kitfile, issues } = validateKitfileValue(nullsToUndefined(value), (path) => src.offsetOf(path));
  for (const issue of issues) {
    problems.push(src.problemAt(src.offsetOf(issue.path, issue.at), formatFieldPath(issue.path), issue.message));
  }
  if (problems.length > 0 || !kitfile) throw new KitfileError(file, problems);
  return dropUndefined(kitfile);
}

function tooLarge(file: string, bytes: number): KitfileError {
  const message = `the file is ${bytes} bytes; a Kitfile may be at most ${MAX_KITFILE_BYTES} bytes (1 MiB)`;
  return new KitfileError(file, [{ file, line: 1, column: 1, field: '', message }]);
}

function nestingMessage(): string {
  return `collections are nested more than ${MAX_NESTING_DEPTH} levels deep`;
}

/**
 * Offset where `[`/`{` nesting first exceeds `limit`, counting brackets naively (also inside
 * quotes); closing brackets never bring the count below zero. A cheap guard for the plain
 * `[[[[...` case only: brackets inside quoted strings can fool it either way (a false alarm
 * needs dozens of unbalanced brackets in one string), and prepareTree() checks the real depth.
 */
function flowNestingOverflow(text: string, limit: number): number | undefined {
  let depth = 0;
  for (let i = 0; i < text.length; i++) {
    const c = text.charCodeAt(i);
    if (c === 0x5b || c === 0x7b) {
      if (++depth > limit) return i;
    } else if ((c === 0x5d || c === 0x7d) && depth > 0) {
      depth--;
    }
  }
  return undefined;
}

/**
 * Nulls (`key:` with no value) mean "absent", as in KitOps. They become undefined rather than
 * being deleted so that an unknown key is still reported when it has no value. `parameters` are
 * kept as written.
 */
function nullsToUndefined(value: unknown): unknown {
  return mapObjects(value, (v) => (v === null ? undefined : v));
}

/** Remove the undefined-valued keys left by nullsToUndefined from the validated result. */
function dropUndefined<T>(value: T): T {
  return mapObjects(value, (v) => v, true) as T;
}

function mapObjects(value: unknown, fn: (v: unknown) => unknown, dropUndef = false): unknown {
  if (value === null || typeof value !== 'object') return value;
  if (Array.isArray(value)) return value.map((v) => mapObjects(v, fn, dropUndef));
  const out: Record<string, unknown> = {};
  for (const [k, v] of Object.entries(value)) {
    const mapped = k === 'parameters' ? v : mapObjects(fn(v), fn, dropUndef);
    if (!(dropUndef && mapped === undefined)) out[k] = mapped;
  }
  return out;
}

type YamlNode = unknown;

/** The parsed document together with what is needed to turn nodes into line:column. */
class YamlSource {
  readonly lineCounter = new LineCounter();
  doc: Document.Parsed | undefined;

  constructor(
    readonly text: string,
    readonly file: string,
  ) {}

  problemAt(offset: number, field: string, message: string): KitfileProblem {
    // Before parsing, the line counter knows no lines yet; count them in the text then.
    const { line, col } = this.doc ? this.lineCounter.linePos(offset) : linePosInText(this.text, offset);
    return { file: this.file, line: Math.max(line, 1), column: Math.max(col, 1), field, message };
  }

  yamlErrors(): KitfileProblem[] {
    return (this.doc?.errors ?? []).map((e) => {
      const offset = e.pos[0];
      if (e.code === 'DUPLICATE_KEY') {
        const field = this.fieldOfKeyAt(offset);
        return this.problemAt(offset, field ? formatFieldPath(field) : '', 'duplicate key: this field is set more than once');
      }
      return this.problemAt(offset, '', yamlMessage(e.code, e.message));
    });
  }

  /**
   * One walk over the node tree (aliases not followed) that
   *  - refuses nesting deeper than MAX_NESTING_DEPTH and keys that are lists or mappings
   *    (their conversion to strings is slow and never meaningful in a Kitfile);
   *  - keeps scalars outside `parameters` as written: `version: 1.0` is the string "1.0", not
   *    the number 1, matching how KitOps (Go yaml) reads a number into a string field.
   */
  prepareTree(): KitfileProblem[] {
    const problems: KitfileProblem[] = [];
    const walk = (node: YamlNode, path: FieldPath, inParameters: boolean): void => {
      if (isMap(node) || isSeq(node)) {
        if (path.length >= MAX_NESTING_DEPTH) {
          problems.push(this.problemAt(node.range?.[0] ?? 0, formatFieldPath(path), nestingMessage()));
          return;
        }
      }
      if (isMap(node)) {
        for (const pair of node.items) {
          if (pair.key !== null && !isScalar(pair.key) && !isAlias(pair.key)) {
            const at = (pair.key as { range?: [number] }).range?.[0] ?? 0;
            problems.push(this.problemAt(at, formatFieldPath(path), 'a key must be a plain value, not a list or mapping'));
            continue;
          }
          const key = isScalar(pair.key) ? String(pair.key.value) : '';
          walk(pair.value, [...path, key], inParameters || key === 'parameters');
        }
      } else if (isSeq(node)) {
        node.items.forEach((item, i) => walk(item, [...path, i], inParameters));
      } else if (isScalar(node) && !inParameters) {
        if ((typeof node.value === 'number' || typeof node.value === 'boolean') && typeof node.source === 'string') {
          node.value = node.source;
        }
      }
    };
    walk(this.doc?.contents ?? null, [], false);
    return problems;
  }

  /** toJS() refused an alias: an alias bomb, or an alias to an anchor not defined before it. */
  aliasProblem(err: ReferenceError): KitfileProblem {
    const bomb = /excessive alias/i.test(err.message);
    let offset = 0;
    const doc = this.doc;
    if (doc) {
      visit(doc, {
        Alias: (_key, node) => {
          if (!bomb && node.resolve(doc) !== undefined) return undefined;
          offset = node.range?.[0] ?? 0;
          return visit.BREAK;
        },
      });
    }
    const message = bomb
      ? `too many alias expansions (more than ${MAX_ALIAS_COUNT}); refusing what looks like a YAML alias bomb`
      : `bad alias: ${err.message}`;
    return this.problemAt(offset, '', message);
  }

  /**
   * Source offset for a field. For a value, its node; with `at: 'key'`, or when the value is
   * empty, the key; for a field that is missing, the mapping that should hold it.
   */
  offsetOf(path: FieldPath, at?: 'key'): number {
    const doc = this.doc;
    if (!doc) return 0;
    let node: YamlNode = doc.contents;
    let offset = rangeStart(node) ?? 0;
    for (let i = 0; i < path.length; i++) {
      node = deref(doc, node);
      const seg = path[i]!;
      if (isMap(node)) {
        const pair = node.items.find((p) => isScalar(p.key) && String(p.key.value) === String(seg));
        if (!pair) return offset;
        const keyStart = rangeStart(pair.key) ?? offset;
        const isLast = i === path.length - 1;
        if (isLast && (at === 'key' || isEmptyValue(pair.value))) return keyStart;
        offset = rangeStart(pair.value) ?? keyStart;
        node = pair.value;
      } else if (isSeq(node) && typeof seg === 'number' && seg < node.items.length) {
        node = node.items[seg];
        offset = rangeStart(node) ?? offset;
      } else {
        return offset;
      }
    }
    return offset;
  }

  /** The field path of the map key starting at `offset` (for duplicate-key errors). */
  private fieldOfKeyAt(offset: number): FieldPath | undefined {
    let found: FieldPath | undefined;
    const walk = (node: YamlNode, path: FieldPath): void => {
      if (found || path.length > MAX_NESTING_DEPTH) return;
      if (isMap(node)) {
        for (const pair of node.items) {
          const key = isScalar(pair.key) ? String(pair.key.value) : '?';
          if (rangeStart(pair.key) === offset) {
            found = [...path, key];
            return;
          }
          walk(pair.value, [...path, key]);
        }
      } else if (isSeq(node)) {
        node.items.forEach((item, i) => walk(item, [...path, i]));
      }
    };
    walk(this.doc?.contents ?? null, []);
    return found;
  }
}

function linePosInText(text: string, offset: number): { line: number; col: number } {
  let line = 1;
  let lineStart = 0;
  for (let i = text.indexOf('\n'); i !== -1 && i < offset; i = text.indexOf('\n', i + 1)) {
    line++;
    lineStart = i + 1;
  }
  return { line, col: offset - lineStart + 1 };
}

function rangeStart(node: YamlNode): number | undefined {
  const range = (node as { range?: [number, number, number] } | null)?.range;
  return range?.[0];
}

function deref(doc: Document.Parsed, node: YamlNode): YamlNode {
  return isAlias(node) ? node.resolve(doc) : node;
}

function isEmptyValue(node: YamlNode): boolean {
  return node === null || node === undefined || (isScalar(node) && node.value === null);
}

function yamlMessage(code: string, message: string): string {
  switch (code) {
    case 'MULTIPLE_DOCS':
      return 'a Kitfile is a single YAML document; remove the extra `---` documents';
    case 'RESOURCE_EXHAUSTION':
      return `the YAML is too deeply nested to parse (${message})`;
    default:
      return `YAML syntax error: ${message}`;
  }
}

// ---- finding and reading -------------------------------------------------------------------------

export interface LoadedKitfile {
  kitfile: Kitfile;
  /** The text as read, for callers that store or hash it. */
  text: string;
  /** The path shown in messages: as given, `<contextDir>/Kitfile` when discovered, or `<stdin>`. */
  file: string;
}

/**
 * Find, read and validate a Kitfile.
 *  - `file` undefined: the first of `Kitfile`, `kitfile`, `.kitfile` in `contextDir`;
 *  - `file === '-'`: standard input (or `stdin`, for tests and embedding);
 *  - otherwise a path relative to the working directory.
 */
export async function loadKitfile(opts: {
  contextDir: string;
  file?: string;
  stdin?: NodeJS.ReadableStream;
}): Promise<LoadedKitfile> {
  let text: string;
  let file: string;
  if (opts.file === '-') {
    file = '<stdin>';
    text = await readStdin(opts.stdin ?? process.stdin, file);
  } else {
    file = opts.file ?? (await discoverKitfile(opts.contextDir));
    text = await readKitfileText(file, opts.file === undefined);
  }
  return { kitfile: parseKitfile(text, file), text, file };
}

/** The first Kitfile name present in `contextDir` (whatever its type: reading checks that). */
async function discoverKitfile(contextDir: string): Promise<string> {
  await assertDirectory(contextDir);
  for (const name of KITFILE_NAMES) {
    const candidate = join(contextDir, name);
    try {
      await stat(candidate);
      return candidate;
    } catch (err) {
      if (errnoCode(err) !== 'ENOENT' && errnoCode(err) !== 'ENOTDIR') throw unreadable(candidate, err);
    }
  }
  throw new KitError('KITFILE_NOT_FOUND', `no Kitfile in ${contextDir} (looked for ${KITFILE_NAMES.join(', ')})`, {
    hint: 'run `kit init` to generate one, or pass -f <path> (-f - reads standard input)',
    exitCode: ExitCode.notFound,
  });
}

async function assertDirectory(dir: string): Promise<void> {
  let st;
  try {
    st = await stat(dir);
  } catch (err) {
    if (errnoCode(err) === 'ENOENT') {
      throw new KitError('CONTEXT_NOT_FOUND', `context directory ${dir} does not exist`, { exitCode: ExitCode.notFound });
    }
    throw unreadable(dir, err);
  }
  if (!st.isDirectory()) {
    throw new KitError('CONTEXT_NOT_DIRECTORY', `context ${dir} is not a directory`, { exitCode: ExitCode.usage });
  }
}

async function readKitfileText(path: string, discovered: boolean): Promise<string> {
  const buf = await readSmallRegularFile(path, {
    label: 'Kitfile',
    maxBytes: MAX_KITFILE_BYTES,
    tooLarge: (size) => tooLarge(path, size),
    notFound: () => notFound(path, discovered),
  });
  return buf.toString('utf8');
}

async function readStdin(stream: NodeJS.ReadableStream, file: string): Promise<string> {
  if ((stream as { isTTY?: boolean }).isTTY) {
    throw new KitError('KITFILE_STDIN_TTY', 'refusing to read a Kitfile from a terminal (-f -)', {
      hint: 'redirect a Kitfile to standard input, e.g. `kit pack . -f - < Kitfile`',
      exitCode: ExitCode.usage,
    });
  }
  const chunks: Buffer[] = [];
  let total = 0;
  for await (const chunk of stream) {
    const buf = typeof chunk === 'string' ? Buffer.from(chunk) : (chunk as Buffer);
    total += buf.length;
    if (total > MAX_KITFILE_BYTES) throw tooLarge(file, total); // leaving the loop stops reading
    chunks.push(buf);
  }
  return Buffer.concat(chunks).toString('utf8');
}

function notFound(path: string, discovered: boolean): KitError {
  return new KitError('KITFILE_NOT_FOUND', `Kitfile ${path} not found`, {
    hint: discovered ? 'run `kit init` to generate one, or pass -f <path>' : 'check the path given with -f, or run `kit init` to generate a Kitfile',
    exitCode: ExitCode.notFound,
  });
}

// ---- writing -----------------------------------------------------------------------------------

const FIELD_ORDER: Record<string, readonly string[]> = {
  package: ['name', 'version', 'description', 'license', 'authors'],
  model: ['name', 'path', 'framework', 'format', 'version', 'description', 'license', 'parameters', 'parts'],
  part: ['name', 'path', 'type', 'license'],
  datasets: ['name', 'path', 'description', 'license', 'parameters'],
  code: ['path', 'description', 'license'],
  docs: ['path', 'description'],
  prompts: ['name', 'path', 'description'],
};

/** Own keys of `obj` listed in `keys`, in that order, without undefined values. */
function ordered(obj: object, keys: readonly string[]): Record<string, unknown> {
  const out: Record<string, unknown> = {};
  for (const k of keys) {
    const v = (obj as Record<string, unknown>)[k];
    if (v !== undefined) out[k] = v;
  }
  return out;
}

/**
 * YAML text in canonical key order (manifestVersion, package, model, code, datasets, docs,
 * prompts; fields within entries in schema order). Fields the schema does not know are dropped.
 */
export function serializeKitfile(k: Kitfile): string {
  const out: Record<string, unknown> = {};
  for (const section of KITFILE_SECTIONS) {
    const v = k[section];
    if (v === undefined) continue;
    if (section === 'manifestVersion') out[section] = v;
    else if (section === 'package') out[section] = ordered(v as object, FIELD_ORDER['package']!);
    else if (section === 'model') {
      const model = ordered(v as object, FIELD_ORDER['model']!);
      if (Array.isArray(model['parts'])) model['parts'] = model['parts'].map((p: object) => ordered(p, FIELD_ORDER['part']!));
      out[section] = model;
    } else {
      out[section] = (v as object[]).map((e) => ordered(e, FIELD_ORDER[section]!));
    }
  }
  // No anchors/aliases for shared objects, and no folding of long descriptions.
  return stringify(out, { indent: 2, lineWidth: 0, aliasDuplicateObjects: false });
}
